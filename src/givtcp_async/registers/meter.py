"""External meters at 0x01..0x08: FC 0x04 IR(60..89) (SPEC §4.6), GivTCP's Meter_Details names.

Paths are relative to the meter's subtree (``Meter_Details/Meter_ID<n>``). Phases 2 and 3 are only
published on three-phase plants (single-phase meters leave them zero).

Where the captures contradict SPEC §4.6 the captures win:

* Power factor: the meters behind single-phase and three-phase inverters (Gen2, HV Gen3, the
  GIV-3HY captures) encode it like the inverter, raw / 10 000 - 1 (0x4E0C = 19 980 -> 0.998 with
  |P| ~ S), where signed raw / 10 000 would give the impossible 1.998. The meters of the EMS plant
  use signed raw / 10 000 (0xFC9E -> -0.0866, 9 998 -> 0.9998). The Gateway's meters leave the
  power-factor registers at zero, so it publishes none.
* Current: /100 A on the single-phase plants (Gen2: 2.14 A x 244.6 V ~ 525 VA), but /10 A on the
  three-phase and EMS plants (three-phase L2: 0.32 A would give 74 VA, but the meter reports
  741 VA with 537 W; 3.2 A x 231 V = 739 VA).
"""

from __future__ import annotations

from typing import Any, Final

from givtcp_async.registers import common as c
from givtcp_async.registers.schema import (
    CURRENT,
    ENERGY_TOTAL,
    FREQUENCY,
    HA,
    POWER,
    SINGLE_PHASE,
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
_EMS: Final = frozenset({Family.EMS})
_GATEWAY: Final = frozenset({Family.GATEWAY})
ANY_METER: Final = SINGLE_PHASE | THREE_PHASE_FAMILIES | _EMS | _GATEWAY
_CENTI_AMP: Final = SINGLE_PHASE | _GATEWAY
_DECI_AMP: Final = THREE_PHASE_FAMILIES | _EMS
_OFFSET_PF: Final = SINGLE_PHASE | THREE_PHASE_FAMILIES
_PF_HA: Final = HA(device_class="power_factor", state_class="measurement")


def _meter(name: str, registers: tuple[int, ...], **kw: Any) -> Field:
    return Field(name, (), IR, registers, source=Source.METER, **kw)


def _phase(n: int) -> list[Field]:
    where = ANY_METER if n == 1 else THREE_PHASE_FAMILIES
    out = [
        _meter(f"Phase_{n}_Voltage", (59 + n,), scale=0.1, unit="V", families=where,
               bounds=c.GRID_VOLTAGE, ha=VOLTAGE),
        _meter(f"Phase_{n}_Current", (62 + n,), scale=0.01, unit="A",
               families=where & _CENTI_AMP, bounds=(0, 200), ha=CURRENT),
        _meter(f"Phase_{n}_Current", (62 + n,), scale=0.1, unit="A",
               families=where & _DECI_AMP, bounds=(0, 200), ha=CURRENT),
        _meter(f"Phase_{n}_Power", (67 + n,), enc=Enc.S16, unit="W", families=where,
               bounds=c.GRID_POWER, ha=POWER),
        _meter(f"Phase_{n}_Power_Factor", (79 + n,), enc=Enc.PF, families=where & _OFFSET_PF,
               bounds=c.POWER_FACTOR, ha=_PF_HA),
        _meter(f"Phase_{n}_Power_Factor", (79 + n,), enc=Enc.SIGNED_PF,
               families=where & _EMS, bounds=c.POWER_FACTOR, ha=_PF_HA),
    ]  # fmt: skip
    return [f for f in out if f.families]


METER_FIELDS: Final[tuple[Field, ...]] = (
    *(f for n in (1, 2, 3) for f in _phase(n)),
    _meter("Frequency", (84,), scale=0.01, unit="Hz", families=ANY_METER, bounds=c.FREQUENCY,
           ha=FREQUENCY),
    _meter("Import_Energy_kWh", (85,), scale=0.1, unit="kWh", kind=Kind.TOTAL,
           families=ANY_METER, bounds=c.TOTAL_KWH, ha=ENERGY_TOTAL,
           description="single 16-bit register: wraps at 6553.6 kWh"),
    _meter("Export_Energy_kWh", (87,), scale=0.1, unit="kWh", kind=Kind.TOTAL,
           families=ANY_METER, bounds=c.TOTAL_KWH, ha=ENERGY_TOTAL,
           description="single 16-bit register: wraps at 6553.6 kWh"),
)  # fmt: skip
