"""The MQTT service end to end: a real mosquitto, the simulated plant, the real daemon.

A separate aiomqtt client plays Home Assistant, Predbat or a user: it reads what the daemon
publishes and publishes commands. Every wait is for a message or a simulator event. Discovery
is read here in the per-entity format, one topic per entity; tests/test_device_discovery.py
holds the device format (the default) to the same configs and tests its hand-overs.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from givtcp_async.backoff import Backoff
from givtcp_async.simulator.plant import PlantConfig
from givtcp_async.simulator.server import DongleSimulator, SimEvent
from givtcp_async.sinks.mqtt import MqttService
from tests.harness import Rig, running_daemon
from tests.mqtt_support import (
    Watcher,
    by_entity_id,
    expand,
    ha_entity_id,
    problems,
    state_problems,
    watching,
)
from tests.servers import Mosquitto

ROOT = "GivEnergy"
BRIDGE = f"{ROOT}/bridge/status"
FROZEN = PlantConfig(speed=0)


def mqtt_settings(broker: Mosquitto, **extra: Any) -> dict[str, Any]:
    return {
        "host": "127.0.0.1",
        "port": broker.port,
        "client_id": "givtcp-async-test",
        "discovery_format": "entity",
        **extra,
    }


def service(rig: Rig) -> MqttService:
    svc = next(s for s in rig.daemon.services if isinstance(s, MqttService))
    svc.backoff = Backoff(initial=0.05, maximum=0.3)
    svc.ha_birth_delay = (0.0, 0.05)
    return svc


def holding(sim: DongleSimulator) -> dict[tuple[int, int], int]:
    return {(dev, reg): v for (dev, fn, reg), v in sim.store.snapshot().items() if fn == 3}


def is_write(register: int) -> Any:
    def check(ev: SimEvent) -> bool:
        return ev.kind == "request" and getattr(ev.frame, "register", None) == register

    return check


async def started(rig: Rig, w: Watcher, index: int = 0) -> str:
    """The inverter's serial, once its state (after its discovery) has been published."""
    snap = await rig.first_snapshot(index)
    await w.wait_topic(f"{ROOT}/{snap.serial}/runAll")
    return snap.serial


