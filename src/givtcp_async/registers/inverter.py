"""Single-phase inverter registers at 0x11 (SPEC §4.3, §4.4): hybrids, AC-coupled, All-in-One,
HV Gen3, and the Gateway's single-phase holding registers.

Names and groups are GivTCP's (givtcp.md §2.2). Where GivTCP names no field, these names were
chosen in GivTCP's style:

* ``PV1_Energy_Today_kWh`` / ``PV2_Energy_Today_kWh`` (GivTCP's three-phase naming) - inputs of
  ``PV_Energy_Today_kWh``;
* ``Battery_Nominal_Capacity`` (HR55, Ah) - input of ``Battery_Capacity_kWh``;
* ``Battery_Charge_Limit`` / ``Battery_Discharge_Limit`` (HR111/112 raw C/100; not offered to
  Home Assistant: the watt values ``Battery_Charge_Rate`` / ``_Discharge_Rate`` are);
* ``Device_Type_Code``, ``DSP_Firmware_Version``, ``ARM_Firmware_Version``, ``Certification``,
  ``Invertor_Status``, ``Battery_Charge_Status``, ``System_Mode``, ``Fault_Code``,
  ``Warning_Code``, ``Charger_Temperature``, ``Work_Time_Total`` (diagnostics);
* ``Export_Priority`` (HR311; GivTCP's setLocalControlMode is an alias of setExportPriority) and
  ``EPS_Enable`` (HR317, enableEPS), matching the control catalogue's read-back paths.

Values decode as GivTCP publishes them: times "HH:MM:SS", on/off settings "enable"/"disable".
"""

from __future__ import annotations

from typing import Any, Final

from givtcp_async.registers import common as c
from givtcp_async.registers.diagnostics import SP_DIAGNOSTIC_FIELDS
from givtcp_async.registers.raw import INVERTER_RAW, attach_raw
from givtcp_async.registers.raw_fields import RAW_ONLY_FIELDS
from givtcp_async.registers.schema import (
    BATTERY_PCT,
    CURRENT,
    DIAGNOSTIC,
    ENERGY_TODAY,
    ENERGY_TOTAL,
    FREQUENCY,
    HA,
    POWER,
    TEMPERATURE,
    THREE_PHASE_FAMILIES,
    VOLTAGE,
    Bank,
    Bounds,
    Enc,
    Family,
    Field,
    Kind,
)

POWER_PATH: Final = ("Power", "Power")
FLOWS_PATH: Final = ("Power", "Flows")
TODAY_PATH: Final = ("Energy", "Today")
TOTAL_PATH: Final = ("Energy", "Total")
DETAILS_PATH: Final = ("Invertor_Details",)
SLOTS_PATH: Final = ("Timeslots",)
CONTROL_PATH: Final = ("Control",)
STACK_PATH: Final = ("Battery_Details", "Battery_Stack_1")

HR = Bank.HOLDING
IR = Bank.INPUT


def _ir(name: str, path: tuple[str, ...], registers: tuple[int, ...], **kw: Any) -> Field:
    return Field(name, path, IR, registers, **kw)


def _hr(name: str, path: tuple[str, ...], registers: tuple[int, ...], **kw: Any) -> Field:
    return Field(name, path, HR, registers, **kw)


def _power(
    name: str,
    reg: int,
    bounds: Bounds,
    families: frozenset[Family],
    signed: bool,
    description: str = "",
) -> Field:
    return _ir(
        name,
        POWER_PATH,
        (reg,),
        enc=Enc.S16 if signed else Enc.U16,
        unit="W",
        families=families,
        bounds=bounds,
        ha=POWER,
        description=description,
    )


def _energy(
    name: str, regs: tuple[int, ...], kind: Kind, families: frozenset[Family], description: str = ""
) -> Field:
    return _ir(
        name,
        TODAY_PATH if kind is Kind.TODAY else TOTAL_PATH,
        regs,
        enc=Enc.U32 if len(regs) == 2 else Enc.U16,
        scale=0.1,
        unit="kWh",
        kind=kind,
        families=families,
        bounds=c.TODAY_KWH if kind is Kind.TODAY else c.TOTAL_KWH,
        ha=ENERGY_TODAY if kind is Kind.TODAY else ENERGY_TOTAL,
        description=description,
    )


# --- Power/Power (IR0-59) ----------------------------------------------------------------------

