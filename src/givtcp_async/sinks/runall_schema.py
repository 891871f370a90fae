"""JSON Schema of the runAll tree, derived from the register map.

Every :class:`~givtcp_async.registers.schema.Field` and
:class:`~givtcp_async.registers.schema.Derived` is one leaf at its ``path``: its type is what
decoding (or ``Derived.returns``) produces, its unit is in ``x-unit`` and the description, its
static bounds are ``minimum``/``maximum`` (the gates reject anything outside them) and an option
table is an ``enum``. The schema is the union over every model: no leaf is required, because a
value a model does not have, or that is unavailable, is simply absent (runAll never publishes
``null`` leaves). The tree follows the output layout (:mod:`givtcp_async.layout`): in GivTCP
3.5's the details sit under the inverter's serial and battery packs under
``Battery_Details/Battery_Stack_<n>/<serial>``; in GivTCP 2.4's the details under
``Invertor_Details`` and packs (and HV stacks, modules and the BAMS) under
``Battery_Details/<serial>``. Meters sit under ``Meter_Details/Meter_ID<n>``; ``Stats`` and
``raw`` are described by hand. ``units=true`` wraps each leaf as ``{value, unit}``.

:func:`runall_schemas` builds the component schemas once (the map is static) and caches them.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import Any, Final

from givtcp_async.assemble import LIFTED_PACK_TOTALS, LIFTED_PATH
from givtcp_async.control.overrides import STATE_SPECS
from givtcp_async.layout import DETAILS, FIRST_STACK, LV_BCU_GROUP, RENDERED, TreeLayout
from givtcp_async.quality.pages import SERIAL_RE
from givtcp_async.registers import (
    ALL_INVERTER_FIELDS,
    BAMS_FIELDS,
    BATTERY_FIELDS,
    BCU_FIELDS,
    BMU_FIELDS,
    DERIVED,
    HV_FIELDS,
    LV_BCU_FIELDS,
    METER_FIELDS,
)
from givtcp_async.registers.schema import Derived, Enc, Field, Kind
from givtcp_async.tariffs import SPECS as TARIFF_SPECS

Spec = Field | Derived
Schema = dict[str, Any]

RUNALL: Final = "RunAll"
RUNALL_UNITS: Final = "RunAllWithUnits"
_PACK: Final = "BatteryDetails"
_METER: Final = "MeterDetails"
_STATS: Final = "RunAllStats"

_KIND_TEXT: Final = {
    Kind.MEASUREMENT: "measurement",
    Kind.TOTAL: "lifetime total (never goes backwards)",
    Kind.TODAY: "today's total (resets around midnight)",
    Kind.SETTING: "setting read back from the inverter",
    Kind.INFO: "identity or static fact",
    Kind.STATUS: "state or fault code",
}
_HHMM: Final = r"^([01][0-9]|2[0-3]):[0-5][0-9]:00$"
SERIAL_PATTERN: Final = SERIAL_RE.pattern
_STRINGS: Final = {Enc.ASCII, Enc.TIME, Enc.HEX, Enc.DATETIME, Enc.VERSION}


def _num(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


def _bounded(schema: Schema, spec: Spec) -> Schema:
    """Add the spec's static bounds (a model-dependent range is only described)."""
    bounds = spec.bounds
    if bounds is None or callable(bounds):
        return schema
    low, high = bounds
    schema["minimum"] = _num(low)
    # A 16-bit lifetime counter is unwrapped past its register's range (battery totals at
    # 6553.5 kWh): the bounds hold for each raw reading, not for the published total.
    wraps = isinstance(spec, Field) and spec.kind is Kind.TOTAL and spec.enc is Enc.U16
    if not wraps:
        schema["maximum"] = _num(high)
    return schema


def _choices(options: Mapping[int, str]) -> list[str]:
    return list(dict.fromkeys(options.values()))


