"""Three-phase inverters (40xx, 60xx, 41xx, 82xx): live data IR1000-1413 and the HR1000-1124
controls (SPEC §4.7, §5.1).

Controls: the single-phase names GivTCP uses for the same settings, plus its three-phase switches
``Force_Charge_Enable`` (HR1123), ``Force_Discharge_Enable`` (HR1122) and
``Force_AC_Charge_Enable`` (HR1112). Slots 1 and 2 have their own registers; slots 3-10 reuse
the single-phase HR246+/276+ (the HR240 page, which three-phase units are probed for).

Live data: addresses, scaling, signedness and word order from givenergy-modbus 2.13.0's
three-phase model, checked against the GIV-3HY-11 captures (tests/test_families_oracle.py);
names are the ones GivTCP 3.5 publishes for a three-phase inverter (``Grid_Phase1_Voltage``,
``Meter_Import_Power``, ``Inverter_Out_Energy_Today_kWh``, ...), with its slips fixed: its
``PV_*_String_1`` entries overwrite each other (here strings 1 and 2 each have their own), and
its ``Load_PhaseN_Power`` / ``Export_PhaseN_Power`` are the grid meter's and the inverter's
per-phase active power (the captured phases sum to the meter's import/export and to the
inverter output), published here as ``Grid_PhaseN_Power`` (positive = export, like
``Grid_Power``) and ``Inverter_PhaseN_Power``. ``raw`` is the name GivTCP 3.5's three-phase
model gives the register (its ``raw/invertor`` block: ``p_load_ac1``, ``p_out_ac1``,
``battery_power_cutoff``, ``v_grid_low_limit_1``, ...), or the peer library's attribute name
where GivTCP 3.5 has none (``real_time_control``, ``q_lock_out_power``, the Q(U) curve).

IR1061-1063 are line-to-line voltages (401.7 V on a 231.9 V per-phase supply), hence their
bounds. The 32-bit values are high word first. Faults and warnings (IR1300-1307) are published
as words and decoded to text by ``Fault_Text`` / ``Warning_Text`` (derived, bit names from the
GivEnergy installer tables the peer cites). GivTCP 3.5 has no ``Power/Flows`` for three-phase
units; ``registers/derived.py`` works them out as on single-phase ones (the grid from the meter's
import and export, the battery from its charge and discharge power), so the dashboard shows the
plant.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from givtcp_async.registers import common as c
from givtcp_async.registers.diagnostics import DIAGNOSTICS_PATH, field_name, hidden
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
    Derived,
    Enc,
    Field,
    Kind,
)

HR = Bank.HOLDING
IR = Bank.INPUT
_3PH: Final = THREE_PHASE_FAMILIES
CONTROL: Final = ("Control",)
SLOTS: Final = ("Timeslots",)
POWER_PATH: Final = ("Power", "Power")
TODAY_PATH: Final = ("Energy", "Today")
TOTAL_PATH: Final = ("Energy", "Total")
DETAILS_PATH: Final = ("Invertor_Details",)

# Bounds of the larger three-phase units (up to 50 kW, SPEC §4.2).
LINE_VOLTAGE: Final = (0.0, 500.0)  # line-to-line, 400 V nominal
PHASE_POWER: Final = (-25000.0, 25000.0)
PLANT_POWER: Final = (0.0, 60000.0)
TODAY_KWH: Final = (0.0, 1500.0)
DC_VOLTAGE: Final = (0.0, 1000.0)


def _switch(name: str, reg: int, control: str, raw: str) -> Field:
    return Field(name, CONTROL, HR, (reg,), enc=Enc.BOOL, options=c.ENABLE, kind=Kind.SETTING,
                 families=_3PH, ha=c.SWITCH, control=control, raw=raw)  # fmt: skip


def _percent(name: str, reg: int, control: str, raw: str) -> Field:
    return Field(name, CONTROL, HR, (reg,), unit="%", kind=Kind.SETTING, families=_3PH,
                 bounds=c.PERCENT, ha=c.NUMBER, control=control, raw=raw)  # fmt: skip


def _time(name: str, reg: int, control: str, raw: str) -> Field:
    return Field(name, SLOTS, HR, (reg,), enc=Enc.TIME, kind=Kind.SETTING, families=_3PH,
                 ha=c.TIME_SELECT, control=control, raw=raw)  # fmt: skip


def _slot(kind: str, n: int, start: int) -> list[Field]:
    raw = f"{kind.lower()}_slot_{n}"
    return [
        _time(f"{kind}_start_time_slot_{n}", start, f"set{kind}Start{n}", f"{raw}_start"),
        _time(f"{kind}_end_time_slot_{n}", start + 1, f"set{kind}End{n}", f"{raw}_end"),
    ]


CONTROL_FIELDS: Final[tuple[Field, ...]] = (
    _switch("Real_Time_Control", 1005, "enableRTC", "real_time_control"),
    _switch("Force_AC_Charge_Enable", 1112, "setACCharge", "ac_charge_enable"),
    _switch("Force_Discharge_Enable", 1122, "setForceDischarge", "force_discharge_enable"),
    _switch("Force_Charge_Enable", 1123, "setForceCharge", "force_charge_enable"),
    _percent("Battery_Power_Cutoff", 1078, "setBatteryCutoff", "battery_power_cutoff"),
    _percent("Battery_Power_Reserve", 1109, "setBatteryReserve", "battery_soc_reserve"),
    _percent("Target_SOC", 1111, "setChargeTarget", "charge_target_soc"),
    _percent("Battery_Discharge_Rate_AC", 1108, "setDischargeRateAC", "battery_discharge_limit_ac"),
    _percent("Battery_Charge_Rate_AC", 1110, "setChargeRateAC", "battery_charge_limit_ac"),
    *_slot("Charge", 1, 1113),
    *_slot("Charge", 2, 1115),
    *_slot("Discharge", 1, 1118),
    *_slot("Discharge", 2, 1120),
    *(f for k in range(3, 11) for f in _slot("Charge", k, 246 + 3 * (k - 3))),
    *(f for k in range(3, 11) for f in _slot("Discharge", k, 276 + 3 * (k - 3))),
)


# --- live data: IR1000-1413 --------------------------------------------------------------------


def _ir(name: str, path: tuple[str, ...], regs: tuple[int, ...], raw: str, **kw: Any) -> Field:
    kw.setdefault("families", _3PH)
    return Field(name, path, IR, regs, raw=raw, **kw)


def _u32(reg: int) -> dict[str, Any]:
    return {"registers": (reg, reg + 1), "enc": Enc.U32}


def _watts(name: str, reg: int, raw: str, bounds: Any = PLANT_POWER, signed: bool = False,
           description: str = "") -> Field:  # fmt: skip
    """A 32-bit power in 0.1 W, published in W."""
    return Field(name, POWER_PATH, IR, (reg, reg + 1), enc=Enc.S32 if signed else Enc.U32,
                 scale=0.1, unit="W", families=_3PH, bounds=bounds, ha=POWER, raw=raw,
                 description=description)  # fmt: skip


def _volts(name: str, reg: int, raw: str, bounds: Any = c.GRID_VOLTAGE,
           path: tuple[str, ...] = POWER_PATH) -> Field:  # fmt: skip
    return _ir(name, path, (reg,), raw, scale=0.1, unit="V", bounds=bounds, ha=VOLTAGE)


def _amps(name: str, reg: int, raw: str, bounds: Any = c.AC_CURRENT) -> Field:
    return _ir(name, POWER_PATH, (reg,), raw, scale=0.1, unit="A", bounds=bounds, ha=CURRENT)


def _phase_watts(name: str, reg: int, raw: str, description: str) -> Field:
    return _ir(name, POWER_PATH, (reg,), raw, enc=Enc.S16, unit="W", bounds=PHASE_POWER,
               ha=POWER, description=description)  # fmt: skip


def _energy(name: str, reg: int, raw: str, kind: Kind) -> Field:
    today = kind is Kind.TODAY
    return Field(name, TODAY_PATH if today else TOTAL_PATH, IR, (reg, reg + 1), enc=Enc.U32,
                 scale=0.1, unit="kWh", kind=kind, families=_3PH,
                 bounds=TODAY_KWH if today else c.TOTAL_KWH,
                 ha=ENERGY_TODAY if today else ENERGY_TOTAL, raw=raw)  # fmt: skip


def _temperature(name: str, reg: int, raw: str) -> Field:
    return _ir(name, DETAILS_PATH, (reg,), raw, enc=Enc.S16, scale=0.1, unit="°C",
               bounds=c.TEMPERATURE, ha=TEMPERATURE)  # fmt: skip


def _detail(name: str, regs: tuple[int, ...], raw: str, **kw: Any) -> Field:
    kw.setdefault("ha", DIAGNOSTIC)
    kw.setdefault("kind", Kind.INFO)
    return _ir(name, DETAILS_PATH, regs, raw, **kw)


_PHASES: Final = (1, 2, 3)

POWER_FIELDS: Final[tuple[Field, ...]] = (
    # PV strings
    *(_volts(f"PV_Voltage_String_{n}", 1000 + n, f"v_pv{n}", c.PV_VOLTAGE) for n in (1, 2)),
    *(_amps(f"PV_Current_String_{n}", 1008 + n, f"i_pv{n}", c.PV_CURRENT) for n in (1, 2)),
    *(_watts(f"PV_Power_String_{n}", 1015 + 2 * n, f"p_pv{n}", c.PV_STRING_POWER)
      for n in (1, 2)),
    # grid side
    *(_volts(f"Grid_Phase{n}_Voltage", 1060 + n, f"v_ac{n}", LINE_VOLTAGE) for n in _PHASES),
    *(_amps(f"Grid_Phase{n}_Current", 1063 + n, f"i_ac{n}") for n in _PHASES),
    _ir("Grid_Frequency", POWER_PATH, (1067,), "f_ac1", scale=0.01, unit="Hz",
        bounds=c.FREQUENCY, ha=FREQUENCY),
    _watts("Inverter_Power_Out", 1069, "p_inverter_out", (-60000.0, 60000.0), signed=True,
           description="positive = inverter delivering AC"),
    _watts("AC_Charge_Power", 1071, "p_inverter_ac_charge"),
    Field("Grid_Apparent_Power", POWER_PATH, IR, (1073, 1074), enc=Enc.U32, scale=0.1,
          unit="VA", families=_3PH, bounds=PLANT_POWER,
          ha=HA(device_class="apparent_power", state_class="measurement"),
          raw="p_grid_apparent"),
    _watts("Meter_Import_Power", 1079, "p_meter_import", description="grid meter: import"),
    _watts("Meter_Export_Power", 1081, "p_meter_export", description="grid meter: export"),
    *(_phase_watts(f"Grid_Phase{n}_Power", 1082 + n, f"p_load_ac{n}",
                   "grid meter, this phase: positive = export, negative = import")
      for n in _PHASES),
    _watts("Load_Power", 1089, "p_load_all"),
    *(_phase_watts(f"Inverter_Phase{n}_Power", 1090 + n, f"p_out_ac{n}",
                   "inverter output, this phase: positive = delivering AC")
      for n in _PHASES),
    *(_volts(f"Output_Phase{n}_Voltage", 1093 + n, f"v_out_ac{n}") for n in _PHASES),
    # battery
    _ir("SOC", POWER_PATH, (1132,), "battery_soc", unit="%", bounds=c.PERCENT, ha=BATTERY_PCT),
    _volts("BMS_Voltage", 1131, "v_battery_bms", DC_VOLTAGE),
    _volts("PCS_Voltage", 1133, "v_battery_pcs", DC_VOLTAGE),
    _volts("DC_Bus_Voltage", 1134, "v_dc_bus", DC_VOLTAGE),
    _volts("Inverter_Bus_Voltage", 1135, "v_inv_bus", DC_VOLTAGE),
    _watts("Battery_Discharge_Power", 1136, "p_battery_discharge"),
    _watts("Battery_Charge_Power", 1138, "p_battery_charge"),
    _ir("Battery_Current", POWER_PATH, (1140,), "i_battery", enc=Enc.S16, scale=0.01, unit="A",
        bounds=c.BATTERY_CURRENT, ha=CURRENT, description="positive = discharging"),
    # EPS / backup output
    _ir("EPS_Nominal_Frequency", POWER_PATH, (1180,), "f_nominal_eps", scale=0.01, unit="Hz",
        bounds=c.OUTPUT_FREQUENCY, ha=FREQUENCY),
    *(_volts(f"EPS_Phase{n}_Voltage", 1180 + n, f"v_eps_ac{n}") for n in _PHASES),
    *(_amps(f"EPS_Phase{n}_Current", 1183 + n, f"i_eps_ac{n}") for n in _PHASES),
    *(_watts(f"EPS_Phase{n}_Power", 1185 + 2 * n, f"p_eps_ac{n}") for n in _PHASES),
    # further meters
    _watts("Export_Power", 1240, "p_export"),
    _watts("Meter2_Power", 1244, "p_meter2"),
)  # fmt: skip

ENERGY_FIELDS: Final[tuple[Field, ...]] = (*(
    _energy(f"{name}_Energy_{period}_kWh", reg + (2 if period == "Total" else 0),
            f"e_{raw}_{period.lower()}", Kind.TODAY if period == "Today" else Kind.TOTAL)
    for name, reg, raw in (
        ("Inverter_Out", 1360, "inverter_out"),
        ("PV1", 1366, "pv1"),
        ("PV2", 1370, "pv2"),
        ("AC_Charge", 1376, "ac_charge"),
        ("Import", 1380, "import"),
        ("Export", 1384, "export"),
        ("Battery_Discharge", 1388, "battery_discharge"),
        ("Battery_Charge", 1392, "battery_charge"),
        ("Load", 1396, "load"),
        ("Export2", 1400, "export2"),
    )
    for period in ("Today", "Total")
),
    _energy("PV_Energy_Total_kWh", 1374, "e_pv_total", Kind.TOTAL),
    _energy("PV_Energy_Today_kWh", 1412, "e_pv_today", Kind.TODAY),
)  # fmt: skip

STATUS: Final = {0: "Waiting", 1: "Normal", 2: "Warning", 3: "Fault", 4: "Firmware Update"}

DETAIL_FIELDS: Final[tuple[Field, ...]] = (
    _ir("Invertor_Status", DETAILS_PATH, (1076,), "status", options=STATUS, kind=Kind.STATUS,
        ha=c.DIAGNOSTIC_ENUM),
    _ir("DC_Status", DETAILS_PATH, (1124,), "dc_status", options=STATUS, kind=Kind.STATUS,
        ha=c.DIAGNOSTIC_ENUM),
    _ir("System_Mode", DETAILS_PATH, (1075,), "system_mode", options=c.SYSTEM_MODE,
        kind=Kind.STATUS, ha=c.DIAGNOSTIC_ENUM),
    _detail("Start_Delay_Time", (1077,), "start_delay_time", unit="s", kind=Kind.STATUS),
    _detail("Power_Factor", (1068,), "power_factor", enc=Enc.S16, kind=Kind.MEASUREMENT,
            description="IR1068 as the inverter reports it (signed, unscaled)"),
    _detail("Battery_Priority", (1120,), "battery_priority", kind=Kind.SETTING),
    Field("Battery_Type", DETAILS_PATH, HR, (1080,), options=c.BATTERY_TYPE, kind=Kind.INFO,
          families=_3PH, ha=c.DIAGNOSTIC_ENUM, raw="battery_type"),
    _detail("Battery_Type_Detected", (1121,), "battery_type_ir", options=c.BATTERY_TYPE,
            ha=c.DIAGNOSTIC_ENUM, description="IR1121: the type the inverter works with"),
    _temperature("Inverter_Temperature", 1128, "t_inverter"),
    _temperature("Boost_Temperature", 1129, "t_boost"),
    _temperature("Buck_Boost_Temperature", 1130, "t_buck_boost"),
    _detail("Invertor_Software", (1317, 1318, 1319), "tph_software_version", enc=Enc.ASCII),
    _detail("Invertor_Firmware_ID", tuple(range(1320, 1325)), "tph_firmware_version",
            enc=Enc.ASCII),
    # The firmware numbers: on three-phase units HR19/HR21 read 0 and these are the versions
    # (``Invertor_Firmware`` is made of the first and the last, as on single-phase units).
    _detail("DSP_Firmware_Version", (1325,), "ac_dsp_firmware_version"),
    _detail("DC_DSP_Firmware_Version", (1326,), "dc_dsp_firmware_version"),
    _detail("ARM_Firmware_Version", (1327,), "tph_arm_firmware_version"),
    *(_detail(f"Fault_Word_{n}", (1300 + n,), f"inverter_fault_codes_{n}", enc=Enc.HEX,
              kind=Kind.STATUS, ha=HA(entity_category="diagnostic", enabled_by_default=False))
      for n in range(8)),
)  # fmt: skip

LIVE_FIELDS: Final[tuple[Field, ...]] = POWER_FIELDS + ENERGY_FIELDS + DETAIL_FIELDS

# --- faults decoded to text --------------------------------------------------------------------

# Bit n of IR(1300 + w): GivEnergy's three-phase fault and warning names (installer app tables
# THREE_PHASE_HYBRID_FAULT_CODE_WORD_0..7). Unnamed bits are left out.
FAULT_BITS: Final[Mapping[int, Mapping[int, str]]] = {
    0: {0: "Battery Voltage High", 2: "Bus 2 Voltage high ISR", 3: "Bus Voltage high ISR",
        4: "Inverter OCP fault TZ", 5: "Frequency unstable", 6: "Buck Boost Fault ISR",
        7: "BDC OCP Fault", 8: "Grid Zero cross loss", 12: "Grid Phase 1 voltage fault",
        13: "Grid Phase 2 voltage fault", 14: "Grid Phase 3 voltage fault",
        15: "Grid frequency out of range"},
    1: {0: "Gateway Comm fault", 1: "GFCI Damage", 2: "Grid phase 1 voltage low",
        3: "Grid phase 1 voltage high", 4: "Grid phase 2 voltage low",
        5: "Grid phase 2 voltage high", 6: "Grid phase 3 voltage low",
        7: "Grid phase 3 voltage high", 8: "Inverter OCP Fault ISR",
        12: "Inverter Phase 1 Current OCP (RMS)", 13: "Inverter Phase 2 Current OCP (RMS)",
        14: "Inverter Phase 3 Current OCP (RMS)", 15: "No Grid connection"},
    2: {0: "Grid Frequency Low", 1: "Grid frequency High", 2: "Grid voltage imbalance",
        3: "AC PLL fault", 4: "Overload fault", 5: "Backflow timeout",
        7: "Grid connected v/f out of range", 8: "EPS phase 1 voltage loss",
        9: "EPS phase 2 voltage loss", 10: "EPS phase 3 voltage loss", 11: "EPS bus voltage low",
        12: "EPS overload", 13: "EPS voltage high", 14: "DCV high", 15: "Battery OCP"},
    3: {0: "Battery reversed", 1: "Battery open", 2: "Battery voltage low",
        4: "Bus2 voltage abnormal", 5: "Buck boost soft start fail", 6: "Battery voltage high",
        8: "BMS Error", 9: "BMS comm fault", 13: "Battery sleep", 14: "Lead acid NTC open",
        15: "BMS power forbid"},
    4: {5: "PV1 voltage low", 6: "PV2 voltage low"},
    5: {0: "DCI high", 1: "PV isolation low", 2: "NTC open", 3: "Bus voltage high",
        4: "PV voltage high", 5: "Boost over temperature", 6: "Buck Boost over temperature",
        7: "Inverter over temperature", 8: "EPS output short circuit", 9: "Auto test fault",
        10: "Init Model fault", 11: "Relay fault", 12: "Bus voltage unbalance",
        13: "DSP firmware unmatched", 14: "PV1 short circuit", 15: "PV2 short circuit"},
    6: {0: "PV voltage high", 1: "External device faulty", 2: "Acom fault", 3: "Bcom fault",
        4: "Master force inverter fault", 5: "Master force SP fault", 6: "GFCI High",
        7: "Virtual Load over temp", 8: "Internal com fault3", 9: "Grid consistent",
        10: "EPS connected grid", 11: "Internal over temperature", 12: "Fan fault",
        13: "Hardware unmatch"},
    7: {0: "CT clamp L/N reversed", 1: "Pairing timeout", 2: "Meter comms loss",
        6: "Battery over temperature", 7: "Battery over load", 8: "Battery full",
        9: "Battery needs Charge", 10: "BMS Warning", 11: "Battery weak",
        12: "Battery low power", 13: "NTC open", 14: "Fan warning"},
}  # fmt: skip
FAULT_WORDS: Final = tuple(range(7))
WARNING_WORDS: Final = (7,)


def fault_names(word: int, value: int) -> list[str]:
    """The names of the set bits of fault word ``word`` (IR1300 + word)."""
    names = FAULT_BITS.get(word, {})
    return [names[bit] for bit in sorted(names) if value >> bit & 1]


def _fault_text(words: tuple[int, ...]) -> Any:
    def compute(v: Mapping[str, Any], model: Any) -> str:
        found = [name for w in words for name in fault_names(w, int(v[f"Fault_Word_{w}"], 16))]
        return ", ".join(found) if found else "None"

    return compute


THREE_PHASE_DERIVED: Final[tuple[Derived, ...]] = (
    Derived("PV_Power", POWER_PATH, ("PV_Power_String_1", "PV_Power_String_2"),
            lambda v, m: round(v["PV_Power_String_1"] + v["PV_Power_String_2"], 1), unit="W",
            families=_3PH, bounds=PLANT_POWER, ha=POWER, description="string 1 + string 2"),
    Derived("PV_Current", POWER_PATH, ("PV_Current_String_1", "PV_Current_String_2"),
            lambda v, m: round(v["PV_Current_String_1"] + v["PV_Current_String_2"], 1),
            unit="A", families=_3PH, bounds=(0, 100), ha=CURRENT),
    Derived("Grid_Power", POWER_PATH, ("Meter_Import_Power", "Meter_Export_Power"),
            lambda v, m: round(v["Meter_Export_Power"] - v["Meter_Import_Power"], 1), unit="W",
            families=_3PH, bounds=(-60000.0, 60000.0), ha=POWER,
            description="grid meter: positive = export, negative = import"),
    Derived("Battery_Power", POWER_PATH, ("Battery_Discharge_Power", "Battery_Charge_Power"),
            lambda v, m: round(v["Battery_Discharge_Power"] - v["Battery_Charge_Power"], 1),
            unit="W", families=_3PH, bounds=(-60000.0, 60000.0), ha=POWER,
            description="positive = discharging, negative = charging"),
    Derived("Battery_Throughput_Total_kWh", TOTAL_PATH,
            ("Battery_Charge_Energy_Total_kWh", "Battery_Discharge_Energy_Total_kWh"),
            lambda v, m: round(v["Battery_Charge_Energy_Total_kWh"]
                               + v["Battery_Discharge_Energy_Total_kWh"], 1),
            unit="kWh", kind=Kind.TOTAL, families=_3PH, bounds=c.TOTAL_KWH, ha=ENERGY_TOTAL,
            description="charge + discharge totals"),
    Derived("Fault_Text", DETAILS_PATH, tuple(f"Fault_Word_{w}" for w in FAULT_WORDS),
            _fault_text(FAULT_WORDS), kind=Kind.STATUS, families=_3PH, ha=DIAGNOSTIC,
            returns=str, description="the set fault bits of IR1300-1306, or None"),
    Derived("Warning_Text", DETAILS_PATH, tuple(f"Fault_Word_{w}" for w in WARNING_WORDS),
            _fault_text(WARNING_WORDS), kind=Kind.STATUS, families=_3PH, ha=DIAGNOSTIC,
            returns=str, description="the set warning bits of IR1307, or None"),
)  # fmt: skip

# --- diagnostics: the rest of HR1000-1124 (and HR101-104), read only -----------------------------

# (raw name, register, code): u the word as it is (flags included: 0/1), d x0.1, c x0.01,
# m x0.001. Grid protection trip / reconnect limits and times, frequency and voltage derating,
# the power-factor and volt-VAr curves, battery and backup settings: what the peer library
# decodes of these registers, published under ``Diagnostics`` (the ``raw`` name is the peer's)
# and announced to Home Assistant as diagnostic entities that start disabled.
DIAGNOSTIC_ROWS: Final[tuple[tuple[str, int, str], ...]] = (
    ("grid_r_voltage_adjustment", 101, "u"),
    ("grid_s_voltage_adjustment", 102, "u"),
    ("grid_t_voltage_adjustment", 103, "u"),
    ("grid_power_adjustment", 104, "u"),
    ("system_enable", 1000, "u"),
    ("set_command_save", 1001, "u"),
    ("active_rate", 1002, "u"),
    ("reactive_rate", 1003, "u"),
    ("set_power_factor", 1004, "u"),
    ("grid_connect_time", 1007, "u"),
    ("grid_reconnect_time", 1008, "u"),
    ("grid_connect_slope", 1009, "d"),
    ("com_baud_rate", 1010, "u"),
    ("grid_reconnect_slope", 1011, "u"),
    ("meter_fail_enable", 1017, "u"),
    ("v_grid_low_limit_trip", 1018, "d"),
    ("v_grid_high_limit_trip", 1019, "d"),
    ("f_grid_low_limit_trip", 1020, "c"),
    ("f_grid_high_limit_trip", 1021, "c"),
    ("v_grid_low_limit_reconnect", 1022, "d"),
    ("v_grid_high_limit_reconnect", 1023, "d"),
    ("f_grid_low_limit_reconnect", 1024, "c"),
    ("f_grid_high_limit_reconnect", 1025, "c"),
    ("v_grid_low_limit_grid", 1026, "d"),
    ("v_grid_high_limit_grid", 1027, "d"),
    ("f_grid_low_limit_grid", 1028, "c"),
    ("f_grid_high_limit_grid", 1029, "c"),
    ("v_grid_low_limit_cee", 1030, "d"),
    ("v_grid_high_limit_cee", 1031, "d"),
    ("f_grid_low_limit_cee", 1032, "c"),
    ("f_grid_high_limit_cee", 1033, "c"),
    ("time_grid_low_voltage_limit_trip", 1034, "c"),
    ("time_grid_high_voltage_limit_trip", 1035, "c"),
    ("time_grid_low_voltage_limit_reconnect", 1036, "c"),
    ("time_grid_high_voltage_limit_reconnect", 1037, "c"),
    ("time_grid_low_freq_limit_trip", 1038, "c"),
    ("time_grid_high_freq_limit_trip", 1039, "c"),
    ("time_grid_low_freq_limit_reconnect", 1040, "c"),
    ("time_grid_high_freq_limit_reconnect", 1041, "c"),
    ("v_10min_protect", 1042, "d"),
    ("pf_model", 1043, "u"),
    ("f_over_derate_start", 1045, "c"),
    ("f_over_derate_slope", 1046, "u"),
    ("q_lockin_power", 1047, "u"),
    ("q_lock_out_power", 1048, "u"),
    ("pf_lock_in_voltage", 1049, "d"),
    ("pf_lock_out_voltage", 1050, "d"),
    ("f_under_derate_slope", 1051, "m"),
    ("v_reactive_delay_time", 1052, "m"),
    ("time_over_freq_delay_time", 1053, "c"),
    ("pf_limit_load_1", 1054, "u"),
    ("pf_limit_pf_1", 1055, "u"),
    ("pf_limit_load_2", 1056, "u"),
    ("pf_limit_pf_2", 1057, "u"),
    ("pf_limit_load_3", 1058, "u"),
    ("pf_limit_pf_3", 1059, "u"),
    ("pf_limit_load_4", 1060, "u"),
    ("pf_limit_pf_4", 1061, "u"),
    ("export_power_rate", 1063, "d"),
    ("f_under_derate_start", 1064, "c"),
    ("f_under_derate_end", 1065, "c"),
    ("f_over_derate_end", 1066, "c"),
    ("time_under_freq_derate_delay", 1067, "c"),
    ("f_over_derate_stop", 1069, "c"),
    ("f_over_derate_recovery_delay", 1070, "c"),
    ("zero_current_low_voltage", 1071, "d"),
    ("zero_current_high_voltage", 1072, "d"),
    ("f_power_on_recovery", 1073, "c"),
    ("f_under_derate_stop", 1074, "c"),
    ("f_under_derate_recovery_delay", 1075, "c"),
    ("pv_input_mode", 1077, "u"),
    ("ac_power_derate_delay", 1079, "c"),
    ("qu_curve_volt_high_point_1", 1081, "u"),
    ("qu_curve_volt_high_point_2", 1082, "u"),
    ("qu_curve_volt_low_point_1", 1083, "u"),
    ("qu_curve_volt_low_point_2", 1084, "u"),
    ("voltage_reactive_power_percentage", 1085, "u"),
    ("qu_curve_max_inductive_reactive_power", 1086, "u"),
    ("qu_curve_max_capacitive_reactive_power", 1087, "u"),
    ("max_charge_current", 1088, "u"),
    ("v_battery_lv", 1089, "d"),
    ("v_battery_cv", 1090, "d"),
    ("lead_acid_number", 1091, "d"),
    ("drms_enable", 1093, "u"),
    ("aging_test", 1098, "u"),
    ("bypass_enable", 1100, "u"),
    ("npe_enable", 1101, "u"),
    ("export_power_limit", 1102, "u"),
    ("enable_export_limit", 1103, "u"),
    ("unbalance_output_enable", 1104, "u"),
    ("backup_enable", 1105, "u"),
    ("load_compensation_enable", 1117, "u"),
    ("battery_maintenance_mode", 1124, "u"),
)  # fmt: skip
# GivTCP 3.5's raw names where its three-phase model names a register differently from the
# peer (whose names the entries above are made from, so their ids stay): the protection limits'
# stages 1, 2, 3 (trip, reconnect, grid here), its export limit and battery voltage spellings.
GIVTCP_DIAGNOSTIC_RAW: Final[Mapping[str, str]] = {
    **{f"{q}_limit_{ours}": f"{q}_limit_{theirs}"
       for q in ("v_grid_low", "v_grid_high", "f_grid_low", "f_grid_high")
       for ours, theirs in (("trip", 1), ("reconnect", 2), ("grid", 3))},
    **{f"time_grid_{q}_limit_{ours}": f"time_grid_{q}_limit_{theirs}"
       for q in ("low_voltage", "high_voltage", "low_freq", "high_freq")
       for ours, theirs in (("trip", 1), ("reconnect", 2))},
    "export_power_rate": "p_export_limit",
    "v_battery_lv": "v_battery_LV",
    "v_battery_cv": "v_battery_CV",
}  # fmt: skip
_DIAG_SCALE: Final = {"u": 1.0, "d": 0.1, "c": 0.01, "m": 0.001}


DIAGNOSTIC_FIELDS: Final[tuple[Field, ...]] = tuple(
    Field(field_name(raw), DIAGNOSTICS_PATH, HR, (reg,), scale=_DIAG_SCALE[code],
          kind=Kind.SETTING, families=_3PH, ha=hidden(raw),
          raw=GIVTCP_DIAGNOSTIC_RAW.get(raw, raw),
          description=f"HR{reg}, read only")
    for raw, reg, code in DIAGNOSTIC_ROWS
)  # fmt: skip

# HR1106/1107 hold option codes, not values: the backup (EPS) output's nominal voltage and
# frequency as the installer chose them. The captured GIV-3HY-11 (a UK unit) reads 0 and 0, i.e.
# 230 V and 50 Hz, matching its 231.9 V phases and its EPS nominal frequency (IR1180, 50.00 Hz).
BACKUP_NOMINAL_VOLTAGE: Final = {0: "230 V", 1: "208 V", 2: "240 V"}
BACKUP_NOMINAL_FREQUENCY: Final = {0: "50 Hz", 1: "60 Hz"}
BACKUP_NOMINAL_FIELDS: Final[tuple[Field, ...]] = (
    Field("V_Backup_Nominal", DIAGNOSTICS_PATH, HR, (1106,), options=BACKUP_NOMINAL_VOLTAGE,
          kind=Kind.SETTING, families=_3PH, bounds=(0, 2),
          ha=HA(device_class="enum", entity_category="diagnostic", enabled_by_default=False,
                name="Backup Nominal Voltage"),
          raw="v_backup_nominal", description="HR1106, read only: option code 0/1/2"),
    Field("F_Backup_Nominal", DIAGNOSTICS_PATH, HR, (1107,), options=BACKUP_NOMINAL_FREQUENCY,
          kind=Kind.SETTING, families=_3PH, bounds=(0, 1),
          ha=HA(device_class="enum", entity_category="diagnostic", enabled_by_default=False,
                name="Backup Nominal Frequency"),
          raw="f_backup_nominal", description="HR1107, read only: option code 0/1"),
)  # fmt: skip

# Of the single-phase layout's HR0-179 (which the peer's three-phase model inherits), the two
# registers that read on this unit what they read on single-phase ones and that no three-phase
# register repeats: HR30, the Modbus address (17 = 0x11, the address the unit answers at), and
# HR22, the USB device code (2, as on every captured single-phase unit behind a dongle). The rest
# read 0, repeat a three-phase register or contradict the unit (docs/families.md, decisions).
SINGLE_PHASE_LAYOUT_FIELDS: Final[tuple[Field, ...]] = (
    Field("Modbus_Address", DIAGNOSTICS_PATH, HR, (30,), kind=Kind.SETTING, families=_3PH,
          bounds=(1, 247), ha=hidden("modbus_address"), raw="modbus_address",
          description="HR30, read only: the unit's own Modbus address"),
    Field("Usb_Device_Inserted", DIAGNOSTICS_PATH, HR, (22,), kind=Kind.STATUS, families=_3PH,
          bounds=(0, 2), ha=hidden("usb_device_inserted"), raw="usb_device_inserted",
          description="HR22, read only: 0 none, 1 Wi-Fi, 2 disk (the peer's codes)"),
)  # fmt: skip

THREE_PHASE_FIELDS: Final[tuple[Field, ...]] = (
    CONTROL_FIELDS
    + LIVE_FIELDS
    + DIAGNOSTIC_FIELDS
    + BACKUP_NOMINAL_FIELDS
    + SINGLE_PHASE_LAYOUT_FIELDS
)
