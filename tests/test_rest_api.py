"""The REST API against the running daemon and the simulated plant: every route, every control
function, bad payloads, auth, errors, health, metrics and the event stream."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from givtcp_async.config import Settings
from givtcp_async.control.catalogue import CATALOGUE, ControlFunction
from givtcp_async.daemon import Daemon
from givtcp_async.protocol.frames import WriteRequest
from givtcp_async.simulator.faults import FaultKind
from givtcp_async.sinks.rest import RestService
from tests.control_support import example_dict
from tests.rest_support import TOKEN, RestRig, rest_rig, settled
from tests.servers import free_port
from tests.test_control_validation import cases


def _model(r: RestRig) -> Any:
    layout = r.rig.coordinator.layout
    assert layout is not None
    return layout.model


# --- data routes ---------------------------------------------------------------------------------


async def test_runall_and_its_aliases_serve_the_latest_snapshot(tmp_path: Path) -> None:
    async with rest_rig(tmp_path) as r:

        def current() -> Any:
            snap = r.rig.coordinator.snapshot
            assert snap is not None
            return json.loads(json.dumps(snap.runall(), default=str))

        for route in ("runAll", "readData", "getCache"):
            before = current()
            status, body = await r.get(route)
            assert status == 200
            # A poll may land during the request: the answer is the snapshot before or after.
            assert body in (before, current()), route
            assert body["Power"]["Power"]["PV_Power"] > 0
        status, body = await r.get("runAll?units=true")
        assert status == 200
        assert body["Power"]["Power"]["PV_Power"]["unit"] == "W"
        status, body = await r.get("runAll?units=maybe")
        assert status == 400
        assert body["field"] == "units"


async def test_health_functions_inverters_openapi_docs_and_dashboard(tmp_path: Path) -> None:
    async with rest_rig(tmp_path) as r:
        serial = r.rig.coordinator.serial
        status, health = await r.get("health")
        assert status == 200
        assert health["status"] == "ok"
        [inv] = health["inverters"]
        assert inv["serial"] == serial
        assert inv["online"] is True
        assert 0 <= inv["last_good_poll_age_seconds"] < inv["stale_after_seconds"]

        status, body = await r.get("functions")
        assert status == 200
        assert body["serial"] == serial
        names = {f["name"]: f for f in body["functions"]}
        assert set(names) == {f.name for f in CATALOGUE}
        assert names["setChargeTarget"]["available"] is True
        assert names["setEmsPlant"]["available"] is False
        assert body["aliases"]["reboot"] == "rebootInverter"
        assert body["routers"]["setChargeSlot"]["slots"] == 10

        status, body = await r.get("inverters")
        assert status == 200
        assert body["inverters"][0]["serial"] == serial
        assert body["inverters"][0]["model"] == _model(r).name

        status, doc = await r.get("openapi.json")
        assert status == 200
        assert doc["openapi"].startswith("3.1")
        for fn in CATALOGUE:
            assert "post" in doc["paths"][f"/{fn.name}"], fn.name
        for alias in CATALOGUE.aliases:
            assert doc["paths"][f"/{alias}"]["post"]["x-alias-of"] == CATALOGUE.aliases[alias]
        for router in CATALOGUE.routers:
            assert "slot" in doc["components"]["schemas"][f"{router}RouterPayload"]["required"]
        for route in (
            "/runAll",
            "/readData",
            "/getCache",
            "/health",
            "/metrics",
            "/{serial}/runAll",
        ):
            assert "get" in doc["paths"][route]
        assert "securitySchemes" not in doc["components"]

        async with r.session.get(r.url("docs")) as resp:
            assert resp.status == 200
            assert resp.content_type == "text/html"
            page = await resp.text()
        assert "setChargeSlot1" in page
        assert "chargeToPercent" in page
        assert "<script" not in page
        assert "http://" not in page.replace("http://HOST", "")

        async with r.session.get(r.url("")) as resp:
            assert resp.status == 200
            assert resp.content_type == "text/html"
            assert "default-src 'self'" in resp.headers["Content-Security-Policy"]
            html = await resp.text()
        assert 'data-field="Power/Flows/Solar_to_House"' in html
        for asset in ("dashboard/dashboard.js", "dashboard/dashboard.css"):
            assert asset in html
            async with r.session.get(r.url(asset)) as resp:
                assert resp.status == 200
                assert len(await resp.read()) > 1000
        status, _ = await r.get("dashboard/secrets.txt")
        assert status == 404


# --- every control function ----------------------------------------------------------------------


async def _post_example(r: RestRig, fn: ControlFunction, name: str | None = None) -> Any:
    status, body = await r.post(name or fn.name, example_dict(fn))
    return status, body


async def test_every_function_is_reachable_over_post(tmp_path: Path) -> None:
    """Every catalogue function, alias and router answers: 200 where available, 422 where not."""
    async with rest_rig(tmp_path) as r:
        model = _model(r)
        available = 0
        for fn in CATALOGUE:
            if fn.name == "rebootAddon":
                continue  # it restarts the daemon (tests/test_givtcp3_functions.py)
            status, body = await _post_example(r, fn)
            if fn.available(model):
                assert status == 200, (fn.name, body)
                assert body["status"] == "ok"
                assert body["function"] == fn.name
                assert body["result"] == body["message"]
                assert body["serial"] == r.rig.coordinator.serial
                available += 1
                if fn.override:  # end it at once: every register back as it was
                    status, body = await r.post(fn.name, {"duration": "Cancel"})
                    assert status == 200, body
            else:
                assert status == 422, (fn.name, body)
                assert body["status"] == "rejected"
                assert body["errors"][0]["field"] == "function"
                assert body["errors"][0]["allowed"] == fn.unavailable_reason(model)
        assert available >= 100
        for alias, target in CATALOGUE.aliases.items():
            fn = CATALOGUE.get(target)
            if fn.name == "rebootAddon":
                continue
            status, body = await _post_example(r, fn, alias)
            assert status == (200 if fn.available(model) else 422), (alias, body)
            assert body["function"] == target
        for router, spec in CATALOGUE.routers.items():
            fn = CATALOGUE.get(f"{spec.target}3")
            if not fn.available(model):
                continue
            status, body = await r.post(router, {"slot": "3", **example_dict(fn)})
            assert status == 200, (router, body)
            assert body["function"] == fn.name


async def test_commands_change_the_registers_givtcp_clients_expect(tmp_path: Path) -> None:
    async with rest_rig(tmp_path) as r:
        status, body = await r.post("setChargeTarget", {"chargeToPercent": "63"})
        assert status == 200
        assert r.hr(116) == 63
        assert body["written"] == [{"register": 116, "value": 63}]
        assert body["registers"][0]["verified"] is True

        status, body = await r.post("setBatteryReserve", {"dischargeToPercent": "21"})
        assert (status, r.hr(110)) == (200, 21)

        slot = {"start": "0130", "finish": "0445", "chargeToPercent": "90"}
        status, body = await r.post("setChargeSlot1", slot)
        assert status == 200, body
        assert (r.hr(94), r.hr(95), r.hr(116)) == (130, 445, 90)

        status, body = await r.post("setChargeSlot", {"slot": "2", "start": "02:00",
                                                      "finish": "03:15"})  # fmt: skip
        assert status == 200, body
        assert body["function"] == "setChargeSlot2"

        # Plain-text bodies (any content type), and no body for functions without payload.
        status, body = await r.post("setChargeTarget", raw="71",
                                    headers={"Content-Type": "text/plain"})  # fmt: skip
        assert (status, r.hr(116)) == (200, 71)
        form = {"Content-Type": "application/x-www-form-urlencoded"}  # curl -d's default
        status, body = await r.post("setChargeTarget", raw='{"chargeToPercent": 72}', headers=form)
        assert (status, r.hr(116)) == (200, 72)
        status, body = await r.post("enableChargeSchedule", raw="enable")
        assert (status, r.hr(96)) == (200, 1)
        status, body = await r.post("pauseChargeSchedule")
        assert (status, r.hr(96)) == (200, 0)
        status, body = await r.post("setEcoMode", {"state": "disable"})
        assert (status, r.hr(27)) == (200, 0)
        status, body = await r.post("setBatteryMode", {"mode": "Timed Export"})
        assert status == 200, body
        assert (r.hr(27), r.hr(59)) == (0, 1)

        # An unchanged value is not written again, and says so.
        mark = r.rig.sim.mark()
        status, body = await r.post("setChargeTarget", {"chargeToPercent": "72"})
        assert status == 200
        assert body["written"] == []
        assert body["registers"][0]["note"] == "already set"
        assert r.writes_seen(mark) == []

        # A second inverter is addressed by serial; the first stays the default.
        status, body = await r.post(f"{r.rig.coordinator.serial}/setChargeTarget", "55")
        assert (status, r.hr(116)) == (200, 55)
        # GivTCP allowed GET on /reboot: here a GET never changes anything.
        status, body = await r.get("reboot")
        assert status == 405
        assert "POST" in body["message"]


async def test_bad_payloads_are_4xx_naming_the_field_and_write_nothing(tmp_path: Path) -> None:
    async with rest_rig(tmp_path) as r:
        model = _model(r)
        before = r.registers()
        mark = r.rig.sim.mark()
        checked = 0
        for fn in CATALOGUE:
            if not fn.available(model):
                continue
            for label, payload, field, value in cases(fn, model):
                status, body = await r.post(fn.name, payload)
                expected = 400 if field == "payload" else 422
                assert status == expected, (fn.name, label, status, body)
                assert body["status"] == "rejected", (fn.name, label)
                named = [e for e in body["errors"] if e["field"] == field]
                assert named, (fn.name, label, body["errors"])
                assert named[0]["value"] == value, (fn.name, label, named[0])
                assert named[0]["allowed"], (fn.name, label)
                assert body["written"] == []
                assert body["registers"] == []
                checked += 1
        # Bodies that are not text or not a payload at all.
        for raw, label in ((b"\xff\xfe\x00", "not UTF-8"), ("[" * 5000, "too deep"),
                           ('"just a string"', "string")):  # fmt: skip
            status, body = await r.post("setChargeTarget", raw=raw)
            assert status in (400, 422), (label, body)
            assert body["errors"][0]["field"] in ("payload", "chargeToPercent"), label
        async with r.session.post(r.url("setChargeTarget"), data=b"1" * 100_000) as resp:
            assert resp.status == 413
            assert (await resp.json())["error"]
        # A body that is not in the Content-Encoding it claims (the server closes that connection).
        async with (
            aiohttp.ClientSession() as own,
            own.post(
                r.url("setChargeTarget"), data=b"80", headers={"Content-Encoding": "gzip"}
            ) as resp,
        ):
            assert resp.status == 400
            assert (await resp.json())["errors"][0]["field"] == "payload"
        assert r.registers() == before
        assert r.writes_seen(mark) == []
        assert checked > 1000


async def test_unknown_routes_functions_and_methods(tmp_path: Path) -> None:
    async with rest_rig(tmp_path) as r:
        mark = r.rig.sim.mark()
        status, body = await r.post("setChargeTargt", {"chargeToPercent": "50"})
        assert status == 404
        assert body["functions"] == "/functions"
        assert "setChargeTargt" in body["message"]
        status, body = await r.post("XX0000XX00/setChargeTarget", "50")
        assert status == 404
        assert body["inverters"] == [r.rig.coordinator.serial]
        status, body = await r.get("XX0000XX00/runAll")
        assert status == 404
        status, body = await r.post("runAll")
        assert status == 405
        status, body = await r.get("no/such/route")
        assert status == 404
        assert body["error"]
        status, body = await r.get("setChargeTargt")
        assert status == 404
        async with r.session.delete(r.url("health")) as resp:
            assert resp.status == 405
            assert "GET" in resp.headers["Allow"]
        assert r.writes_seen(mark) == []


# --- auth and cross-site requests ----------------------------------------------------------------


MQTT_SECRET = "mqtt-password-never-shown"
INFLUX_SECRET = "influx-token-never-shown"


async def test_bearer_token_guards_every_control_route(tmp_path: Path) -> None:
    mqtt = {"enabled": False, "host": "127.0.0.1", "username": "u", "password": MQTT_SECRET}
    influx = {"enabled": False, "token": INFLUX_SECRET}
    async with rest_rig(tmp_path, token=TOKEN, mqtt=mqtt, influx=influx) as r:
        mark = r.rig.sim.mark()
        before = r.hr(116)
        for token in (None, "wrong-token-wrong-token", TOKEN[:-1], TOKEN + "x", ""):
            status, body = await r.post("setChargeTarget", "50", token=token)
            assert status == 401, token
            assert body["error"] == "unauthorized"
        async with r.session.post(r.url("setChargeTarget"), data="50",
                                  headers={"Authorization": f"Basic {TOKEN}"}) as resp:  # fmt: skip
            assert resp.status == 401
            assert resp.headers["WWW-Authenticate"].startswith("Bearer")
        # Unknown names and serials do not leak past the token check either.
        assert (await r.post("nope", "1"))[0] == 401
        assert (await r.post("XX0000XX00/setChargeTarget", "50"))[0] == 401
        assert r.writes_seen(mark) == []
        assert r.hr(116) == before

        status, body = await r.post("setChargeTarget", "50", token=TOKEN)
        assert (status, r.hr(116)) == (200, 50)
        # With the token, another site's page may control (the token proves the intent).
        status, _ = await r.post("setChargeTarget", "51", token=TOKEN,
                                 headers={"Origin": "http://elsewhere.example"})  # fmt: skip
        assert status == 200

        # Reads stay open and never show a secret; the document says which routes need the token.
        routes = ("runAll", "health", "metrics", "functions", "inverters", "openapi.json", "docs",
                  "", "dashboard/dashboard.js", f"{r.rig.coordinator.serial}/runAll")  # fmt: skip
        for route in routes:
            status, text = await r.get(route)
            assert status == 200, route
            shown = text if isinstance(text, str) else json.dumps(text)
            for secret in (TOKEN, MQTT_SECRET, INFLUX_SECRET):
                assert secret not in shown, (route, secret)
        _, doc = await r.get("openapi.json")
        assert doc["paths"]["/setChargeTarget"]["post"]["security"] == [{"bearerAuth": []}]
        assert doc["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"


async def test_cross_site_browser_posts_are_refused_without_a_token(tmp_path: Path) -> None:
    async with rest_rig(tmp_path) as r:
        mark = r.rig.sim.mark()
        for origin in ("http://evil.example", "null", "http://127.0.0.1:1"):
            status, body = await r.post("setChargeTarget", "50", headers={"Origin": origin})
            assert status == 403, origin
            assert body["error"] == "cross-site request"
        assert r.writes_seen(mark) == []
        status, _ = await r.post("setChargeTarget", "50", headers={"Origin": r.base})
        assert (status, r.hr(116)) == (200, 50)


# --- results the inverter did not fully carry out -----------------------------------------------


def _write_to(register: int) -> Any:
    return lambda req: isinstance(req, WriteRequest) and req.register == register


async def test_failed_and_partial_commands_are_502_saying_what_was_written(
    tmp_path: Path,
) -> None:
    async with rest_rig(tmp_path, inverter={"write_retries": 0}) as r:
        await settled(r.rig)
        start, finish = r.hr(94), r.hr(95)
        # The first write is never answered: nothing changed, the link is up -> 502 failed.
        r.rig.sim.faults.add(FaultKind.DROP, match=_write_to(94))
        status, body = await r.post("setChargeSlot1", {"start": "0111", "finish": "0222"})
        assert status == 502, body
        assert body["status"] == "failed"
        assert body["written"] == []
        assert (r.hr(94), r.hr(95)) == (start, finish)

        # The second write is never answered: the first one took -> 502 partial, and exactly
        # that write is reported.
        r.rig.sim.faults.add(FaultKind.DROP, match=_write_to(95))
        status, body = await r.post("setChargeSlot1", {"start": "0333", "finish": "0444"})
        assert status == 502, body
        assert body["status"] == "partial"
        assert body["written"] == [{"register": 94, "value": 333}]
        assert "HR94" in body["message"]
        second = body["registers"][1]
        assert (second["register"], second["written"]) == (95, False)
        assert second["note"].startswith("no echo")
        assert (r.hr(94), r.hr(95)) == (333, finish)


async def test_the_daily_write_budget_is_429_and_writes_nothing(tmp_path: Path) -> None:
    async with rest_rig(tmp_path, control={"write_budget_per_day": 1}) as r:
        status, body = await r.post("setChargeTarget", "61")
        assert (status, r.hr(116)) == (200, 61)
        mark = r.rig.sim.mark()
        status, body = await r.post("setBatteryReserve", "30")
        assert status == 429, body
        assert body["errors"][0]["field"] == "budget"
        assert r.writes_seen(mark) == []


# --- health, unreachable inverter ----------------------------------------------------------------


async def test_health_turns_503_when_the_inverter_stops_answering(tmp_path: Path) -> None:
    async with rest_rig(tmp_path) as r:
        r.service.connect_wait = 0.2
        status, _ = await r.get("health")
        assert status == 200
        mark = r.rig.sim.mark()
        r.rig.sim.refuse_connections(60)
        r.rig.sim.disconnect_all()
        await r.rig.sim.wait_for(lambda e: e.kind == "disconnect", after=mark)
        async with asyncio.timeout(10):
            while (await r.get("health"))[0] != 503:  # the daemon notices the closed socket
                pass
        status, health = await r.get("health")
        assert health["status"] == "stale"
        assert health["inverters"][0]["online"] is False
        assert health["inverters"][0]["connected"] is False
        writes = r.writes_seen(mark)
        status, body = await r.post("setChargeTarget", "50")
        assert status == 503
        assert body["status"] == "failed"
        assert "not connected" in body["message"]
        assert r.writes_seen(mark) == writes == []
        samples = await r.metrics()
        serial = r.rig.coordinator.serial
        [(labels, online)] = samples["givtcp_inverter_online"]
        assert (labels["serial"], online) == (serial, 0)
        assert dict(samples["givtcp_connection_disconnects_total"][0][0]) == {"serial": serial}
        assert samples["givtcp_connection_disconnects_total"][0][1] >= 1


async def test_an_inverter_never_reached_gives_503_everywhere(tmp_path: Path) -> None:
    """Nothing listens at the dongle's address: no data, no commands, health 503."""
    port = free_port()
    settings = Settings.model_validate(
        {
            "inverters": [{"host": "127.0.0.1", "port": free_port(), "connect_timeout": 0.2,
                           "backoff_max": 1.0}],
            "control": {"state_dir": str(tmp_path)},
            "rest": {"port": port},
        }
    )  # fmt: skip
    daemon = Daemon(settings)
    service = service_of_daemon(daemon)
    service.connect_wait = 0.1
    runner = asyncio.create_task(daemon.run())
    try:
        await service.listening.wait()
        base = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{base}/runAll") as resp:
                assert resp.status == 503
                assert resp.headers["Retry-After"]
            async with session.get(f"{base}/health") as resp:
                assert resp.status == 503
                body = await resp.json()
                assert body["inverters"][0]["last_good_poll"] is None
            async with session.post(f"{base}/setChargeTarget", data="50") as resp:
                assert resp.status == 503
                assert (await resp.json())["status"] == "failed"
            async with session.get(f"{base}/metrics") as resp:
                assert resp.status == 200
                assert "givtcp_connection_connect_failures_total" in await resp.text()
    finally:
        daemon.stop()
        await runner


