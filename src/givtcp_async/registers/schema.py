"""The declarative register map's vocabulary.

One :class:`Field` per published value says where its registers are, how they decode, what unit
and bounds apply, where it sits in the runAll tree and how Home Assistant should show it.
Decoding, the data-quality gates, MQTT discovery, the REST schema and the Influx fields all read
these entries; nothing downstream hard-codes a register.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final


class Bank(StrEnum):
    HOLDING = "HR"
    INPUT = "IR"


class Enc(StrEnum):
    """How a field's registers become a value (SPEC §4.1)."""

    U16 = "u16"
    S16 = "s16"
    U32 = "u32"  # two registers, high word at the lower address
    S32 = "s32"
    ASCII = "ascii"  # two characters per register, high byte first, NULs stripped
    HIGH_BYTE = "hi8"  # high byte of one register
    LOW_BYTE = "lo8"  # low byte of one register
    BOOL = "bool"  # 0 / 1
    TIME = "hhmm"  # decimal hours*100 + minutes -> "HH:MM:SS"
    DATETIME = "datetime"  # six registers: year-2000, month, day, hour, minute, second
    PF = "pf"  # raw / 10000 - 1
    SIGNED_PF = "spf"  # signed raw / 10000 (meters)
    HEX = "hex"  # four hex digits, e.g. the device type code "2001"
    # The EV charger's encodings (its own register layout, not SPEC §4.1):
    DATETIME_FULL = "datetime4"  # six registers: full year, month, day, hour, minute, second
    TIME_HMS = "hms"  # three registers: hour, minute, second -> a time of day
    SECONDS = "seconds"  # two registers (high word first): seconds -> "H:MM:SS"
    # HV stack firmware: four registers, the first two ASCII, then each byte of the last two as a
    # decimal digit ("BABA" + 0x0000, 0x0009 -> "BABA0009").
    VERSION = "version"


class Kind(StrEnum):
    """What a value means over time; drives the gates and the HA state class."""

    MEASUREMENT = "measurement"  # instantaneous: power, voltage, SOC, temperature
    TOTAL = "total"  # lifetime counter: never goes backwards
    TODAY = "today"  # daily counter: only goes backwards around midnight
    SETTING = "setting"  # a control setting read back from a holding register
    INFO = "info"  # identity and static facts: serial, firmware, capacity
    STATUS = "status"  # a state or fault code


class Source(StrEnum):
    """Which device's pages a field is read from (SPEC §2.5)."""

    INVERTER = "inverter"  # 0x11
    BATTERY = "battery"  # LV pack page, 0x32..0x37 IR(60..119)
    METER = "meter"  # 0x01..0x08
    BCU = "bcu"  # HV stack controller 0x70+n
    BMU = "bmu"  # HV battery module 0x50+n
    BAMS = "bams"  # HV stack configuration 0xA0
    LV_BCU = "lv_bcu"  # LV battery control unit: the request currents page at 0x31
    EVC = "evc"  # a GivEnergy EV charger over Modbus TCP (its own host, port 502)


class Family(StrEnum):
    """Inverter families; detection maps the device type code and firmware to one of these."""

    HYBRID_GEN1 = "hybrid_gen1"
    HYBRID_GEN2 = "hybrid_gen2"
    HYBRID_GEN3 = "hybrid_gen3"
    HYBRID_GEN4 = "hybrid_gen4"
    HYBRID_POLAR = "hybrid_polar"
    PV_ONLY = "pv_only"
    AC = "ac"
    AIO = "aio"
    HV_GEN3 = "hv_gen3"
    AIO_HYBRID = "aio_hybrid"
    AIO_COMMERCIAL = "aio_commercial"
    THREE_PHASE = "three_phase"
    AC_THREE_PHASE = "ac_three_phase"
    EMS = "ems"
    GATEWAY = "gateway"


SINGLE_PHASE_LV: Final = frozenset(
    {
        Family.HYBRID_GEN1,
        Family.HYBRID_GEN2,
        Family.HYBRID_GEN3,
        Family.HYBRID_GEN4,
        Family.HYBRID_POLAR,
        Family.AC,
    }
)
SINGLE_PHASE: Final = SINGLE_PHASE_LV | {Family.AIO, Family.HV_GEN3, Family.PV_ONLY}
THREE_PHASE_FAMILIES: Final = frozenset(
    {Family.THREE_PHASE, Family.AC_THREE_PHASE, Family.AIO_HYBRID, Family.AIO_COMMERCIAL}
)
# The meters whose IR60 page is read 60 registers long, for the product registers IR95-103
# (registers/meter.py): the three-phase and EMS plants' (captured); the others read IR60-89.
METER_PRODUCT_FAMILIES: Final = THREE_PHASE_FAMILIES | {Family.EMS}
HYBRIDS: Final = frozenset(
    {
        Family.HYBRID_GEN1,
        Family.HYBRID_GEN2,
        Family.HYBRID_GEN3,
        Family.HYBRID_GEN4,
        Family.HYBRID_POLAR,
        Family.HV_GEN3,
    }
)


