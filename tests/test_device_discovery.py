"""Device-based discovery (``mqtt.discovery_format = "device"``, the default).

The per-entity format's configs are held to Home Assistant's rules by tests/test_mqtt_service.py;
here each family's device payloads must make, as Home Assistant expands them, exactly the same
entities. Then, on a real mosquitto with the real daemon: the demo's announcement in this
format, and the hand-overs between the formats (GivTCP's configs included) in Home Assistant's
order: ``migrate_discovery`` on the old topic, the new configs, the old topic cleared.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from givtcp_async.simulator.plant import Plant, PlantConfig
from givtcp_async.sinks import discovery
from givtcp_async.sinks.discovery import MIGRATE, DiscoveryConfig
from givtcp_async.sinks.retained_configs import MAX_REMEMBERED, RetainedConfigs
from givtcp_async.snapshot import Snapshot
from tests.harness import Rig, running_daemon
from tests.mqtt_support import (
    Watcher,
    by_entity_id,
    expand,
    expand_device,
    ha_configs,
    problems,
    watching,
)
from tests.oracle_support import capture_store, project_run, unique_serials
from tests.servers import Mosquitto
from tests.test_families_oracle import CASES
from tests.test_families_oracle_ems_gw import EMS, GATEWAY

ROOT = "GivEnergy"
PREFIX = "homeassistant"
FROZEN = PlantConfig(speed=0)
Key = tuple[str, str]  # (platform, unique id)


@cache
def family_snapshot(name: str) -> Snapshot:
    if name in CASES:
        case = CASES[name]
        store = capture_store(case.path, case.holding_from, case.device_type)
    else:
        store = capture_store({"ems": EMS, "gateway": GATEWAY}[name])
    return asyncio.run(project_run(unique_serials(store)))


def per_entity(snap: Snapshot, cfg: DiscoveryConfig) -> dict[Key, dict[str, Any]]:
    """The per-entity format's entities as Home Assistant ends up with them: each device's
    whole block (sent once, merged by identifier), no ``origin``."""
    configs = [
        (m.topic.split("/")[1], expand(m.payload))
        for m in discovery.messages(snap, cfg)
        if m.payload
    ]  # fmt: skip
    blocks = {
        c["device"]["identifiers"][0]: c["device"]
        for _, c in configs
        if "manufacturer" in c["device"]
    }  # fmt: skip
    out: dict[Key, dict[str, Any]] = {}
    for platform, config in configs:
        config.pop("origin", None)
        config["device"] = blocks[config["device"]["identifiers"][0]]
        out[(platform, config["unique_id"])] = config
    return out


def per_device(snap: Snapshot, cfg: DiscoveryConfig) -> dict[Key, dict[str, Any]]:
    latest = {m.topic: m.payload for m in discovery.device_messages(snap, cfg)}
    assert all(t.startswith(f"{PREFIX}/device/GivEnergy/{snap.serial}") for t in latest)
    out: dict[Key, dict[str, Any]] = {}
    for topic, config in ha_configs(latest).items():
        assert config.pop("origin") == discovery.ORIGIN
        key = (topic.split("/")[1], config["unique_id"])
        assert key not in out, key
        out[key] = config
    return out


@pytest.mark.parametrize("name", [*CASES, "ems", "gateway"])
@pytest.mark.parametrize("time_entities", ["auto", "select"])
def test_each_familys_device_payloads_make_the_per_entity_formats_entities(
    name: str, time_entities: discovery.TimeEntities
) -> None:
    snap = family_snapshot(name)
    cfg = DiscoveryConfig(root=ROOT, time_entities=time_entities)
    expected = per_entity(snap, cfg)
    assert len(expected) > 40
    assert per_device(snap, cfg) == expected


def test_time_entities_have_a_payload_of_their_own_and_members_their_devices() -> None:
    snap = family_snapshot("gateway")
    payloads = {
        m.topic: json.loads(m.payload)
        for m in discovery.device_messages(snap, DiscoveryConfig(root=ROOT))
    }  # fmt: skip
    serial = snap.serial
    ids = {t.split("/")[3] for t in payloads}
    # The plant, each All-in-One behind the Gateway, its meters: one payload each.
    assert serial in ids
    assert {f"{serial}_aio_1", f"{serial}_aio_2"} <= ids
    for topic, payload in payloads.items():
        platforms = {c["p"] for c in payload["cmps"].values()}
        # Home Assistant before 2026.5 refuses a whole payload with a time component.
        assert ("time" in platforms) == topic.endswith("_time/config"), topic
        assert platforms == {"time"} or "time" not in platforms
        assert payload["avty_t"] == f"{ROOT}/{serial}/Stats/status"
        assert payload["o"]["name"] == "givtcp-async"
        assert payload["dev"]["ids"]


def test_a_component_no_longer_announced_is_removed_and_ids_stay() -> None:
    snap = family_snapshot("gen2")
    cfg = DiscoveryConfig(root=ROOT)
    first = {m.topic: m.payload for m in discovery.device_messages(snap, cfg)}
    topic = f"{PREFIX}/device/GivEnergy/{snap.serial}/config"
    held = discovery.components(first[topic])
    # The same plant twice: the same component ids (from the unique ids), nothing removed.
    again = {m.topic: m.payload for m in discovery.device_messages(snap, cfg)}
    assert again == first
    # A payload at the broker held one more component: it is removed (its platform alone).
    previous = {snap.serial: {**held, "zz9": "sensor"}}
    after = {m.topic: m.payload for m in discovery.device_messages(snap, cfg, previous)}
    cmps = json.loads(after[topic])["cmps"]
    assert cmps["zz9"] == {"p": "sensor"}
    assert discovery.components(after[topic]) == held
    assert "zz9" not in {t.split("/")[3] for t in expand_device(topic, after[topic])}


def test_components_read_back_from_the_broker_are_checked() -> None:
    # Whatever the broker holds on our topic may be anyone's: only ids Home Assistant takes,
    # platforms this project announces, and a bounded number of them, become removals.
    held = {
        "ok1": {"p": "sensor", "name": "x"},
        "bad id": {"p": "sensor", "name": "x"},
        "k2": {"p": "alarm_control_panel", "name": "x"},
        "k3": {"p": "sensor"},
        "k4": "text",
        "k" * 200: {"p": "sensor", "name": "x"},
    }
    assert discovery.components(json.dumps({"cmps": held})) == {"ok1": "sensor"}
    assert discovery.components("not json") == {}
    assert discovery.components(json.dumps([1, 2])) == {}
    many = {f"c{i}": {"p": "sensor", "name": "x"} for i in range(5000)}
    assert len(discovery.components(json.dumps({"cmps": many}))) == discovery.MAX_COMPONENTS


def test_what_the_broker_holds_is_remembered_within_bounds() -> None:
    retained = RetainedConfigs(PREFIX, "device", bound=50)
    payload = json.dumps({"cmps": {f"c{i}": {"p": "sensor", "name": "x"} for i in range(1024)}})
    for n in range(60):  # more payloads than fit, each of the most components read
        retained.seen(f"{PREFIX}/device/GivEnergy/SA2347G000_{n}/config", payload)
        retained.seen(f"{PREFIX}/sensor/GivEnergy/SA2347G000_F{n}/config", '{"name":"x"}')
    held = retained.components()
    assert sum(len(c) for c in held.values()) <= MAX_REMEMBERED
    assert len(held) == MAX_REMEMBERED // 1024
    assert len(retained.others("SA2347G000")) == 50
    # A payload cleared at the broker is forgotten, and makes room.
    retained.seen(f"{PREFIX}/device/GivEnergy/SA2347G000_0/config", "")
    retained.seen(f"{PREFIX}/device/GivEnergy/SA2347G000_59/config", payload)
    assert "SA2347G000_0" not in retained.components()
    assert "SA2347G000_59" in retained.components()
    # The echo of a migrate marker this connection published, and an empty config, are not
    # configs to hand over.
    f0, f1 = (f"{PREFIX}/sensor/GivEnergy/SA2347G000_F{n}/config" for n in (0, 1))
    retained.marking([f0])
    retained.seen(f0, MIGRATE)
    retained.seen(f1, "")
    assert len(retained.others("SA2347G000")) == 48
    assert retained.others("SA2347G001") == []
    # A marker it did not publish was left by a hand-over cut short: it is cleared like a config.
    left = f"{PREFIX}/sensor/GivEnergy/SA2347G001_F0/config"
    retained.seen(left, MIGRATE)
    assert retained.others("SA2347G001") == [left]
    # Once a topic's clearing came back, a marker on it is no longer this connection's echo.
    retained.seen(f0, "")
    retained.seen(f0, MIGRATE)
    assert f0 in retained.others("SA2347G000")


# --- the daemon on a real broker ------------------------------------------------------------


def mqtt_settings(broker: Mosquitto, **extra: Any) -> dict[str, Any]:
    return {"host": "127.0.0.1", "port": broker.port, "client_id": "givtcp-async-test", **extra}


async def announced(rig: Rig, w: Watcher) -> str:
    """The serial, once the whole plant is announced: its meter is found a poll or two after
    the inverter and its packs (state follows discovery)."""
    snap = await rig.first_snapshot(0)
    meter = f"{ROOT}/{snap.serial}/Meter_Details/Meter_ID1/Phase_1_Voltage"
    await w.wait(lambda s: s.topic == meter and not s.retain)  # not an earlier run's
    await w.sync()
    return snap.serial


async def retained(port: int) -> dict[str, str]:
    """What a Home Assistant starting now reads: the discovery configs the broker retains."""
    async with watching(port, f"{PREFIX}/#") as ha:
        await ha.sync()
        return {s.topic: s.payload for s in ha.log if s.payload and s.topic.startswith(PREFIX)}


async def test_the_demo_announces_one_payload_per_device_under_100_kb(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    async with (
        watching(mosquitto.port, f"{ROOT}/#") as w,
        running_daemon(tmp_path, plant_config=FROZEN, mqtt=mqtt_settings(mosquitto)) as rig,
    ):
        serial = await announced(rig, w)
        held = await retained(mosquitto.port)
    assert {t.split("/")[1] for t in held} == {"device"}
    ids = {t.split("/")[3] for t in held}
    assert ids == {
        serial, f"{serial}_time", f"{serial}_DZ2348G101", f"{serial}_DZ2348G102",
        f"{serial}_meter_1",
    }  # fmt: skip
    size = sum(len(p.encode()) for p in held.values())
    assert size < 100_000  # issue 14's goal for the demo (115 KB in the per-entity format)
    configs = ha_configs(held)
    assert len(configs) > 250
    found = [p for topic, config in configs.items() for p in problems(topic, config)]
    assert found == []
    by_id = by_entity_id(configs)
    low = serial.lower()
    for entity in (
        f"sensor.givtcp_{low}_soc_kwh", f"number.givtcp_{low}_target_soc",
        f"select.givtcp_{low}_charge_start_time_slot_1", f"select.givtcp_{low}_mode",
        f"switch.givtcp_{low}_enable_charge_schedule", f"button.givtcp_{low}_reboot_invertor",
        "sensor.givtcp_dz2348g101_battery_soc", "sensor.givtcp_battery_stack_1_bms_temperature",
    ):  # fmt: skip
        assert entity in by_id, entity


async def first_announced(
    tmp_path: Path, mosquitto: Mosquitto, **mqtt: Any
) -> tuple[str, dict[str, str]]:
    """A daemon started with ``mqtt`` settings and stopped once its whole plant is announced:
    its serial, and the discovery configs the broker retains after it."""
    async with (
        watching(mosquitto.port, f"{ROOT}/#") as w,
        running_daemon(tmp_path, plant_config=FROZEN, mqtt=mqtt_settings(mosquitto, **mqtt)) as rig,
    ):  # fmt: skip
        serial = await announced(rig, w)
    return serial, await retained(mosquitto.port)


async def switched(
    tmp_path: Path, mosquitto: Mosquitto, old: Iterable[str], **mqtt: Any
) -> Watcher:
    """What a watcher saw of a daemon started with ``mqtt`` settings on a broker that holds
    the ``old`` configs, once each of them is cleared."""
    async with (
        watching(mosquitto.port, f"{PREFIX}/#", f"{ROOT}/#") as ha,
        running_daemon(tmp_path, plant_config=FROZEN, mqtt=mqtt_settings(mosquitto, **mqtt)) as rig,
    ):  # fmt: skip
        await announced(rig, ha)
        for topic in old:
            await ha.wait_topic(topic, "")
        await ha.sync()
    return ha


def assert_handed_over(ha: Watcher, old: Iterable[str], *, to_device: bool) -> None:
    """Home Assistant's order on each old topic: let go (keeping the entity), the first config
    of the new format, then clear."""
    first_new = min(
        s.seq
        for s in ha.log
        if s.topic.startswith(f"{PREFIX}/")
        and s.payload
        and (s.topic.startswith(f"{PREFIX}/device/") == to_device)
    )
    for topic in old:
        (migrate_at, migrate), (clear_at, clear) = [
            (s.seq, s.payload) for s in ha.log if s.topic == topic
        ][-2:]
        assert (migrate, clear) == (MIGRATE, "")
        assert migrate_at < first_new < clear_at, topic


async def test_per_entity_configs_are_handed_over_to_device_payloads_and_back(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    port = mosquitto.port
    serial, legacy = await first_announced(tmp_path / "a", mosquitto, discovery_format="entity")
    # GivTCP's configs of an entity this daemon does not announce (its own unique id) are
    # handed over as well: every config of the inverter's serial is.
    givtcp_only = f"{PREFIX}/sensor/GivEnergy/{serial}_Some_Old_Value/config"
    async with watching(port) as old:
        await old.client.publish(givtcp_only, json.dumps({"name": "x"}), qos=1, retain=True)
    legacy[givtcp_only] = json.dumps({"name": "x"})
    entities = {
        (t.split("/")[1], expand(p)["unique_id"]) for t, p in legacy.items() if "uniq_id" in p
    }
    assert len(legacy) > 250
    assert all(t.split("/")[1] != "device" for t in legacy)

    ha = await switched(tmp_path / "b", mosquitto, legacy)
    assert_handed_over(ha, legacy, to_device=True)
    now = await retained(port)
    assert {t.split("/")[1] for t in now} == {"device"}
    taken = {(t.split("/")[1], c["unique_id"]) for t, c in ha_configs(now).items()}
    assert entities <= taken  # every entity announced before is announced again, same id

    # And back: the device payloads are handed over to per-entity configs the same way.
    ha = await switched(tmp_path / "c", mosquitto, now, discovery_format="entity")
    assert_handed_over(ha, now, to_device=False)
    back = await retained(port)
    assert all(t.split("/")[1] != "device" for t in back)
    assert entities <= {(t.split("/")[1], expand(p)["unique_id"]) for t, p in back.items()}


async def test_markers_left_by_a_hand_over_cut_short_are_cleared(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    """A connection lost between the migrate markers and the clearing leaves the markers
    retained; the next connection hands them over like configs. Another inverter's stay."""
    serial = Plant(FROZEN).serial
    ours = f"{PREFIX}/sensor/GivEnergy/{serial}_Battery_SOC/config"
    theirs = f"{PREFIX}/sensor/GivEnergy/SA0000X999_Battery_SOC/config"
    async with watching(mosquitto.port) as old:
        for topic in (ours, theirs):
            await old.client.publish(topic, MIGRATE, qos=1, retain=True)
    ha = await switched(tmp_path, mosquitto, [ours])  # waits until it is cleared
    assert_handed_over(ha, [ours], to_device=True)
    held = await retained(mosquitto.port)
    assert ours not in held
    assert held[theirs] == MIGRATE