POWER_FIELDS: Final[tuple[Field, ...]] = (
    _power("PV_Power_String_1", 18, c.PV_STRING_POWER, c.SP_INPUT, False, "IR18"),
    _power("PV_Power_String_2", 20, c.PV_STRING_POWER, c.SP_INPUT, False, "IR20"),
    _ir("PV_Voltage_String_1", POWER_PATH, (1,), scale=0.1, unit="V", families=c.PV_STRINGS,
        bounds=c.PV_VOLTAGE, ha=VOLTAGE),
    _ir("PV_Voltage_String_2", POWER_PATH, (2,), scale=0.1, unit="V", families=c.PV_STRINGS,
        bounds=c.PV_VOLTAGE, ha=VOLTAGE),
    _ir("PV_Current_String_1", POWER_PATH, (8,), scale=0.1, unit="A", families=c.PV_STRINGS,
        bounds=c.PV_CURRENT, ha=CURRENT),
    _ir("PV_Current_String_2", POWER_PATH, (9,), scale=0.1, unit="A", families=c.PV_STRINGS,
        bounds=c.PV_CURRENT, ha=CURRENT),
    _ir("Grid_Voltage", POWER_PATH, (5,), scale=0.1, unit="V", families=c.SP_INPUT,
        bounds=c.GRID_VOLTAGE, ha=VOLTAGE),
    _ir("Grid_Current", POWER_PATH, (58,), scale=0.01, unit="A", families=c.SP_INPUT,
        bounds=c.AC_CURRENT, ha=CURRENT, description="IR58 grid-port current"),
    _ir("Invertor_Current", POWER_PATH, (10,), scale=0.1, unit="A", families=c.SP_INPUT,
        bounds=c.AC_CURRENT, ha=CURRENT, description="IR10 inverter AC current"),
    _power("Grid_Power", 30, c.GRID_POWER, c.SP_INPUT, True,
           "IR30 at the grid CT: positive = export, negative = import"),
    _power("EPS_Power", 31, c.eps_power, c.SP_INPUT, False),
    _power("Invertor_Power", 24, c.inverter_power, c.SP_INPUT, True,
           "IR24: positive = inverter delivering AC, negative = AC charging"),
    _power("Load_Power", 42, c.LOAD_POWER, c.SP_INPUT, False),
    _ir("Grid_Frequency", POWER_PATH, (13,), scale=0.01, unit="Hz", families=c.SP_INPUT,
        bounds=c.FREQUENCY, ha=FREQUENCY),
    _ir("Inverter_Output_Frequency", POWER_PATH, (54,), scale=0.01, unit="Hz",
        families=c.SP_INPUT, bounds=c.OUTPUT_FREQUENCY, ha=FREQUENCY,
        description="EPS/backup output frequency"),
    _ir("SOC", POWER_PATH, (59,), unit="%", families=c.SP_BATTERY, bounds=c.PERCENT,
        ha=BATTERY_PCT),
    _power("Battery_Power", 52, c.battery_power, c.SP_BATTERY, True,
           "IR52: positive = discharging, negative = charging"),
    _ir("Battery_Voltage", POWER_PATH, (50,), scale=0.01, unit="V", families=c.SP_BATTERY,
        bounds=c.battery_voltage, ha=VOLTAGE),
    _ir("Battery_Current", POWER_PATH, (51,), enc=Enc.S16, scale=0.01, unit="A",
        families=c.SP_BATTERY, bounds=c.BATTERY_CURRENT, ha=CURRENT,
        description="positive = discharging"),
    # The IR240 page (Gen3 and later), probed rather than assumed.
    _ir("Combined_Generation_Power", POWER_PATH, (247, 248), enc=Enc.U32, unit="W",
        families=frozenset({Family.HYBRID_GEN3, Family.HYBRID_GEN4, Family.HV_GEN3}),
        bounds=c.PV_POWER, ha=POWER),
)  # fmt: skip

STACK_FIELDS: Final[tuple[Field, ...]] = (
    _ir("BMS_Temperature", STACK_PATH, (56,), enc=Enc.S16, scale=0.1, unit="°C",
        families=c.SP_BATTERY, bounds=c.TEMPERATURE, ha=TEMPERATURE),
    _ir("BMS_Voltage", STACK_PATH, (50,), scale=0.01, unit="V", families=c.SP_BATTERY,
        bounds=c.battery_voltage, ha=VOLTAGE),
)  # fmt: skip

# --- Energy/Today and Energy/Total -------------------------------------------------------------

_GEN1: Final = frozenset({Family.HYBRID_GEN1})

