"""The runAll schema in /openapi.json follows from the register map, and the daemon's real
answers (plain and units=true) validate against it while wrong documents do not."""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest

from givtcp_async.assemble import LIFTED_PACK_TOTALS, LIFTED_PATH
from givtcp_async.control.catalogue import CATALOGUE
from givtcp_async.control.overrides import STATE_SPECS
from givtcp_async.layout import TreeLayout, group
from givtcp_async.quality.gates import Reading
from givtcp_async.registers import (
    ALL_INVERTER_FIELDS,
    BAMS_FIELDS,
    BATTERY_FIELDS,
    BCU_FIELDS,
    BMU_FIELDS,
    DERIVED,
    HV_FIELDS,
    METER_FIELDS,
)
from givtcp_async.registers.models import detect_model
from givtcp_async.registers.schema import Derived, Field, Source
from givtcp_async.sinks.openapi import build_openapi
from givtcp_async.sinks.runall_schema import SERIAL_PATTERN, runall_schemas
from givtcp_async.snapshot import DeviceSnapshot, Snapshot
from tests.rest_support import rest_rig

Spec = Field | Derived


def validator(doc: dict[str, Any], schema: dict[str, Any]) -> Any:
    """A JSON Schema 2020-12 validator for ``schema`` resolving refs into ``doc``'s components."""
    return jsonschema_rs.Draft202012Validator({**schema, "components": doc["components"]})


def component(doc: dict[str, Any], name: str) -> Any:
    return validator(doc, {"$ref": f"#/components/schemas/{name}"})


def errors(check: Any, instance: Any) -> list[str]:
    return [
        f"{'/'.join(map(str, e.instance_path))}: {e.message}" for e in check.iter_errors(instance)
    ]


SERIAL = "SA1234G567"
STACKS = r"^Battery_Stack_[0-9]+$"


def leaf(
    tree: dict[str, Any], spec: Spec, layout: TreeLayout = TreeLayout.GIVTCP2
) -> dict[str, Any]:
    """The property schema of ``spec`` in a tree schema of ``layout`` (KeyError if it is not
    there): in GivTCP 3.5's the details are under the serial and stacks by pattern."""
    node = tree
    for part in group(layout, spec.path, SERIAL):
        if part == SERIAL:
            node = node["patternProperties"][SERIAL_PATTERN]
        elif layout is TreeLayout.GIVTCP3 and part.startswith("Battery_Stack_"):
            node = node["patternProperties"][STACKS]
        else:
            node = node["properties"][part]
    prop: dict[str, Any] = node["properties"][spec.name]
    return prop


def units_of(prop: dict[str, Any]) -> set[str | None]:
    """The units of a leaf: of each entry when several entries share the name (anyOf)."""
    entries = [m for m in prop.get("anyOf", []) if "x-kind" in m]
    return {m.get("x-unit") for m in entries} if entries else {prop.get("x-unit")}


def required_anywhere(node: Any) -> bool:
    if isinstance(node, dict):
        return "required" in node or any(required_anywhere(v) for v in node.values())
    if isinstance(node, list):
        return any(required_anywhere(v) for v in node)
    return False


GEN3 = detect_model({0: 0x2001, 19: 302, 21: 302})


def offline_doc(layout: TreeLayout = TreeLayout.GIVTCP3) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(
        json.dumps(build_openapi(CATALOGUE, model=GEN3, layout=layout))
    )
    return doc


# --- the schema follows from the map -------------------------------------------------------------


