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
``Module_Count`` and ``Cell_Count`` are new. GivTCP's other stack fields (current, power, SOH,
cycles, SOC high/low, firmware, energy counters) are not placed: the spec gives no register
for them and the captures do not pin them down.
"""

from __future__ import annotations

from typing import Any, Final

from givtcp_async.registers import common as c
from givtcp_async.registers.schema import (
    DIAGNOSTIC,
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
_24_TEMPS: Final = THREE_PHASE_FAMILIES | {Family.HV_GEN3}


def _bmu(name: str, registers: tuple[int, ...], **kw: Any) -> Field:
    kw.setdefault("families", _HV)
    return Field(name, (), IR, registers, source=Source.BMU, **kw)


def _bcu(name: str, registers: tuple[int, ...], **kw: Any) -> Field:
    return Field(name, (), IR, registers, source=Source.BCU, families=_HV, **kw)


def _bams(name: str, register: int) -> Field:
    return Field(name, (), IR, (register,), source=Source.BAMS, families=_HV, kind=Kind.INFO,
                 ha=DIAGNOSTIC)  # fmt: skip


BMU_FIELDS: Final[tuple[Field, ...]] = (
    _bmu("Battery_Serial_Number", (114, 115, 116, 117, 118), enc=Enc.ASCII, kind=Kind.INFO,
         ha=DIAGNOSTIC),
    *(
        _bmu(f"Battery_Cell_{n}_Voltage", (59 + n,), scale=0.001, unit="V",
             bounds=c.CELL_VOLTAGE, ha=c.HIDDEN_CELL_VOLTAGE)
        for n in range(1, 25)
    ),
    *(
        _bmu(f"Battery_Cell_{n}_Temperature", (89 + n,), enc=Enc.S16, scale=0.1, unit="°C",
             families=_HV if n <= 12 else _24_TEMPS, bounds=c.TEMPERATURE,
             ha=c.HIDDEN_TEMPERATURE)
        for n in range(1, 25)
    ),
)  # fmt: skip

BCU_FIELDS: Final[tuple[Field, ...]] = (
    _bcu("Stack_Serial_Number", (138, 139, 140, 141, 142), enc=Enc.ASCII, kind=Kind.INFO,
         ha=DIAGNOSTIC),
    _bcu("Stack_Voltage", (73,), scale=0.1, unit="V", bounds=(0, 1000), ha=VOLTAGE),
    _bcu("Stack_Load_Voltage", (74,), scale=0.1, unit="V", bounds=(0, 1000), ha=VOLTAGE),
    _bcu("Stack_Module_Count", (64,), kind=Kind.INFO, bounds=(0, 16), ha=DIAGNOSTIC),
    _bcu("Stack_Cell_Count", (67,), kind=Kind.INFO, bounds=(0, 512), ha=DIAGNOSTIC),
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