async def test_a_taken_port_stops_the_daemon_with_one_clear_line(tmp_path: Path) -> None:
    blocker = await asyncio.start_server(lambda _r, _w: None, "127.0.0.1", 0)
    port = blocker.sockets[0].getsockname()[1]
    settings = Settings.model_validate(
        {
            "inverters": [{"host": "127.0.0.1", "port": free_port()}],
            "control": {"state_dir": str(tmp_path)},
            "rest": {"port": port},
        }
    )
    before = set(asyncio.all_tasks())
    try:
        with pytest.raises(BaseExceptionGroup) as info:
            async with asyncio.timeout(10):
                await Daemon(settings).run()
    finally:
        blocker.close()
        await blocker.wait_closed()
    [leaf] = info.value.exceptions
    assert isinstance(leaf, OSError)
    assert str(leaf) == f"cannot listen on 127.0.0.1:{port}: address already in use"
    assert set(asyncio.all_tasks()) - before <= {asyncio.current_task()}


def service_of_daemon(daemon: Daemon) -> RestService:
    service = next(s for s in daemon.services if s.name == "rest")
    assert isinstance(service, RestService)
    return service


# --- metrics -------------------------------------------------------------------------------------


async def test_metrics_carry_every_numeric_value_and_the_counters(tmp_path: Path) -> None:
    async with rest_rig(tmp_path) as r:
        await r.post("setChargeTarget", "66")
        await r.post("setChargeTarget", "1")
        samples = await r.metrics()
        snap = r.rig.coordinator.snapshot
        assert snap is not None
        serial = snap.serial
        values = {
            lb["field"]: v for lb, v in samples["givtcp_inverter_value"] if lb["serial"] == serial
        }
        numeric = {
            n: (1.0 if r_.value is True else 0.0 if r_.value is False else float(r_.value))
            for n, r_ in snap.values.items()
            if isinstance(r_.value, int | float)
        }
        assert len(numeric) > 100
        for name, value in numeric.items():
            assert name in values, name
            if not name.startswith(("Time_Since", "Invertor_Time")):
                assert values[name] == value or r.rig.coordinator.snapshot is not snap, name
        packs = {lb["battery_serial"] for lb, _ in samples["givtcp_battery_value"]}
        assert packs == {b.serial for b in snap.batteries}
        counters = ("requests", "timeouts", "crc_failures", "reconnects")
        for counter in (*(f"givtcp_connection_{c}_total" for c in counters),
                        "givtcp_values_rejected_total", "givtcp_register_writes_total",
                        "givtcp_polls_total"):  # fmt: skip
            [(labels, _value)] = samples[counter]
            assert labels == {"serial": serial}, counter
        assert samples["givtcp_connection_requests_total"][0][1] > 0
        assert samples["givtcp_register_writes_total"][0][1] >= 1
        commands = {(lb["function"], lb["status"]): v for lb, v in
                    samples["givtcp_rest_commands_total"]}  # fmt: skip
        assert commands[("setChargeTarget", "ok")] == 1
        assert commands[("setChargeTarget", "rejected")] == 1
        assert samples["givtcp_rest_command_duration_seconds_count"][0][1] == 2
        codes = {(lb["route"], lb["code"]) for lb, _ in samples["givtcp_rest_requests_total"]}
        assert ("/{function}", "200") in codes
        assert ("/{function}", "422") in codes
        age = samples["givtcp_last_good_poll_age_seconds"][0][1]
        assert 0 <= age < 300
        async with r.session.get(r.url("metrics")) as resp:
            assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")


