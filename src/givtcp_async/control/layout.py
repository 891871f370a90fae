"""Which holding registers carry each control setting on each model (SPEC §4.3, §4.7, §5.1).

Three layouts: single-phase (hybrids Gen1-4, AC-coupled, All-in-One, HV Gen3, Gateway), three-phase
(the HR1000+ block, slots 3-10 shared with single-phase) and EMS (the HR2040 block). A setting a
layout does not have is ``None``; the catalogue marks functions needing it unavailable.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from givtcp_async.registers.models import Model
from givtcp_async.registers.schema import Family

PAGE: Final = 60
EMS_SLOTS: Final = 3

# Clock: year-2000, month, day, hour, minute, second.
CLOCK: Final = (35, 36, 37, 38, 39, 40)
REBOOT: Final = 163
REBOOT_VALUE: Final = 100


class LayoutKind(StrEnum):
    SINGLE_PHASE = "single_phase"
    THREE_PHASE = "three_phase"
    EMS = "ems"
    PV_ONLY = "pv_only"


class RateUnit(StrEnum):
    C100 = "c100"  # HR111/112: C/100, 50 = full rate (SPEC §7 #7)
    PERCENT = "percent"  # percent of the power limit (three-phase HR1110/1108, Gateway HR313/314)


_THREE_PHASE: Final = {Family.THREE_PHASE, Family.AC_THREE_PHASE, Family.AIO_HYBRID,
                       Family.AIO_COMMERCIAL}  # fmt: skip


def kind_of(model: Model) -> LayoutKind:
    if model.family is Family.EMS:
        return LayoutKind.EMS
    if model.family is Family.PV_ONLY:
        return LayoutKind.PV_ONLY
    if model.family in _THREE_PHASE:
        return LayoutKind.THREE_PHASE
    return LayoutKind.SINGLE_PHASE


def has_pause_mode(model: Model) -> bool:
    """HR318-320: single-phase units with the newer firmware; Gen1 answers them with an error."""
    return (
        kind_of(model) is LayoutKind.SINGLE_PHASE
        and model.family not in (Family.HYBRID_GEN1, Family.HYBRID_GEN2)
        and (model.extended_slots or model.has_hr300)
    )


@dataclass(frozen=True, slots=True)
class Layout:
    """The control registers of one model; every address is a holding register at 0x11."""

    model: Model

    @property
    def kind(self) -> LayoutKind:
        return kind_of(self.model)

    @property
    def single(self) -> bool:
        return self.kind is LayoutKind.SINGLE_PHASE

    @property
    def three(self) -> bool:
        return self.kind is LayoutKind.THREE_PHASE

    @property
    def ems(self) -> bool:
        return self.kind is LayoutKind.EMS

    @property
    def battery(self) -> bool:
        """An inverter whose battery these functions control."""
        return self.single or self.three

    # --- slots -----------------------------------------------------------------------------

    @property
    def charge_slots(self) -> int:
        if self.ems:
            return EMS_SLOTS
        if not self.battery:
            return 0
        return 10 if self.model.extended_slots else 1

    @property
    def discharge_slots(self) -> int:
        if self.ems:
            return EMS_SLOTS
        if not self.battery:
            return 0
        return 10 if self.model.extended_slots else 2

    @property
    def export_slots(self) -> int:
        return EMS_SLOTS if self.ems else 0

    def charge_slot(self, n: int) -> tuple[int, int] | None:
        """(start, end) registers of charge slot ``n``; slot 2 is HR243/244 (SPEC §7 #4)."""
        if not 1 <= n <= self.charge_slots:
            return None
        if self.ems:
            base = 2053 + 3 * (n - 1)
            return base, base + 1
        if self.three and n <= 2:
            return (1113, 1114) if n == 1 else (1115, 1116)
        if n == 1:
            return 94, 95
        if n == 2:
            return 243, 244
        base = 246 + 3 * (n - 3)
        return base, base + 1

    def discharge_slot(self, n: int) -> tuple[int, int] | None:
        if not 1 <= n <= self.discharge_slots:
            return None
        if self.ems:
            base = 2044 + 3 * (n - 1)
            return base, base + 1
        if self.three and n <= 2:
            return (1118, 1119) if n == 1 else (1120, 1121)
        if n == 1:
            return 56, 57
        if n == 2:
            return 44, 45
        base = 276 + 3 * (n - 3)
        return base, base + 1

    def charge_slot_target(self, n: int) -> int | None:
        """Per-slot charge target: extended-slot models (three-phase: slots 3-10) and EMS."""
        if not 1 <= n <= self.charge_slots:
            return None
        if self.ems:
            return 2055 + 3 * (n - 1)
        if not self.model.extended_slots or (self.three and n <= 2):
            return None
        return 242 + 3 * (n - 1)

    def discharge_slot_target(self, n: int) -> int | None:
        if not 1 <= n <= self.discharge_slots:
            return None
        if self.ems:
            return 2046 + 3 * (n - 1)
        if not self.model.extended_slots or (self.three and n <= 2):
            return None
        return 272 + 3 * (n - 1)

    def export_slot(self, n: int) -> tuple[int, int] | None:
        if not 1 <= n <= self.export_slots:
            return None
        base = 2062 + 3 * (n - 1)
        return base, base + 1

    def export_slot_target(self, n: int) -> int | None:
        if not 1 <= n <= self.export_slots:
            return None
        return 2064 + 3 * (n - 1)

    # --- single settings -------------------------------------------------------------------

    @property
    def charge_target(self) -> int | None:
        return 116 if self.single else 1111 if self.three else None

    @property
    def charge_target_enable(self) -> int | None:
        return 20 if self.single else None

    @property
    def reserve(self) -> int | None:
        return 110 if self.single else 1109 if self.three else None

    @property
    def cutoff(self) -> int | None:
        # Three-phase: HR114 reads 0 there (below any valid floor); DW writes HR1078.
        return 114 if self.single else 1078 if self.three else None

    @property
    def charge_enable(self) -> int | None:
        return 96 if self.single else 1112 if self.three else None

    @property
    def discharge_enable(self) -> int | None:
        return 59 if self.single else 1122 if self.three else None

    @property
    def eco(self) -> int | None:
        return 27 if self.single else None

    def charge_rate(self) -> tuple[int, RateUnit] | None:
        if self.three:
            return 1110, RateUnit.PERCENT
        if self.model.family is Family.GATEWAY:
            return 313, RateUnit.PERCENT
        return (111, RateUnit.C100) if self.single else None

    def discharge_rate(self) -> tuple[int, RateUnit] | None:
        if self.three:
            return 1108, RateUnit.PERCENT
        if self.model.family is Family.GATEWAY:
            return 314, RateUnit.PERCENT
        return (112, RateUnit.C100) if self.single else None

    @property
    def ac_charge_rate(self) -> int | None:
        if self.three:
            return 1110
        return 313 if self.single and self.model.has_hr300 else None

    @property
    def ac_discharge_rate(self) -> int | None:
        if self.three:
            return 1108
        return 314 if self.single and self.model.has_hr300 else None

    @property
    def active_power_rate(self) -> int | None:
        return 50 if self.single else None

    @property
    def calibration(self) -> int | None:
        return 29 if self.single and self.model.family is not Family.GATEWAY else None

    @property
    def rtc(self) -> int | None:
        return 166 if self.single else 1005 if self.three else None

    @property
    def reboot(self) -> int | None:
        return REBOOT if self.single or self.kind is LayoutKind.PV_ONLY else None

    @property
    def pause_mode(self) -> int | None:
        return 318 if has_pause_mode(self.model) else None

    @property
    def pause_slot(self) -> tuple[int, int] | None:
        return (319, 320) if has_pause_mode(self.model) else None

    @property
    def export_priority(self) -> int | None:
        return 311 if self.single and self.model.has_hr300 else None

    @property
    def eps(self) -> int | None:
        return 317 if self.single and self.model.has_hr300 else None

    @property
    def force_charge_flag(self) -> int | None:
        return 1123 if self.three else None

    @property
    def force_discharge_flag(self) -> int | None:
        return 1122 if self.three else None

    @property
    def ac_charge_flag(self) -> int | None:
        return 1112 if self.three else None

    @property
    def ems_plant(self) -> int | None:
        return 2040 if self.ems else None

    @property
    def ems_export_limit(self) -> int | None:
        return 2071 if self.ems else None

    @property
    def battery_capacity(self) -> int:
        """HR55: nominal capacity in Ah (the sum of packs)."""
        return 55

    # --- reading ---------------------------------------------------------------------------

    def read_blocks(self) -> tuple[tuple[int, int], ...]:
        """The holding blocks (base, count) this model answers, as DW and GT read them."""
        if self.ems:
            return (0, 60), (60, 60), (120, 60), (2040, 36)
        if self.three:
            return (0, 60), (60, 60), (120, 60), (240, 60), (1000, 60), (1060, 60), (1120, 5)
        return (0, 60), (60, 60), (120, 60), (180, 60), (240, 60), (300, 60)

    def block_of(self, register: int) -> tuple[int, int]:
        """The read block holding ``register`` (a 60-aligned page when none is listed)."""
        for base, count in self.read_blocks():
            if base <= register < base + count:
                return base, count
        base = register - register % PAGE
        return base, PAGE