ENERGY_FIELDS: Final[tuple[Field, ...]] = (
    _energy("PV1_Energy_Today_kWh", (17,), Kind.TODAY, c.SP_INPUT),
    _energy("PV2_Energy_Today_kWh", (19,), Kind.TODAY, c.SP_INPUT),
    _energy("Import_Energy_Today_kWh", (26,), Kind.TODAY, c.SP_INPUT),
    _energy("Export_Energy_Today_kWh", (25,), Kind.TODAY, c.SP_INPUT),
    _energy("AC_Charge_Energy_Today_kWh", (35,), Kind.TODAY, c.SP_BATTERY),
    _energy("Invertor_Energy_Today_kWh", (44,), Kind.TODAY, c.SP_INPUT),
    _energy("Battery_Charge_Energy_Today_kWh", (36,), Kind.TODAY, c.SP_BATTERY),
    _energy("Battery_Discharge_Energy_Today_kWh", (37,), Kind.TODAY, c.SP_BATTERY),
    _energy("PV_Energy_Total_kWh", (11, 12), Kind.TOTAL, c.SP_INPUT),
    _energy("Export_Energy_Total_kWh", (21, 22), Kind.TOTAL, c.SP_INPUT),
    _energy("Import_Energy_Total_kWh", (32, 33), Kind.TOTAL, c.SP_INPUT),
    _energy("Invertor_Energy_Total_kWh", (45, 46), Kind.TOTAL, c.SP_INPUT),
    _energy("AC_Charge_Energy_Total_kWh", (27, 28), Kind.TOTAL, c.SP_BATTERY),
    _energy("Battery_Throughput_Total_kWh", (6, 7), Kind.TOTAL, c.SP_BATTERY),
    # Gen1 keeps lifetime battery counters in IR180/181 (SPEC §7 #9; GivTCP's fallback wrongly
    # read the discharge total from HR180). Other models: the packs' IR105/106.
    _energy("Battery_Discharge_Energy_Total_kWh", (180,), Kind.TOTAL, _GEN1, "IR180 (Gen1)"),
    _energy("Battery_Charge_Energy_Total_kWh", (181,), Kind.TOTAL, _GEN1, "IR181 (Gen1)"),
)

_NOT_3PH: Final = frozenset(Family) - THREE_PHASE_FAMILIES

# --- Invertor_Details ----------------------------------------------------------------------------

