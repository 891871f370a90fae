"""Turn a field's registers into its published value (SPEC §4.1). Pure: no I/O.

Register words are combined with pymodbus's register conversion; then the field's ``scale`` is
applied (and the result rounded to the decimals the scale implies, so 3 x 0.1 is 0.3, not
0.30000000000000004) and ``options`` map enum codes to their names (an unknown code stays an
integer). A register that is missing, a time that is not a valid HHMM, a date that does not exist
or bytes that are not printable ASCII decode to None: never to a made-up value.

:func:`decode_field` is the reference; :func:`compile_decoder` makes, once per field, a function
that gives the same value without looking at the encoding again (the snapshot's hot path), and
:func:`decoder_of` keeps it for each field. pymodbus is imported only when the reference
conversion runs: the compiled decoders of the inverter's, packs' and meters' fields never need it,
so a daemon without an EV charger does not load it (~1.2 MiB, issue #16).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, time, timedelta
from typing import Final

from givtcp_async.registers.schema import Enc, Field

Getter = Callable[[int], int | None]
Decoder = Callable[[Getter], object | None]

_WORDS: Final = {
    Enc.U32: 2,
    Enc.S32: 2,
    Enc.DATETIME: 6,
    Enc.DATETIME_FULL: 6,
    Enc.TIME_HMS: 3,
    Enc.SECONDS: 2,
    Enc.VERSION: 4,
}


def _convert(words: Sequence[int], data_type: str) -> int:
    """``words`` combined as pymodbus's ``DATATYPE[data_type]`` (INT16, UINT32, INT32)."""
    from pymodbus.client.mixin import ModbusClientMixin

    dt = getattr(ModbusClientMixin.DATATYPE, data_type)
    value = ModbusClientMixin.convert_from_registers(list(words), dt)
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


@functools.lru_cache(maxsize=256)  # slot times: a handful of distinct values, 42 per refresh
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
        return _convert(words[:1], "INT16")
    if enc is Enc.U32:
        return _convert(words[:2], "UINT32")
    if enc is Enc.S32:
        return _convert(words[:2], "INT32")
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
        return str(timedelta(seconds=_convert(words[:2], "UINT32")))
    if enc is Enc.HEX:
        return "".join(f"{w:04x}" for w in words)
    if enc is Enc.VERSION:
        prefix = ascii_text(words[:2])
        digits = "".join(str(b) for w in words[2:4] for b in w.to_bytes(2, "big"))
        return None if not prefix else prefix + digits
    if enc is Enc.PF:
        return round(words[0] / 10000 - 1, 4)
    if enc is Enc.SIGNED_PF:
        return round(_convert(words[:1], "INT16") / 10000, 4)
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


def _finish(field: Field) -> Callable[[int], object]:
    """What a field does with its combined integer: options, else the scale."""
    options: Mapping[int, str] | None = field.options
    scale = field.scale
    if options is not None:
        get = options.get
        return lambda raw: get(raw, raw)
    if scale == 1:
        return lambda raw: raw
    if float(scale).is_integer():
        factor = int(scale)
        return lambda raw: raw * factor
    divisor = _divisor(scale)
    if divisor:
        return lambda raw: raw / divisor
    decimals = scale_decimals(scale)
    return lambda raw: round(raw * scale, decimals)


def _divisor(scale: float) -> int:
    """10 ** n when ``scale`` is 0.1, 0.01, ...; else 0.

    Dividing by it gives the nearest float to the decimal value, which is what
    ``round(raw * scale, decimals)`` works out, in one operation.
    """
    if not 0 < scale < 1:
        return 0
    divisor = 10 ** scale_decimals(scale)
    return divisor if scale * divisor == 1 else 0


