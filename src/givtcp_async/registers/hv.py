"""HV battery stacks (All-in-One, HV Gen3, three-phase): BMU modules, BCU stacks, BAMS.

SPEC §2.5 / §3.3 / §4.7 give only the addresses and page bases (modules 0x50+ IR(60,60), BCU
0x70+n IR(60,120), BAMS 0xA0 IR(60..64)); the layouts below are the parts the captures confirm
(aio_a, hybrid_hv_gen3_a, three_phase_hv_a):

* BMU: 24 cell voltages IR60-83 in mV (they agree with the BCU's highest/lowest cell), cell
  temperatures from IR90 in 0.1 °C (12 on the All-in-One, 24 on HV Gen3 and three-phase), module
  serial IR114-118 ("HX…").
* BCU: stack voltage IR73 and load-side voltage IR74 in 0.1 V (All-in-One 314.9 V = 96 cells x
  3.28 V), module count IR64 and cell count IR67 (4/96, 3/72, 6/144, matching the modules that
  answer), highest / lowest cell voltage IR120 / IR123 (mV) and temperature IR126 / IR129
  (0.1 °C), stack serial IR138-142.
* BAMS: number of BCUs IR61, modules IR62, cells IR63.

Names follow GivTCP's style (``Battery_Cell_n_Voltage``, ``Stack_Voltage``,
``Stack_Load_Voltage``); ``Stack_Cell_Voltage_High/Low``, ``Stack_Temperature_High/Low``,
``Stack_Module_Count``, ``Stack_Cell_Count``, ``Stack_Serial_Number``, ``BCU_Count``,
``Module_Count`` and ``Cell_Count`` are new.

The rest of the BCU's IR60-119 page (issue 12) as givenergy-modbus 2.13.0 decodes it. ``raw`` is
the name GivTCP 3.5's BCU and BMU models give the register (its ``raw/HV_Battery_Stacks`` block),
spellings and all: ``number_of_module`` (IR64), ``cluster_cell_voltage`` (IR67, the cell count),
``cluster_cell_temperature`` (IR68, the sensor count), ``battery_nominal_capacity`` and
``remaining_battery_capacity`` (IR98-99, Ah, as its read.py reads them), ``min_charge_voltage``
and ``min_charge_current`` (IR103/105, the maximum charge limits); the peer's name where GivTCP
3.5 has none (the stack serial, fan fault, self-check and status words). Entry names are
GivTCP's stack names where it has one (``Stack_Current``, ``Stack_Power``, ``Stack_SOH``,
``Stack_Cycles``, ``Stack_SOC_High/Low``, ``Stack_Firmware``,
``Stack_Charge/Discharge_Energy_Today/Total_kWh``). Where the captures contradict the peer, the
captures win: IR79 (stack power) is signed in 0.1 kW steps (-16 with -3.7 A x 472 V on the
three-phase stack, 3 with 0.9 A x 315 V on the All-in-One), not unsigned mW; the Ah counters
IR86-97 are in 0.1 Ah (19.5 Ah x 472 V ~ today's 9.5 kWh), where the peer gives the raw number.
"""

from __future__ import annotations

from typing import Any, Final

from givtcp_async.registers import common as c
from givtcp_async.registers.schema import (
    CURRENT,
    DIAGNOSTIC,
    ENERGY_TODAY,
    ENERGY_TOTAL,
    HA,
    POWER,
    THREE_PHASE_FAMILIES,
    VOLTAGE,
    Bank,
    Enc,
    Family,
    Field,
    Kind,
    Source,
)

IR = Bank.INPUT
_HV: Final = c.HV_BATTERY
_HIDDEN_PCT: Final = HA(state_class="measurement", enabled_by_default=False)
_24_TEMPS: Final = THREE_PHASE_FAMILIES | {Family.HV_GEN3}


def _bmu(name: str, registers: tuple[int, ...], **kw: Any) -> Field:
    kw.setdefault("families", _HV)
    return Field(name, (), IR, registers, source=Source.BMU, **kw)


def _bcu(name: str, registers: tuple[int, ...], **kw: Any) -> Field:
    """A stack value (``raw``: the peer library's attribute name)."""
    return Field(name, (), IR, registers, source=Source.BCU, families=_HV, **kw)


def _bams(name: str, register: int) -> Field:
    return Field(name, (), IR, (register,), source=Source.BAMS, families=_HV, kind=Kind.INFO,
                 ha=DIAGNOSTIC)  # fmt: skip