DETAIL_FIELDS: Final[tuple[Field, ...]] = (
    _hr("Invertor_Serial_Number", DETAILS_PATH, (13, 14, 15, 16, 17), enc=Enc.ASCII,
        kind=Kind.INFO, ha=DIAGNOSTIC),
    _hr("Device_Type_Code", DETAILS_PATH, (0,), enc=Enc.HEX, kind=Kind.INFO, ha=DIAGNOSTIC),
    # Three-phase units read 0 here: their versions are IR1325/1327 (see three_phase.py).
    _hr("DSP_Firmware_Version", DETAILS_PATH, (19,), kind=Kind.INFO, families=_NOT_3PH,
        ha=DIAGNOSTIC),
    _hr("ARM_Firmware_Version", DETAILS_PATH, (21,), kind=Kind.INFO, families=_NOT_3PH,
        ha=DIAGNOSTIC),
    _hr("Modbus_Version", DETAILS_PATH, (34,), scale=0.01, kind=Kind.INFO,
        families=c.SP_BATTERY, ha=DIAGNOSTIC),
    _hr("Invertor_Time", DETAILS_PATH, (35, 36, 37, 38, 39, 40), enc=Enc.DATETIME,
        kind=Kind.INFO, ha=HA(device_class="timestamp", entity_category="diagnostic"),
        description="inverter clock; decoded naive, localised by the caller"),
    _hr("Certification", DETAILS_PATH, (2,), enc=Enc.HIGH_BYTE, options=c.CERTIFICATION,
        kind=Kind.INFO, families=c.SP_CONTROL, ha=c.DIAGNOSTIC_ENUM),
    _hr("Meter_Type", DETAILS_PATH, (47,), options=c.METER_TYPE, kind=Kind.INFO,
        families=c.SP_BATTERY, ha=c.DIAGNOSTIC_ENUM),
    _hr("Battery_Type", DETAILS_PATH, (54,), options=c.BATTERY_TYPE, kind=Kind.INFO,
        families=c.SP_BATTERY, ha=c.DIAGNOSTIC_ENUM),
    _hr("Battery_Nominal_Capacity", DETAILS_PATH, (55,), unit="Ah", kind=Kind.INFO,
        families=c.SP_BATTERY, bounds=c.CAPACITY_AH, ha=DIAGNOSTIC,
        description="HR55: sum of the packs' nominal capacity"),
    _hr("Export_Limit", DETAILS_PATH, (26,), unit="W", kind=Kind.SETTING,
        families=c.SP_CONTROL, bounds=(0, 65535),
        ha=HA(device_class="power", state_class="measurement", entity_category="diagnostic"),
        description="grid port maximum output power"),
    _hr("Battery_Calibration_Status", DETAILS_PATH, (29,), options=c.CALIBRATION_STAGE,
        kind=Kind.STATUS, families=c.SP_BATTERY, ha=c.DIAGNOSTIC_ENUM),
    _ir("Invertor_Temperature", DETAILS_PATH, (41,), enc=Enc.S16, scale=0.1, unit="°C",
        families=c.SP_INPUT, bounds=c.TEMPERATURE, ha=TEMPERATURE),
    _ir("Charger_Temperature", DETAILS_PATH, (55,), enc=Enc.S16, scale=0.1, unit="°C",
        families=c.SP_BATTERY, bounds=c.TEMPERATURE, ha=TEMPERATURE),
    _ir("Invertor_Status", DETAILS_PATH, (0,), options=c.INVERTER_STATUS, kind=Kind.STATUS,
        families=c.SP_INPUT, ha=c.DIAGNOSTIC_ENUM),
    _ir("Battery_Charge_Status", DETAILS_PATH, (14,), options=c.CHARGE_STATUS,
        kind=Kind.STATUS, families=c.SP_BATTERY, ha=c.DIAGNOSTIC_ENUM),
    _ir("System_Mode", DETAILS_PATH, (49,), options=c.SYSTEM_MODE, kind=Kind.STATUS,
        families=c.SP_INPUT, ha=c.DIAGNOSTIC_ENUM),
    _ir("Fault_Code", DETAILS_PATH, (39,), enc=Enc.HEX, kind=Kind.STATUS, families=c.SP_INPUT,
        ha=DIAGNOSTIC),
    _ir("Warning_Code", DETAILS_PATH, (40,), enc=Enc.HEX, kind=Kind.STATUS,
        families=c.SP_INPUT, ha=DIAGNOSTIC),
    _ir("Work_Time_Total", DETAILS_PATH, (47, 48), enc=Enc.U32, unit="h", kind=Kind.INFO,
        families=c.SP_INPUT - {Family.HV_GEN3}, bounds=(0, 876_000),
        ha=HA(device_class="duration", state_class="total_increasing",
              entity_category="diagnostic"),
        description="IR47-48 (HV Gen3 reads IR47 = 11034, IR48 = 0: word order unknown, omitted)"),
)  # fmt: skip

# --- Control -------------------------------------------------------------------------------------


def _switch(
    name: str,
    reg: int,
    control: str,
    families: frozenset[Family] = c.SP_CONTROL,
    description: str = "",
) -> Field:
    return _hr(
        name,
        CONTROL_PATH,
        (reg,),
        enc=Enc.BOOL,
        options=c.ENABLE,
        kind=Kind.SETTING,
        families=families,
        ha=c.SWITCH,
        control=control,
        description=description,
    )


def _percent(
    name: str,
    reg: int,
    control: str | None,
    families: frozenset[Family] = c.SP_CONTROL,
    ha: HA | None = c.NUMBER,
    path: tuple[str, ...] = CONTROL_PATH,
    description: str = "",
) -> Field:
    return _hr(
        name,
        path,
        (reg,),
        unit="%",
        kind=Kind.SETTING,
        families=families,
        bounds=c.PERCENT,
        ha=ha,
        control=control,
        description=description,
    )