@pytest.mark.parametrize("layout", list(TreeLayout))
def test_every_register_map_entry_is_a_leaf_at_its_path_with_its_unit(
    layout: TreeLayout,
) -> None:
    schemas = runall_schemas(layout)
    packs = {f.name: f for f in BATTERY_FIELDS}
    lifted = [replace(packs[n], path=LIFTED_PATH) for n in LIFTED_PACK_TOTALS]
    overrides = [spec for specs in STATE_SPECS.values() for spec in specs]
    # In GivTCP 3.5's layout a stack's values sit in the stack, the BAMS's in Battery_Details.
    hv = {TreeLayout.GIVTCP2: HV_FIELDS, TreeLayout.GIVTCP3: BMU_FIELDS}[layout]
    stack = [replace(f, path=("Battery_Details", "Battery_Stack_1")) for f in BCU_FIELDS]
    bams = [replace(f, path=("Battery_Details",)) for f in BAMS_FIELDS]
    inverter: list[Spec] = [*ALL_INVERTER_FIELDS, *DERIVED, *lifted, *overrides]
    if layout is TreeLayout.GIVTCP3:
        inverter += [*stack, *bams]
    trees: list[tuple[str, tuple[Spec, ...]]] = [
        ("RunAll", tuple(inverter)),
        ("BatteryDetails", (*BATTERY_FIELDS, *hv)),
        ("MeterDetails", METER_FIELDS),
    ]
    for name, specs in trees:
        # A value a model lacks, or that is unavailable, is absent: nothing is required.
        assert not required_anywhere(schemas[name]), name
        for spec in specs:
            assert spec.unit in units_of(leaf(schemas[name], spec, layout)), (name, spec.name)
            wrapped = leaf(schemas[f"{name}WithUnits"], spec, layout)
            units = [v["properties"]["unit"]["const"] for v in wrapped.get("anyOf", [wrapped])]
            assert spec.unit in units, (name, spec.name)


def _option(schema: dict[str, Any], description: str) -> dict[str, Any]:
    """The one of a property's entry schemas whose description starts with ``description``."""
    options = schema.get("anyOf", [schema])
    found = [o for o in options if str(o.get("description", "")).startswith(description)]
    assert found, (description, options)
    return dict(found[0])


def test_leaf_types_ranges_and_enums_come_from_the_entries() -> None:
    runall = runall_schemas(TreeLayout.GIVTCP2)["RunAll"]["properties"]
    power = runall["Power"]["properties"]["Power"]["properties"]
    # The single-phase entries (an EMS or a Gateway publishes a value of the same name from its
    # own registers: one property, any of the entries' schemas).
    pv = _option(power["PV_Power"], "PV string 1 + string 2")
    assert pv["type"] == "integer"  # Derived returns=int
    assert (pv["minimum"], pv["maximum"]) == (0, 15000)
    assert power["PV_Power"]["x-unit"] == "W"
    soc = _option(power["SOC"], "")
    assert soc["type"] == "integer"
    assert (soc["minimum"], soc["maximum"]) == (0, 100)
    # Bounds that depend on the model are described, not fixed.
    battery = _option(power["Battery_Power"], "IR52")
    assert "maximum" not in battery
    assert "depends on the model" in battery["description"]
    details = runall["Invertor_Details"]["properties"]
    status = details["Invertor_Status"]["anyOf"]
    assert status[0]["enum"] == ["Waiting", "Normal", "Warning", "Fault", "Firmware Update"]
    assert status[1]["type"] == "integer"  # an unknown code stays a number
    assert details["Invertor_Time"]["format"] == "date-time"
    assert details["Invertor_Type"]["type"] == "string"
    control = runall["Control"]["properties"]
    assert control["Mode"]["enum"][-1] == "Unknown"
    assert control["Eco_Mode"]["enum"] == ["disable", "enable"]
    assert control["Battery_Charge_Rate"]["x-control"] == "setChargeRate"
    slot = runall["Timeslots"]["properties"]["Charge_start_time_slot_1"]
    assert slot["pattern"] == r"^([01][0-9]|2[0-3]):[0-5][0-9]:00$"
    # A 16-bit pack counter is unwrapped beyond its register: no maximum.
    pack = runall_schemas(TreeLayout.GIVTCP2)["BatteryDetails"]["properties"]
    assert "maximum" not in pack["Battery_Charge_Energy_Total_kWh"]
    assert pack["Battery_Cell_1_Voltage"]["type"] == "number"


