"""Three-phase inverters (40xx, 60xx, 41xx, 82xx): the HR1000-1124 controls (SPEC §4.7, §5.1).

Field names are the single-phase ones GivTCP uses for the same settings, plus its three-phase
switches ``Force_Charge_Enable`` (HR1123), ``Force_Discharge_Enable`` (HR1122) and
``Force_AC_Charge_Enable`` (HR1112). Slots 1 and 2 have their own registers; slots 3-10 reuse
the single-phase HR246+/276+ (the HR240 page, which three-phase units are probed for).

Not done: the three-phase measurements in IR1000-1413 - the spec gives no layout for them.
"""

from __future__ import annotations

from typing import Final

from givtcp_async.registers import common as c
from givtcp_async.registers.schema import THREE_PHASE_FAMILIES, Bank, Enc, Field, Kind

HR = Bank.HOLDING
_3PH: Final = THREE_PHASE_FAMILIES
CONTROL: Final = ("Control",)
SLOTS: Final = ("Timeslots",)


def _switch(name: str, reg: int, control: str) -> Field:
    return Field(name, CONTROL, HR, (reg,), enc=Enc.BOOL, options=c.ENABLE, kind=Kind.SETTING,
                 families=_3PH, ha=c.SWITCH, control=control)  # fmt: skip


def _percent(name: str, reg: int, control: str) -> Field:
    return Field(name, CONTROL, HR, (reg,), unit="%", kind=Kind.SETTING, families=_3PH,
                 bounds=c.PERCENT, ha=c.NUMBER, control=control)  # fmt: skip


def _time(name: str, reg: int, control: str) -> Field:
    return Field(name, SLOTS, HR, (reg,), enc=Enc.TIME, kind=Kind.SETTING, families=_3PH,
                 ha=c.TIME_SELECT, control=control)  # fmt: skip


def _slot(kind: str, n: int, start: int) -> list[Field]:
    return [
        _time(f"{kind}_start_time_slot_{n}", start, f"set{kind}Start{n}"),
        _time(f"{kind}_end_time_slot_{n}", start + 1, f"set{kind}End{n}"),
    ]


THREE_PHASE_FIELDS: Final[tuple[Field, ...]] = (
    _switch("Real_Time_Control", 1005, "enableRTC"),
    _switch("Force_AC_Charge_Enable", 1112, "setACCharge"),
    _switch("Force_Discharge_Enable", 1122, "setForceDischarge"),
    _switch("Force_Charge_Enable", 1123, "setForceCharge"),
    _percent("Battery_Power_Cutoff", 1078, "setBatteryCutoff"),
    _percent("Battery_Power_Reserve", 1109, "setBatteryReserve"),
    _percent("Target_SOC", 1111, "setChargeTarget"),
    _percent("Battery_Discharge_Rate_AC", 1108, "setDischargeRateAC"),
    _percent("Battery_Charge_Rate_AC", 1110, "setChargeRateAC"),
    *_slot("Charge", 1, 1113),
    *_slot("Charge", 2, 1115),
    *_slot("Discharge", 1, 1118),
    *_slot("Discharge", 2, 1120),
    *(f for k in range(3, 11) for f in _slot("Charge", k, 246 + 3 * (k - 3))),
    *(f for k in range(3, 11) for f in _slot("Discharge", k, 276 + 3 * (k - 3))),
)