CONTROL_FIELDS: Final[tuple[Field, ...]] = (
    _switch("Eco_Mode", 27, "setEcoMode", description="HR27: 1 = discharge to match demand"),
    _switch("Enable_Charge_Schedule", 96, "enableChargeSchedule"),
    _switch("Enable_Discharge_Schedule", 59, "enableDischargeSchedule"),
    _switch("Enable_Charge_Target", 20, "enableChargeTarget"),
    _switch("Real_Time_Control", 166, "enableRTC"),
    _percent("Target_SOC", 116, "setChargeTarget"),
    _percent("Battery_Power_Reserve", 110, "setBatteryReserve"),
    _percent("Battery_Power_Cutoff", 114, "setBatteryCutoff"),
    _percent("Active_Power_Rate", 50, "setActivePowerRate"),
    _hr("Battery_Charge_Limit", CONTROL_PATH, (111,), kind=Kind.SETTING,
        families=c.SP_BATTERY, bounds=(0, 255), ha=None,
        description="HR111 raw charge rate in C/100 (50 = full); see Battery_Charge_Rate"),
    _hr("Battery_Discharge_Limit", CONTROL_PATH, (112,), kind=Kind.SETTING,
        families=c.SP_BATTERY, bounds=(0, 255), ha=None,
        description="HR112 raw discharge rate in C/100; see Battery_Discharge_Rate"),
    _hr("Battery_Calibration", CONTROL_PATH, (29,), options=c.CALIBRATION, kind=Kind.SETTING,
        families=c.SP_BATTERY, ha=c.SELECT, control="setBatteryCalibration"),
    # The HR300 page.
    # A hybrid may answer HR313/314 but has no AC rate: offered only where it can be set.
    _percent("Battery_Charge_Rate_AC", 313, "setChargeRateAC", c.HR300_PAGE, c.AC_RATE),
    _percent("Battery_Discharge_Rate_AC", 314, "setDischargeRateAC", c.HR300_PAGE, c.AC_RATE),
    _hr("Battery_pause_mode", CONTROL_PATH, (318,), options=c.PAUSE_MODE, kind=Kind.SETTING,
        families=c.HR300_PAGE, ha=c.SELECT, control="setBatteryPauseMode"),
    _hr("Export_Priority", CONTROL_PATH, (311,), options=c.LOCAL_CONTROL_MODE,
        kind=Kind.SETTING, families=c.HR300_PAGE, ha=c.SELECT, control="setExportPriority",
        description="HR311 export priority: load, battery or grid first"),
    _switch("EPS_Enable", 317, "enableEPS", c.HR300_PAGE, "HR317 (not a GivTCP control)"),
)  # fmt: skip


def _slot_target(kind: str, n: int) -> Field:
    """Per-slot SOC targets: charge HR242 + 3(n-1), discharge HR272 + 3(n-1) (SPEC §4.3)."""
    base = 242 if kind == "Charge" else 272
    return _percent(
        f"{kind}_Target_SOC_{n}", base + 3 * (n - 1), f"set{kind}Target{n}", c.SLOT_PAGE
    )


SLOT_TARGET_FIELDS: Final[tuple[Field, ...]] = tuple(
    _slot_target(kind, n) for kind in ("Charge", "Discharge") for n in range(1, 11)
)

# --- Timeslots -----------------------------------------------------------------------------------


def _time(name: str, reg: int, control: str | None, families: frozenset[Family]) -> Field:
    return _hr(
        name,
        SLOTS_PATH,
        (reg,),
        enc=Enc.TIME,
        kind=Kind.SETTING,
        families=families,
        ha=c.TIME_SELECT,
        control=control,
    )


def _slot(kind: str, n: int, start: int, end: int, families: frozenset[Family]) -> list[Field]:
    return [
        _time(f"{kind}_start_time_slot_{n}", start, f"set{kind}Start{n}", families),
        _time(f"{kind}_end_time_slot_{n}", end, f"set{kind}End{n}", families),
    ]


def _timeslots() -> tuple[Field, ...]:
    out = _slot("Charge", 1, 94, 95, c.SP_CONTROL)
    # Charge slot 2 is HR243/244 on extended-slot firmware; Gen1/Gen2/AC have one charge slot
    # (HR31/32 are not slot times: SPEC §7 #4).
    out += _slot("Charge", 2, 243, 244, c.SLOT_PAGE)
    for k in range(3, 11):
        out += _slot("Charge", k, 246 + 3 * (k - 3), 247 + 3 * (k - 3), c.SLOT_PAGE)
    out += _slot("Discharge", 1, 56, 57, c.SP_CONTROL)
    out += _slot("Discharge", 2, 44, 45, c.SP_CONTROL)
    for k in range(3, 11):
        out += _slot("Discharge", k, 276 + 3 * (k - 3), 277 + 3 * (k - 3), c.SLOT_PAGE)
    out += [
        _time("Battery_pause_start_time_slot", 319, "setPauseStart", c.HR300_PAGE),
        _time("Battery_pause_end_time_slot", 320, "setPauseEnd", c.HR300_PAGE),
    ]
    return tuple(out)


TIMESLOT_FIELDS: Final[tuple[Field, ...]] = _timeslots()

INVERTER_FIELDS: Final[tuple[Field, ...]] = (
    attach_raw(
        POWER_FIELDS
        + STACK_FIELDS
        + ENERGY_FIELDS
        + DETAIL_FIELDS
        + CONTROL_FIELDS
        + SLOT_TARGET_FIELDS
        + TIMESLOT_FIELDS,
        INVERTER_RAW,
    )
    + RAW_ONLY_FIELDS
    + SP_DIAGNOSTIC_FIELDS
)
