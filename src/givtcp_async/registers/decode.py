"""Turn a field's registers into its published value (SPEC §4.1). Pure: no I/O.

Register words are combined with pymodbus's register conversion; then the field's ``scale`` is
applied (and the result rounded to the decimals the scale implies, so 3 x 0.1 is 0.3, not
0.30000000000000004) and ``options`` map enum codes to their names (an unknown code stays an
integer). A register that is missing, a time that is not a valid HHMM, a date that does not exist
or bytes that are not printable ASCII decode to None: never to a made-up value.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import datetime, time, timedelta
from typing import Final

from pymodbus.client.mixin import ModbusClientMixin

from givtcp_async.registers.schema import Enc, Field

Getter = Callable[[int], int | None]

_DT: Final = ModbusClientMixin.DATATYPE
_WORDS: Final = {
    Enc.U32: 2,
    Enc.S32: 2,
    Enc.DATETIME: 6,
    Enc.DATETIME_FULL: 6,
    Enc.TIME_HMS: 3,
    Enc.SECONDS: 2,
}


def _convert(words: Sequence[int], data_type: ModbusClientMixin.DATATYPE) -> int:
    value = ModbusClientMixin.convert_from_registers(list(words), data_type)
    assert isinstance(value, int)
    return value


def scale_decimals(scale: float) -> int:
    """Decimals a scale implies: 0.1 -> 1, 0.01 -> 2, 0.001 -> 3, 1 or 10 -> 0."""
    if scale <= 0 or scale >= 1:
        return 0
    return max(0, math.ceil(-math.log10(scale) - 1e-9))


def apply_scale(raw: int, scale: float) -> int | float:
    """``raw`` times ``scale``: an int when the scale is whole, else a float rounded sensibly."""
    if scale == 1:
        return raw
    if float(scale).is_integer():
        return raw * int(scale)
    return round(raw * scale, scale_decimals(scale))


def hhmm(raw: int) -> str | None:
    """A decimal HHMM register (1630 = 16:30) as "HH:MM:SS"; None if it is not a valid time."""
    hours, minutes = divmod(raw, 100)
    if raw < 0 or raw > 2359 or minutes >= 60:
        return None
    return f"{hours:02d}:{minutes:02d}:00"


def ascii_text(words: Sequence[int]) -> str | None:
    """Two characters per register, high byte first, NULs stripped; None if not printable."""
    raw = b"".join(w.to_bytes(2, "big") for w in words).replace(b"\x00", b"")
    if any(b < 0x20 or b > 0x7E for b in raw):
        return None
    return raw.decode("ascii")


def _datetime(words: Sequence[int], century: int = 2000) -> datetime | None:
    year, month, day, hour, minute, second = words
    try:
        # The inverter's clock has no zone: the caller localises this naive value.
        return datetime(century + year, month, day, hour, minute, second)  # noqa: DTZ001
    except ValueError:
        return None


def _time_of_day(words: Sequence[int]) -> time | None:
    try:
        return time(words[0], words[1], words[2])
    except ValueError:
        return None


def _number(enc: Enc, words: Sequence[int]) -> int:
    if enc is Enc.S16:
        return _convert(words[:1], _DT.INT16)
    if enc is Enc.U32:
        return _convert(words[:2], _DT.UINT32)
    if enc is Enc.S32:
        return _convert(words[:2], _DT.INT32)
    if enc is Enc.HIGH_BYTE:
        return words[0] >> 8
    if enc is Enc.LOW_BYTE:
        return words[0] & 0xFF
    return words[0]  # U16


def decode_words(field: Field, words: Sequence[int]) -> object | None:
    """Decode already-fetched register words (in ``field.registers`` order)."""
    enc = field.enc
    if enc is Enc.ASCII:
        return ascii_text(words)
    if enc is Enc.TIME:
        return hhmm(words[0])
    if enc is Enc.DATETIME:
        return _datetime(words[:6])
    if enc is Enc.DATETIME_FULL:
        return _datetime(words[:6], 0) if 2000 <= words[0] <= 2099 else None
    if enc is Enc.TIME_HMS:
        return _time_of_day(words)
    if enc is Enc.SECONDS:
        return str(timedelta(seconds=_convert(words[:2], _DT.UINT32)))
    if enc is Enc.HEX:
        return "".join(f"{w:04x}" for w in words)
    if enc is Enc.PF:
        return round(words[0] / 10000 - 1, 4)
    if enc is Enc.SIGNED_PF:
        return round(_convert(words[:1], _DT.INT16) / 10000, 4)
    if enc is Enc.BOOL:
        if words[0] not in (0, 1):
            return None
        if field.options is not None:
            return field.options.get(words[0], words[0])
        return bool(words[0])
    raw = _number(enc, words)
    if field.options is not None:
        if all(w == 0xFFFF for w in words):
            return None  # all ones is "not read", never a code to publish
        return field.options.get(raw, raw)
    return apply_scale(raw, field.scale)


def decode_field(field: Field, get: Getter) -> object | None:
    """The value of ``field`` from a register look-up; None if any register is missing."""
    words: list[int] = []
    for register in field.registers:
        word = get(register)
        if word is None:
            return None
        words.append(word & 0xFFFF)
    needed = _WORDS.get(field.enc, 1)
    if len(words) < needed:
        raise ValueError(f"{field.name}: {field.enc} needs {needed} registers")
    return decode_words(field, words)
