"""Model detection from the device type code and firmware (SPEC §4.2). Pure: no I/O."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from givtcp_async.errors import UnsupportedModel
from givtcp_async.registers.schema import Family


class BatterySide(StrEnum):
    LV = "lv"
    HV = "hv"
    NONE = "none"


# Rated AC output (W) by device type code (SPEC §4.2).
RATED_POWER: Final[dict[int, int]] = {
    0x2001: 5000, 0x2002: 4600, 0x2003: 3600, 0x2004: 6000, 0x2005: 7000, 0x2006: 8000,
    0x2101: 5000, 0x2201: 5000, 0x2301: 5000, 0x2401: 5000, 0x2501: 5000,
    0x3001: 3000, 0x3002: 3600,
    0x4001: 6000, 0x4002: 8000, 0x4003: 10000, 0x4004: 11000, 0x4005: 15000, 0x4006: 20000,
    0x4007: 5000, 0x4101: 30000, 0x4103: 50000,
    0x6001: 6000, 0x6002: 8000, 0x6003: 10000, 0x6004: 11000, 0x6005: 15000, 0x6006: 20000,
    0x7001: 12000,
    0x8001: 6000, 0x8002: 3600, 0x8003: 5000,
    0x8101: 6000, 0x8102: 8000, 0x8103: 10000,
    0x8201: 6000, 0x8202: 8000, 0x8203: 10000, 0x8204: 12000, 0x8205: 11000,
    0x8301: 3600, 0x8302: 4600, 0x8303: 5000, 0x8304: 6000,
}  # fmt: skip

# The "2x" hybrid family shares ratings by the low byte of the code (2x02 4600 ... 2x06 8000).
_HYBRID_LOW_BYTE_RATING: Final = {0x01: 5000, 0x02: 4600, 0x03: 3600, 0x04: 6000, 0x05: 7000,
                                  0x06: 8000}  # fmt: skip

# Battery charge/discharge power limit (W) where the spec names one.
_BATTERY_MAX_POWER: Final = {0x2201: 5400, 0x3001: 3000, 0x3002: 3000, 0x8001: 6000,
                             0x8002: 3600, 0x8003: 5000, 0x8102: 8000, 0x8103: 10000}  # fmt: skip

_FAMILY_BY_PREFIX: Final[dict[int, Family]] = {
    0x21: Family.HYBRID_POLAR,
    0x22: Family.HYBRID_GEN3,
    0x23: Family.PV_ONLY,
    0x24: Family.HYBRID_POLAR,
    0x25: Family.HYBRID_POLAR,
    0x30: Family.AC,
    0x40: Family.THREE_PHASE,
    0x41: Family.AIO_COMMERCIAL,
    0x50: Family.EMS,
    0x51: Family.EMS,
    0x60: Family.AC_THREE_PHASE,
    0x70: Family.GATEWAY,
    0x80: Family.AIO,
    0x81: Family.HV_GEN3,
    0x82: Family.AIO_HYBRID,
    0x83: Family.HYBRID_GEN4,
}

_NAMES: Final[dict[Family, str]] = {
    Family.HYBRID_GEN1: "Hybrid Gen1",
    Family.HYBRID_GEN2: "Hybrid Gen2",
    Family.HYBRID_GEN3: "Hybrid Gen3",
    Family.HYBRID_GEN4: "Hybrid Gen4",
    Family.HYBRID_POLAR: "Hybrid",
    Family.PV_ONLY: "PV Inverter",
    Family.AC: "AC",
    Family.AIO: "All in One",
    Family.HV_GEN3: "Hybrid HV Gen3",
    Family.AIO_HYBRID: "All in One Hybrid",
    Family.AIO_COMMERCIAL: "All in One Commercial",
    Family.THREE_PHASE: "Hybrid 3ph",
    Family.AC_THREE_PHASE: "AC 3ph",
    Family.EMS: "EMS",
    Family.GATEWAY: "Gateway",
}

_THREE_PHASE: Final = {Family.THREE_PHASE, Family.AC_THREE_PHASE, Family.AIO_HYBRID,
                       Family.AIO_COMMERCIAL}  # fmt: skip
_HV: Final = {Family.AIO, Family.HV_GEN3, Family.AIO_HYBRID, Family.AIO_COMMERCIAL,
              Family.THREE_PHASE, Family.AC_THREE_PHASE}  # fmt: skip
_NO_BATTERY: Final = {Family.PV_ONLY, Family.EMS, Family.GATEWAY}
_ALWAYS_EXTENDED_SLOTS: Final = {Family.AIO, Family.HYBRID_GEN4, Family.HV_GEN3,
                                 Family.AIO_HYBRID, Family.THREE_PHASE,
                                 Family.AC_THREE_PHASE}  # fmt: skip
_HAS_HR300: Final = {Family.AC, Family.AIO, Family.GATEWAY}


@dataclass(frozen=True, slots=True)
class Model:
    """What detection learned about one inverter (or EMS / Gateway controller)."""

    device_type_code: int
    family: Family
    arm_firmware: int
    dsp_firmware: int
    rated_power: int
    battery_max_power: int | None
    phases: int
    battery_side: BatterySide
    extended_slots: bool  # ten charge and ten discharge slots (HR240 page)
    has_hr300: bool  # the HR300-359 block (AC-coupled, All-in-One, Gateway)
    nominal_battery_voltage: float

    @property
    def dtc(self) -> str:
        """Device type code as GivEnergy writes it, e.g. "2001"."""
        return f"{self.device_type_code:04x}"

    @property
    def name(self) -> str:
        return _NAMES[self.family]

    @property
    def firmware(self) -> str:
        """Firmware string as the portal shows it, e.g. "D0.449-A0.449"."""
        return f"D0.{self.dsp_firmware}-A0.{self.arm_firmware}"

    @property
    def charge_slots(self) -> int:
        """Charge slots with a known register pair: one on older single-phase firmware."""
        return 10 if self.extended_slots else 1

    @property
    def discharge_slots(self) -> int:
        return 10 if self.extended_slots else 2


def family_of(dtc: int, arm_firmware: int) -> Family:
    """The family for a device type code; the hybrid generation comes from the ARM firmware."""
    prefix = dtc >> 8
    if prefix == 0x20:
        generation = arm_firmware // 100
        if generation == 3:
            return Family.HYBRID_GEN3
        if generation in (8, 9):
            return Family.HYBRID_GEN2
        return Family.HYBRID_GEN1
    family = _FAMILY_BY_PREFIX.get(prefix)
    if family is None:
        raise UnsupportedModel(f"unknown device type code {dtc:04x}")
    return family


def rated_power(dtc: int, module_low_word: int | None = None) -> int:
    """Rated AC power (W): the spec's table, else the hybrid low-byte rule, else HR2 x 100."""
    if dtc in RATED_POWER:
        return RATED_POWER[dtc]
    if dtc >> 12 == 0x2 and dtc & 0xFF in _HYBRID_LOW_BYTE_RATING:
        return _HYBRID_LOW_BYTE_RATING[dtc & 0xFF]
    if module_low_word:
        return (module_low_word & 0xFF) * 100
    return 0


