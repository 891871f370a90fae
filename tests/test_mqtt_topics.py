"""The pure parts of MQTT: state topics, discovery payloads, topic parsing, availability rule."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from givtcp_async.config import Settings
from givtcp_async.control.catalogue import CATALOGUE
from givtcp_async.layout import TreeLayout
from givtcp_async.ports import Health
from givtcp_async.quality.gates import Reading
from givtcp_async.registers.catalog import derived_for, fields_for
from givtcp_async.registers.inverter import CONTROL_FIELDS
from givtcp_async.registers.models import detect_model
from givtcp_async.registers.schema import Source
from givtcp_async.sinks import discovery as d
from givtcp_async.sinks.mqtt import configuration_url, is_online, parse_command_topic
from givtcp_async.sinks.state_topics import StateTopics
from givtcp_async.snapshot import DeviceSnapshot, Snapshot, Spec
from tests.mqtt_support import problems

GEN3 = detect_model({0: 0x2001, 19: 308, 21: 308})
_FIELDS = fields_for(GEN3)
SPECS: dict[str, Spec] = {f.name: f for f in _FIELDS}
SPECS.update({x.name: x for x in derived_for(GEN3, _FIELDS)})
SERIAL = "SA1234G567"
NOW = datetime(2026, 6, 21, 12, 0, tzinfo=UTC)


def snapshot(values: dict[str, Any], stats: dict[str, Any] | None = None) -> Snapshot:
    return Snapshot(
        SERIAL, GEN3, NOW, {n: Reading(v) for n, v in values.items()}, SPECS, stats=stats or {}
    )


def every_value() -> dict[str, Any]:
    """A plausible value for every spec (the paths matter here, not the numbers)."""
    out: dict[str, Any] = {}
    for name, spec in SPECS.items():
        options = getattr(spec, "options", None)
        out[name] = next(iter(options.values())) if options else 1
    return out


def test_state_topics_publish_everything_first_then_only_changes() -> None:
    topics = StateTopics("GivEnergy")
    first = topics.messages(snapshot({"SOC": 50, "Grid_Voltage": 240.123456}))
    by_topic = {m.topic: m.payload for m in first}
    assert by_topic["GivEnergy/SA1234G567/Power/Power/SOC"] == "50"
    assert by_topic["GivEnergy/SA1234G567/Power/Power/Grid_Voltage"] == "240.123"
    assert json.loads(by_topic["GivEnergy/SA1234G567/runAll"])["Power"]["Power"]["SOC"] == 50
    assert all(m.retain for m in first)
    again = topics.messages(snapshot({"SOC": 51, "Grid_Voltage": 240.123456}))
    assert [m.topic for m in again] == [
        "GivEnergy/SA1234G567/Power/Power/SOC",
        "GivEnergy/SA1234G567/runAll",
    ]
    topics.reset()
    assert len(topics.messages(snapshot({"SOC": 51, "Grid_Voltage": 1.0}))) == 3


def test_state_topics_never_publish_unavailable_or_excluded_values() -> None:
    topics = StateTopics("GivEnergy", exclude=("Stats/status",), publish_json=False)
    snap = snapshot(
        {"SOC": None, "Grid_Voltage": float("nan"), "PV_Power": 10},
        stats={"status": "online", "Time_Since_Last_Update": None, "Write_Count": 3},
    )
    assert {m.topic: m.payload for m in topics.messages(snap)} == {
        "GivEnergy/SA1234G567/Power/Power/PV_Power": "10",
        "GivEnergy/SA1234G567/Stats/Write_Count": "3",
    }


def test_changes_only_off_republishes_everything() -> None:
    topics = StateTopics("GivEnergy", changes_only=False, retain=False)
    snap = snapshot({"SOC": 50})
    assert topics.messages(snap) == topics.messages(snap)
    assert not any(m.retain for m in topics.messages(snap))


def device(source: Source, address: int, serial: str) -> DeviceSnapshot:
    specs = {f.name: f for f in fields_for(GEN3, source=source)}
    return DeviceSnapshot(address, serial, {n: Reading(1) for n in specs}, specs)


def layout_snapshot(layout: TreeLayout) -> Snapshot:
    return replace(
        snapshot(every_value(), stats={"Last_Updated_Time": NOW, "Write_Count": 0}),
        batteries=(device(Source.BATTERY, 0x32, "DZ2348G101"),),
        meters=(device(Source.METER, 1, ""),),
        layout=layout,
    )


@pytest.mark.parametrize("layout", list(TreeLayout))
def test_every_discovered_state_topic_is_one_the_state_publisher_writes(
    layout: TreeLayout,
) -> None:
    snap = layout_snapshot(layout)
    published = StateTopics("GivEnergy").topics(snap)
    entities = d.entities(snap, d.DiscoveryConfig())
    assert d.state_topics(entities) <= set(published)
    assert "GivEnergy/SA1234G567/Meter_Details/Meter_ID1" in str(d.state_topics(entities))
    pack = next(e for e in entities if "DZ2348G101" in e.config["unique_id"])
    stack = {TreeLayout.GIVTCP3: "Battery_Stack_1/", TreeLayout.GIVTCP2: ""}[layout]
    pack_base = f"GivEnergy/SA1234G567/Battery_Details/{stack}DZ2348G101/"
    assert str(pack.config["state_topic"]).startswith(pack_base)
    details = {TreeLayout.GIVTCP3: SERIAL, TreeLayout.GIVTCP2: "Invertor_Details"}[layout]
    firmware = next(e for e in entities if e.config["unique_id"].endswith("_Invertor_Firmware"))
    assert firmware.config["state_topic"] == f"GivEnergy/{SERIAL}/{details}/Invertor_Firmware"
    assert pack.config["device"]["via_device"] == "givtcp_SA1234G567"
    assert len({e.config["unique_id"] for e in entities}) == len(entities)
    assert [p for e in entities for p in problems(e.topic("homeassistant"), e.config)] == []


def test_controls_become_entities_of_their_platform_commanding_their_function() -> None:
    by_name = {e.config["name"]: e for e in d.entities(snapshot({}), d.DiscoveryConfig())}
    target = by_name["Target SOC"]
    assert target.platform == "number"
    assert target.config["command_topic"] == "GivEnergy/SA1234G567/control/setChargeTarget"
    assert (target.config["min"], target.config["max"]) == (4, 100)
    rate = by_name["Battery Charge Rate"].config
    assert (rate["min"], rate["unit_of_measurement"], rate["mode"]) == (0, "W", "box")
    assert by_name["Eco Mode"].config["payload_on"] == "enable"
    mode = by_name["Mode"].config
    assert mode["options"][:4] == ["Eco", "Eco (Paused)", "Timed Demand", "Timed Export"]
    assert "Export (Paused)" in mode["options"]  # read-back state, shown but not settable
    assert by_name["Reboot Invertor"].config["device_class"] == "restart"
    force = by_name["Force Charge"].config
    assert "state_topic" not in force
    assert "30" in force["options"]


def test_a_setting_without_its_function_on_this_model_is_a_read_only_sensor() -> None:
    # A Gen3 hybrid that answers HR311 (AC-coupled export priority) cannot set it.
    priority = next(f for f in CONTROL_FIELDS if f.name == "Export_Priority")
    snap = Snapshot(SERIAL, GEN3, NOW, {}, {**SPECS, priority.name: priority})
    entity = next(
        e for e in d.entities(snap, d.DiscoveryConfig()) if e.config["name"] == "Export Priority"
    )
    assert entity.platform == "sensor"
    assert entity.config["device_class"] == "enum"
    assert entity.config["options"] == ["Load", "Battery", "Grid"]
    assert entity.config["entity_category"] == "diagnostic"  # never "config" for a sensor
    assert "command_topic" not in entity.config


def test_time_slots_as_selects_or_time_entities_and_the_other_form_removed() -> None:
    snap = snapshot({})
    start = f"{SERIAL}_Charge_start_time_slot_1"
    selects = d.messages(snap, d.DiscoveryConfig(time_entities="select"))
    by_topic = {m.topic: m.payload for m in selects}
    chosen = json.loads(by_topic[f"homeassistant/select/GivEnergy/{start}/config"])
    assert chosen["options"][0] == "00:00:00"
    assert chosen["options"][-1] == "23:59:00"
    assert by_topic[f"homeassistant/time/GivEnergy/{start}/config"] == ""
    times = {m.topic: m.payload for m in d.messages(snap, d.DiscoveryConfig(time_entities="time"))}
    chosen = json.loads(times[f"homeassistant/time/GivEnergy/{start}/config"])
    assert "options" not in chosen
    assert chosen["unique_id"] == f"GivTCP_{SERIAL}_Charge_start_time_slot_1_time"
    assert times[f"homeassistant/select/GivEnergy/{start}/config"] == ""
    # Removals come before the announcements, so a removal never deletes a fresh config.
    kinds = [m.payload == "" for m in d.messages(snap, d.DiscoveryConfig())]
    assert kinds == sorted(kinds, reverse=True)


def test_ids_follow_the_inverter_name_and_the_device_links_the_dashboard() -> None:
    cfg = d.DiscoveryConfig(device_prefix="GivTCP2", configuration_url="http://pi:6345/")
    soc = next(e for e in d.entities(snapshot({}), cfg) if e.config["name"] == "SOC")
    assert soc.config["default_entity_id"] == "sensor.givtcp2_sa1234g567_soc"
    assert soc.config["unique_id"] == "GivTCP2_SA1234G567_SOC"
    assert soc.topic("ha") == "ha/sensor/GivEnergy/SA1234G567_SOC/config"
    assert soc.config["device"]["configuration_url"] == "http://pi:6345/"
    assert soc.config["device"]["sw_version"] == GEN3.firmware
    plain = next(e for e in d.entities(snapshot({}), d.DiscoveryConfig()) if e.object_id)
    assert "configuration_url" not in plain.config["device"]


def test_signature_changes_with_the_layout_not_with_values() -> None:
    assert d.signature(snapshot({"SOC": 1})) == d.signature(snapshot({"SOC": 2}))
    assert d.signature(snapshot({})) != d.signature(snapshot({}, stats={"Write_Count": 0}))


@pytest.mark.parametrize(
    ("topic", "expected"),
    [
        ("GivEnergy/SA1234G567/control/setChargeTarget", ("SA1234G567", "setChargeTarget")),
        ("GivEnergy/control/SA1234G567/setChargeTarget", ("SA1234G567", "setChargeTarget")),
        ("GivEnergy/SA1234G567/control/setChargeTarget/result", None),
        ("GivEnergy/SA1234G567/Control/Target_SOC", None),
        ("Other/SA1234G567/control/setChargeTarget", None),
        ("GivEnergy/SA1234G567/control/", None),
    ],
)
def test_command_topics_in_both_forms(topic: str, expected: tuple[str, str] | None) -> None:
    assert parse_command_topic("GivEnergy", topic) == expected


def test_command_topics_under_a_multi_level_root() -> None:
    assert parse_command_topic("home/ge", "home/ge/control/SA1/x") == ("SA1", "x")


def _health(last: datetime | None) -> Health:
    return Health(True, True, True, last, 0, 1, 0, 1)


def test_online_means_a_good_poll_within_offline_after() -> None:
    assert not is_online(_health(None), NOW, 60)
    assert is_online(_health(NOW - timedelta(seconds=60)), NOW, 60)
    assert not is_online(_health(NOW - timedelta(seconds=61)), NOW, 60)


def test_configuration_url_points_at_the_rest_api() -> None:
    base = {"inverters": [{"host": "10.0.0.2"}]}
    assert configuration_url(Settings.model_validate({**base, "rest": {"enabled": False}})) is None
    url = configuration_url(Settings.model_validate({**base, "rest": {"host": "::1"}}))
    assert url == "http://[::1]:6345/"
    anywhere = configuration_url(Settings.model_validate({**base, "rest": {"host": "0.0.0.0"}}))
    assert anywhere is not None
    assert "0.0.0.0" not in anywhere


def test_every_settable_function_with_a_read_back_is_reachable_from_home_assistant() -> None:
    entities = d.entities(snapshot({}), d.DiscoveryConfig())
    commanded = {e.config.get("command_topic", "").rsplit("/", 1)[-1] for e in entities}
    wanted, without_state = set(), set()
    for fn in CATALOGUE.available(GEN3):
        if fn.ha is None:
            continue
        field = fn.mirrors.rsplit("/", 1)[-1] if fn.mirrors else None
        if field in SPECS or fn.ha.platform.value == "button" or fn.override:
            wanted.add(fn.name)
        else:
            without_state.add(fn.name)
    assert len(wanted) > 40
    assert wanted <= commanded
    # A control whose setting cannot be read back (its block was not found) is not offered.
    assert not without_state & commanded


def test_the_layout_moves_state_topics_never_entity_ids() -> None:
    def ids(layout: TreeLayout) -> set[tuple[str, str, str]]:
        entities = d.entities(layout_snapshot(layout), d.DiscoveryConfig())
        return {
            (e.topic("homeassistant"), e.config["unique_id"], e.config["default_entity_id"])
            for e in entities
        }

    def topics(layout: TreeLayout) -> set[str]:
        return d.state_topics(d.entities(layout_snapshot(layout), d.DiscoveryConfig()))

    assert ids(TreeLayout.GIVTCP3) == ids(TreeLayout.GIVTCP2)
    assert len(ids(TreeLayout.GIVTCP3)) > 200
    moved = topics(TreeLayout.GIVTCP3) - topics(TreeLayout.GIVTCP2)
    assert moved
    assert all(f"/{SERIAL}/{SERIAL}/" in t or "/Battery_Stack_1/" in t for t in moved)