# --- multi-inverter ------------------------------------------------------------------------------


async def test_two_inverters_are_addressed_by_serial(tmp_path: Path) -> None:
    async with rest_rig(tmp_path, plants=2) as r:
        first, second = r.rig.daemon.coordinators
        assert first.serial != second.serial
        _, default = await r.get("runAll")
        _, one = await r.get(f"{first.serial}/runAll")
        _, two = await r.get(f"{second.serial}/readData")
        # GivTCP 3.5's layout: each answer carries its inverter's details under its serial.
        assert default[str(first.serial)]["Invertor_Serial_Number"] == first.serial
        assert one[str(first.serial)]["Invertor_Serial_Number"] == first.serial
        assert two[str(second.serial)]["Invertor_Serial_Number"] == second.serial
        assert str(second.serial) not in one
        _, lower = await r.get(f"{str(second.serial).lower()}/getCache")
        assert lower[str(second.serial)]["Invertor_Serial_Number"] == second.serial

        status, body = await r.post(f"{second.serial}/setChargeTarget", {"chargeToPercent": 44})
        assert status == 200
        assert body["serial"] == second.serial
        assert r.hr(116, index=1) == 44
        assert r.hr(116, index=0) != 44
        status, _ = await r.post("setChargeTarget", {"chargeToPercent": 45})
        assert (status, r.hr(116, index=0), r.hr(116, index=1)) == (200, 45, 44)

        status, functions = await r.get(f"{second.serial}/functions")
        assert (status, functions["serial"]) == (200, second.serial)
        async with r.session.get(r.url(f"{second.serial}/events")) as resp:
            async with asyncio.timeout(10):
                async for kind, data in _events(resp):
                    if kind == "snapshot":
                        assert data["serial"] == second.serial
                        break

        _, health = await r.get("health")
        assert [i["serial"] for i in health["inverters"]] == [first.serial, second.serial]
        _, inverters = await r.get("inverters")
        assert [i["prefix"] for i in inverters["inverters"]] == ["", f"/{second.serial}"]
        samples = await r.metrics()
        serials = {lb["serial"] for lb, _ in samples["givtcp_connection_requests_total"]}
        assert serials == {first.serial, second.serial}


