"""The daemon with an EV charger: GivTCP's EVC tree on MQTT with its own Home Assistant device,
commands on GivTCP's control topics, REST /getEVCCache and the charger's POST routes, InfluxDB
points; and the CLI's simulate --evc, demo --evc and discover. The charger is the simulated one
over real Modbus TCP; its registers are read back with pymodbus's client."""

from __future__ import annotations

import asyncio
import copy
import json
import signal
from pathlib import Path
from typing import Any

import aiohttp

from givtcp_async.evc.controls import EVC_FUNCTIONS
from givtcp_async.evc.simulator import Car, ChargerSimulator
from givtcp_async.sinks.state_topics import leaves, payload_text
from tests.evc_support import read_hr
from tests.harness import running_daemon
from tests.mqtt_support import problems, watching
from tests.servers import Mosquitto, VictoriaMetrics, free_port
from tests.test_cli import CLI, clean_env, cli
from tests.test_influx import influx_settings, stored
from tests.test_openapi import errors, validator

FAST_CHARGER = {"poll_interval": 2.0, "timeout": 0.5, "lockout_after": 3, "lockout_pause": 1.0}
ROOT = "GivEnergy"


def charger_entry(sim: ChargerSimulator) -> dict[str, Any]:
    return {"host": "127.0.0.1", "port": sim.port, **FAST_CHARGER}


async def test_mqtt_discovery_commands_and_influx(
    tmp_path: Path, mosquitto: Mosquitto, victoria: VictoriaMetrics
) -> None:
    sim = ChargerSimulator()
    sim.plug_in(Car())
    await sim.start()
    serial = sim.serial
    try:
        async with (
            watching(mosquitto.port, f"{ROOT}/#", "homeassistant/#") as watch,
            running_daemon(
                tmp_path,
                mqtt={"host": "127.0.0.1", "port": mosquitto.port},
                influx=influx_settings(victoria.url),
                chargers=[charger_entry(sim)],
            ) as rig,
        ):
            charger = rig.daemon.chargers[0]
            base = f"{ROOT}/{serial}"
            await watch.wait_topic(f"{base}/Charger/Charging_State", "Charging", timeout=15)
            await watch.wait_topic(f"{base}/Stats/status", "online")
            await watch.wait_topic(f"{base}/runAll")
            snap = charger.snapshot
            assert snap is not None
            # Every value of GivTCP's EVC tree, under <root>/<charger serial>/Charger/.
            for path, value in leaves(snap.runall()).items():
                if path.startswith("Charger/") and not path.endswith("Time"):
                    assert watch.latest[f"{base}/{path}"].payload == payload_text(value), path

            # Its own Home Assistant device, GivTCP's ids, valid for Home Assistant.
            limit = await watch.wait_topic(
                f"homeassistant/number/GivEnergy/{serial}_Charge_Limit/config"
            )
            config = json.loads(limit.payload)
            assert config["unique_id"] == f"GivTCP_{serial}_Charge_Limit"
            assert config["default_entity_id"] == f"number.givtcp_{serial.lower()}_charge_limit"
            assert config["device"]["identifiers"] == [f"{serial}_Charger"]
            assert (config["min"], config["max"]) == (6.0, 32.0)
            assert config["command_topic"] == f"{base}/control/setCurrentLimit"
            await watch.sync()
            charger_configs = [
                s for t, s in watch.latest.items()
                if t.startswith("homeassistant/") and f"/{serial}_" in t
            ]  # fmt: skip
            assert len(charger_configs) >= 25
            for seen in charger_configs:
                assert problems(seen.topic, json.loads(seen.payload)) == [], seen.topic
            selects = {s.topic.split("/")[3] for s in charger_configs if "/select/" in s.topic}
            assert selects == {f"{serial}_Charge_Control", f"{serial}_Charging_Mode"}

            # Commands on GivTCP's topic and on the project's; results on .../result.
            mark = watch.mark()
            await watch.client.publish(f"{ROOT}/control/{serial}/setCurrentLimit", "16")
            result = await watch.result(f"{base}/control/setCurrentLimit/result", after=mark)
            assert result["status"] == "ok", result
            assert await read_hr(sim.port, 91, 1) == [160]
            await watch.wait_topic(f"{base}/Charger/Charge_Limit", "16", after=mark)
            mark = watch.mark()
            await watch.client.publish(f"{base}/control/controlCharge", "Stop")
            result = await watch.result(f"{base}/control/controlCharge/result", after=mark)
            assert result["status"] == "ok", result
            assert await read_hr(sim.port, 95, 1) == [2]
            # A bad payload: refused, nothing written.
            writes = list(sim.writes)
            mark = watch.mark()
            await watch.client.publish(f"{base}/control/setCurrentLimit", "99")
            result = await watch.result(f"{base}/control/setCurrentLimit/result", after=mark)
            assert result["status"] == "rejected"
            assert result["errors"][0]["field"] == "current"
            assert sim.writes == writes

            # InfluxDB: one evc point per poll, tagged with the charger's serial.
            samples = await stored(victoria, serial, until=1)
            names = {name for name, _, _ in samples}
            assert {"evc_active_power", "evc_meter_energy", "evc_voltage_l1"} <= names
    finally:
        await sim.close()


