"""LV battery pack page: FC 0x04 IR(60..119) at 0x32 + pack index (SPEC §4.5).

Field paths are relative to the pack's own subtree (``Battery_Details/.../<serial>``). Names are
GivTCP's (givtcp.md §2.2); ``Battery_Current`` (IR95) and the pack energy totals
``Battery_Charge_Energy_Total_kWh`` / ``Battery_Discharge_Energy_Total_kWh`` (IR106 / IR105, single
16-bit registers that wrap at 6553.5 kWh and read 0 on BMS firmware 3007/3009) are added in the
same style.
"""

from __future__ import annotations

from typing import Any, Final

from givtcp_async.registers import common as c
from givtcp_async.registers.raw import BATTERY_RAW, attach_raw
from givtcp_async.registers.raw_fields import PACK_RAW_ONLY_FIELDS
from givtcp_async.registers.schema import (
    BATTERY_PCT,
    CURRENT,
    DIAGNOSTIC,
    ENERGY_TOTAL,
    TEMPERATURE,
    VOLTAGE,
    Bank,
    Enc,
    Field,
    Kind,
    Source,
)

IR = Bank.INPUT
_LV = c.LV_BATTERY

# --- the LV BCU (0x31) ----------------------------------------------------------------------------
# givenergy-modbus 2.13.0 (model/lv_bcu.py) places the LV battery control unit's four words at
# IR60-63 of 0x31: two BMS status words and the charge and discharge currents the BMS asks of
# the inverter (A). The captures: 0x31 answers IR(60,60) on the Gen1, Gen2 and AC-coupled plants;
# on the Gen2 (one pack, BMS firmware 3020) IR60-63 read 0, 0, 83, 83, on the Gen1 and the AC
# plant all 0 (no BCU data: the device is then not read at all, reader.py). The statuses' bits
# are not documented: they are published as the words.
LV_BCU_FIELDS: Final[tuple[Field, ...]] = tuple(
    Field(name, (), IR, (reg,), source=Source.LV_BCU, families=_LV, bounds=bounds, unit=unit,
          kind=kind, ha=None, raw=raw, description=f"0x31 IR{reg}")
    for name, reg, raw, unit, kind, bounds in (
        ("LV_BCU_Status_1", 60, "bms_status_1", None, Kind.STATUS, None),
        ("LV_BCU_Status_2", 61, "bms_status_2", None, Kind.STATUS, None),
        ("LV_BCU_Charge_Current_Request", 62, "request_charge_current", "A", Kind.MEASUREMENT,
         (0, 1000)),
        ("LV_BCU_Discharge_Current_Request", 63, "request_discharge_current", "A",
         Kind.MEASUREMENT, (0, 1000)),
    )
)  # fmt: skip


def _pack(name: str, registers: tuple[int, ...], **kw: Any) -> Field:
    return Field(name, (), IR, registers, source=Source.BATTERY, families=_LV, **kw)


def _cells() -> tuple[Field, ...]:
    volts = tuple(
        _pack(f"Battery_Cell_{n}_Voltage", (59 + n,), scale=0.001, unit="V",
              bounds=c.CELL_VOLTAGE, ha=c.HIDDEN_CELL_VOLTAGE)
        for n in range(1, 17)
    )  # fmt: skip
    temps = tuple(
        _pack(f"Battery_Cell_{n}_Temperature", (75 + n,), enc=Enc.S16, scale=0.1, unit="°C",
              bounds=c.TEMPERATURE, ha=c.HIDDEN_TEMPERATURE,
              description=f"cells {4 * n - 3}-{4 * n}")
        for n in range(1, 5)
    )  # fmt: skip
    return volts + temps


BATTERY_FIELDS: Final[tuple[Field, ...]] = attach_raw((
    _pack("Battery_Serial_Number", (110, 111, 112, 113, 114), enc=Enc.ASCII, kind=Kind.INFO,
          ha=DIAGNOSTIC, description="a valid 10-character serial marks a present pack"),
    _pack("Battery_SOC", (100,), unit="%", bounds=c.PERCENT, ha=BATTERY_PCT),
    _pack("Battery_Capacity", (84, 85), enc=Enc.U32, scale=0.01, unit="Ah", kind=Kind.INFO,
          bounds=c.CAPACITY_AH, ha=c.PLAIN, description="full (calibrated) capacity"),
    _pack("Battery_Design_Capacity", (86, 87), enc=Enc.U32, scale=0.01, unit="Ah",
          kind=Kind.INFO, bounds=c.CAPACITY_AH, ha=c.PLAIN),
    _pack("Battery_Remaining_Capacity", (88, 89), enc=Enc.U32, scale=0.01, unit="Ah",
          bounds=c.CAPACITY_AH, ha=c.PLAIN),
    _pack("Battery_Firmware_Version", (98,), kind=Kind.INFO, ha=DIAGNOSTIC),
    _pack("Battery_Cells", (97,), kind=Kind.INFO, bounds=(1, 32), ha=DIAGNOSTIC),
    _pack("Battery_Cycles", (96,), kind=Kind.TOTAL, bounds=(0, 20000), ha=c.COUNTER),
    _pack("Battery_Temperature", (81,), enc=Enc.S16, scale=0.1, unit="°C",
          bounds=c.TEMPERATURE, ha=TEMPERATURE, description="BMS MOSFET temperature"),
    _pack("Battery_Voltage", (80,), scale=0.001, unit="V", bounds=c.PACK_VOLTAGE,
          ha=VOLTAGE, description="sum of the cell voltages"),
    _pack("Battery_Current", (95,), enc=Enc.S16, scale=0.01, unit="A",
          bounds=c.BATTERY_CURRENT, ha=CURRENT, description="positive = discharging"),
    _pack("Battery_Charge_Energy_Total_kWh", (106,), scale=0.1, unit="kWh", kind=Kind.TOTAL,
          bounds=c.PACK_TOTAL_KWH, ha=ENERGY_TOTAL),
    _pack("Battery_Discharge_Energy_Total_kWh", (105,), scale=0.1, unit="kWh",
          kind=Kind.TOTAL, bounds=c.PACK_TOTAL_KWH, ha=ENERGY_TOTAL),
    *_cells(),
), BATTERY_RAW) + PACK_RAW_ONLY_FIELDS  # fmt: skip

__all__ = ["BATTERY_FIELDS", "LV_BCU_FIELDS"]
