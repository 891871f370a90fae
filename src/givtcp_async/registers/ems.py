"""EMS plant controller (DTC 50xx/51xx) at 0x11: HR(2040,36) and IR(2040,60) (SPEC §4.7).

Holding registers (SPEC §4.7, §5.1): plant enable HR2040; expected inverter, meter and car
charger counts HR2041-2043; discharge slots HR2044-2052, charge slots HR2053-2061 and export
slots HR2062-2070 as start / end / target-SOC triples; export power limit HR2071 (W); car charge
mode and boost HR2072-2073 and the plant's charge / discharge compensation HR2074-2075 (read
back only: no control function writes them). The plant's charge and discharge slots use the
inverter names (``Charge_start_time_slot_n``, ``Charge_Target_SOC_n``, ``Discharge_...``;
GivTCP's EMS commands ``setEMSChargeStart<n>`` etc. are aliases of the same controls), export
slots ``Export_start_time_slot_n`` / ``Export_Target_SOC_n``; ``EMS_Plant_Enable`` (setEmsPlant)
and ``Export_Limit`` (Control, setExportLimit) match the control catalogue's read-back paths.

Input registers (layout from givenergy-modbus 2.13.0's ``model/ems.py``, checked against the
ems_arm1036 capture): plant status IR2040; meter count IR2041, meter types IR2042 (two bits a
slot), meter status IR2043 (two bits a slot, slot 1 in the lowest bits); inverter count IR2044,
inverter status IR2045 (three bits a slot); meter powers IR2046-2053; per managed inverter (up to
four) power IR2054-2057, SOC IR2058-2061, temperature IR2062-2065 (0.1 °C), serial IR2066-2085
(five registers each); calculated load IR2086, measured load IR2087, generation IR2088, grid
meter IR2089, total battery IR2090, remaining battery energy IR2091 (Wh), other battery IR2094.

Decision on the counts (the project read them the other way round before issue 12): IR2041 is
the meter count and IR2044 the inverter count. In the capture both read 2, so the values alone
cannot tell; the words beside them can. IR2042 (0x0010) and IR2043 (0x0011) are two-bit fields
for slots 1 and 3 only, exactly the meters that answer at 0x01 and 0x03 (0x07 and 0x08 answer
all-zero pages), and meter powers sit in slots 1 and 3 (IR2046, IR2048); IR2045 (0x0012) holds
two three-bit codes, exactly the two filled serial slots IR2066-2075. So IR2041-2043 describe
meters and IR2044-2045 inverters (tests/test_families_oracle_ems_gw.py checks all of it).

Signs, as the capture balances them to the watt (IR2086 = IR2088 + IR2089 + IR2090 in every
frame): ``Grid_Power`` positive = importing (unlike the single-phase IR30), ``Battery_Power``
positive = discharging. GivTCP publishes both as read; so do we. The peer's "generation energy
total" at IR18 tracks the generation power (IR2088) frame by frame, so it is not an energy
counter and is not published.

Per-inverter values live under ``Inverters/Inverter_<n>`` with the slot in the name
(``Inverter_1_SOC``): one name is one value per device. GivTCP keys them by the inverter's serial
instead; the serial is ``Inverter_<n>_Serial_Number``. Meters under ``Power/Meters`` keep
GivTCP's names ``Meter_<n>_Power`` / ``Meter_<n>_Status``.

``raw`` is the name GivTCP 3.5's EMS model gives the register (``raw/invertor``):
``plant_status`` (HR2040, the plant switch, as it names it), ``expected_*_count``,
``<kind>_slot_<n>_start`` / ``_end``, ``<kind>_target_<n>``, ``export_power_limit``,
``car_charge_mode``, ..., ``ems_status``, ``meter_count``, ``inverter_count``,
``meter_<n>_power``, ``inverter_<n>_power`` / ``_soc`` / ``_temp`` / ``_serial_number``,
``calc_load_power``, ``grid_meter_power``, ``total_battery_power``, ``remaining_battery_wh``,
``other_battery_power``. Left out of ``raw``: ``meter_types`` (GivTCP prints the number, the map
publishes the word in hex) and the per-slot statuses (GivTCP's ``meter_<n>_status`` /
``inverter_<n>_status`` are its enum codes; here they are derived texts).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from givtcp_async.registers import common as c
from givtcp_async.registers.schema import (
    BATTERY_PCT,
    DIAGNOSTIC,
    POWER,
    TEMPERATURE,
    Bank,
    Derived,
    Enc,
    Family,
    Field,
    Kind,
)

HR = Bank.HOLDING
IR = Bank.INPUT
_EMS: Final = frozenset({Family.EMS})
CONTROL: Final = ("Control",)
SLOTS: Final = ("Timeslots",)
DETAILS: Final = ("Invertor_Details",)
POWER_PATH: Final = ("Power", "Power")
METERS_PATH: Final = ("Power", "Meters")
MANAGED: Final = 4  # inverter slots the EMS reports
METER_SLOTS: Final = 8
METER_STATUS: Final = {0: "Disabled", 1: "Online", 2: "Offline"}
# The per-slot inverter code: only 0 (empty slot) and 2 (present) are seen on real plants; the
# other codes are published as nothing rather than guessed.
EMS_INVERTER_STATUS: Final = {0: "Absent", 2: "Online"}
PLANT_POWER: Final = (-60000.0, 60000.0)  # four inverters' worth
COUNT_HA: Final = DIAGNOSTIC


def _triple(kind: str, prefix: str, control: str, base: int, n: int) -> list[Field]:
    """Start, end and SOC target of slot ``n`` at ``base + 3(n-1)`` (raw: GivTCP's
    ``<kind>_slot_<n>_start`` / ``_end`` and ``<kind>_target_<n>``)."""
    reg = base + 3 * (n - 1)
    return [
        Field(f"{prefix}_start_time_slot_{n}", SLOTS, HR, (reg,), enc=Enc.TIME,
              kind=Kind.SETTING, families=_EMS, ha=c.TIME_SELECT,
              control=f"set{control}Start{n}", raw=f"{kind}_slot_{n}_start"),
        Field(f"{prefix}_end_time_slot_{n}", SLOTS, HR, (reg + 1,), enc=Enc.TIME,
              kind=Kind.SETTING, families=_EMS, ha=c.TIME_SELECT, control=f"set{control}End{n}",
              raw=f"{kind}_slot_{n}_end"),
        Field(f"{prefix}_Target_SOC_{n}", CONTROL, HR, (reg + 2,), unit="%", kind=Kind.SETTING,
              families=_EMS, bounds=c.PERCENT, ha=c.NUMBER, control=f"set{control}Target{n}",
              description=f"{kind} slot {n} SOC target", raw=f"{kind}_target_{n}"),
    ]  # fmt: skip


def _power(name: str, path: tuple[str, ...], reg: int, description: str, raw: str, *,
           signed: bool = True, bounds: tuple[float, float] = PLANT_POWER) -> Field:  # fmt: skip
    return Field(name, path, IR, (reg,), enc=Enc.S16 if signed else Enc.U16, unit="W",
                 families=_EMS, bounds=bounds, ha=POWER, description=description,
                 raw=raw)  # fmt: skip


def _inverter(n: int) -> list[Field]:
    path = ("Inverters", f"Inverter_{n}")
    i = n - 1
    return [
        _power(f"Inverter_{n}_Power", path, 2054 + i, f"managed inverter {n} AC power",
               f"inverter_{n}_power"),
        Field(f"Inverter_{n}_SOC", path, IR, (2058 + i,), unit="%", families=_EMS,
              bounds=c.PERCENT, ha=BATTERY_PCT, description=f"managed inverter {n} battery SOC",
              raw=f"inverter_{n}_soc"),
        Field(f"Inverter_{n}_Temperature", path, IR, (2062 + i,), enc=Enc.S16, scale=0.1,
              unit="°C", families=_EMS, bounds=c.TEMPERATURE, ha=TEMPERATURE,
              raw=f"inverter_{n}_temp"),
        Field(f"Inverter_{n}_Serial_Number", path, IR, tuple(range(2066 + 5 * i, 2071 + 5 * i)),
              enc=Enc.ASCII, kind=Kind.INFO, families=_EMS, ha=DIAGNOSTIC,
              description="empty for an unused slot", raw=f"inverter_{n}_serial_number"),
    ]  # fmt: skip


def _setting(name: str, reg: int, description: str, unit: str | None = None) -> Field:
    return Field(name, CONTROL, HR, (reg,), unit=unit, kind=Kind.SETTING, families=_EMS,
                 bounds=(0, 65535), ha=DIAGNOSTIC, description=description,
                 raw=name.lower())  # fmt: skip


EMS_FIELDS: Final[tuple[Field, ...]] = (
    Field("EMS_Plant_Enable", CONTROL, HR, (2040,), enc=Enc.BOOL, options=c.ENABLE,
          kind=Kind.SETTING, families=_EMS, ha=c.SWITCH, control="setEmsPlant",
          raw="plant_status"),
    Field("Expected_Inverter_Count", DETAILS, HR, (2041,), kind=Kind.INFO, families=_EMS,
          bounds=(0, 32), ha=DIAGNOSTIC, description="HR2041, as configured",
          raw="expected_inverter_count"),
    Field("Expected_Meter_Count", DETAILS, HR, (2042,), kind=Kind.INFO, families=_EMS,
          bounds=(0, 8), ha=DIAGNOSTIC, description="HR2042, as configured",
          raw="expected_meter_count"),
    Field("Car_Charge_Count", DETAILS, HR, (2043,), kind=Kind.INFO, families=_EMS,
          bounds=(0, 32), ha=DIAGNOSTIC, description="HR2043: expected car chargers",
          raw="expected_car_charger_count"),
    *(f for n in (1, 2, 3) for f in _triple("discharge", "Discharge", "Discharge", 2044, n)),
    *(f for n in (1, 2, 3) for f in _triple("charge", "Charge", "Charge", 2053, n)),
    *(f for n in (1, 2, 3) for f in _triple("export", "Export", "Export", 2062, n)),
    Field("Export_Limit", CONTROL, HR, (2071,), unit="W", kind=Kind.SETTING, families=_EMS,
          bounds=(0, 65535), ha=c.POWER_NUMBER, control="setExportLimit",
          description="plant export limit", raw="export_power_limit"),
    _setting("Car_Charge_Mode", 2072, "HR2072 (read back only)"),
    _setting("Car_Charge_Boost", 2073, "HR2073 (read back only)", "W"),
    _setting("Plant_Charge_Compensation", 2074, "HR2074 (read back only)"),
    _setting("Plant_Discharge_Compensation", 2075, "HR2075 (read back only)"),
    # Input registers.
    Field("status", DETAILS, IR, (2040,), options=c.INVERTER_STATUS, kind=Kind.STATUS,
          families=_EMS, ha=c.DIAGNOSTIC_ENUM, description="IR2040: the plant's status",
          raw="ems_status"),
    Field("Meter_Count", DETAILS, IR, (2041,), kind=Kind.INFO, families=_EMS, bounds=(0, 8),
          ha=COUNT_HA, description="IR2041 (see the module docstring for the decision)",
          raw="meter_count"),
    Field("Meter_Types", DETAILS, IR, (2042,), enc=Enc.HEX, kind=Kind.INFO, families=_EMS,
          ha=DIAGNOSTIC, description="IR2042: two bits per meter slot"),
    Field("Meter_Status_Code", DETAILS, IR, (2043,), kind=Kind.STATUS, families=_EMS,
          ha=None, description="IR2043: two bits per meter slot (Meter_<n>_Status)"),
    Field("Inverter_Count", DETAILS, IR, (2044,), kind=Kind.INFO, families=_EMS,
          bounds=(0, 32), ha=COUNT_HA, description="IR2044 (see the module docstring)",
          raw="inverter_count"),
    Field("Inverter_Status_Code", DETAILS, IR, (2045,), kind=Kind.STATUS, families=_EMS,
          ha=None, description="IR2045: three bits per inverter slot (Inverter_<n>_Status)"),
    *(_power(f"Meter_{n}_Power", METERS_PATH, 2045 + n, f"meter slot {n}", f"meter_{n}_power")
      for n in range(1, METER_SLOTS + 1)),
    *(f for n in range(1, MANAGED + 1) for f in _inverter(n)),
    _power("Calculated_Load_Power", POWER_PATH, 2086, "IR2086: generation + grid + battery",
           "calc_load_power",
           signed=False, bounds=(0.0, 60000.0)),
    _power("Measured_Load_Power", POWER_PATH, 2087, "IR2087: a load meter's reading",
           "measured_load_power",
           signed=False, bounds=(0.0, 60000.0)),
    _power("Generation_Load_Power", POWER_PATH, 2088, "IR2088: total generation",
           "total_generation_load_power",
           signed=False, bounds=(0.0, 60000.0)),
    _power("Grid_Power", POWER_PATH, 2089, "IR2089 grid meter: positive = importing",
           "grid_meter_power",
           bounds=c.GRID_POWER),
    _power("Battery_Power", POWER_PATH, 2090,
           "IR2090 all managed batteries: positive = discharging", "total_battery_power"),
    _power("Other_Battery_Power", POWER_PATH, 2094, "IR2094: batteries the EMS does not manage",
           "other_battery_power"),
    Field("Remaining_Battery_Wh", DETAILS, IR, (2091,), unit="Wh", families=_EMS,
          bounds=(0, 65535), ha=c.ENERGY_STORAGE,
          description="IR2091: energy left in the managed batteries", raw="remaining_battery_wh"),
)  # fmt: skip


def _bits(code: Any, slot: int, width: int) -> int:
    return (int(code) >> (width * (slot - 1))) & ((1 << width) - 1)


def _meter_status(slot: int) -> Derived:
    def compute(v: Mapping[str, Any], model: Any) -> str:
        return METER_STATUS.get(_bits(v["Meter_Status_Code"], slot, 2), "Disabled")

    return Derived(f"Meter_{slot}_Status", METERS_PATH, ("Meter_Status_Code",), compute,
                   kind=Kind.STATUS, families=_EMS, ha=c.DIAGNOSTIC_ENUM, returns=str,
                   choices=tuple(METER_STATUS.values()),
                   description=f"IR2043 bits {2 * slot - 2}-{2 * slot - 1}")  # fmt: skip


def _inverter_status(slot: int) -> Derived:
    def compute(v: Mapping[str, Any], model: Any) -> str | None:
        return EMS_INVERTER_STATUS.get(_bits(v["Inverter_Status_Code"], slot, 3))

    return Derived(f"Inverter_{slot}_Status", ("Inverters", f"Inverter_{slot}"),
                   ("Inverter_Status_Code",), compute, kind=Kind.STATUS, families=_EMS,
                   ha=c.DIAGNOSTIC_ENUM, returns=str,
                   choices=tuple(EMS_INVERTER_STATUS.values()),
                   description=f"IR2045 bits {3 * slot - 3}-{3 * slot - 1}; codes other "
                   "than 0 and 2 are unknown and not published")  # fmt: skip


EMS_DERIVED: Final[tuple[Derived, ...]] = (
    *(_meter_status(n) for n in range(1, METER_SLOTS + 1)),
    *(_inverter_status(n) for n in range(1, MANAGED + 1)),
)