BMU_FIELDS: Final[tuple[Field, ...]] = (
    _bmu("Battery_Serial_Number", (114, 115, 116, 117, 118), enc=Enc.ASCII, kind=Kind.INFO,
         ha=DIAGNOSTIC, raw="serial_number"),
    *(
        _bmu(f"Battery_Cell_{n}_Voltage", (59 + n,), scale=0.001, unit="V",
             bounds=c.CELL_VOLTAGE, ha=c.HIDDEN_CELL_VOLTAGE, raw=f"v_cell_{n:02d}")
        for n in range(1, 25)
    ),
    *(
        _bmu(f"Battery_Cell_{n}_Temperature", (89 + n,), enc=Enc.S16, scale=0.1, unit="°C",
             families=_HV if n <= 12 else _24_TEMPS, bounds=c.TEMPERATURE,
             ha=c.HIDDEN_TEMPERATURE, raw=f"t_cell_{n:02d}")
        for n in range(1, 25)
    ),
)  # fmt: skip

BCU_STATUS: Final = {0: "BMS Initialising", 1: "Precharging", 2: "Standby", 3: "Charging",
                     4: "Discharging", 5: "Error", 6: "Updating", 7: "Powered Off",
                     8: "Production"}  # fmt: skip
_STACK_TODAY: Final = (0.0, 500.0)


def _stack_energy(name: str, reg: int, raw: str, kind: Kind) -> Field:
    today = kind is Kind.TODAY
    return _bcu(name, (reg, reg + 1), enc=Enc.U32, scale=0.1, unit="kWh", kind=kind,
                bounds=_STACK_TODAY if today else c.TOTAL_KWH,
                ha=ENERGY_TODAY if today else ENERGY_TOTAL, raw=raw)  # fmt: skip


def _stack_ah(name: str, reg: int, raw: str, kind: Kind) -> Field:
    """Charge moved through the stack, 0.1 Ah (today's 19.5 Ah x 472 V ~ 9.5 kWh in the capture)."""
    state = "total_increasing" if kind is Kind.TODAY else "total"
    return _bcu(name, (reg, reg + 1), enc=Enc.U32, scale=0.1, unit="Ah", kind=kind,
                bounds=(0.0, 10_000_000.0), raw=raw,
                ha=HA(state_class=state, entity_category="diagnostic",
                      enabled_by_default=False))  # fmt: skip


def _stack_diag(name: str, regs: tuple[int, ...], raw: str, **kw: Any) -> Field:
    kw.setdefault("kind", Kind.INFO)
    kw.setdefault("ha", _HIDDEN_DIAG)
    return _bcu(name, regs, raw=raw, **kw)


_HIDDEN_DIAG: Final = HA(entity_category="diagnostic", enabled_by_default=False)