def _field_value(spec: Field) -> Schema:
    enc = spec.enc
    # The charger's session times are published as the moment they happened (evc.snapshot).
    if enc in (Enc.DATETIME, Enc.DATETIME_FULL, Enc.TIME_HMS):
        return {"type": "string", "format": "date-time"}
    if enc is Enc.SECONDS:
        return {"type": "string", "pattern": r"^([0-9]+ days?, )?[0-9]{1,2}:[0-5][0-9]:[0-5][0-9]$"}
    if enc is Enc.TIME:
        return {"type": "string", "pattern": _HHMM}
    if enc is Enc.HEX:
        return {"type": "string", "pattern": "^([0-9a-f]{4})+$"}
    if enc in (Enc.ASCII, Enc.VERSION):
        return {"type": "string"}
    if enc is Enc.BOOL:
        # Only 0 and 1 decode; anything else is unavailable.
        if spec.options is not None:
            return {"type": "string", "enum": _choices(spec.options)}
        return {"type": "boolean"}
    if enc in (Enc.PF, Enc.SIGNED_PF):
        return _bounded({"type": "number"}, spec)
    whole = float(spec.scale).is_integer()
    number = _bounded({"type": "integer" if whole else "number"}, spec)
    if spec.options is not None:
        # An unknown code stays a number.
        named = {"type": "string", "enum": _choices(spec.options)}
        return {"anyOf": [named, {**number, "description": "a code with no name"}]}
    return number


def _derived_value(spec: Derived) -> Schema:
    kind = {int: "integer", float: "number", str: "string", bool: "boolean"}[spec.returns]
    schema: Schema = {"type": kind}
    if spec.choices is not None:
        schema["enum"] = list(spec.choices)
    if kind in ("integer", "number"):
        _bounded(schema, spec)
    return schema


def _description(spec: Spec) -> str:
    bits = [spec.description.rstrip(".")] if spec.description else []
    if spec.unit:
        bits.append(f"unit {spec.unit}")
    bits.append(_KIND_TEXT[spec.kind])
    if callable(spec.bounds):
        bits.append("range depends on the model")
    if spec.control:
        bits.append(f"set with {spec.control}")
    return "; ".join(bits)


def _rendered(spec: Spec) -> Schema:
    """A value the GivTCP 3.5 layout prints as text (see :func:`givtcp_async.layout.render`)."""
    texts = RENDERED[spec.name]
    text: Schema = {"type": "string", "enum": list(texts)} if texts else {"type": "string"}
    if isinstance(spec, Field) and spec.options is not None:
        return {"anyOf": [text, {"type": "integer", "description": "a code with no name"}]}
    return text


def value_schema(spec: Spec, layout: TreeLayout = TreeLayout.GIVTCP2) -> Schema:
    """The schema of one published value (a runAll leaf) in ``layout``."""
    if layout is TreeLayout.GIVTCP3 and spec.name in RENDERED:
        schema = _rendered(spec)
    elif isinstance(spec, Field):
        schema = _field_value(spec)
    else:
        schema = _derived_value(spec)
    schema["description"] = _description(spec)
    if spec.unit:
        schema["x-unit"] = spec.unit
    schema["x-kind"] = spec.kind.value
    if spec.control:
        schema["x-control"] = spec.control
    return schema


def with_unit_schema(spec: Spec, layout: TreeLayout = TreeLayout.GIVTCP2) -> Schema:
    """The ``units=true`` form of a leaf: ``{"value": ..., "unit": ...}``."""
    return {
        "type": "object",
        "description": _description(spec),
        "properties": {"value": value_schema(spec, layout), "unit": {"const": spec.unit}},
        "required": ["value", "unit"],
        "additionalProperties": False,
    }


def _object(description: str | None = None) -> Schema:
    schema: Schema = {"type": "object", "properties": {}, "additionalProperties": False}
    if description:
        schema["description"] = description
    return schema


def _lv_bcu(leaf: Callable[[Spec], Schema]) -> Schema:
    out = tree_schema(LV_BCU_FIELDS, leaf)
    out["description"] = "The LV battery control unit (0x31): BMS status and request currents."
    return out