async def test_rest_evc_cache_and_commands(tmp_path: Path) -> None:
    sim = ChargerSimulator()
    sim.plug_in(Car())
    await sim.start()
    port = free_port()
    try:
        async with (
            running_daemon(
                tmp_path, rest={"enabled": True, "port": port}, chargers=[charger_entry(sim)]
            ) as rig,
            aiohttp.ClientSession() as http,
        ):
            charger = rig.daemon.chargers[0]
            serial = await asyncio.wait_for(charger.wait_identified(), 10)
            async with asyncio.timeout(10):
                async for _snap in charger.updates():
                    break
            url = f"http://127.0.0.1:{port}"

            async def call(method: str, path: str, body: Any = None) -> tuple[int, Any]:
                data = body if body is None or isinstance(body, str) else json.dumps(body)
                async with http.request(method, f"{url}{path}", data=data) as resp:
                    return resp.status, await resp.json()

            status, tree = await call("GET", "/getEVCCache")
            assert status == 200
            assert tree["Charger"]["Serial_Number"] == serial
            assert (await call("GET", f"/{serial}/getEVCCache"))[0] == 200
            status, body = await call("POST", "/setCurrentLimit", {"current": "10"})
            assert status == 200, body
            assert body["serial"] == serial
            assert body["written"] == [{"register": 91, "value": 100}]
            assert await read_hr(sim.port, 91, 1) == [100]
            status, body = await call("POST", f"/{serial}/setChargeControl", {"mode": "Stop"})
            assert status == 200, body
            assert await read_hr(sim.port, 95, 1) == [2]
            writes = list(sim.writes)
            status, body = await call("POST", "/setCurrentLimit", {"current": "99"})
            assert status == 422
            assert body["errors"][0]["field"] == "current"
            assert body["errors"][0]["allowed"] == "6-32 A"
            assert (await call("POST", "/setImportCap", "lots"))[0] == 422
            assert (await call("POST", "/setMaxSessionEnergy", "[1]"))[0] == 400
            assert sim.writes == writes
            status, body = await call("GET", "/setCurrentLimit")
            assert status == 405
            assert (await call("POST", f"/{serial}/setWarpDrive", {}))[0] == 404
            status, body = await call("POST", "/setImportCap", {"current": "40"})
            assert status == 200, body
            async with asyncio.timeout(10):  # the command asked for a poll: the next snapshot
                async for snap in charger.updates():
                    if snap.value("Import_Cap") == 40:
                        break
            status, tree = await call("GET", "/getEVCCache")
            assert tree["Charger"]["Import_Cap"] == 40
            # The inverter's routes are untouched.
            assert (await call("GET", "/runAll"))[0] == 200
            status, health = await call("GET", "/health")
            assert health["chargers"][0]["serial"] == serial
            await openapi_and_metrics(http, url, serial, charger)
    finally:
        await sim.close()


async def openapi_and_metrics(
    http: aiohttp.ClientSession, url: str, serial: str, charger: Any
) -> None:
    """The charger's routes are in /openapi.json with the catalogue's payload schemas, its real
    answers validate against the document and wrong ones do not; /metrics shows its values."""
    async with http.get(f"{url}/openapi.json") as resp:
        doc = await resp.json()
    paths = doc["paths"]
    assert "evc" in {tag["name"] for tag in doc["tags"]}
    for fn in EVC_FUNCTIONS:
        for name in (fn.name, *fn.aliases):
            for path in (f"/{name}", f"/{{serial}}/{name}"):
                op = paths[path]["post"]
                assert op["tags"] == ["evc"], path
                body = op["requestBody"]["content"]["application/json"]
                schema = validator(doc, body["schema"])
                assert errors(schema, body["example"]) == [], path
                assert errors(schema, {"no_such_field": 1}), path
    limit = validator(doc, {"$ref": "#/components/schemas/evc_setCurrentLimitPayload"})
    assert errors(limit, {"current": 16}) == []
    assert errors(limit, {"current": 33})
    assert "/runAll" in paths  # the inverter's routes stay
    for path in ("/getEVCCache", "/{serial}/getEVCCache"):
        answer = paths[path]["get"]["responses"]["200"]["content"]["application/json"]
        check = validator(doc, answer["schema"])
        async with http.get(f"{url}/getEVCCache") as resp:
            tree = await resp.json()
        assert errors(check, tree) == [], path
        wrong = copy.deepcopy(tree)
        wrong["Charger"]["Charge_Limit"] = "sixteen"
        assert errors(check, wrong), path
        wrong = copy.deepcopy(tree)
        wrong["Charger"]["Not_A_Value"] = 1
        assert errors(check, wrong), path

    async with http.get(f"{url}/metrics") as resp:
        assert resp.status == 200
        text = await resp.text()
    snap = charger.snapshot
    assert snap is not None
    line = f'givtcp_evc_value{{serial="{serial}",field="Charge_Limit",unit="A"}} '
    samples = [row for row in text.splitlines() if row.startswith(line)]
    assert len(samples) == 1, text
    assert float(samples[0].rsplit(" ", 1)[1]) == snap.value("Charge_Limit")
    assert f'givtcp_evc_online{{serial="{serial}"}} 1' in text
    polls = next(
        r for r in text.splitlines() if r.startswith(f'givtcp_evc_polls_total{{serial="{serial}"}}')
    )
    assert int(polls.rsplit(" ", 1)[1]) >= 1
    writes = next(r for r in text.splitlines() if r.startswith("givtcp_evc_register_writes_total"))
    assert int(writes.rsplit(" ", 1)[1]) >= 2  # the two commands above
    assert "# TYPE givtcp_evc_polls_total counter" in text