def test_the_schema_is_built_once_and_every_caller_gets_its_own_copy() -> None:
    first = runall_schemas()
    first["RunAll"]["properties"].clear()
    again = runall_schemas()
    assert again["RunAll"]["properties"]
    assert json.dumps(again) == json.dumps(runall_schemas())
    assert offline_doc() == offline_doc()


def test_givtcp3_forms_are_text_where_givtcp_3_prints_text() -> None:
    details = runall_schemas()["RunAll"]["patternProperties"][SERIAL_PATTERN]["properties"]
    assert details["Modbus_Version"]["type"] == "string"
    assert "Em115" in details["Meter_Type"]["anyOf"][0]["enum"]
    assert "Hybrid_gen3" in details["Invertor_Type"]["enum"]
    assert details["Invertor_Time"]["format"] == "date-time"


@pytest.mark.parametrize("layout", list(TreeLayout))
def test_a_hand_made_snapshot_with_packs_meters_and_stats_validates_and_a_wrong_one_not(
    layout: TreeLayout,
) -> None:
    doc = offline_doc(layout)
    every: list[Spec] = [*ALL_INVERTER_FIELDS, *DERIVED]
    inv = {s.name: s for s in every}
    values = {
        "PV_Power": Reading(1234, "W"),
        "SOC": Reading(55, "%"),
        "Mode": Reading("Eco", None),
        "Invertor_Time": Reading(datetime(2026, 6, 21, 12, tzinfo=UTC), None),
        "Charge_start_time_slot_1": Reading("00:30:00", None),
        "Battery_Voltage": Reading(None, "V", stale=True),  # unavailable: absent
    }
    meter = {f.name: f for f in METER_FIELDS}
    pack = {f.name: f for f in BATTERY_FIELDS}
    snap = Snapshot(
        serial=SERIAL,
        model=GEN3,
        taken_at=datetime(2026, 6, 21, 12, tzinfo=UTC),
        values=values,
        specs={n: inv[n] for n in values},
        batteries=(
            DeviceSnapshot(
                0x32,
                "BG1234G567",
                {"Battery_Serial_Number": Reading("BG1234G567"), "Battery_SOC": Reading(55, "%")},
                pack,
            ),
        ),
        meters=(DeviceSnapshot(1, "", {"Phase_1_Current": Reading(3.21, "A")}, meter),),
        stats={"Last_Updated_Time": None, "status": "offline", "Time_Since_Last_Update": None},
        layout=layout,
    )
    plain, units = snap.runall(), snap.runall(units=True)
    pack_path = {
        TreeLayout.GIVTCP2: ("Battery_Details", "BG1234G567"),
        TreeLayout.GIVTCP3: ("Battery_Details", "Battery_Stack_1", "BG1234G567"),
    }[layout]
    details = group(layout, ("Invertor_Details",), SERIAL)
    assert _get(plain, (*details, "Invertor_Time")) == "2026-06-21T12:00:00+00:00"
    assert _get(plain, (*pack_path, "Battery_SOC")) == 55
    assert "Battery_Voltage" not in plain["Power"]["Power"]
    check, check_units = component(doc, "RunAll"), component(doc, "RunAllWithUnits")
    assert errors(check, json.loads(json.dumps(plain))) == []
    assert errors(check_units, json.loads(json.dumps(units))) == []
    for path, value in (
        (("Meter_Details", "Meter_ID1", "Phase_1_Current"), "3.21"),
        (("Meter_Details", "Meter_ID1", "Phase_1_Volts"), 1),
        ((*pack_path, "Battery_SOC"), 101),
        ((*details, "Invertor_Time"), 1750000000),
        (("Control", "Mode"), "Sideways"),
        (("Timeslots", "Charge_start_time_slot_1"), "24:00:00"),
    ):
        assert errors(check, _with(plain, path, value)), path
    moved = copy.deepcopy(plain)
    moved["Meter_Details"]["Meter_1"] = moved["Meter_Details"].pop("Meter_ID1")
    assert errors(check, moved)


def _get(tree: dict[str, Any], path: tuple[str, ...]) -> Any:
    node: Any = tree
    for part in path:
        node = node[part]
    return node


