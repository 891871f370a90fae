"""GivTCP's remaining functions and GivTCP 3's routes: enableDischarge, setPVInputMode, rebootAddon
(a clean restart of the daemon), /showdata, /fullCache, /api and the per-inverter ports."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp

from givtcp_async.control.catalogue import CATALOGUE
from tests.rest_support import rest_rig
from tests.servers import free_port
from tests.test_cli import _get, demo

__all__ = ["demo"]  # the fixture, used below


async def test_enable_discharge_holds_the_battery_and_lets_it_go_again(tmp_path: Path) -> None:
    async with rest_rig(tmp_path) as r:
        status, body = await r.post("setBatteryReserve", {"reservePercent": "20"})
        assert status == 200, body
        status, body = await r.post("enableDischarge", {"state": "disable"})
        assert status == 200, body
        assert r.hr(110) == 100
        _, tree = await r.get("runAll")
        assert tree["Control"]["Battery_Power_Reserve"] == 100  # read-your-writes
        status, body = await r.post("enableDischarge", "enable")  # a plain payload too
        assert status == 200, body
        assert r.hr(110) == 20  # the reserve remembered before the hold


async def test_pv_input_mode_is_refused_with_the_reason_and_writes_nothing(tmp_path: Path) -> None:
    async with rest_rig(tmp_path) as r:
        mark = r.rig.sim.mark()
        status, body = await r.post("setPVInputMode", {"state": "1x2"})
        assert status == 422
        assert body["errors"][0]["field"] == "function"
        assert "installer" in body["errors"][0]["allowed"]
        status, body = await r.post("setPVInputMode", {"state": "sideways"})
        assert status == 422
        assert r.writes_seen(mark) == []


async def test_givtcp_3_cache_views(tmp_path: Path) -> None:
    async with rest_rig(tmp_path) as r:
        serial = str(r.rig.coordinator.serial)
        status, page = await r.get("showdata")
        assert status == 200
        assert f"<th>{serial}</th>" in page
        assert "<script" not in page
        r.rig.coordinator.request_refresh(settings=False)
        await r.rig.next_snapshot()
        status, cache = await r.get(f"{serial}/fullCache")
        assert status == 200
        soc = cache["Power/Power/SOC"]
        assert 2 <= len(soc) <= 10
        assert all(len(values) == len(soc) for values in cache.values())
        status, api = await r.get("api")
        assert status == 200
        commands = api["commands"]
        assert commands["runAll"]["method"] == "GET"
        for name in ("enableDischarge", "switchRate", "setPVInputMode", "rebootAddon"):
            assert commands[name]["method"] == "POST", name
        assert len(commands) > len(CATALOGUE)


async def test_each_inverter_answers_unprefixed_on_its_own_port(tmp_path: Path) -> None:
    port = free_port()
    while not port_free(port + 1):
        port = free_port()
    extra = {"port": port, "per_inverter_ports": True}
    async with rest_rig(tmp_path, plants=2, rest_settings=extra) as r:
        first, second = r.rig.daemon.coordinators
        async with aiohttp.ClientSession() as session:
            for number, coord in ((port, first), (port + 1, second)):
                url = f"http://127.0.0.1:{number}/runAll"
                async with session.get(url) as resp:
                    tree = await resp.json()
                assert tree[str(coord.serial)]["Invertor_Serial_Number"] == coord.serial
            url = f"http://127.0.0.1:{port + 1}/setChargeTarget"
            async with session.post(url, json={"chargeToPercent": 61}) as resp:
                assert resp.status == 200
        assert r.hr(116, index=1) == 61
        assert r.hr(116, index=0) != 61


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _post(url: str, body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
    data = json.dumps(body or {}).encode()
    request = urllib.request.Request(url, data=data, method="POST")
    with urllib.request.urlopen(request, timeout=10) as resp:
        return int(resp.status), json.loads(resp.read())


def _healthy(url: str, timeout: float = 20) -> bool:
    # Another process's endpoint gives no event to wait on: it is asked every 0.1 s.
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _get(url + "health")[0] == 200:
            return True
        time.sleep(0.1)
    return False


def test_reboot_addon_restarts_the_daemon_in_the_same_process(
    demo: tuple[Any, dict[str, Any]],
) -> None:
    proc, info = demo
    assert proc.stderr is not None
    threading.Thread(target=proc.stderr.read, daemon=True).start()
    assert _healthy(info["dashboard"])
    status, body = _post(info["dashboard"] + "rebootAddon")
    assert (status, body["status"]) == (200, "ok")
    # The same process (exec: systemd and Docker see no exit) starts again from the top and
    # prints its line again.
    assert proc.stdout is not None
    again = json.loads(proc.stdout.readline())
    assert proc.poll() is None
    assert again["dashboard"] == info["dashboard"]
    assert _healthy(info["dashboard"])
    # GivTCP's /restart is the same function (POST only, like every control route).
    assert CATALOGUE.get("restart").name == "rebootAddon"
    assert _get(info["dashboard"] + "restart")[0] == 405