async def test_unreachable_charger_never_touches_the_inverter(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    rest = free_port()
    async with (
        running_daemon(
            tmp_path,
            rest={"enabled": True, "port": rest},
            chargers=[{"host": "127.0.0.1", "port": port, **FAST_CHARGER}],
        ) as rig,
        aiohttp.ClientSession() as http,
    ):
        await rig.first_snapshot()
        for _ in range(2):
            rig.coordinator.request_refresh(settings=False)
            snap = await rig.next_snapshot(timeout=5)
            assert not snap.stale()
        assert rig.coordinator.health().consecutive_failures == 0
        charger = rig.daemon.chargers[0]
        assert charger.serial is None
        async with http.get(f"http://127.0.0.1:{rest}/getEVCCache") as resp:
            assert resp.status == 503
        async with http.post(f"http://127.0.0.1:{rest}/setCurrentLimit", data="10") as resp:
            assert resp.status == 503
            assert (await resp.json())["status"] == "failed"
        async with http.get(f"http://127.0.0.1:{rest}/health") as resp:
            assert resp.status == 200  # a charger never fails the health check


async def test_cli_simulate_evc_demo_evc_and_discover(tmp_path: Path) -> None:
    # simulate --evc: a Modbus TCP charger on a free port, a car charging.
    proc = await asyncio.create_subprocess_exec(
        *CLI, "simulate", "--evc", "--port", "0", cwd=tmp_path, env=clean_env(),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(20):
            info = json.loads(await proc.stdout.readline())
        host, _, port = info["listening"].rpartition(":")
        regs = await read_hr(int(port), 0, 60)
        assert regs[0] == 4  # Charging
        code, out, err = await cli(
            "discover", f"{host}/32", "--port", str(free_port()), "--evc-port", port,
            "--timeout", "1", cwd=tmp_path,
        )  # fmt: skip
        assert code == 0, err
        (found,) = json.loads(out)
        assert found["kind"] == "charger"
        assert found["serial"] == info["evc"]
        assert found["port"] == int(port)
        assert "1 charger(s)" in err
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(5):
            assert await proc.wait() == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    code, _, err = await cli("simulate", "--evc", "--batteries", "2", cwd=tmp_path)
    assert code == 2
    assert "--batteries" in err

    # demo --evc: the JSON line names the charger; REST serves its tree.
    rest = free_port()
    demo = await asyncio.create_subprocess_exec(
        *CLI, "demo", "--evc", "--port", str(rest), cwd=tmp_path, env=clean_env(),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        assert demo.stdout is not None
        async with asyncio.timeout(20):
            info = json.loads(await demo.stdout.readline())
        assert info["evc"].startswith("127.0.0.1:")
        async with aiohttp.ClientSession() as http, asyncio.timeout(20):
            while True:
                try:
                    async with http.get(f"http://127.0.0.1:{rest}/getEVCCache") as resp:
                        if resp.status == 200:
                            tree = await resp.json()
                            break
                except aiohttp.ClientConnectorError:
                    pass  # not listening yet
                await asyncio.sleep(0.2)  # no event to wait for in another process
        assert tree["Charger"]["Charging_State"] == "Charging"
        demo.send_signal(signal.SIGTERM)
        async with asyncio.timeout(10):
            assert await demo.wait() == 0
    finally:
        if demo.returncode is None:
            demo.kill()
            await demo.wait()