def tree_schema(specs: Iterable[Spec], leaf: Callable[[Spec], Schema]) -> Schema:
    """The nested object whose leaves are ``specs`` placed by their ``path`` (as runAll does).

    A name that two entries share at one path (the same value on different models) is one
    property: both entries' schemas when they differ.
    """
    root = _object()
    leaves: dict[int, dict[str, list[Schema]]] = {}
    nodes: dict[int, Schema] = {id(root): root}
    for spec in specs:
        node = root
        for part in spec.path:
            child = node["properties"].setdefault(part, _object())
            if part in leaves.get(id(node), {}):
                raise ValueError(f"{part!r} is both a group and a value in the runAll tree")
            nodes[id(child)] = child
            node = child
        if spec.name in node["properties"]:
            raise ValueError(f"{spec.name!r} is both a group and a value in the runAll tree")
        options = leaves.setdefault(id(node), {}).setdefault(spec.name, [])
        schema = leaf(spec)
        if schema not in options:
            options.append(schema)
    for key, by_name in leaves.items():
        props = nodes[key]["properties"]
        for name, options in by_name.items():
            props[name] = options[0] if len(options) == 1 else _either(options)
    return root


def _either(options: list[Schema]) -> Schema:
    """One property for several entries: any of their schemas, with what they agree on."""
    schema: Schema = {"anyOf": options}
    for key in ("x-unit", "x-kind"):
        values = {json.dumps(o.get(key)) for o in options}
        if len(values) == 1 and key in options[0]:
            schema[key] = options[0][key]
    return schema


def _lifted_totals() -> list[Field]:
    """Pack totals the assembler also publishes at inverter level (see ``assemble``)."""
    packs = {f.name: f for f in BATTERY_FIELDS}
    return [replace(packs[n], path=LIFTED_PATH) for n in LIFTED_PACK_TOTALS if n in packs]


_STATS_SCHEMA: Final = {
    "type": "object",
    "description": "The daemon's own state at this snapshot (not from the register map).",
    "properties": {
        "Last_Updated_Time": {
            "type": ["string", "null"],
            "format": "date-time",
            "description": "time of the last good poll",
        },
        "status": {"enum": ["online", "offline"]},
        "Time_Since_Last_Update": {
            "type": ["number", "null"],
            "minimum": 0,
            "description": "seconds since the last good poll",
            "x-unit": "s",
        },
        "GivTCP_Version": {"type": "string"},
        "Write_Count": {"type": "integer", "minimum": 0, "description": "the write ledger's total"},
        "Timeout_Error": {"type": "integer", "minimum": 0, "description": "request timeouts"},
    },
}
_RAW_SCHEMA: Final = {
    "type": "object",
    "description": "Every cached register by device (print_raw): {'HR:0': value, ...}.",
    "additionalProperties": {
        "type": "object",
        "propertyNames": {"pattern": r"^(HR|IR):[0-9]+$"},
        "additionalProperties": {"type": "integer"},
    },
}


_RAW_VALUE: Final = {"type": ["integer", "number", "string", "boolean", "array", "null"]}
_NAMED_RAW_SCHEMA: Final = {
    "type": "object",
    "description": "print_raw: GivTCP 3's raw block, every register value under its GivTCP 3.5 "
    "(library) name in the library's form: the inverter's (EMS's, Gateway's) in invertor, each "
    "LV pack's under batteries/<serial> or, with HV stacks, each stack's under "
    "HV_Battery_Stacks/Stack_<i> (its modules' under their serials), each meter's under "
    "meters/Meter_ID_<n>.",
    "properties": {
        "invertor": {"type": "object", "additionalProperties": _RAW_VALUE},
        "batteries": {
            "type": "object",
            "additionalProperties": {"type": "object", "additionalProperties": _RAW_VALUE},
        },
        "HV_Battery_Stacks": {
            "type": "object",
            "propertyNames": {"pattern": r"^Stack_[0-9]+$"},
            "additionalProperties": {
                "type": "object",
                "additionalProperties": {
                    "anyOf": [
                        _RAW_VALUE,
                        {"type": "object", "additionalProperties": _RAW_VALUE},
                    ]
                },
            },
        },
        "meters": {
            "type": "object",
            "propertyNames": {"pattern": r"^Meter_ID_[1-8]$"},
            "additionalProperties": {"type": "object", "additionalProperties": _RAW_VALUE},
        },
    },
    "additionalProperties": False,
}