BCU_FIELDS: Final[tuple[Field, ...]] = (
    _bcu("Stack_Serial_Number", (138, 139, 140, 141, 142), enc=Enc.ASCII, kind=Kind.INFO,
         ha=DIAGNOSTIC, raw="serial_number"),
    _bcu("Stack_Firmware", (60, 61, 62, 63), enc=Enc.VERSION, kind=Kind.INFO, ha=DIAGNOSTIC,
         raw="pack_software_version"),
    _bcu("Stack_Voltage", (73,), scale=0.1, unit="V", bounds=(0, 1000), ha=VOLTAGE,
         raw="battery_voltage"),
    _bcu("Stack_Load_Voltage", (74,), scale=0.1, unit="V", bounds=(0, 1000), ha=VOLTAGE,
         raw="load_voltage"),
    _bcu("Stack_Current", (76,), enc=Enc.S16, scale=0.1, unit="A", bounds=(-500, 500),
         ha=CURRENT, raw="battery_current",
         description="negative = discharging (the inverter's discharge with -3.7 A here)"),
    _bcu("Stack_Power", (79,), enc=Enc.S16, scale=100, unit="W", bounds=(-60000, 60000),
         ha=POWER, raw="battery_power",
         description="0.1 kW steps, negative = discharging (-16 = -1.6 kW at -3.7 A x 472 V)"),
    _bcu("Stack_SOC_High", (80,), enc=Enc.HIGH_BYTE, unit="%", bounds=c.PERCENT,
         ha=_HIDDEN_PCT, raw="battery_soc_max"),
    _bcu("Stack_SOC_Low", (80,), enc=Enc.LOW_BYTE, unit="%", bounds=c.PERCENT,
         ha=_HIDDEN_PCT, raw="battery_soc_min"),
    _bcu("Stack_SOH", (81,), unit="%", bounds=c.PERCENT, ha=c.PLAIN, raw="battery_soh"),
    _stack_energy("Stack_Charge_Energy_Total_kWh", 82, "charge_energy_total", Kind.TOTAL),
    _stack_energy("Stack_Discharge_Energy_Total_kWh", 84, "discharge_energy_total", Kind.TOTAL),
    _stack_energy("Stack_Charge_Energy_Today_kWh", 90, "charge_energy_today", Kind.TODAY),
    _stack_energy("Stack_Discharge_Energy_Today_kWh", 92, "discharge_energy_today", Kind.TODAY),
    _stack_ah("Stack_Charge_Capacity_Total", 86, "charge_capacity_total", Kind.TOTAL),
    _stack_ah("Stack_Discharge_Capacity_Total", 88, "discharge_capacity_total", Kind.TOTAL),
    _stack_ah("Stack_Charge_Capacity_Today", 94, "charge_capacity_today", Kind.TODAY),
    _stack_ah("Stack_Discharge_Capacity_Today", 96, "discharge_capacity_today", Kind.TODAY),
    _bcu("Stack_Nominal_Capacity", (98,), scale=0.1, unit="Ah", kind=Kind.INFO,
         bounds=c.CAPACITY_AH, ha=DIAGNOSTIC, raw="battery_nominal_capacity"),
    _bcu("Stack_Remaining_Capacity", (99,), scale=0.1, unit="Ah", bounds=c.CAPACITY_AH,
         ha=c.PLAIN, raw="remaining_battery_capacity"),
    _bcu("Stack_Cycles", (100,), scale=0.1, kind=Kind.TOTAL, bounds=(0, 20000), ha=c.COUNTER,
         raw="number_of_cycles"),
    _bcu("Stack_Status", (70,), options=BCU_STATUS, kind=Kind.STATUS, ha=c.DIAGNOSTIC_ENUM,
         raw="status"),
    _bcu("Stack_Module_Count", (64,), kind=Kind.INFO, bounds=(0, 16), ha=DIAGNOSTIC,
         raw="number_of_module"),
    _stack_diag("Stack_Cells_Per_Module", (65,), "cells_per_module"),
    _bcu("Stack_Cell_Count", (67,), kind=Kind.INFO, bounds=(0, 512), ha=DIAGNOSTIC,
         raw="cluster_cell_voltage"),
    _stack_diag("Stack_Temperature_Sensor_Count", (68,), "cluster_cell_temperature"),
    _stack_diag("Stack_Min_Discharge_Voltage", (102,), "min_discharge_voltage", scale=0.1,
                unit="V", kind=Kind.SETTING),
    _stack_diag("Stack_Max_Charge_Voltage", (103,), "min_charge_voltage", scale=0.1,
                unit="V", kind=Kind.SETTING),
    _stack_diag("Stack_Min_Discharge_Current", (104,), "min_discharge_current", scale=0.1,
                unit="A", kind=Kind.SETTING),
    _stack_diag("Stack_Max_Charge_Current", (105,), "min_charge_current", scale=0.1,
                unit="A", kind=Kind.SETTING),
    _stack_diag("Stack_Fan_Fault_Code", (107,), "fan_fault_code", kind=Kind.STATUS),
    _stack_diag("Stack_Self_Check_Status", (113,), "self_check_status", kind=Kind.STATUS),
    _stack_diag("Stack_Warning_Status", (114, 115), "pack_warning_status", enc=Enc.U32,
                kind=Kind.STATUS),
    _stack_diag("Stack_Protection_Status", (116, 117), "pack_protection_status",
                enc=Enc.U32, kind=Kind.STATUS),
    _stack_diag("Stack_Fault_Status", (118, 119), "pack_fault_status", enc=Enc.U32,
                kind=Kind.STATUS),
    _bcu("Stack_Cell_Voltage_High", (120,), scale=0.001, unit="V", bounds=c.CELL_VOLTAGE,
         ha=VOLTAGE),
    _bcu("Stack_Cell_Voltage_Low", (123,), scale=0.001, unit="V", bounds=c.CELL_VOLTAGE,
         ha=VOLTAGE),
    _bcu("Stack_Temperature_High", (126,), enc=Enc.S16, scale=0.1, unit="°C",
         bounds=c.TEMPERATURE, ha=c.HIDDEN_TEMPERATURE),
    _bcu("Stack_Temperature_Low", (129,), enc=Enc.S16, scale=0.1, unit="°C",
         bounds=c.TEMPERATURE, ha=c.HIDDEN_TEMPERATURE),
)  # fmt: skip

BAMS_FIELDS: Final[tuple[Field, ...]] = (
    _bams("BCU_Count", 61),
    _bams("Module_Count", 62),
    _bams("Cell_Count", 63),
)

HV_FIELDS: Final[tuple[Field, ...]] = BMU_FIELDS + BCU_FIELDS + BAMS_FIELDS