@dataclass(frozen=True, slots=True)
class HA:
    """How Home Assistant shows a field (peers-and-home-assistant.md part B)."""

    platform: str = "sensor"  # sensor, binary_sensor, number, select, switch, button, time
    device_class: str | None = None
    state_class: str | None = None
    entity_category: str | None = None  # None, "config" or "diagnostic"
    enabled_by_default: bool = True
    icon: str | None = None
    precision: int | None = None  # suggested_display_precision
    name: str | None = None  # the entity name, where the one made from the field name misleads
    needs_control: bool = False  # offered only where the model has the function that sets it
    # Announced only when the user asks for every entity (mqtt.all_entities): values held back
    # to keep a family's announcement small.
    opt_in: bool = False


# Bounds may depend on the detected model (e.g. power within the inverter's rating).
Bounds = tuple[float, float] | Callable[[Any], tuple[float, float]]


@dataclass(frozen=True, slots=True)
class Field:
    """One published value read from registers.

    ``name`` is GivTCP's field name (the runAll leaf, the MQTT topic leaf, and the tail of the
    Home Assistant entity id); ``path`` is its group in the runAll tree. For battery and meter
    fields the path is relative to that device's own subtree.
    """

    name: str
    path: tuple[str, ...]
    bank: Bank
    registers: tuple[int, ...]
    enc: Enc = Enc.U16
    scale: float = 1.0  # multiplier applied to the combined integer
    unit: str | None = None
    kind: Kind = Kind.MEASUREMENT
    source: Source = Source.INVERTER
    families: frozenset[Family] | None = None  # None: every family whose plan reads the page
    options: Mapping[int, str] | None = None  # enum decoding; unknown codes stay numeric
    bounds: Bounds | None = None  # plausible range; outside it the gates reject the value
    ha: HA | None = HA()
    control: str | None = None  # the catalogue function that sets it
    description: str = ""
    # GivTCP 3's name for this register value in ``raw`` (its library's attribute name, e.g.
    # "battery_soc_reserve"); the raw form is the register's own (see registers/raw.py).
    raw: str | None = None

    @property
    def key(self) -> str:
        """A stable identifier: the name in lower case."""
        return self.name.lower()

    def applies_to(self, family: Family) -> bool:
        return self.families is None or family in self.families


#: An input name of :class:`Derived` standing for the snapshot's local time (a timezone-aware
#: datetime), which the assembler hands to ``compute`` beside the readings.
NOW: Final = "@now"


@dataclass(frozen=True, slots=True)
class Derived:
    """A published value computed from other fields of the same snapshot (SPEC §6.1).

    ``compute`` receives the decoded values by field name (and the model) and returns the value,
    or None when an input is missing; a derived value is never computed from a stale input.
    ``returns`` is the type of that value (a float may also be a whole number) and ``choices``
    the strings a ``str`` value is one of, for the REST schema.
    """

    name: str
    path: tuple[str, ...]
    inputs: tuple[str, ...]
    compute: Callable[[Mapping[str, Any], Any], Any]
    unit: str | None = None
    kind: Kind = Kind.MEASUREMENT
    families: frozenset[Family] | None = None
    bounds: Bounds | None = None
    ha: HA | None = HA()
    control: str | None = None
    description: str = ""
    returns: type[int | float | str | bool] = float
    choices: tuple[str, ...] | None = None
    raw: str | None = None  # GivTCP 3's name for this value in ``raw`` (published as it is)

    @property
    def key(self) -> str:
        return self.name.lower()

    def applies_to(self, family: Family) -> bool:
        return self.families is None or family in self.families


# Home Assistant presets for the common kinds of value.
POWER: Final = HA(device_class="power", state_class="measurement")
# Lifetime counters use "total": a glitch dip then recovery cancels out in HA's statistics.
# Daily counters use "total_increasing": their midnight drop starts a new cycle.
ENERGY_TOTAL: Final = HA(device_class="energy", state_class="total")
ENERGY_TODAY: Final = HA(device_class="energy", state_class="total_increasing")
VOLTAGE: Final = HA(device_class="voltage", state_class="measurement")
CURRENT: Final = HA(device_class="current", state_class="measurement")
FREQUENCY: Final = HA(device_class="frequency", state_class="measurement")
TEMPERATURE: Final = HA(device_class="temperature", state_class="measurement")
BATTERY_PCT: Final = HA(device_class="battery", state_class="measurement")
DIAGNOSTIC: Final = HA(entity_category="diagnostic")