def _with_devices(
    tree: Schema, pack: str, meter: str, layout: TreeLayout, leaf: Callable[[Spec], Schema]
) -> Schema:
    """Add what runAll puts beside the map's groups: devices by serial or address, Stats, raw;
    in the GivTCP 3.5 layout the details under the serial and the packs under their stack."""
    props = tree["properties"]
    for key in ("Meter_Details", "Stats", "raw"):
        if key in props:
            raise ValueError(f"the register map uses {key!r}, which runAll fills itself")
    if layout is TreeLayout.GIVTCP2:
        # The map places HV stack values in Battery_Details too: packs are every other key.
        batteries = props.setdefault("Battery_Details", _object())
        batteries["description"] = "Battery packs (HV: stacks, modules, BAMS) by serial number."
        batteries["additionalProperties"] = {"$ref": f"#/components/schemas/{pack}"}
        batteries.setdefault("properties", {})[LV_BCU_GROUP] = _lv_bcu(leaf)
    else:
        details = props.pop(DETAILS)
        details["description"] = "The inverter's details, under its serial number."
        tree["patternProperties"] = {SERIAL_PATTERN: details}
        stack = props.pop("Battery_Details", _object())["properties"].get(FIRST_STACK, _object())
        stack["properties"].update(tree_schema(BCU_FIELDS, leaf)["properties"])
        stack["description"] = "One battery stack: its values and its packs by serial number."
        stack["additionalProperties"] = {"$ref": f"#/components/schemas/{pack}"}
        batteries = tree_schema(BAMS_FIELDS, leaf)
        batteries["description"] = "Battery stacks (Battery_Stack_1 ...) and the HV BAMS counts."
        batteries["patternProperties"] = {r"^Battery_Stack_[0-9]+$": stack}
        batteries["properties"][LV_BCU_GROUP] = _lv_bcu(leaf)
        props["Battery_Details"] = batteries
    props["Meter_Details"] = {
        "type": "object",
        "description": "Energy meters by Modbus address (Meter_ID1 .. Meter_ID8).",
        "propertyNames": {"pattern": "^Meter_ID[0-9]+$"},
        "additionalProperties": {"$ref": f"#/components/schemas/{meter}"},
    }
    props["Stats"] = {"$ref": f"#/components/schemas/{_STATS}"}
    props["raw"] = _RAW_SCHEMA if layout is TreeLayout.GIVTCP2 else _NAMED_RAW_SCHEMA
    return tree


@functools.cache
def _build(layout: TreeLayout) -> str:
    overrides = [spec for specs in STATE_SPECS.values() for spec in specs]
    inverter: list[Spec] = [*ALL_INVERTER_FIELDS, *DERIVED, *_lifted_totals(), *overrides,
                            *TARIFF_SPECS]  # fmt: skip
    packs = [*BATTERY_FIELDS, *HV_FIELDS]
    if layout is TreeLayout.GIVTCP3:
        packs = [*BATTERY_FIELDS, *BMU_FIELDS]
    out: dict[str, Schema] = {_STATS: _STATS_SCHEMA}
    for suffix, form in (("", value_schema), ("WithUnits", with_unit_schema)):
        pack, meter = f"{_PACK}{suffix}", f"{_METER}{suffix}"
        leaf = functools.partial(form, layout=layout)
        tree = _with_devices(tree_schema(inverter, leaf), pack, meter, layout, leaf)
        tree["description"] = (
            "The latest snapshot in GivTCP's runAll layout"
            + (", every value as {value, unit}" if suffix else "")
            + ". Values a model does not have, or that are unavailable, are absent."
        )
        out[RUNALL + suffix] = tree
        out[pack] = tree_schema(packs, leaf) | {"description": "One battery pack or HV device."}
        out[meter] = tree_schema(METER_FIELDS, leaf) | {"description": "One energy meter."}
    # Frozen as text so every caller gets its own copy of a schema built once.
    return json.dumps(out)


def runall_schemas(layout: TreeLayout = TreeLayout.GIVTCP3) -> dict[str, Schema]:
    """The component schemas of runAll in ``layout``: ``RunAll``, ``RunAllWithUnits`` and their
    parts."""
    schemas: dict[str, Schema] = json.loads(_build(layout))
    return schemas


def response_schema() -> Schema:
    """The runAll response: either form (the ``units`` query parameter picks one)."""
    return {
        "anyOf": [
            {"$ref": f"#/components/schemas/{RUNALL}"},
            {"$ref": f"#/components/schemas/{RUNALL_UNITS}"},
        ]
    }