# --- server-sent events --------------------------------------------------------------------------


async def _events(resp: aiohttp.ClientResponse) -> Any:
    event, data = "", ""
    async for raw in resp.content:
        line = raw.decode().rstrip("\n")
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: "):
            data = line[6:]
        elif not line and event:
            yield event, json.loads(data)
            event, data = "", ""


async def test_event_stream_sends_each_new_snapshot(tmp_path: Path) -> None:
    async with rest_rig(tmp_path) as r, r.session.get(r.url("events")) as resp:
        assert resp.status == 200
        assert resp.content_type == "text/event-stream"
        stream = _events(resp)
        kinds: list[str] = []
        async with asyncio.timeout(10):
            async for kind, data in stream:
                kinds.append(kind)
                if kind == "snapshot":
                    first = data
                    break
        assert kinds[0] == "health"
        snap = r.rig.coordinator.snapshot
        assert snap is not None
        assert first["serial"] == snap.serial
        assert first["runAll"]["Power"]["Flows"] == snap.runall()["Power"]["Flows"]
        # A command triggers a refresh: its result shows up in the next snapshot.
        status, _ = await r.post("setChargeTarget", "77")
        assert status == 200
        async with asyncio.timeout(10):
            async for kind, data in stream:
                if kind == "snapshot" and data["runAll"]["Control"]["Target_SOC"] == 77:
                    break
        _, metrics_text = await r.get("metrics")
        assert "givtcp_rest_event_clients 1" in metrics_text


async def test_service_stops_promptly_with_a_stream_open_and_leaves_nothing(
    tmp_path: Path,
) -> None:
    before = set(asyncio.all_tasks())
    async with rest_rig(tmp_path) as r:
        resp = await r.session.get(r.url("events"))
        await resp.content.readline()
        port = int(r.base.rsplit(":", 1)[1])
        loop = asyncio.get_running_loop()
        started = loop.time()
        r.rig.daemon.stop()
        async with asyncio.timeout(5):
            await _closed(resp)
        resp.release()
    assert loop.time() - started < 5
    assert set(asyncio.all_tasks()) - before <= {asyncio.current_task()}
    # The port is free again.
    server = await asyncio.start_server(lambda _r, _w: None, "127.0.0.1", port)
    server.close()
    await server.wait_closed()


async def _closed(resp: aiohttp.ClientResponse) -> None:
    while await resp.content.readline():
        pass


def test_rest_service_needs_an_inverter() -> None:
    with pytest.raises(ValueError, match="at least one"):
        RestService(Settings.model_validate({"inverters": [{"host": "h"}]}).rest, [])
