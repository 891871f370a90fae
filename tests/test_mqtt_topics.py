"""The pure parts of MQTT: state topics, discovery payloads, topic parsing, availability rule."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import jinja2
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
from tests.mqtt_support import expand, ha_entity_id, problems

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


def test_a_changed_value_that_reads_the_same_is_not_published_again() -> None:
    topics = StateTopics("GivEnergy", publish_json=False)
    assert len(topics.messages(snapshot({"Grid_Voltage": 240.1231}))) == 1
    assert topics.messages(snapshot({"Grid_Voltage": 240.1234})) == []  # "240.123" both times
    assert [m.payload for m in topics.messages(snapshot({"Grid_Voltage": 240.1236}))] == ["240.124"]
    assert topics.messages(snapshot({"Grid_Voltage": 240.124})) == []


def test_inverters_share_their_state_paths_and_keep_no_payloads() -> None:
    """Issue #16: what change detection keeps per inverter is its values under paths every
    inverter shares, not ~900 path and payload strings of its own."""
    one, two = StateTopics("GivEnergy"), StateTopics("GivEnergy")
    one.messages(snapshot(every_value()))
    other = replace(snapshot(every_value()), serial="SA7654G321")
    two.messages(other)
    own = [k for k in two._last if "SA7654G321" in k]  # the inverter's own branch of the tree
    common = [k for k in two._last if k not in own]
    assert len(common) > 200
    theirs = {k: k for k in one._last}
    assert all(theirs[k] is k for k in common)  # the very same string objects
    assert two._last["Power/Power/SOC"] == 1  # the value, not its payload "1"
    assert not any(isinstance(v, tuple) for v in two._last.values())


def test_state_messages_are_made_as_the_publisher_takes_them() -> None:
    """Issue #16: a full state's messages are not all in memory at once; a value counts as
    published when its message is taken, so one not taken is offered again."""
    topics = StateTopics("GivEnergy", publish_json=False)
    every = topics.messages(snapshot({"SOC": 50, "Grid_Voltage": 240.0}))
    topics.reset()
    each = topics.each_message(snapshot({"SOC": 50, "Grid_Voltage": 240.0}))
    assert next(each) == every[0]
    assert len(topics._last) == 1  # the second not made yet
    each.close()  # the publisher stopped (the connection went)
    rest = topics.messages(snapshot({"SOC": 50, "Grid_Voltage": 240.0}))
    assert rest == every[1:]


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
    # What goes out is the compact form; read as Home Assistant reads it, it is the config.
    for e in entities:
        assert expand(e.payload()) == json.loads(json.dumps(e.config)), e.object_id
    assert [p for e in entities for p in problems(e.topic("homeassistant"), e.config)] == []


def by_name(snap: Snapshot | None = None, **cfg: Any) -> dict[str, d.Entity]:
    return {e.config["name"]: e for e in d.entities(snap or snapshot({}), d.DiscoveryConfig(**cfg))}


def test_controls_become_entities_of_their_platform_commanding_their_function() -> None:
    named = by_name()
    target = named["Target SOC"]
    assert target.platform == "number"
    assert target.config["command_topic"] == "GivEnergy/SA1234G567/control/setChargeTarget"
    assert (target.config["min"], target.config["max"]) == (4, 100)
    rate = named["Battery Charge Rate"].config
    assert (rate["min"], rate["unit_of_measurement"], rate["mode"]) == (0, "W", "box")
    assert named["Eco Mode"].config["payload_on"] == "enable"
    assert named["Reboot Inverter"].config["device_class"] == "restart"
    force = named["Force Charge"].config
    assert "state_topic" not in force
    assert "30" in force["options"]


def test_selects_offer_only_what_the_model_accepts() -> None:
    """Every option of every select is a payload its function takes on this model; a read-back
    state that is not an option shows as no choice."""
    entities = d.entities(snapshot(every_value()), d.DiscoveryConfig(time_entities="select"))
    selects = [e for e in entities if e.platform == "select"]
    assert len(selects) > 40
    for e in selects:
        function = e.config["command_topic"].rsplit("/", 1)[-1]
        for option in e.config["options"]:
            CATALOGUE.resolve(function, option, GEN3)  # raises if refused
    named = {e.config["name"]: e.config for e in selects}
    mode = named["Mode"]
    assert mode["options"] == ["Eco", "Eco (Paused)", "Timed Demand", "Timed Export"]
    assert "entity_category" not in mode  # a daily control
    calibration = named["Battery Calibration"]
    assert "Running" not in calibration["options"]
    env = jinja2.Environment()
    for config, shown, expected in (
        (mode, "Export (Paused)", "None"),
        (mode, "Unknown", "None"),
        (mode, "Timed Export", "Timed Export"),
        (calibration, "Running", "None"),
        (calibration, "Off", "Off"),
    ):
        assert env.from_string(config["value_template"]).render(value=shown) == expected


DAILY = {
    "Target SOC", "Mode", "Battery Power Reserve", "Force Charge", "Force Export",
    "Battery Charge Rate", "Battery Discharge Rate", "Enable Charge Schedule",
    "Enable Discharge Schedule", "Charge Start Time Slot 1", "Charge End Time Slot 1",
    "Discharge Start Time Slot 1", "Discharge End Time Slot 1",
}  # fmt: skip


def test_daily_controls_are_in_the_main_category_the_rest_config_or_diagnostic() -> None:
    entities = d.entities(snapshot(every_value()), d.DiscoveryConfig())
    main = {e.config["name"] for e in entities if "entity_category" not in e.config}
    controls = [e for e in entities if e.platform != "sensor"]
    assert {e.config["name"] for e in controls if "entity_category" not in e.config} == DAILY
    assert all(
        e.config.get("entity_category") == "config"
        for e in controls
        if e.config["name"] not in DAILY
    )
    sensors = [e for e in entities if e.platform == "sensor"]
    assert {e.config.get("entity_category") for e in sensors} <= {None, "diagnostic"}
    assert {"SOC", "Battery Power", "PV Power", "Grid Power"} <= main


def test_rates_step_as_the_inverter_stores_them() -> None:
    # 186 Ah x 51.2 V / 100 = 95.232 W per C/100 step (the 2000 W -> 1905 W plant)
    named = by_name(snapshot({"Battery_Nominal_Capacity": 186}))
    for name in ("Battery Charge Rate", "Battery Discharge Rate"):
        rate = named[name].config
        assert rate["step"] == 95.232
        assert rate["command_template"] == "{{ value | round(0) | int }}"
        rendered = jinja2.Environment().from_string(rate["command_template"])
        assert rendered.render(value=21 * 95.232) == "2000"
    assert named["Target SOC"].config["step"] == 1
    assert "command_template" not in named["Target SOC"].config
    # Capacity unknown: whole watts, as before.
    assert by_name()["Battery Charge Rate"].config["step"] == 1


def test_ids_are_givtcps_on_home_assistant_before_and_after_2025_10() -> None:
    snap = replace(snapshot({}), batteries=(device(Source.BATTERY, 0x32, "DZ2348G101"),))
    entities = d.entities(snap, d.DiscoveryConfig())
    # HA < 2025.10 takes object_id, later ones default_entity_id; where neither is sent, both
    # derive GivTCP's id from the device's name and the entity's.
    old = {
        f"{e.platform}.{e.config['object_id']}"
        if "object_id" in e.config
        else ha_entity_id(e.platform, e.config)
        for e in entities
    }
    new = {ha_entity_id(e.platform, e.config) for e in entities}
    assert old == new
    assert 0 < sum("object_id" in e.config for e in entities) < len(entities) / 2
    for entity_id in (
        "sensor.givtcp_sa1234g567_soc",
        "sensor.givtcp_sa1234g567_soc_kwh",
        "sensor.givtcp_sa1234g567_pv_energy_today_kwh",
        "number.givtcp_sa1234g567_battery_charge_rate",
        "select.givtcp_sa1234g567_charge_start_time_slot_1",
        "number.givtcp_sa1234g567_battery_power_reserve",
        "button.givtcp_sa1234g567_reboot_invertor",
        "sensor.givtcp_dz2348g101_battery_soc",  # GivTCP's, not ..._battery_dz..._battery_soc
        "sensor.givtcp_battery_stack_1_bms_temperature",  # GivTCP's stack id, Predbat reads it
    ):
        assert entity_id in new, entity_id


def test_names_are_tidy() -> None:
    snap = replace(snapshot({}), batteries=(device(Source.BATTERY, 0x32, "DZ2348G101"),))
    entities = d.entities(snap, d.DiscoveryConfig())
    names = [e.config["name"] for e in entities]
    for name in names:
        words = name.split()
        assert not {"kWh", "W", "V", "A", "Hz", "Ah"} & set(words), name
        assert all(w[0].isupper() or w[0].isdigit() or w in ("to", "of") for w in words), name
        assert "Invertor" not in words, name
    packs = [e for e in entities if "DZ2348G101" in e.config["unique_id"]]
    pack_names = [e.config["name"] for e in packs]
    assert "Battery SOC" in pack_names
    # What Home Assistant shows: the device's name and the entity's, "Battery" once.
    pack_device = next(e.config["device"]["name"] for e in packs if "name" in e.config["device"])
    assert pack_device == "GivTCP DZ2348G101"
    assert all(f"{pack_device} {n}".count("Battery") == 1 for n in pack_names)
    by_device: dict[str, list[str]] = {}
    for e in entities:
        by_device.setdefault(e.config["device"]["identifiers"][0], []).append(e.config["name"])
    for device_names in by_device.values():  # unique within a device
        assert len(set(device_names)) == len(device_names)


def test_sensor_classes_units_and_model_specific_entities() -> None:
    named = by_name(snapshot(every_value()))
    work = named["Work Time Total"].config
    assert (work["device_class"], work["state_class"], work["unit_of_measurement"]) == (
        "duration",
        "total_increasing",
        "h",
    )
    for name in ("Export Limit", "Inverter Max Power", "Battery Max Power"):
        config = named[name].config
        assert (config["state_class"], config["unit_of_measurement"]) == ("measurement", "W")
    # A Gen3 hybrid answers HR313/314 but has no AC charge/discharge rate.
    assert "Battery Charge Rate AC" not in named
    assert "Battery Discharge Rate AC" not in named
    # HA's grid convention: import and export as two positive power sensors beside Grid_Power.
    for name in ("Import Power", "Export Power", "Grid Power"):
        assert named[name].config["device_class"] == "power"


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


def _slot(messages: list[Any], platform: str, field: str) -> dict[str, Any]:
    payload = {m.topic: m.payload for m in messages}[
        f"homeassistant/{platform}/GivEnergy/{SERIAL}_{field}/config"
    ]
    return expand(payload) if payload else {}


def test_leftover_time_configs_are_recognised_by_serial() -> None:
    topic = f"homeassistant/time/GivEnergy/{SERIAL}_Charge_start_time_slot_1/config"
    assert d.is_leftover("homeassistant", topic, [SERIAL])
    assert not d.is_leftover("homeassistant", topic, ["SA9999G999"])  # another daemon's
    assert not d.is_leftover("homeassistant", topic.replace("/time/", "/select/"), [SERIAL])
    assert d.leftover_time_configs("ha") == "ha/time/GivEnergy/+/config"


def test_time_slots_are_light_selects_or_time_entities_and_the_other_form_removed() -> None:
    snap = snapshot(
        {"Charge_start_time_slot_2": "05:37:00", "Charge_start_time_slot_1": "01:01:00"}
    )
    selects = list(d.messages(snap, d.DiscoveryConfig(time_entities="select")))
    # Predbat's slot: its 5-minute grid, the end of the day and the value the inverter holds.
    first = _slot(selects, "select", "Charge_start_time_slot_1")["options"]
    assert first == sorted([*d.time_grid(5), "23:59:00", "01:01:00"])
    assert len(_slot(selects, "select", "Discharge_end_time_slot_1")["options"]) == 289
    # The others: quarter hours plus the current value.
    second = _slot(selects, "select", "Charge_start_time_slot_2")["options"]
    assert second == sorted([*d.time_grid(15), "05:37:00"])
    assert _slot(selects, "select", "Charge_end_time_slot_3")["options"] == list(d.time_grid(15))
    # (No blind removal of time entities: Home Assistant before 2026.5 warns of each; the
    # service clears the ones the broker retains, see test_mqtt_service.)
    assert not [m for m in selects if "/time/" in m.topic]
    # One shared tuple per step, whatever the number of inverters.
    assert d.time_grid(15) is d.time_grid(15)
    with_step = list(d.messages(snap, d.DiscoveryConfig(time_step=1)))
    assert len(_slot(with_step, "select", "Charge_start_time_slot_1")["options"]) == 1440
    times = list(d.messages(snap, d.DiscoveryConfig(time_entities="time")))
    chosen = _slot(times, "time", "Charge_start_time_slot_1")
    assert "options" not in chosen
    assert chosen["unique_id"] == f"GivTCP_{SERIAL}_Charge_start_time_slot_1_time"
    assert _slot(times, "select", "Charge_start_time_slot_1") == {}
    # A value moving off the grid calls for a new announcement (the select offers it).
    other = snapshot({"Charge_start_time_slot_2": "05:38:00"})
    assert d.signature(snap, d.DiscoveryConfig()) != d.signature(other, d.DiscoveryConfig())
    on_grid = snapshot({"Charge_start_time_slot_2": "05:30:00"})
    assert d.signature(on_grid) == d.signature(snapshot({}))


def test_discovery_is_compact() -> None:
    snap = replace(
        snapshot(every_value(), stats={"Last_Updated_Time": NOW, "Write_Count": 0}),
        batteries=(device(Source.BATTERY, 0x32, "DZ2348G101"),),
    )
    messages = list(d.messages(snap, d.DiscoveryConfig()))
    first, *rest = [json.loads(m.payload) for m in messages if m.payload]
    assert first["~"] == f"GivEnergy/{SERIAL}"
    assert first["o"]["name"] == "givtcp-async"  # origin and the whole device once per device
    assert first["dev"]["mf"] == "GivEnergy"
    assert all("o" not in c or c["dev"].get("mf") for c in rest)
    assert sum("mf" in c["dev"] for c in rest) == 1  # the pack's device
    assert max(len(m.payload) for m in messages if "time_slot" not in m.topic) < 700
    # Time entities: no option lists at all.
    timed = list(d.messages(snap, d.DiscoveryConfig(time_entities="time")))
    slots = [m for m in timed if "/time/" in m.topic]
    assert slots
    assert max(len(m.payload) for m in slots) < 700


def test_ids_follow_the_inverter_name_and_the_device_links_the_dashboard() -> None:
    cfg = d.DiscoveryConfig(device_prefix="GivTCP2", configuration_url="http://pi:6345/")
    soc = next(e for e in d.entities(snapshot({}), cfg) if e.config["name"] == "SOC")
    # Derived by Home Assistant from the device's name and the entity's (no id sent).
    assert ha_entity_id("sensor", soc.config) == "sensor.givtcp2_sa1234g567_soc"
    assert "object_id" not in soc.config
    assert soc.config["device"]["name"] == "GivTCP2 SA1234G567"
    assert soc.config["unique_id"] == "GivTCP2_SA1234G567_SOC"
    assert soc.topic("ha") == "ha/sensor/GivEnergy/SA1234G567_SOC/config"
    first = d.entities(snapshot({}), cfg)[0]
    assert first.config["device"]["configuration_url"] == "http://pi:6345/"
    assert first.config["device"]["sw_version"] == GEN3.firmware
    plain = d.entities(snapshot({}), d.DiscoveryConfig())[0]
    assert "configuration_url" not in plain.config["device"]


def test_signature_changes_with_the_layout_not_with_values() -> None:
    assert d.signature(snapshot({"SOC": 1})) == d.signature(snapshot({"SOC": 2}))
    assert d.signature(snapshot({})) != d.signature(snapshot({}, stats={"Write_Count": 0}))


def test_inverters_of_a_layout_share_the_name_sets_of_their_signatures() -> None:
    one = d.signature(snapshot({"SOC": 1}))
    two = d.signature(replace(snapshot({"SOC": 1}), serial="SA7654G321"))
    sets = [(a, b) for a, b in zip(one, two, strict=True) if isinstance(a, frozenset)]
    assert len(sets) == 2
    assert all(a is b for a, b in sets)  # one copy kept, not one per inverter


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
            (e.topic("homeassistant"), e.config["unique_id"], ha_entity_id(e.platform, e.config))
            for e in entities
        }

    def topics(layout: TreeLayout) -> set[str]:
        return d.state_topics(d.entities(layout_snapshot(layout), d.DiscoveryConfig()))

    assert ids(TreeLayout.GIVTCP3) == ids(TreeLayout.GIVTCP2)
    assert len(ids(TreeLayout.GIVTCP3)) > 200
    moved = topics(TreeLayout.GIVTCP3) - topics(TreeLayout.GIVTCP2)
    assert moved
    assert all(f"/{SERIAL}/{SERIAL}/" in t or "/Battery_Stack_1/" in t for t in moved)