async def test_components_and_payloads_no_longer_announced_are_removed(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    port = mosquitto.port
    serial, before = await first_announced(tmp_path / "a", mosquitto, all_entities=True)
    main = f"{PREFIX}/device/GivEnergy/{serial}/config"
    time_payload = f"{PREFIX}/device/GivEnergy/{serial}_time/config"
    assert time_payload in before
    held = discovery.components(before[main])
    diagnostics = {
        topic.split("/")[3]
        for topic, config in expand_device(main, before[main]).items()
        if "/Diagnostics/" in config.get("state_topic", "")
    }
    assert len(diagnostics) > 80

    # The default again, and every slot a select: the held-back values' components are
    # removed from the inverter's payload, the time entities' payload is cleared.
    async with (
        watching(port, f"{ROOT}/#", main) as w,
        running_daemon(
            tmp_path / "b", plant_config=FROZEN,
            mqtt=mqtt_settings(mosquitto, time_entities="select"),
        ) as rig,
    ):  # fmt: skip
        await announced(rig, w)
    # Its first announcement removes them (a later one, the meter's, has no more to remove).
    first = next(s for s in w.log if s.topic == main and not s.retain)
    removed = {k for k, c in json.loads(first.payload)["cmps"].items() if len(c) == 1}
    assert removed == set(held) - set(discovery.components(first.payload))
    assert removed >= diagnostics
    after = await retained(port)
    assert time_payload not in after
    # The packs' and the meter's payloads stay (the meter is found after the first one).
    assert {t.split("/")[3] for t in after} == {t.split("/")[3] for t in before} - {
        f"{serial}_time"
    }
    cmps: Mapping[str, Any] = json.loads(after[main])["cmps"]
    assert not diagnostics & set(discovery.components(after[main]))
    slots = {c.get("name") for c in cmps.values() if c.get("p") == "select"}
    assert "Charge Start Time Slot 2" in slots
