"""Which register blocks to read, per model (SPEC §3.2, §3.3). Pure: no I/O.

:func:`candidate_blocks` lists the blocks a model is known to answer (never one it lacks: DC
hybrids do not answer HR300, Gen1 times out on HR540, the All-in-One refuses HR1100);
:func:`probe_blocks` the optional ones worth one confirming read. This module is block geometry
only: it knows registers and addresses, never fields (:func:`givtcp_async.registers.catalog.
read_plan` joins the two). May import: registers.models, registers.schema.

Cadences: FAST blocks (live input pages, battery, meter and HV pages) every poll; SLOW blocks
(holding-register settings, including the clock, and the input pages that hardly change: the HV
BAMS's counts, the LV BCU) every few minutes and after writes; STATIC blocks only in detection's
probes, never in a read plan (a page read once would be too old to publish from soon after).
:func:`page_cadence` says which cadence a cached page is read at: its freshness is judged by it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from typing import Final

from givtcp_async.registers.models import Model
from givtcp_async.registers.schema import METER_PRODUCT_FAMILIES, Bank, Family, Field, Source

INVERTER: Final = 0x11
BAMS: Final = 0xA0
LV_BCU: Final = 0x31
LV_PACKS: Final = range(0x32, 0x38)
METERS: Final = range(0x01, 0x09)
BMUS: Final = range(0x50, 0x60)
BCUS: Final = range(0x70, 0x80)


class Cadence(StrEnum):
    FAST = "fast"
    SLOW = "slow"
    STATIC = "static"


@dataclass(frozen=True, slots=True)
class Block:
    """One read request: ``count`` registers from ``base`` of one bank of one device."""

    device_address: int
    bank: Bank
    base: int
    count: int
    cadence: Cadence

    @property
    def key(self) -> tuple[int, Bank, int]:
        return (self.device_address, self.bank, self.base)

    @property
    def end(self) -> int:
        return self.base + self.count

    def covers(self, bank: Bank, register: int) -> bool:
        return bank is self.bank and self.base <= register < self.end


@dataclass(frozen=True, slots=True)
class ReadPlan:
    """The blocks to read for one inverter and its batteries and meters, each once."""

    blocks: tuple[Block, ...]

    def by_cadence(self, cadence: Cadence) -> tuple[Block, ...]:
        return tuple(b for b in self.blocks if b.cadence is cadence)

    def for_device(self, address: int) -> tuple[Block, ...]:
        return tuple(b for b in self.blocks if b.device_address == address)


def _hr(*bases: int, count: int = 60) -> list[Block]:
    return [Block(INVERTER, Bank.HOLDING, b, count, Cadence.SLOW) for b in bases]


def _ir(*bases: int, count: int = 60) -> list[Block]:
    return [Block(INVERTER, Bank.INPUT, b, count, Cadence.FAST) for b in bases]


# HR0-59: every model answers it, and detection reads it, so every plan keeps it.
DETECTION_BLOCK: Final = _hr(0)[0]
_THREE_PHASE_IR: Final = [*_ir(1000, 1060, 1120, 1180, 1240, 1300), *_ir(1360, count=54)]
_LV_HYBRID_GEN3_UP: Final = {Family.HYBRID_GEN3, Family.HYBRID_GEN4, Family.HYBRID_POLAR}


def candidate_blocks(model: Model) -> list[Block]:
    """The inverter-address blocks the model answers (SPEC §3.2)."""
    fam = model.family
    if fam in (Family.HYBRID_GEN1, Family.HYBRID_GEN2, Family.PV_ONLY):
        return _hr(0, 60, 120) + _ir(0, 180)
    if fam in _LV_HYBRID_GEN3_UP:
        return _hr(0, 60, 120) + (_hr(240) if model.extended_slots else []) + _ir(0, 180)
    if fam is Family.AC:
        return _hr(0, 60, 120, 180, 240, 300) + _ir(0, 180)
    if fam is Family.AIO:
        return _hr(0, 60, 120, 240, 300) + _ir(0, 180)
    if fam is Family.HV_GEN3:
        # HR0-179 as every model answers for detection; HR1060 / HR1120(5) and IR1000-1413 are
        # answered (all zeros on this single-phase unit).
        return _hr(0, 60, 120, 240, 1060) + _hr(1120, count=5) + _ir(0, 180) + _THREE_PHASE_IR
    if fam in (
        Family.THREE_PHASE,
        Family.AC_THREE_PHASE,
        Family.AIO_HYBRID,
        Family.AIO_COMMERCIAL,
    ):
        return _hr(0, 60, 120, 1000, 1060) + _hr(1120, count=5) + _ir(0, 120, 180) + _THREE_PHASE_IR
    if fam is Family.EMS:
        return _hr(0, 60, 120) + _hr(2040, count=36) + _ir(0, 180, 2040)
    if fam is Family.GATEWAY:
        return _hr(0, 60, 120, 180, 240, 300) + _ir(0, 120, 180, 1600, 1660, 1720, 1780, 1840, 1900)
    raise ValueError(f"no read plan for {fam}")  # pragma: no cover - every family is listed


def probe_blocks(model: Model) -> list[Block]:
    """Optional blocks whose availability one read must confirm before they join the plan."""
    fam = model.family
    if fam in _LV_HYBRID_GEN3_UP:
        # GivTCP probes these on hybrids; Gen3 firmware <= 302 may still have the slot page.
        slot = [] if model.extended_slots else _hr(240)
        return slot + _hr(300) + _ir(240)
    if fam in (Family.AIO, Family.HV_GEN3):
        return _ir(240)
    if fam in (
        Family.THREE_PHASE,
        Family.AC_THREE_PHASE,
        Family.AIO_HYBRID,
        Family.AIO_COMMERCIAL,
    ):
        return _hr(240)  # slots 3-10 (SPEC §4.7)
    return []


def battery_blocks(addresses: Iterable[int]) -> list[Block]:
    """Battery-side pages for the given device addresses (SPEC §3.3).

    LV packs 0x32-0x37: IR(60,60); HV modules 0x50+: IR(60,60); HV BCUs 0x70+: IR(60,60) and
    IR(120,60); at the settings cadence, BAMS 0xA0: IR(60,5) (the stack's BCU, module and cell
    counts) and the LV BCU 0x31: IR(60,60) (its four words are the BMS's status and request
    currents, which the captures never saw change).
    """
    out: list[Block] = []
    for addr in addresses:
        if addr in LV_PACKS or addr in BMUS:
            out.append(Block(addr, Bank.INPUT, 60, 60, Cadence.FAST))
        elif addr in BCUS:
            out += [
                Block(addr, Bank.INPUT, 60, 60, Cadence.FAST),
                Block(addr, Bank.INPUT, 120, 60, Cadence.FAST),
            ]
        elif addr == BAMS:
            out.append(Block(addr, Bank.INPUT, 60, 5, Cadence.SLOW))
        elif addr == LV_BCU:
            out.append(Block(addr, Bank.INPUT, 60, 60, Cadence.SLOW))
        else:
            raise ValueError(f"0x{addr:02x} is not a battery address")
    return out


def meter_blocks(addresses: Iterable[int], family: Family | None = None) -> list[Block]:
    """IR(60,30) per meter (SPEC §4.6); IR(60,60) behind the families whose meters carry their
    product registers at IR95-103 (``METER_PRODUCT_FAMILIES``): the same one request per poll,
    30 registers longer, rather than a request of its own."""
    count = 60 if family in METER_PRODUCT_FAMILIES else 30
    out = []
    for addr in addresses:
        if addr not in METERS:
            raise ValueError(f"0x{addr:02x} is not a meter address")
        out.append(Block(addr, Bank.INPUT, 60, count, Cadence.FAST))
    return out


@lru_cache(maxsize=1024)  # the keys of another client's reads are not ours to bound
def page_cadence(address: int, bank: str, base: int) -> Cadence:
    """The cadence a read plan reads the page at ``base`` of ``bank`` (``"HR"``/``"IR"``) of
    ``address`` at: the battery-side and meter blocks' own; otherwise (the inverter's pages, and
    a page only another client reads) SLOW for holding registers, FAST for input registers. A
    page is judged fresh by its cadence's age: a SLOW page as a settings page."""
    blocks: list[Block] = []
    if any(address in kind for kind in (LV_PACKS, BMUS, BCUS, (BAMS, LV_BCU))):
        blocks = battery_blocks([address])
    elif address in METERS:
        blocks = meter_blocks([address])
    own = next((b.cadence for b in blocks if b.bank.value == bank and b.base == base), None)
    if own is not None:
        return own
    return Cadence.SLOW if bank == Bank.HOLDING.value else Cadence.FAST


def covering(blocks: Iterable[Block], bank: Bank, register: int) -> Block | None:
    """The first block that holds ``register`` of ``bank``."""
    return next((b for b in blocks if b.covers(bank, register)), None)


def fields_covered(fields: Iterable[Field], blocks: Sequence[Block]) -> list[Field]:
    """The fields all of whose registers some block of ``blocks`` holds."""
    return [f for f in fields if all(covering(blocks, f.bank, r) for r in f.registers)]


_SOURCE_OF_ADDRESS: Final = (
    (LV_PACKS, Source.BATTERY),
    (BMUS, Source.BMU),
    (BCUS, Source.BCU),
    (range(BAMS, BAMS + 1), Source.BAMS),
    (range(LV_BCU, LV_BCU + 1), Source.LV_BCU),
    (METERS, Source.METER),
)


def source_of(address: int) -> Source:
    """Which kind of device answers at ``address``."""
    for addresses, source in _SOURCE_OF_ADDRESS:
        if address in addresses:
            return source
    return Source.INVERTER
