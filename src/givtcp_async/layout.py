"""Where a value sits in the output tree, and in what form: GivTCP 3.5's layout or GivTCP 2.4's.

The register map places every value by a canonical group (``Field.path``: ``Power/Power``,
``Invertor_Details``, ...); batteries and meters by device. This module is the one place that
turns those into the runAll tree that REST, MQTT state topics, the dashboard and Home Assistant's
state topics all use (InfluxDB keeps its measurements by canonical group):

================================  ==========================================  ====================
canonical                         GivTCP 3.5 (``givtcp3``, the default)        GivTCP 2.4
================================  ==========================================  ====================
``Invertor_Details/<Field>``      ``<serial>/<Field>``                         unchanged
LV pack ``<pack>``                ``Battery_Details/Battery_Stack_1/<pack>``   ``Battery_Details/
                                                                               <pack>``
HV stack n (BCU 0x70+n)           ``Battery_Details/Battery_Stack_<n+1>``      ``Battery_Details/
                                                                               <stack serial>``
HV module (BMU)                   ``Battery_Details/Battery_Stack_<k>/<mod>``  ``Battery_Details/
                                                                               <module>``
HV BAMS                           ``Battery_Details``                          ``Battery_Details/``
LV BCU (0x31)                     ``Battery_Details/LV_BCU``                   the same
meter n                           ``Meter_Details/Meter_ID<n>``                the same
================================  ==========================================  ====================

HV modules fill the stacks in address order, as many to each as its ``Stack_Module_Count``.
In the GivTCP 3.5 layout a few values take GivTCP 3.5's text forms too (:func:`render`):
``Modbus_Version`` ``"1.40"``, ``Meter_Type`` ``"Em115"``, ``Battery_Type`` ``"Lithium"``,
``Invertor_Type`` ``"Hybrid_gen3"``, ``Battery_Calibration_Status`` ``"Set_lower_limit"``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Final, Protocol

from givtcp_async.registers.plan import source_of
from givtcp_async.registers.schema import Family, Source

if TYPE_CHECKING:
    from givtcp_async.quality.gates import Reading
    from givtcp_async.registers.models import Model


class Device(Protocol):
    """What placing a battery-side device or meter needs (a ``DeviceSnapshot`` fits)."""

    @property
    def address(self) -> int: ...

    @property
    def serial(self) -> str: ...

    @property
    def values(self) -> Mapping[str, Reading]: ...


DETAILS: Final = "Invertor_Details"
BATTERY_DETAILS: Final = "Battery_Details"
METER_DETAILS: Final = "Meter_Details"
FIRST_STACK: Final = "Battery_Stack_1"
LV_BCU_GROUP: Final = "LV_BCU"


class TreeLayout(StrEnum):
    """The output layouts: GivTCP 3.5's (default) and GivTCP 2.4's."""

    GIVTCP3 = "givtcp3"
    GIVTCP2 = "givtcp2"


#: What users may write for each layout (any case): GivTCP's version numbers too.
ALIASES: Final[Mapping[str, TreeLayout]] = {
    **dict.fromkeys(("givtcp3", "3", "3.5", "v3", "givtcp 3", "givtcp-3"), TreeLayout.GIVTCP3),
    **dict.fromkeys(("givtcp2", "2", "2.4", "v2", "givtcp 2", "givtcp-2"), TreeLayout.GIVTCP2),
}


#: The GivTCP release whose answers each layout reproduces.
GIVTCP_RELEASE: Final[Mapping[TreeLayout, str]] = {
    TreeLayout.GIVTCP3: "3.5.0",
    TreeLayout.GIVTCP2: "2.4.9",
}


def givtcp_version(layout: TreeLayout, own: str) -> str:
    """``Stats/GivTCP_Version``: the GivTCP release the answers follow, then what answers, e.g.
    ``"3.5.0 (givtcp-async 0.1.0)"`` (Predbat takes a version starting with 3 for GivTCP 3)."""
    return f"{GIVTCP_RELEASE[layout]} (givtcp-async {own})"


def parse_layout(value: object) -> TreeLayout:
    """The layout ``value`` names (``givtcp3``, ``3.5``, ``givtcp2``, ``2.4``, ...)."""
    if isinstance(value, TreeLayout):
        return value
    key = str(value).strip().lower()
    if key in ALIASES:
        return ALIASES[key]
    raise ValueError("must be givtcp3 (GivTCP 3.5's layout, also 3, 3.5) or givtcp2 (2, 2.4)")


def group(layout: TreeLayout, path: tuple[str, ...], serial: str) -> tuple[str, ...]:
    """The output path of an inverter-level group."""
    if layout is TreeLayout.GIVTCP3 and path[:1] == (DETAILS,):
        return (serial, *path[1:])
    return path


def device_paths(layout: TreeLayout, devices: Sequence[Device]) -> dict[int, tuple[str, ...]]:
    """The output path of each battery-side device and meter, by address."""
    out: dict[int, tuple[str, ...]] = {}
    stacks = sorted(
        (d for d in devices if source_of(d.address) is Source.BCU), key=lambda d: d.address
    )
    modules = sorted(
        (d for d in devices if source_of(d.address) is Source.BMU), key=lambda d: d.address
    )
    owner = _module_stacks(stacks, modules)
    for dev in devices:
        kind = source_of(dev.address)
        if kind is Source.METER:
            out[dev.address] = (METER_DETAILS, f"Meter_ID{dev.address}")
        elif kind is Source.LV_BCU:  # the LV stack's controller: plant-wide, no serial of its own
            out[dev.address] = (BATTERY_DETAILS, LV_BCU_GROUP)
        elif layout is TreeLayout.GIVTCP2:
            out[dev.address] = (BATTERY_DETAILS, dev.serial)
        elif kind is Source.BATTERY:
            out[dev.address] = (BATTERY_DETAILS, FIRST_STACK, dev.serial)
        elif kind is Source.BCU:
            out[dev.address] = (BATTERY_DETAILS, _stack(dev.address))
        elif kind is Source.BMU:
            out[dev.address] = (BATTERY_DETAILS, owner.get(dev.address, FIRST_STACK), dev.serial)
        else:  # the BAMS: plant-wide counts
            out[dev.address] = (BATTERY_DETAILS,)
    return out


def _stack(bcu_address: int) -> str:
    return f"Battery_Stack_{bcu_address - 0x70 + 1}"


def _module_stacks(stacks: list[Device], modules: list[Device]) -> dict[int, str]:
    out: dict[int, str] = {}
    queue = list(modules)
    for bcu in stacks:
        reading = bcu.values.get("Stack_Module_Count")
        count = reading.value if reading is not None and isinstance(reading.value, int) else 0
        for module in queue[:count]:
            out[module.address] = _stack(bcu.address)
        queue = queue[count:]
    return out


# --- GivTCP 3.5's forms --------------------------------------------------------------------------

# GivTCP 3.5 prints its library's enum names, capitalised (MeterType, BatteryType,
# BatteryCalibrationStage) where this project prints the portal's words.
_ENUM_NAMES: Final[Mapping[str, Mapping[str, str]]] = {
    "Meter_Type": {"EM418/CT": "Ct_or_em418", "EM115": "Em115"},
    "Battery_Type": {"Lead Acid": "Lead_acid", "Lithium": "Lithium"},
    "Battery_Calibration_Status": {
        "Off": "Off",
        "Discharge": "Discharge",
        "Set Lower Limit": "Set_lower_limit",
        "Charge": "Charge",
        "Set Upper Limit": "Set_upper_limit",
        "Balance": "Balance",
        "Set Full Capacity": "Set_full_capacity",
        "Finish": "Finish",
    },
}

# GivTCP 3.5's model and generation names (its library's Model and Generation enums).
_MODEL_NAMES: Final[Mapping[Family, str]] = {
    Family.HYBRID_GEN1: "Hybrid_gen1",
    Family.HYBRID_GEN2: "Hybrid_gen2",
    Family.HYBRID_GEN3: "Hybrid_gen3",
    Family.HYBRID_GEN4: "Hybrid_gen4",
    Family.HYBRID_POLAR: "Hybrid_polar",
    Family.PV_ONLY: "Pv",
    Family.AC: "Ac",
    Family.AIO: "All_in_one",
    Family.HV_GEN3: "Hybrid_hv",
    Family.AIO_HYBRID: "All_in_one_hybrid",
    Family.AIO_COMMERCIAL: "Aio_commercial",
    Family.THREE_PHASE: "Hybrid_3ph",
    Family.AC_THREE_PHASE: "Ac_3ph",
    Family.EMS: "Ems",
    Family.GATEWAY: "Gateway",
}


#: The values :func:`render` changes in the GivTCP 3.5 layout, and the texts they become (empty:
#: any text).
RENDERED: Final[Mapping[str, tuple[str, ...]]] = {
    "Modbus_Version": (),
    "Invertor_Type": (*_MODEL_NAMES.values(), "Hybrid_gen3_plus"),
    **{name: tuple(dict.fromkeys(names.values())) for name, names in _ENUM_NAMES.items()},
}


def inverter_type(model: Model) -> str:
    """``Invertor_Type`` as GivTCP 3.5 prints it (a DTC 22xx Gen3 is its "Gen3 plus")."""
    if model.device_type_code >> 8 == 0x22:
        return "Hybrid_gen3_plus"
    return _MODEL_NAMES[model.family]


def render(layout: TreeLayout, name: str, value: Any, model: Model | None = None) -> Any:
    """``value`` of the inverter-level field ``name`` in the layout's form."""
    if layout is TreeLayout.GIVTCP2 or value is None:
        return value
    if name == "Modbus_Version" and isinstance(value, int | float):
        return f"{value:.2f}"
    if name == "Invertor_Type" and model is not None:
        return inverter_type(model)
    names = _ENUM_NAMES.get(name)
    if names is not None and isinstance(value, str):
        return names.get(value, value)
    return value