def _one_word(field: Field) -> Callable[[int], object | None] | None:
    """The value of a one-register field from its (16-bit) word; None: no specialisation."""
    enc, finish = field.enc, _finish(field)
    if enc is Enc.U16:
        return finish
    if enc is Enc.S16:
        return lambda w: finish(w - 0x10000 if w & 0x8000 else w)
    if enc is Enc.HIGH_BYTE:
        return lambda w: finish(w >> 8)
    if enc is Enc.LOW_BYTE:
        return lambda w: finish(w & 0xFF)
    if enc is Enc.TIME:
        return hhmm
    if enc is Enc.PF:
        return lambda w: round(w / 10000 - 1, 4)
    if enc is Enc.SIGNED_PF:
        return lambda w: round((w - 0x10000 if w & 0x8000 else w) / 10000, 4)
    if enc is Enc.BOOL:
        options = field.options
        if options is not None:
            get = options.get
            return lambda w: get(w, w) if w in (0, 1) else None
        return lambda w: bool(w) if w in (0, 1) else None
    return None


# The encodings whose combined integer an ``options`` map names (decode_words's last branch).
_ENUM_NUMBERS: Final = frozenset({Enc.U16, Enc.S16, Enc.U32, Enc.S32, Enc.HIGH_BYTE, Enc.LOW_BYTE})


def compile_decoder(field: Field) -> Decoder:
    """A function of a register look-up that returns what :func:`decode_field` returns."""
    needed = _WORDS.get(field.enc, 1)
    if len(field.registers) < needed:
        raise ValueError(f"{field.name}: {field.enc} needs {needed} registers")
    if len(field.registers) == 1 and (one := _one_word(field)) is not None:
        r = field.registers[0]
        plain = field.options is None and field.scale == 1
        divisor = _divisor(field.scale)
        # The commonest shapes written out in one function each (one call per value).
        if field.enc is Enc.U16 and plain:

            def u16(get: Getter) -> object | None:
                w = get(r)
                return None if w is None else w & 0xFFFF

            return u16
        if field.enc is Enc.U16 and field.options is None and divisor:

            def u16_scaled(get: Getter) -> object | None:
                w = get(r)
                return None if w is None else (w & 0xFFFF) / divisor

            return u16_scaled
        if field.enc is Enc.S16 and field.options is None and (plain or divisor):
            d = divisor or 1

            def s16(get: Getter) -> object | None:
                w = get(r)
                if w is None:
                    return None
                w &= 0xFFFF
                raw = w - 0x10000 if w & 0x8000 else w
                return raw / d if divisor else raw

            return s16

        # An enum word of all ones is "not read", never a code (as decode_words has it).
        ones_unread = field.options is not None and field.enc in _ENUM_NUMBERS

        def single(get: Getter) -> object | None:
            w = get(r)
            if w is None:
                return None
            w &= 0xFFFF
            return None if ones_unread and w == 0xFFFF else one(w)

        return single
    if len(field.registers) == 2 and field.enc in (Enc.U32, Enc.S32):
        hi_reg, lo_reg = field.registers
        finish = _finish(field)
        signed = field.enc is Enc.S32
        ones_unread = field.options is not None

        def double(get: Getter) -> object | None:
            hi, lo = get(hi_reg), get(lo_reg)
            if hi is None or lo is None:
                return None
            raw = ((hi & 0xFFFF) << 16) | (lo & 0xFFFF)
            if ones_unread and raw == 0xFFFF_FFFF:
                return None
            return finish(raw - 0x1_0000_0000 if signed and raw & 0x8000_0000 else raw)

        return double
    return lambda get: decode_field(field, get)


_DECODERS: dict[int, tuple[Field, Decoder]] = {}
_DECODERS_MAX: Final = 8192  # the register maps hold ~2,000 fields; a bound all the same


def decoder_of(field: Field) -> Decoder:
    """:func:`compile_decoder` of ``field``, made once per field object and kept."""
    hit = _DECODERS.get(id(field))
    if hit is not None and hit[0] is field:
        return hit[1]
    if len(_DECODERS) >= _DECODERS_MAX:
        _DECODERS.clear()
    decoder = compile_decoder(field)
    _DECODERS[id(field)] = (field, decoder)  # the field kept with it: its id is not reused
    return decoder