def battery_max_power(dtc: int, family: Family, arm_firmware: int) -> int | None:
    if dtc >> 8 == 0x20:
        return 3600 if arm_firmware // 100 in (3, 8, 9) else 2600
    return _BATTERY_MAX_POWER.get(dtc)


def detect_model(holding: Mapping[int, int]) -> Model:
    """The model described by HR(0..59) of address 0x11 (needs HR0, HR2, HR19, HR21)."""
    try:
        dtc = holding[0]
    except KeyError as err:
        raise UnsupportedModel("HR0 (device type code) was not read") from err
    arm = holding.get(21, 0)
    dsp = holding.get(19, 0)
    family = family_of(dtc, arm)
    side = (
        BatterySide.NONE if family in _NO_BATTERY
        else BatterySide.HV if family in _HV
        else BatterySide.LV
    )  # fmt: skip
    if family in _THREE_PHASE:
        voltage = 76.8
    elif side is BatterySide.HV:
        voltage = 307.0
    else:
        voltage = 51.2
    extended = family in _ALWAYS_EXTENDED_SLOTS or (family is Family.HYBRID_GEN3 and arm > 302)
    return Model(
        device_type_code=dtc,
        family=family,
        arm_firmware=arm,
        dsp_firmware=dsp,
        rated_power=rated_power(dtc, holding.get(2)),
        battery_max_power=battery_max_power(dtc, family, arm),
        phases=3 if family in _THREE_PHASE else 1,
        battery_side=side,
        extended_slots=extended,
        has_hr300=family in _HAS_HR300,
        nominal_battery_voltage=voltage,
    )