async def test_discovery_payloads_follow_ha_rules_and_every_state_topic_has_a_value(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    async with running_daemon(tmp_path, plant_config=FROZEN, mqtt=mqtt_settings(mosquitto)) as rig:
        async with watching(mosquitto.port, f"{ROOT}/#") as w:
            serial = await started(rig, w)
        # A fresh subscriber sees exactly what the broker retains for Home Assistant.
        ha_cm = watching(mosquitto.port, "homeassistant/#", f"{ROOT}/#")
        ha = await ha_cm.__aenter__()
        await ha.sync()
        mark = ha.mark()
    try:
        # The daemon stopped: it said so on the bridge and on the inverter's availability topic.
        await ha.wait_topic(BRIDGE, "offline", after=mark)
        await ha.wait_topic(f"{ROOT}/{serial}/Stats/status", "offline", after=mark)
    finally:
        await ha_cm.__aexit__(None, None, None)
    assert all(s.retain for s in ha.log[:mark] if not s.topic.startswith("test/"))
    configs = {
        s.topic: expand(s.payload)
        for s in ha.log[:mark]
        if s.topic.startswith("homeassistant/") and s.payload
    }
    retained = {s.topic: s.payload for s in ha.log[:mark]}
    assert len(configs) > 200
    # The inverter's and its packs' announcement: 834 KiB with 1,440 options per slot select,
    # 185 KiB with light selects and two availability topics, 110,139 bytes now (docs/mqtt.md).
    # The meter's configs are left out: the meter scan announces them a poll or two later,
    # before or after the daemon stops here (5,342 bytes more; they meet the rules below).
    size = sum(
        len(s.payload)
        for s in ha.log[:mark]
        if s.topic.startswith("homeassistant/") and "_Meter_ID" not in s.topic
    )
    assert size < 112_000
    found: list[str] = []
    for topic, config in configs.items():
        found += problems(topic, config)
        value = retained.get(config.get("state_topic", ""))
        found += state_problems(topic.split("/")[1], config, value)
    assert found == []
    by_id = by_entity_id(configs)
    low = serial.lower()
    # Predbat's ids and platforms (GivTCP's): slots are selects of HH:MM:SS by default.
    for entity in (
        f"sensor.givtcp_{low}_soc",
        f"sensor.givtcp_{low}_soc_kwh",
        f"number.givtcp_{low}_target_soc",
        f"number.givtcp_{low}_battery_charge_rate",
        f"switch.givtcp_{low}_enable_charge_schedule",
        f"select.givtcp_{low}_mode",
        f"select.givtcp_{low}_charge_start_time_slot_1",
        f"button.givtcp_{low}_reboot_invertor",
    ):
        assert entity in by_id, entity
    # Predbat's slots on its 5-minute grid (plus 23:59:00 and the value the inverter holds).
    slot1 = by_id[f"select.givtcp_{low}_charge_start_time_slot_1"]["options"]
    assert {"00:00:00", "01:05:00", "23:55:00", "23:59:00"} <= set(slot1)
    assert len(slot1) <= 24 * 12 + 2
    # Energy dashboard: grid, solar and both battery directions as energy totals in kWh.
    for name in ("import", "export", "pv", "battery_charge", "battery_discharge"):
        cfg = by_id[f"sensor.givtcp_{low}_{name}_energy_total_kwh"]
        assert (cfg["device_class"], cfg["unit_of_measurement"]) == ("energy", "kWh")
        assert cfg["state_class"] in ("total", "total_increasing")
    # One device per inverter and per battery pack, the packs hanging off the inverter.
    # (Each device's whole block goes out once; its other entities name it by id and name.)
    devices = {
        json.dumps(c["device"], sort_keys=True)
        for c in configs.values()
        if "manufacturer" in c["device"]
    }
    inverter = next(json.loads(d) for d in devices if "via_device" not in json.loads(d))
    assert inverter["name"] == f"GivTCP {serial}"
    assert inverter["manufacturer"] == "GivEnergy"
    packs = [json.loads(d) for d in devices if json.loads(d).get("via_device")]
    assert len(devices) == 3
    assert len(packs) == 2
    assert all(p["via_device"] == inverter["identifiers"][0] for p in packs)


async def test_commands_in_both_topic_forms_write_the_inverter_and_report(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    async with (
        running_daemon(tmp_path, plant_config=FROZEN, mqtt=mqtt_settings(mosquitto)) as rig,
        watching(mosquitto.port, f"{ROOT}/#") as w,
    ):
        serial = await started(rig, w)
        sim_mark, mark = rig.sim.mark(), w.mark()
        await w.client.publish(f"{ROOT}/{serial}/control/setChargeTarget", "55")
        result = await w.result(f"{ROOT}/{serial}/control/setChargeTarget/result", after=mark)
        assert (result["status"], result["serial"]) == ("ok", serial)
        await rig.sim.wait_for(is_write(116), after=sim_mark)
        assert rig.sim.store.holding(116) == 55
        # The new value reaches its state topic (the command triggers a refresh).
        await w.wait_topic(f"{ROOT}/{serial}/Control/Target_SOC", "55", after=mark)

        # GivTCP's form with a JSON payload; an HA time-slot select's option.
        mark = w.mark()
        await w.client.publish(
            f"{ROOT}/control/{serial}/setBatteryReserve", json.dumps({"reservePercent": "20"})
        )
        await w.client.publish(f"{ROOT}/control/{serial}/setChargeStart1", "01:30:00")
        for fn in ("setBatteryReserve", "setChargeStart1"):
            result = await w.result(f"{ROOT}/{serial}/control/{fn}/result", after=mark)
            assert result["status"] == "ok", result
        assert rig.sim.store.holding(110) == 20
        assert rig.sim.store.holding(94) == 130
        # Results are never retained: a replay must not look like a fresh answer.
        assert not any(s.retain for s in w.log[mark:] if s.topic.endswith("/result"))


async def test_bad_commands_get_a_rejected_result_and_change_nothing(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    async with watching(mosquitto.port, f"{ROOT}/+/control/+/result") as w:
        # A retained command waiting on the broker before the daemon starts.
        await w.client.publish(
            f"{ROOT}/control/SA2347G000/setChargeTarget", "60", qos=1, retain=True
        )
        async with running_daemon(
            tmp_path, plant_config=FROZEN, mqtt=mqtt_settings(mosquitto)
        ) as rig:
            snap = await rig.first_snapshot()
            serial = snap.serial
            assert serial == "SA2347G000"
            replayed = await w.result(f"{ROOT}/{serial}/control/setChargeTarget/result", after=0)
            assert replayed["status"] == "rejected"
            assert "retained" in replayed["message"]
            assert replayed["errors"][0]["field"] == "retain"
            before = holding(rig.sim)
            bad = {
                "noSuchFunction": "1",
                "setChargeTarget": "150",
                "setBatteryReserve": "{not json",
                "setChargeStart2": "25:61",
                "enableChargeSchedule": "perhaps",
                "rebootInverter": "",
            }
            mark = w.mark()
            for function, payload in bad.items():
                await w.client.publish(f"{ROOT}/{serial}/control/{function}", payload)
            await w.client.publish(f"{ROOT}/XX0000X000/control/setChargeTarget", "50")
            results = {}
            for function in bad:
                topic = f"{ROOT}/{serial}/control/{function}/result"
                results[function] = await w.result(topic, after=mark)
            stranger = await w.result(f"{ROOT}/XX0000X000/control/setChargeTarget/result",
                                      after=mark)  # fmt: skip
            assert {f: r["status"] for f, r in results.items()} == dict.fromkeys(bad, "rejected")
            assert "not served by this daemon" in stranger["message"]
            # Every refusal names the field, the value received and what is allowed, those
            # refused before the payload is read too.
            assert stranger["errors"] == [
                {"field": "serial", "value": "XX0000X000", "allowed": serial,
                 "message": stranger["message"]}
            ]  # fmt: skip
            assert results["rebootInverter"]["errors"][0]["field"] == "payload"
            for result in (*results.values(), replayed):
                assert all(e["field"] and e["allowed"] for e in result["errors"]), result
            assert results["setBatteryReserve"]["message"]
            # The daemon is still serving: a good command after the bad ones works.
            mark = w.mark()
            await w.client.publish(f"{ROOT}/{serial}/control/setBatteryCutoff", "6")
            good = await w.result(f"{ROOT}/{serial}/control/setBatteryCutoff/result", after=mark)
            assert good["status"] == "ok"
            after = holding(rig.sim)
            changed = {k for k in before if before[k] != after.get(k)}
            assert changed == {(0x11, 114)}


async def test_a_command_the_daemon_fails_on_or_cannot_answer_is_logged_not_dropped(
    tmp_path: Path, mosquitto: Mosquitto, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with (
        running_daemon(tmp_path, plant_config=FROZEN, mqtt=mqtt_settings(mosquitto)) as rig,
        watching(mosquitto.port, f"{ROOT}/+/control/+/result") as w,
    ):
        serial = (await rig.first_snapshot()).serial
        topic = f"{ROOT}/{serial}/control/setChargeTarget"
        # A command published before the daemon subscribes is never delivered to it.
        async with asyncio.timeout(30):
            await service(rig).wait_connected()

        async def broken(function: str, payload: object = None) -> None:
            raise RuntimeError("a bug")

        monkeypatch.setattr(rig.coordinator, "execute", broken)
        with capture_logs() as logs:
            await w.client.publish(topic, "55")
            result = await w.result(f"{topic}/result", after=0, timeout=30)
        assert result["status"] == "failed"
        assert "internal error (RuntimeError)" in result["message"]
        [logged] = [e for e in logs if e["event"] == "MQTT command failed"]
        assert logged["log_level"] == "error"
        assert "exc_info" in logged
        # The connection and the service carry on.
        monkeypatch.undo()
        mark = w.mark()
        await w.client.publish(topic, "56")
        assert (await w.result(f"{topic}/result", after=mark))["status"] == "ok"
        # A command topic of MQTT's maximum length (65535 bytes) leaves no room for its result
        # topic: that is logged and counted. (The command after it is answered once it is.)
        longest = "x" * (65535 - len(f"{ROOT}/{serial}/control/"))
        with capture_logs() as logs:
            await w.client.publish(f"{ROOT}/{serial}/control/{longest}", "1")
            mark = w.mark()
            await w.client.publish(topic, "57")
            assert (await w.result(f"{topic}/result", after=mark))["status"] == "ok"
        [logged] = [e for e in logs if e["event"] == "MQTT command result not delivered"]
        assert (logged["function"], logged["status"]) == (longest, "rejected")
        assert service(rig).stats.results_undelivered == 1
        assert service(rig).stats.connections == 1


async def test_broker_restart_reconnects_republishes_and_serves_commands(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    async with running_daemon(tmp_path, plant_config=FROZEN, mqtt=mqtt_settings(mosquitto)) as rig:
        svc = service(rig)
        async with watching(mosquitto.port, f"{ROOT}/#") as w:
            serial = await started(rig, w)
        await asyncio.to_thread(mosquitto.restart)  # no persistence: every retained message lost
        async with watching(mosquitto.port, f"{ROOT}/#", "homeassistant/#") as w:
            await w.wait_topic(BRIDGE, "online", timeout=15)
            await w.wait_topic(f"{ROOT}/{serial}/runAll")
            async with watching(mosquitto.port, f"{ROOT}/#", "homeassistant/#") as fresh:
                await fresh.sync()  # the broker holds everything again
            assert fresh.latest[f"{ROOT}/{serial}/Power/Power/SOC"].retain
            assert fresh.latest[f"homeassistant/sensor/GivEnergy/{serial}_SOC/config"].retain
            assert fresh.latest[f"{ROOT}/{serial}/Stats/status"].payload == "online"
            mark = w.mark()
            await w.client.publish(f"{ROOT}/{serial}/control/setChargeTarget", "70")
            result = await w.result(f"{ROOT}/{serial}/control/setChargeTarget/result", after=mark)
            assert result["status"] == "ok"
        assert svc.stats.connections == 2


@pytest.mark.parametrize("cut", ["every link", "the daemon's own link"])
async def test_last_wills_mark_the_inverter_offline_when_the_links_die(
    tmp_path: Path, mosquitto: Mosquitto, cut: str
) -> None:
    """Every link cut, as a crash (SIGKILL) or a network fault would: the broker publishes the
    wills, the bridge's and the inverter's. Only the daemon's own link cut: the will holder alone
    would keep the inverter "online", so the session ends, the holder is dropped and its will
    says offline. Both until the daemon is back."""
    async with (
        running_daemon(tmp_path, plant_config=FROZEN, mqtt=mqtt_settings(mosquitto)) as rig,
        watching(mosquitto.port, f"{ROOT}/#") as w,
    ):
        svc = service(rig)
        serial = await started(rig, w)
        status = f"{ROOT}/{serial}/Stats/status"
        await w.wait_topic(status, "online")
        mark = w.mark()
        client = svc._client
        assert client is not None
        holders = list(svc._holders._clients.values())
        assert len(holders) == 1
        for each in (client, *holders) if cut == "every link" else (client,):
            sock = each._client.socket()
            assert isinstance(sock, socket.socket)
            sock.shutdown(socket.SHUT_RDWR)
        await w.wait_topic(BRIDGE, "offline", after=mark)
        await w.wait_topic(status, "offline", after=mark)
        await w.wait_topic(BRIDGE, "online", after=mark)  # the daemon is back
        await w.wait_topic(status, "online", after=mark)


async def test_inverter_availability_follows_whether_it_answers(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    # The daemon runs on the plant's clock at 60x: 5 s polls and offline_after = 60 s (above the
    # 40 s of a poll interval backed off 8x) take 83 ms and 1 s of real time.
    settings = mqtt_settings(mosquitto, offline_after=60)
    async with (
        running_daemon(
            tmp_path, plant_config=PlantConfig(speed=60), use_plant_clock=True, mqtt=settings
        ) as rig,
        watching(mosquitto.port, f"{ROOT}/#") as w,
    ):
        service(rig).health_interval = 0.05
        serial = await started(rig, w)
        status = f"{ROOT}/{serial}/Stats/status"
        await w.wait_topic(status, "online")
        await rig.next_snapshot()  # past the meter scan that follows the first poll
        mark = w.mark()
        rig.sim.refuse_connections(1.0)  # the dongle goes away for a while
        rig.sim.disconnect_all()
        offline = await w.wait_topic(status, "offline", after=mark)
        back = await w.wait_topic(status, "online", after=offline.seq)
        assert back.retain is False  # a live update, retained by the broker for newcomers
        assert w.latest[BRIDGE].payload == "online"  # the daemon itself never went away


async def test_home_assistant_restart_gets_discovery_again(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    async with (
        running_daemon(tmp_path, plant_config=FROZEN, mqtt=mqtt_settings(mosquitto)) as rig,
        watching(mosquitto.port, f"{ROOT}/#", "homeassistant/+/GivEnergy/#") as w,
    ):
        service(rig)
        serial = await started(rig, w)
        mark = w.mark()
        await w.client.publish("homeassistant/status", "online")
        soc = f"homeassistant/sensor/GivEnergy/{serial}_SOC/config"
        await w.wait_topic(soc, after=mark)
        await w.wait_topic(f"{ROOT}/{serial}/Power/Power/SOC", after=mark)


async def test_two_inverters_each_have_their_own_topics_device_and_commands(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    async with (
        running_daemon(
            tmp_path, plants=2, plant_config=FROZEN, mqtt=mqtt_settings(mosquitto)
        ) as rig,
        watching(mosquitto.port, f"{ROOT}/#", "homeassistant/sensor/GivEnergy/#") as w,
    ):
        first, second = await started(rig, w, 0), await started(rig, w, 1)
        assert first != second
        await w.sync()
        soc1 = expand(w.latest[f"homeassistant/sensor/GivEnergy/{first}_SOC/config"].payload)
        soc2 = expand(w.latest[f"homeassistant/sensor/GivEnergy/{second}_SOC/config"].payload)
        assert soc1["device"]["identifiers"] != soc2["device"]["identifiers"]
        assert ha_entity_id("sensor", soc2) == f"sensor.givtcp2_{second.lower()}_soc"
        assert soc2["state_topic"] == f"{ROOT}/{second}/Power/Power/SOC"
        assert soc2["availability_topic"] == f"{ROOT}/{second}/Stats/status"
        before_first = holding(rig.simulators[0])
        mark = w.mark()
        await w.client.publish(f"{ROOT}/{second}/control/setChargeTarget", "42")
        result = await w.result(f"{ROOT}/{second}/control/setChargeTarget/result", after=mark)
        assert result["status"] == "ok"
        assert rig.simulators[1].store.holding(116) == 42
        assert holding(rig.simulators[0]) == before_first


async def test_inverters_polled_together_publish_their_states_one_after_the_other(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    """Issue #16: one inverter's state messages at a time (each inverter's tree, messages and
    publishes in flight never pile up with another's): at the broker, every state publish of
    an inverter runs from its first message to its runAll with none of another's between."""
    async with (
        running_daemon(
            tmp_path, plants=3, plant_config=PlantConfig(speed=1), mqtt=mqtt_settings(mosquitto)
        ) as rig,
        watching(mosquitto.port, f"{ROOT}/#") as w,
    ):
        serials = [await started(rig, w, i) for i in range(3)]
        for serial in serials:  # a first (full) state and a later one of each
            first = await w.wait_topic(f"{ROOT}/{serial}/runAll")
            await w.wait_topic(f"{ROOT}/{serial}/runAll", after=first.seq + 1, timeout=20)
        state = [
            (s.topic.split("/")[1], s.topic.endswith("/runAll"))
            for s in w.log
            if s.topic.split("/")[1] in serials and not s.topic.endswith("/Stats/status")
            and "/control/" not in s.topic
        ]  # fmt: skip
        runs = 0
        current = None
        for serial, last in state:
            assert current in (None, serial), f"{serial}'s state amid {current}'s"
            current = None if last else serial
            runs += last
        assert runs >= 6


def _connections_to(port: int) -> int:
    """Established TCP connections from this process's sockets to 127.0.0.1:``port``."""
    import os

    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    count = 0
    with open("/proc/net/tcp") as table:
        for line in table.readlines()[1:]:
            fields = line.split()
            remote, state, inode = fields[2], fields[3], fields[9]
            if state == "01" and int(remote.split(":")[1], 16) == port and inode in inodes:
                count += 1
    return count


async def test_shutdown_is_prompt_publishes_offline_and_leaves_nothing(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    before = set(asyncio.all_tasks())
    async with watching(mosquitto.port, f"{ROOT}/#") as w:
        async with running_daemon(
            tmp_path, plant_config=FROZEN, mqtt=mqtt_settings(mosquitto)
        ) as rig:
            serial = await started(rig, w)
            # The daemon's, its inverter's last-will holder and the test's.
            assert _connections_to(mosquitto.port) == 3
            service(rig).ha_birth_delay = (0.0, 0.0)
            # A command in flight at shutdown is seen through or cancelled, never left behind.
            await w.client.publish(f"{ROOT}/{serial}/control/setChargeTarget", "45")
            await w.wait(lambda s: s.topic.endswith("/result"))
            # Stop in the middle of a full republish (Home Assistant asked for one).
            await w.client.publish("homeassistant/status", "online")
            await w.client.subscribe("homeassistant/#")
            await w.wait(lambda s: s.topic.startswith("homeassistant/sensor/"))
            mark = w.mark()
            rig.daemon.stop()
            stopping = time.monotonic()
        assert time.monotonic() - stopping < 5.0
        await w.wait_topic(f"{ROOT}/{serial}/Stats/status", "offline", after=mark)
        await w.wait_topic(BRIDGE, "offline", after=mark)
        assert _connections_to(mosquitto.port) == 1  # only the test's own client
    leftover = set(asyncio.all_tasks()) - before
    if leftover:  # cancelled helpers of the test's own client finish their last step
        await asyncio.wait(leftover, timeout=1.0)
    assert [t for t in leftover if not t.done()] == []


@pytest.mark.parametrize("time_entities", ["time"])
async def test_time_entities_replace_the_slot_selects(
    tmp_path: Path, mosquitto: Mosquitto, time_entities: str
) -> None:
    settings = mqtt_settings(mosquitto, time_entities=time_entities)
    # Subscribed before the daemon starts: the select's removal is an empty retained message,
    # which the broker delivers live but does not keep.
    async with (
        watching(mosquitto.port, f"{ROOT}/#", "homeassistant/+/GivEnergy/#") as w,
        running_daemon(tmp_path, plant_config=FROZEN, mqtt=settings) as rig,
    ):
        serial = await started(rig, w)
        slot = expand(
            (
                await w.wait_topic(
                    f"homeassistant/time/GivEnergy/{serial}_Charge_start_time_slot_1/config"
                )
            ).payload
        )
        assert (
            ha_entity_id("time", slot) == f"time.givtcp_{serial.lower()}_charge_start_time_slot_1"
        )
        assert problems(f"homeassistant/time/GivEnergy/{serial}_x/config", slot) == []
        # The select form of the same slot is removed (an empty retained config).
        old = await w.wait_topic(
            f"homeassistant/select/GivEnergy/{serial}_Charge_start_time_slot_1/config"
        )
        assert old.payload == ""
        mark = w.mark()
        await w.client.publish(slot["command_topic"], "02:15:00")  # what HA's time entity sends
        result = await w.result(f"{slot['command_topic']}/result", after=mark)
        assert result["status"] == "ok"
        await w.wait_topic(slot["state_topic"], "02:15:00", after=mark)


async def test_a_start_goes_online_once_with_no_false_timeout(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    """The availability topics over a whole start (the meter scan included) and a stop: no
    offline -> online flap while the first poll runs, and Timeout_Error stays 0 although the
    absent meters' probes go unanswered."""
    async with watching(mosquitto.port, f"{ROOT}/#") as w:
        async with running_daemon(
            tmp_path,
            plant_config=FROZEN,
            mqtt=mqtt_settings(mosquitto),
            # A real dongle's pace: the first poll outlasts the 2 s availability check.
            inverter={"pacing": 0.3},
        ) as rig:
            serial = await started(rig, w)
            # The meter scan follows the first poll; the next poll comes after it.
            after_scan = await rig.next_snapshot()
            await w.wait_topic(f"{ROOT}/{serial}/Stats/Last_Updated_Time",
                               after_scan.stats["Last_Updated_Time"].isoformat())  # fmt: skip
            scanned = rig.daemon.coordinators[0].conn.stats.probe_timeouts
            mark = w.mark()
        await w.wait_topic(BRIDGE, "offline", after=mark)
        await w.wait_topic(f"{ROOT}/{serial}/Stats/status", "offline", after=mark)

    def seen(topic: str) -> list[str]:
        return [s.payload for s in w.log if s.topic == topic and not s.retain]

    assert seen(f"{ROOT}/{serial}/Stats/status") == ["online", "offline"]
    assert seen(BRIDGE) == ["online", "offline"]
    assert scanned > 0  # the scan did probe addresses nothing answered
    assert set(seen(f"{ROOT}/{serial}/Stats/Timeout_Error")) == {"0"}


async def test_selects_again_clear_the_time_entities_left_on_the_broker(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    async with (
        watching(mosquitto.port, f"{ROOT}/#", "homeassistant/time/GivEnergy/#") as w,
        running_daemon(
            tmp_path / "a", plant_config=FROZEN,
            mqtt=mqtt_settings(mosquitto, time_entities="time"),
        ) as rig,
    ):  # fmt: skip
        serial = await started(rig, w)
        await w.wait_topic(f"homeassistant/time/GivEnergy/{serial}_Charge_start_time_slot_1/config")
        left = {s.topic for s in w.log if s.topic.startswith("homeassistant/time/") and s.payload}
    assert len(left) > 20
    # The default ("auto"): Predbat's slots become selects again, their time entities cleared;
    # the other slots stay time entities.
    predbat = {t for t in left if "_time_slot_1/" in t or "pause" in t}
    assert len(predbat) == 6
    async with (
        watching(mosquitto.port, f"{ROOT}/#", "homeassistant/time/GivEnergy/#") as w,
        running_daemon(tmp_path / "b", plant_config=FROZEN, mqtt=mqtt_settings(mosquitto)) as rig,
    ):
        await started(rig, w)
        for topic in predbat:
            await w.wait_topic(topic, "")
        await w.sync()
        assert {s.topic for s in w.log if s.topic in left and not s.payload} == predbat
    async with watching(mosquitto.port, "homeassistant/time/GivEnergy/#") as ha:
        await ha.sync()
        assert {s.topic for s in ha.log if s.payload and s.topic in left} == left - predbat
        assert not [
            s
            for s in ha.log
            if s.payload and s.topic.startswith("homeassistant") and s.topic not in left
        ]
    async with (
        watching(mosquitto.port, f"{ROOT}/#", "homeassistant/time/GivEnergy/#") as w,
        running_daemon(
            tmp_path / "c", plant_config=FROZEN,
            mqtt=mqtt_settings(mosquitto, time_entities="select"),
        ) as rig,
    ):  # fmt: skip
        await started(rig, w)
        for topic in left - predbat:  # each cleared (an empty retained config)
            await w.wait_topic(topic, "")
    async with watching(mosquitto.port, "homeassistant/time/GivEnergy/#") as ha:
        await ha.sync()  # what the broker still retains: nothing
        assert [s.topic for s in ha.log if s.payload and not s.topic.startswith("test/")] == []


async def test_all_entities_announces_the_held_back_values_and_off_removes_them(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    sensors = "homeassistant/sensor/GivEnergy/#"
    async with (
        watching(mosquitto.port, f"{ROOT}/#", sensors) as w,
        running_daemon(
            tmp_path / "a", plant_config=FROZEN,
            mqtt=mqtt_settings(mosquitto, all_entities=True),
        ) as rig,
    ):  # fmt: skip
        serial = await started(rig, w)
        await w.sync()
        configs = {s.topic: expand(s.payload) for s in w.log if s.topic.startswith("homeassis")}
    held = {
        topic: config
        for topic, config in configs.items()
        if config and "/Diagnostics/" in config.get("state_topic", "")
    }
    # A single-phase inverter's diagnostics: the grid-protection trip limits among them.
    assert len(held) > 80
    trip = held[f"homeassistant/sensor/GivEnergy/{serial}_V_Ac_High_Limit_Trip/config"]
    assert trip["entity_category"] == "diagnostic"
    assert trip["enabled_by_default"] is False
    assert trip["state_topic"] == f"{ROOT}/{serial}/Diagnostics/V_Ac_High_Limit_Trip"
    found: list[str] = []
    for topic, config in held.items():
        found += problems(topic, config)
    assert found == []
    # The default again: each of them is removed (an empty retained config), nothing else is.
    async with (
        watching(mosquitto.port, f"{ROOT}/#", sensors) as w,
        running_daemon(tmp_path / "b", plant_config=FROZEN, mqtt=mqtt_settings(mosquitto)) as rig,
    ):
        await started(rig, w)
        for topic in held:
            await w.wait_topic(topic, "")
        await w.sync()
        removed = {s.topic for s in w.log if s.topic.startswith("homeassistant/") and not s.payload}
    assert set(held) <= removed
    assert not removed & (set(configs) - set(held) - _held_meter_phases(configs))
    async with watching(mosquitto.port, sensors) as ha:
        await ha.sync()
        assert not {s.topic for s in ha.log if s.payload} & set(held)


def _held_meter_phases(configs: dict[str, Any]) -> set[str]:
    """The meter's phases 2-3 and totals, held back like the diagnostics."""
    return {t for t, c in configs.items() if c and "/Meter_Details/" in c.get("state_topic", "")
            and c.get("enabled_by_default") is False}  # fmt: skip
