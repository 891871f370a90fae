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
* Apparent power (IR76-79): 1 VA on the single-phase and three-phase plants (Gen2 525 VA = 2.14 A
  x 244.6 V; HV Gen3 4485 VA with 4490 W; three-phase L2 741 VA with 537 W, where 0.1 VA would
  be less than the active power), 0.1 VA on the EMS plant (713.2 VA = 2.9 A x 241.7 V, with
  -47 W and -564 var). The peer library reads 0.1 VA everywhere.

The rest of the page (issue 12) as the peer library decodes it: reactive power per phase and in
total (IR72-75, signed var), the totals of current (IR67), active power (IR71), apparent power
and power factor (IR83), the neutral current (IR66, same scale as the phases), and the reactive
energy counters (IR86 import, IR88 export, 0.1 kvarh, 16-bit). Phases 2 and 3 are published on
every family (a single-phase inverter may sit behind a three-phase meter); on single-phase plants
they and the totals are not announced to Home Assistant (zero, or phase 1 again, on a
single-phase meter; and the single-phase announcement has a size budget).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Final

from givtcp_async.registers import common as c
from givtcp_async.registers.schema import (
    CURRENT,
    ENERGY_TOTAL,
    FREQUENCY,
    HA,
    METER_PRODUCT_FAMILIES,
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


_VAR_HA: Final = HA(device_class="reactive_power", state_class="measurement")
_VA_HA: Final = HA(device_class="apparent_power", state_class="measurement")


def _reactive_energy(name: str) -> HA:
    # No device class: ``reactive_energy`` is newer than Home Assistant 2025.4 (core#143941); those
    # (2025.4.4 checked) refuse the whole entity for it.
    return HA(state_class="total", name=name)


_DECI_VA: Final = _EMS
_UNIT_VA: Final = SINGLE_PHASE | THREE_PHASE_FAMILIES | _GATEWAY
POWER_BOUNDS: Final = (-60000.0, 60000.0)  # a three-phase supply's meter


def _split(name: str, registers: tuple[int, ...], ha: HA, phase: int, **kw: Any) -> list[Field]:
    """One entry per family group: phases 2-3 and the totals (``phase`` 0) of a meter behind a
    single-phase inverter are announced to Home Assistant (disabled) only with
    ``mqtt.all_entities`` (they are zero, or phase 1 again, on a single-phase meter; and the
    single-phase announcement has a size budget)."""
    where: frozenset[Family] = kw.pop("families")
    if phase == 1:
        return [_meter(name, registers, families=where, ha=ha, **kw)]
    held = replace(ha, enabled_by_default=False, opt_in=True)
    return [
        _meter(name, registers, families=where & SINGLE_PHASE, ha=held, **kw),
        _meter(name, registers, families=where - SINGLE_PHASE, ha=ha, **kw),
    ]


def _measures(label: str, n: int | None) -> list[Field]:
    """Voltage ... power factor of phase ``n`` (``label`` "Phase_<n>") or the totals (None).
    ``raw`` is the peer library's attribute name."""
    phase = 0 if n is None else n
    k = n or 4  # the totals follow the three phases
    tail = "total" if n is None else f"phase_{n}"
    out: list[Field] = []
    if n is not None:
        out += _split(
            f"{label}_Voltage",
            (59 + n,),
            VOLTAGE,
            phase,
            scale=0.1,
            unit="V",
            families=ANY_METER,
            bounds=c.GRID_VOLTAGE,
            raw=f"v_{tail}",
        )
    current = (62 + n,) if n is not None else (67,)
    for fams, scale in ((_CENTI_AMP, 0.01), (_DECI_AMP, 0.1)):
        out += _split(
            f"{label}_Current",
            current,
            CURRENT,
            phase,
            scale=scale,
            unit="A",
            families=fams,
            bounds=(0, 600),
            raw=f"i_{tail}",
        )
    out += _split(
        f"{label}_Power",
        (67 + k,),
        POWER,
        phase,
        enc=Enc.S16,
        unit="W",
        families=ANY_METER,
        bounds=POWER_BOUNDS,
        raw=f"p_active_{tail}",
    )
    out += _split(
        f"{label}_Reactive_Power",
        (71 + k,),
        _VAR_HA,
        phase,
        enc=Enc.S16,
        unit="var",
        families=ANY_METER,
        bounds=POWER_BOUNDS,
        raw=f"p_reactive_{tail}",
    )
    for fams, scale in ((_UNIT_VA, 1.0), (_DECI_VA, 0.1)):
        out += _split(
            f"{label}_Apparent_Power",
            (75 + k,),
            _VA_HA,
            phase,
            scale=scale,
            unit="VA",
            families=fams,
            bounds=(0.0, 60000.0),
            raw=f"p_apparent_{tail}",
        )
    for fams, enc in ((_OFFSET_PF, Enc.PF), (_EMS, Enc.SIGNED_PF)):
        out += _split(
            f"{label}_Power_Factor",
            (79 + k,),
            _PF_HA,
            phase,
            enc=enc,
            families=fams,
            bounds=c.POWER_FACTOR,
            raw=f"pf_{tail}",
        )
    return [f for f in out if f.families]  # fmt: skip


def _phase(n: int) -> list[Field]:
    return _measures(f"Phase_{n}", n)


_MEASURE_FIELDS: Final[tuple[Field, ...]] = (
    *(f for n in (1, 2, 3) for f in _phase(n)),
    *_measures("Total", None),
    *(_meter("Neutral_Current", (66,), scale=scale, unit="A", families=fams, bounds=(0, 600),
             ha=CURRENT, raw="i_ln") for fams, scale in ((_CENTI_AMP, 0.01), (_DECI_AMP, 0.1))),
    _meter("Frequency", (84,), scale=0.01, unit="Hz", families=ANY_METER, bounds=c.FREQUENCY,
           ha=FREQUENCY, raw="frequency"),
    _meter("Import_Energy_kWh", (85,), scale=0.1, unit="kWh", kind=Kind.TOTAL,
           families=ANY_METER, bounds=c.TOTAL_KWH, ha=ENERGY_TOTAL,
           raw="e_import_active",
           description="single 16-bit register: wraps at 6553.6 kWh"),
    _meter("Export_Energy_kWh", (87,), scale=0.1, unit="kWh", kind=Kind.TOTAL,
           families=ANY_METER, bounds=c.TOTAL_KWH, ha=ENERGY_TOTAL,
           raw="e_export_active",
           description="single 16-bit register: wraps at 6553.6 kWh"),
    _meter("Import_Reactive_Energy_kvarh", (86,), scale=0.1, unit="kvarh", kind=Kind.TOTAL,
           families=ANY_METER, bounds=c.TOTAL_KWH,
           ha=_reactive_energy("Import Reactive Energy"),
           raw="e_import_reactive",
           description="single 16-bit register: wraps at 6553.6 kvarh"),
    _meter("Export_Reactive_Energy_kvarh", (88,), scale=0.1, unit="kvarh", kind=Kind.TOTAL,
           families=ANY_METER, bounds=c.TOTAL_KWH,
           ha=_reactive_energy("Export Reactive Energy"),
           raw="e_export_reactive",
           description="single 16-bit register: wraps at 6553.6 kvarh"),
)  # fmt: skip

# --- the meter's product registers, IR95-103 ----------------------------------------------------
# The peer library reads them as "meter product" registers MR60-68 (FC 0x16). The captures show
# the same nine words at IR95-103 of the meter's own IR60 page: the GIV-3HY-11 detection capture
# holds both for meter 0x02 (MR60-68 = IR95-103 = 3521, 18903, 69, 21332, 136, 256, 256, 1,
# 9600), and the three-phase and EMS plants answer IR(60,60) on every meter. So the meter page is
# read 60 registers long there (registers/plan.py) and no FC 0x16 request is needed. Behind the
# Gateway and the All-in-One the words read 0 (no product data); the single-phase captures only
# read IR(60,30). The serial is a 32-bit number (230 770 669 and 230 771 159 on the two meters of
# the three-phase plant, consecutive units of one batch), not the text the peer makes of it; not
# named "..._Serial_Number", which names a device (its topics) by a GivEnergy serial.
_PRODUCT: Final = METER_PRODUCT_FAMILIES
PRODUCT_PATH: Final = ("Diagnostics",)


def _product(name: str, registers: tuple[int, ...], raw: str, **kw: Any) -> Field:
    kw.setdefault("kind", Kind.INFO)
    return Field(name, PRODUCT_PATH, IR, registers, source=Source.METER, families=_PRODUCT,
                 ha=HA(entity_category="diagnostic", enabled_by_default=False), raw=raw,
                 description=f"IR{registers[0]} (the peer's MR{registers[0] - 35})",
                 **kw)  # fmt: skip


METER_PRODUCT_FIELDS: Final[tuple[Field, ...]] = (
    _product("Meter_Product_Serial", (95, 96), "serial_number", enc=Enc.U32,
             bounds=(1, 0xFFFFFFFE)),
    _product("Meter_Factory_Code", (97, 98), "factory_code", enc=Enc.ASCII),
    _product("Meter_Type_Code", (99,), "meter_type", bounds=(1, 0xFFFE)),
    _product("Meter_Hardware_Version", (100,), "hardware_version", bounds=(1, 0xFFFE)),
    _product("Meter_Software_Version", (101,), "software_version", bounds=(1, 0xFFFE)),
    _product("Meter_Modbus_ID", (102,), "modbus_id", bounds=(1, 247)),
    _product("Meter_Baud_Rate", (103,), "baud_rate", bounds=(1200, 115200)),
)  # fmt: skip

METER_FIELDS: Final[tuple[Field, ...]] = _MEASURE_FIELDS + METER_PRODUCT_FIELDS
