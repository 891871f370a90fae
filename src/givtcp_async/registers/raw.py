"""GivTCP 3's ``raw`` block: every register value under its library's attribute name.

GivTCP 3 prints ``raw/invertor/<name>`` and ``raw/batteries/<serial>/<name>`` with the names of
its Modbus library's model (``battery_soc_reserve``, ``soc_force_adjust``, ``v_cell_01``, ...),
and clients such as Predbat read them. Here each name belongs to the register map entry that
already decodes that register (``Field.raw``, ``Derived.raw``: attached by :func:`attach_raw`
from the tables below, so the map's own lines stay as they are); no second decoder exists.

The *raw form* is the library's, not the published one: an option code stays its number
(``battery_type`` 1, where ``Battery_Type`` is "Lithium"), an on/off flag its register value
(``eco_mode`` 1) or, for the library's boolean registers (:data:`BOOLEANS`), true/false; a slot
time its HHMM number (``charge_slot_1_start`` 2330), the clock ``"YYYY-MM-DD HH:MM:SS"``, and
``modbus_version`` ``"1.40"``. Scaled values are as published, except that a power the map
negates for its sign convention (a Gateway's ``p_aio_total``) is the register's own sign. A
few names are made of others: ``charge_slot_<n>`` / ``discharge_slot_<n>`` / ``export_slot_<n>``
(the library's ``TimeSlot(...)`` text), ``generation`` and ``model``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from datetime import datetime
from functools import lru_cache
from typing import Any, Final, TypeVar

from givtcp_async.registers.decode import decoder_of
from givtcp_async.registers.schema import Derived, Enc, Family, Field

Getter = Callable[[int], int | None]
_S = TypeVar("_S", Field, Derived)


def _slots(kind: str, count: int) -> dict[str, str]:
    out: dict[str, str] = {}
    for n in range(1, count + 1):
        out[f"{kind}_start_time_slot_{n}"] = f"{kind.lower()}_slot_{n}_start"
        out[f"{kind}_end_time_slot_{n}"] = f"{kind.lower()}_slot_{n}_end"
        out[f"{kind}_Target_SOC_{n}"] = f"{kind.lower()}_target_soc_{n}"
    return out


#: Inverter map entries (by name) and their raw names.
INVERTER_RAW: Final[Mapping[str, str]] = {
    "PV_Power_String_1": "p_pv1",
    "PV_Power_String_2": "p_pv2",
    "PV_Voltage_String_1": "v_pv1",
    "PV_Voltage_String_2": "v_pv2",
    "PV_Current_String_1": "i_pv1",
    "PV_Current_String_2": "i_pv2",
    "Grid_Voltage": "v_ac1",
    "Grid_Current": "i_grid_port",
    "Invertor_Current": "i_ac1",
    "Grid_Power": "p_grid_out",
    "EPS_Power": "p_eps_backup",
    "Invertor_Power": "p_inverter_out",
    "Load_Power": "p_load_demand",
    "Grid_Frequency": "f_ac1",
    "Inverter_Output_Frequency": "f_eps_backup",
    "SOC": "battery_percent",
    "Battery_Power": "p_battery",
    "Battery_Voltage": "v_battery",
    "Battery_Current": "i_battery",
    "Combined_Generation_Power": "p_combined_generation",
    "BMS_Temperature": "temp_battery",
    "PV1_Energy_Today_kWh": "e_pv1_day",
    "PV2_Energy_Today_kWh": "e_pv2_day",
    "Import_Energy_Today_kWh": "e_grid_in_day",
    "Export_Energy_Today_kWh": "e_grid_out_day",
    "AC_Charge_Energy_Today_kWh": "e_inverter_in_day",
    "Invertor_Energy_Today_kWh": "e_inverter_out_day",
    "Battery_Charge_Energy_Today_kWh": "e_battery_charge_today",
    "Battery_Discharge_Energy_Today_kWh": "e_battery_discharge_today",
    "PV_Energy_Total_kWh": "e_pv_total",
    "Export_Energy_Total_kWh": "e_grid_out_total",
    "Import_Energy_Total_kWh": "e_grid_in_total",
    "Invertor_Energy_Total_kWh": "e_inverter_out_total",
    "AC_Charge_Energy_Total_kWh": "e_inverter_in_total",
    "Battery_Throughput_Total_kWh": "e_battery_throughput_total",
    "Invertor_Serial_Number": "serial_number",
    "Device_Type_Code": "device_type_code",
    "DSP_Firmware_Version": "dsp_firmware_version",
    "ARM_Firmware_Version": "arm_firmware_version",
    "Modbus_Version": "modbus_version",
    "Invertor_Time": "system_time",
    "Certification": "certification_type",
    "Meter_Type": "meter_type",
    "Battery_Type": "battery_type",
    "Export_Limit": "grid_port_max_power_output",
    "Battery_Calibration_Status": "soc_force_adjust",
    "Invertor_Temperature": "temp_inverter_heatsink",
    "Charger_Temperature": "temp_charger",
    "Invertor_Status": "status",
    "System_Mode": "system_mode",
    "Work_Time_Total": "work_time_total",
    "Eco_Mode": "eco_mode",
    "Enable_Charge_Schedule": "enable_charge",
    "Enable_Discharge_Schedule": "enable_discharge",
    "Enable_Charge_Target": "enable_charge_target",
    "Target_SOC": "charge_target_soc",
    "Battery_Power_Reserve": "battery_soc_reserve",
    "Battery_Power_Cutoff": "battery_discharge_min_power_reserve",
    "Active_Power_Rate": "active_power_rate",
    "Battery_Charge_Limit": "battery_charge_limit",
    "Battery_Discharge_Limit": "battery_discharge_limit",
    "Battery_Charge_Rate_AC": "battery_charge_limit_ac",
    "Battery_Discharge_Rate_AC": "battery_discharge_limit_ac",
    "Battery_pause_mode": "battery_pause_mode",
    "Battery_pause_start_time_slot": "battery_pause_slot_1_start",
    "Battery_pause_end_time_slot": "battery_pause_slot_1_end",
    **_slots("Charge", 10),
    **_slots("Discharge", 10),
}
#: Derived values published in raw as they are.
DERIVED_RAW: Final[Mapping[str, str]] = {
    "Battery_Capacity_kWh": "battery_nominal_capacity",
    "Invertor_Firmware": "firmware_version",
    "Invertor_Max_Inv_Rate": "inverter_max_power",
}
#: LV battery pack entries and their raw names.
BATTERY_RAW: Final[Mapping[str, str]] = {
    "Battery_Serial_Number": "serial_number",
    "Battery_SOC": "soc",
    "Battery_Capacity": "cap_calibrated",
    "Battery_Design_Capacity": "cap_design",
    "Battery_Remaining_Capacity": "cap_remaining",
    "Battery_Firmware_Version": "bms_firmware_version",
    "Battery_Cells": "num_cells",
    "Battery_Cycles": "num_cycles",
    "Battery_Temperature": "t_bms_mosfet",
    "Battery_Voltage": "v_cells_sum",
    "Battery_Current": "i_battery",
    "Battery_Charge_Energy_Total_kWh": "e_battery_charge_total",
    "Battery_Discharge_Energy_Total_kWh": "e_battery_discharge_total",
    **{f"Battery_Cell_{n}_Voltage": f"v_cell_{n:02d}" for n in range(1, 17)},
    **{
        f"Battery_Cell_{n}_Temperature": f"t_cells_{4 * n - 3:02d}_{4 * n:02d}" for n in range(1, 5)
    },
}
#: Raw names whose library type is a boolean (printed true/false, not 0/1).
BOOLEANS: Final = frozenset(
    {"enable_ammeter", "select_arm_chip", "enable_inverter_auto_restart", "enable_inverter",
     "start_system_auto_test", "enable_g100_limit_switch",
     "enable_battery_cable_impedance_alarm", "cmd_bms_flash_update"}
)  # fmt: skip

# GivTCP 3.0's generation and model texts (its library's Generation values and the first digit
# of the device type code, as its answers show them).
_GENERATION: Final[Mapping[Family, str]] = {
    Family.HYBRID_GEN1: "Gen 1",
    Family.HYBRID_GEN2: "Gen 2",
    Family.HYBRID_GEN3: "Gen 3",
    Family.HYBRID_GEN4: "Gen 4",
}


def attach_raw(specs: Iterable[_S], names: Mapping[str, str]) -> tuple[_S, ...]:
    """``specs`` with their raw names from ``names`` (by entry name)."""
    return tuple(replace(s, raw=names[s.name]) if s.name in names else s for s in specs)


def raw_value(field: Field, get: Getter) -> Any:
    """``field``'s registers in the library's form (module docstring); None when missing."""
    enc = field.enc
    if enc in (Enc.BOOL, Enc.TIME) or field.options is not None:
        code = decoder_of(_code_field(field))(get)
        if isinstance(code, int) and field.raw in BOOLEANS:
            return bool(code)
        return code
    value = decoder_of(field)(get)
    if field.scale < 0 and isinstance(value, int | float):
        value = -value  # a power the map negates for its sign: the library's reads as it is
    if field.raw == "modbus_version" and isinstance(value, int | float):
        return f"{value:.2f}"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, int) and field.raw in BOOLEANS:
        return bool(value)
    return value


_CODE: Final = {Enc.BOOL: Enc.U16, Enc.TIME: Enc.U16}
_CODE_FIELDS: dict[int, tuple[Field, Field]] = {}


def _code_field(field: Field) -> Field:
    """``field`` read as its plain code (no options, no scale), made once per field."""
    hit = _CODE_FIELDS.get(id(field))
    if hit is not None and hit[0] is field:
        return hit[1]
    if len(_CODE_FIELDS) >= 4096:  # the maps hold far fewer; a bound all the same
        _CODE_FIELDS.clear()
    code = replace(field, enc=_CODE.get(field.enc, field.enc), options=None, scale=1.0)
    _CODE_FIELDS[id(field)] = (field, code)
    return code


def time_slot(start: Any, end: Any) -> str:
    """The library's ``TimeSlot`` text of two HHMM registers (None times when either is not a
    valid time of day). One text per pair of register values, shared by every snapshot of every
    inverter (each holds ~20 of them)."""
    if start.__class__ is int and end.__class__ is int:
        return _int_slot(start, end)
    return _time_slot(start, end)


@lru_cache(maxsize=4096)
def _int_slot(start: int, end: int) -> str:
    return _time_slot(start, end)


def _time_slot(start: Any, end: Any) -> str:

    def valid(value: Any) -> bool:
        return isinstance(value, int) and 0 <= value <= 2359 and value % 100 < 60

    if not (valid(start) and valid(end)):
        return "TimeSlot(start=None, end=None)"
    sh, sm = divmod(start, 100)
    eh, em = divmod(end, 100)
    return f"TimeSlot(start=datetime.time({sh}, {sm}), end=datetime.time({eh}, {em}))"


def composites(raw: Mapping[str, Any], family: Family, device_type_code: int) -> dict[str, Any]:
    """The raw names made of others: slot texts, generation, model."""
    out: dict[str, Any] = {}
    for kind, count in (("charge", 10), ("discharge", 10), ("export", 3), ("battery_pause", 1)):
        for n in range(1, count + 1):
            start, end = raw.get(f"{kind}_slot_{n}_start"), raw.get(f"{kind}_slot_{n}_end")
            if start is not None and end is not None:
                out[f"{kind}_slot_{n}"] = time_slot(start, end)
    out["generation"] = _GENERATION.get(family, "NoGen")
    out["model"] = f"{device_type_code:04x}"[0]
    return out
