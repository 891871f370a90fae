"""Page-level data-quality gate: which register pages may enter the cache (SPEC §3.6, §6.3).

CRC failures never get this far (the stream decoder drops them). Here a page with a valid CRC is
still refused when it carries the leaked-buffer fingerprint (Pattern A), when a page that held
data suddenly reads all zero (Pattern B), or when a battery page shows no valid pack serial.

A page of one kind of device at another kind's address (issue 12) is refused as
``WRONG_DEVICE``: an HV module's page (IR60-119 at 0x50-0x5F) carries the module's serial in
IR114-118, a stack controller's first page (IR60 at 0x70-0x7F) starts with its firmware letters
("BABA", "BAAA": IR60-61) and its second (IR120) carries the stack's serial in IR138-142, in every
capture. A module's cell voltages at a stack address, or a stack's page at a module's, have none
of these.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from enum import StrEnum
from typing import Final, NamedTuple

from givtcp_async.quality.patterns import is_all_zero, is_pattern_a

# GivEnergy serials (SPEC §4.2, every capture): 2 letters, year and week, a letter, a 3-digit
# unit (SA2347G000, BG2134G007, HX2444G000); an EMS controller is EMS, year, week, unit.
SERIAL_RE: Final = re.compile(r"^(?:[A-Z]{2}[0-9]{4}[A-Z][0-9]{3}|EMS[0-9]{7})$")
BATTERY_ADDRESSES: Final = range(0x32, 0x38)
# LV pack page: IR(60..119); the pack serial lives in IR110..114, the cells in IR60..75.
_PACK_SERIAL_OFFSET: Final = 110 - 60
_PACK_CELLS: Final = slice(0, 16)
_PACK_FIRMWARE_OFFSET: Final = 98 - 60
BMU_ADDRESSES: Final = range(0x50, 0x60)
BCU_ADDRESSES: Final = range(0x70, 0x80)
_BMU_SERIAL: Final = slice(114 - 60, 119 - 60)
_BCU_SERIAL: Final = slice(138 - 120, 143 - 120)


class PageVerdict(StrEnum):
    OK = "ok"
    PATTERN_A = "pattern_a"
    ZERO_PAGE = "zero_page"
    NO_PACK = "no_pack"  # an absent battery slot: a valid answer, but not a battery
    PACK_CELLS_ZERO = "pack_cells_zero"
    ALL_ONES = "all_ones"  # every register 0xFFFF: nothing was read
    IDENTITY = "identity"  # another unit's page, or one nobody of ours asked for
    WRONG_DEVICE = "wrong_device"  # another kind of device's page at this address


def ascii_from_registers(values: Sequence[int]) -> str:
    """Two characters per register, high byte first, NULs stripped."""
    raw = b"".join(v.to_bytes(2, "big") for v in values)
    return raw.replace(b"\x00", b"").decode("ascii", errors="replace")


def is_valid_serial(text: str) -> bool:
    """A GivEnergy serial (:data:`SERIAL_RE`): safe in topics, file names and URLs."""
    return bool(SERIAL_RE.match(text))


class PageKey(NamedTuple):
    """Which page: a tuple, hashed and compared in C (it keys the cache's dict on every read)."""

    device_address: int
    bank: str  # "HR" or "IR"
    base: int


def judge_page(key: PageKey, values: Sequence[int], previous: Sequence[int] | None) -> PageVerdict:
    """Whether a CRC-valid page may replace ``previous`` in the cache."""
    if len(values) > 1 and all(v == 0xFFFF for v in values):
        return PageVerdict.ALL_ONES
    if key.bank == "IR" and key.base == 0 and len(values) >= 60 and is_pattern_a(values):
        return PageVerdict.PATTERN_A
    if is_all_zero(values) and (
        (previous is not None and not is_all_zero(previous))
        # Page 0 of either bank always holds data (device type code, grid voltage, status).
        or (key.base == 0 and key.device_address not in BATTERY_ADDRESSES)
    ):
        return PageVerdict.ZERO_PAGE
    if (
        key.device_address in BATTERY_ADDRESSES
        and key.bank == "IR"
        and key.base == 60
        and len(values) >= 60
    ):
        serial = ascii_from_registers(values[_PACK_SERIAL_OFFSET : _PACK_SERIAL_OFFSET + 5])
        if not is_valid_serial(serial):
            return PageVerdict.NO_PACK
        if not any(values[_PACK_CELLS]) and values[_PACK_FIRMWARE_OFFSET]:
            return PageVerdict.PACK_CELLS_ZERO
    if key.bank == "IR" and not _right_device(key, values):
        return PageVerdict.WRONG_DEVICE
    return PageVerdict.OK


def _letters(word: int) -> bool:
    return all(0x41 <= b <= 0x5A for b in word.to_bytes(2, "big"))


def _right_device(key: PageKey, values: Sequence[int]) -> bool:
    """Whether an HV module's or stack controller's page carries that device's own marks."""
    address, base, n = key.device_address, key.base, len(values)
    if address in BMU_ADDRESSES and base == 60 and n >= _BMU_SERIAL.stop:
        return is_valid_serial(ascii_from_registers(values[_BMU_SERIAL]))
    if address in BCU_ADDRESSES and base == 60 and n >= 2:
        return _letters(values[0]) and _letters(values[1])
    if address in BCU_ADDRESSES and base == 120 and n >= _BCU_SERIAL.stop:
        return is_valid_serial(ascii_from_registers(values[_BCU_SERIAL]))
    return True
