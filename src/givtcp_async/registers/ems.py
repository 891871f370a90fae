"""EMS plant controller (DTC 50xx/51xx) at 0x11: HR(2040,36) and IR(2040,60) (SPEC §4.7).

Holding registers (SPEC §4.7, §5.1): plant enable HR2040; discharge slots HR2044-2052, charge
slots HR2053-2061 and export slots HR2062-2070 as start / end / target-SOC triples; export power
limit HR2071 (W). The plant's charge and discharge slots use the inverter names
(``Charge_start_time_slot_n``, ``Charge_Target_SOC_n``, ``Discharge_...``; GivTCP's EMS
commands ``setEMSChargeStart<n>`` etc. are aliases of the same controls), export slots
``Export_start_time_slot_n`` / ``Export_Target_SOC_n``; ``EMS_Plant_Enable`` (setEmsPlant) and
``Export_Limit`` (Control, setExportLimit) match the control catalogue's read-back paths.

Input registers: the spec gives no layout. The capture (ems_arm1036, two inverters, two meters)
supports only ``Inverter_Count`` (IR2041 = 2) and ``Meter_Count`` (IR2044 = 2).
"""

from __future__ import annotations

from typing import Final

from givtcp_async.registers import common as c
from givtcp_async.registers.schema import DIAGNOSTIC, Bank, Enc, Family, Field, Kind

HR = Bank.HOLDING
IR = Bank.INPUT
_EMS: Final = frozenset({Family.EMS})
CONTROL: Final = ("Control",)
SLOTS: Final = ("Timeslots",)
DETAILS: Final = ("Invertor_Details",)


def _triple(kind: str, prefix: str, control: str, base: int, n: int) -> list[Field]:
    """Start, end and SOC target of slot ``n`` at ``base + 3(n-1)``."""
    reg = base + 3 * (n - 1)
    return [
        Field(f"{prefix}_start_time_slot_{n}", SLOTS, HR, (reg,), enc=Enc.TIME,
              kind=Kind.SETTING, families=_EMS, ha=c.TIME_SELECT,
              control=f"set{control}Start{n}"),
        Field(f"{prefix}_end_time_slot_{n}", SLOTS, HR, (reg + 1,), enc=Enc.TIME,
              kind=Kind.SETTING, families=_EMS, ha=c.TIME_SELECT, control=f"set{control}End{n}"),
        Field(f"{prefix}_Target_SOC_{n}", CONTROL, HR, (reg + 2,), unit="%", kind=Kind.SETTING,
              families=_EMS, bounds=c.PERCENT, ha=c.NUMBER, control=f"set{control}Target{n}",
              description=f"{kind} slot {n} SOC target"),
    ]  # fmt: skip


EMS_FIELDS: Final[tuple[Field, ...]] = (
    Field("EMS_Plant_Enable", CONTROL, HR, (2040,), enc=Enc.BOOL, options=c.ENABLE,
          kind=Kind.SETTING, families=_EMS, ha=c.SWITCH, control="setEmsPlant"),
    *(f for n in (1, 2, 3) for f in _triple("discharge", "Discharge", "Discharge", 2044, n)),
    *(f for n in (1, 2, 3) for f in _triple("charge", "Charge", "Charge", 2053, n)),
    *(f for n in (1, 2, 3) for f in _triple("export", "Export", "Export", 2062, n)),
    Field("Export_Limit", CONTROL, HR, (2071,), unit="W", kind=Kind.SETTING, families=_EMS,
          bounds=(0, 65535), ha=c.POWER_NUMBER, control="setExportLimit",
          description="plant export limit"),
    Field("Inverter_Count", DETAILS, IR, (2041,), kind=Kind.INFO, families=_EMS,
          bounds=(0, 32), ha=DIAGNOSTIC),
    Field("Meter_Count", DETAILS, IR, (2044,), kind=Kind.INFO, families=_EMS, bounds=(0, 8),
          ha=DIAGNOSTIC),
)  # fmt: skip