def _with(tree: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    out = copy.deepcopy(tree)
    node = out
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    return out


# --- the daemon's answers ------------------------------------------------------------------------


async def test_real_runall_answers_validate_against_openapi_and_wrong_ones_fail(
    tmp_path: Path,
) -> None:
    async with rest_rig(tmp_path, data={"print_raw": True}) as r:
        status, doc = await r.get("openapi.json")
        assert status == 200
        response = doc["paths"]["/runAll"]["get"]["responses"]["200"]["content"]
        check = validator(doc, response["application/json"]["schema"])
        plain_check = component(doc, "RunAll")
        units_check = component(doc, "RunAllWithUnits")
        coord = r.rig.coordinator
        answers = {}
        for route in ("runAll", "readData", "getCache", f"{coord.serial}/runAll",
                      "runAll?units=true", "runAll?units=1"):  # fmt: skip
            status, body = await r.get(route)
            assert status == 200, route
            assert errors(check, body) == [], route
            assert errors(units_check if "units" in route else plain_check, body) == [], route
            answers[route] = body
        plain, units = answers["runAll"], answers["runAll?units=true"]
        for part in ("Battery_Details", "Stats", "raw"):
            assert plain[part], part

        # Every published value of this model is a map entry with its unit in the schema.
        assert coord.layout is not None
        fields = coord.layout.fields
        tree = doc["components"]["schemas"]["RunAll"]
        published: list[Spec] = [*fields.inverter, *fields.derived]
        layout = TreeLayout.GIVTCP3
        for spec in published:
            assert spec.unit in units_of(leaf(tree, spec, layout)), spec.name
        schemas = doc["components"]["schemas"]
        for source, specs in fields.devices.items():
            device = schemas["MeterDetails" if source is Source.METER else "BatteryDetails"]
            if source is Source.LV_BCU:  # plant-wide, at Battery_Details/LV_BCU
                device = tree["properties"]["Battery_Details"]["properties"]["LV_BCU"]
            for spec in specs:
                assert spec.unit in units_of(leaf(device, spec, layout)), spec.name
        power = plain["Power"]["Power"]
        assert isinstance(power["PV_Power"], int)
        assert power["PV_Power"] > 0

        # Wrong documents fail: the schema can tell.
        wrong = [
            _with(plain, ("Power", "Power", "PV_Power"), str(power["PV_Power"])),
            _with(plain, ("Power", "Power", "SOC"), 150),
            _with(plain, ("Power", "Power", "Not_A_Field"), 1),
            _with(plain, ("Control", "Eco_Mode"), True),
            _with(plain, (str(coord.serial), "Invertor_Time"), 1750000000),
            _with(plain, (str(coord.serial), "Modbus_Version"), 1.4),
            _with(units, ("Power", "Power", "PV_Power", "unit"), "kW"),
            _with(units, ("Power", "Power", "PV_Power"), power["PV_Power"]),
        ]
        stack = plain["Battery_Details"]["Battery_Stack_1"]
        serial = next(k for k in stack if isinstance(stack[k], dict))
        cell = ("Battery_Details", "Battery_Stack_1", serial, "Battery_Cell_1_Voltage")
        wrong.append(_with(plain, cell, "3.3"))
        for index, document in enumerate(wrong):
            assert errors(check, document), index


def test_the_charger_routes_are_described_only_where_chargers_are_served() -> None:
    plain, with_chargers = build_openapi(CATALOGUE), build_openapi(CATALOGUE, chargers=True)
    evc = {p for p, item in with_chargers["paths"].items()
           if any(op.get("tags") == ["evc"] for op in item.values())}  # fmt: skip
    assert {"/getEVCCache", "/{serial}/getEVCCache", "/setCurrentLimit", "/controlCharge",
            "/{serial}/setSystemTime"} <= evc  # fmt: skip
    assert not evc & set(plain["paths"])
    assert set(plain["paths"]) < set(with_chargers["paths"])
    assert "evc" not in {t["name"] for t in plain["tags"]}
