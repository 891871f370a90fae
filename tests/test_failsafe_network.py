"""An unfriendly network (issue 15, points 4, 6, 7 and 10): DNS-rebinding Host headers, control
from outside the allowed networks, an open internal broker, a burst of large MQTT commands and
a slow-connection attack on REST. The last two run the real daemon as a process and measure it
(its memory; whether /health answers with a low file-descriptor limit)."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import os
import resource
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import aiomqtt
import pytest
from structlog.testing import capture_logs

from givtcp_async.cli import main as _main
from givtcp_async.config import load_config
from givtcp_async.errors import ConfigError
from givtcp_async.logging_setup import reset_logging
from givtcp_async.simulator.plant import Plant, PlantConfig
from givtcp_async.sinks.http_guard import AcceptErrorLimiter, ClientRule, HostRule, host_name
from tests.rest_support import NOON, rest_rig
from tests.servers import Mosquitto, free_port
from tests.test_cli import CLI, clean_env

FROZEN = PlantConfig(speed=0, start=NOON.replace(tzinfo=None))


# --- 4: a rebinding Host header cannot control ------------------------------------------------


async def test_a_rebinding_host_name_cannot_control_without_a_token(tmp_path: Path) -> None:
    with capture_logs() as logs:
        async with rest_rig(tmp_path) as r:
            port = r.base.rsplit(":", 1)[1]
            before = r.registers()
            evil = f"rebind.attacker.example:{port}"
            status, body = await r.post(
                "setChargeTarget", "80", headers={"Host": evil, "Origin": f"http://{evil}"}
            )
            assert status == 421, body
            assert "rest.allowed_hosts" in body["message"]
            assert r.registers() == before
            # The server's own names still work: an IP literal, localhost, this host's name.
            for name in ("127.0.0.1", "localhost", socket.gethostname()):
                status, body = await r.post(
                    "setChargeTarget", "81", headers={"Host": f"{name}:{port}"}
                )
                assert status == 200, (name, body)
    lines = [e for e in logs if e["event"].startswith("REST control without a token")]
    assert len(lines) == 1
    assert "192.168.0.0/16" in lines[0]["allow_from"]


async def test_a_configured_name_may_control(tmp_path: Path) -> None:
    async with rest_rig(tmp_path, rest_settings={"allowed_hosts": ["givtcp.home.lan"]}) as r:
        port = r.base.rsplit(":", 1)[1]
        status, body = await r.post(
            "setChargeTarget", "80", headers={"Host": f"GivTCP.home.lan:{port}"}
        )
        assert status == 200, body
        status, body = await r.post("setChargeTarget", "81", headers={"Host": "other.lan"})
        assert status == 421, body


def test_host_and_client_rules() -> None:
    hosts = HostRule("0.0.0.0", ["givtcp.lan"])
    assert host_name("[::1]:6345") == "::1"
    assert host_name("GivTCP.LAN.:6345") == "givtcp.lan"
    for ok in ("192.168.1.5:6345", "[fe80::1]:6345", "localhost", "app.localhost", "givtcp.lan",
               socket.gethostname(), None, ""):  # fmt: skip
        assert hosts.allows(ok), ok
    for bad in ("rebind.attacker.example", "192.168.1.5.nip.io:6345", "givtcp.lan.evil.com"):
        assert not hosts.allows(bad), bad
    settings = load_config(None, environ={"GIVTCP_INVERTERS__0__HOST": "h"})
    clients = ClientRule(settings.rest.allow_from)
    for ok in ("127.0.0.1", "::1", "192.168.1.20", "10.1.2.3", "172.17.0.1", "::ffff:192.168.1.9",
               "fd00::5", "fe80::1%eth0"):  # fmt: skip
        assert clients.allows(ok), ok
    for bad in ("203.0.113.7", "8.8.8.8", "2001:db8::1", "::ffff:8.8.8.8", "172.32.0.1", ""):
        assert not clients.allows(bad), bad
    only_loopback = ClientRule([ipaddress.ip_network("10.9.0.0/16")])
    assert only_loopback.allows("127.0.0.1")
    assert not only_loopback.allows("192.168.1.20")


# --- 10: the internal broker is not opened to the network without credentials -----------------


def test_an_anonymous_internal_broker_beyond_loopback_refuses_to_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in list(os.environ):
        if name.startswith(("GIVTCP_", "MQTT_", "INVERTOR_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("GIVTCP_INVERTERS__0__HOST", "127.0.0.1")
    monkeypatch.setenv("GIVTCP_CONTROL__STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("GIVTCP_MQTT__INTERNAL_BROKER", "true")
    monkeypatch.setenv("GIVTCP_MQTT__HOST", "0.0.0.0")
    assert main(["run"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "would let anyone on the network publish control commands" in err[0]
    assert "mqtt.allow_anonymous = true" in err[0]
    # Loopback, credentials or an explicit opt-in are each enough.
    base = {"GIVTCP_INVERTERS__0__HOST": "h", "GIVTCP_MQTT__INTERNAL_BROKER": "true"}
    load_config(None, environ=base)
    load_config(None, environ={**base, "GIVTCP_MQTT__HOST": "0.0.0.0",
                               "GIVTCP_MQTT__ALLOW_ANONYMOUS": "true"})  # fmt: skip
    load_config(None, environ={**base, "GIVTCP_MQTT__HOST": "0.0.0.0", "MQTT_USERNAME": "u",
                               "MQTT_PASSWORD": "p"})  # fmt: skip
    with pytest.raises(ConfigError):
        load_config(None, environ={**base, "GIVTCP_MQTT__HOST": "broker.lan"})


# --- the daemon as a process -----------------------------------------------------------------


@dataclass
class DaemonProcess:
    proc: asyncio.subprocess.Process
    events: list[dict[str, Any]] = field(default_factory=list)
    text: list[str] = field(default_factory=list)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def wait_event(self, event: str, timeout: float = 30.0) -> dict[str, Any]:
        async with asyncio.timeout(timeout), self.changed:
            await self.changed.wait_for(lambda: any(e.get("event") == event for e in self.events))
        return next(e for e in self.events if e.get("event") == event)


@contextlib.asynccontextmanager
async def daemon_process(
    env: dict[str, str], cwd: Path, *, nofile: int | None = None
) -> AsyncIterator[DaemonProcess]:
    """``givtcp-async run`` as a process (with an RLIMIT_NOFILE), its JSON log lines collected."""

    def limit() -> None:
        if nofile is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

    proc = await asyncio.create_subprocess_exec(
        *CLI, "run", env=env, cwd=cwd, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE, preexec_fn=limit,
    )  # fmt: skip
    daemon = DaemonProcess(proc)

    async def collect() -> None:
        assert proc.stderr is not None
        async for raw in proc.stderr:
            line = raw.decode(errors="replace").strip()
            daemon.text.append(line)
            with contextlib.suppress(ValueError):
                event = json.loads(line)
                async with daemon.changed:
                    daemon.events.append(event)
                    daemon.changed.notify_all()

    reader = asyncio.create_task(collect())
    try:
        yield daemon
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                async with asyncio.timeout(10):
                    await proc.wait()
            except TimeoutError:
                proc.kill()
                await proc.wait()
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader


def _env(tmp_path: Path, sim_port: int, **extra: str) -> dict[str, str]:
    return clean_env(
        GIVTCP_INVERTERS__0__HOST="127.0.0.1",
        GIVTCP_INVERTERS__0__PORT=str(sim_port),
        GIVTCP_INVERTERS__0__POLL_INTERVAL="60",
        GIVTCP_CONTROL__STATE_DIR=str(tmp_path / "state"),
        GIVTCP_LOGGING__FORMAT="json",
        **extra,
    )


# --- 7: idle sockets cannot starve /health -----------------------------------------------------


def _open_idle(port: int, count: int) -> list[socket.socket]:
    """``count`` connections that never send a byte (as many as the server lets connect)."""
    out: list[socket.socket] = []
    for _ in range(count):
        try:
            out.append(socket.create_connection(("127.0.0.1", port), timeout=3))
        except OSError:
            break  # the backlog is full: the server is no longer accepting
    return out


async def test_health_answers_during_a_slow_connection_attack(tmp_path: Path) -> None:
    """1,100 idle sockets against a daemon limited to 1,024 file descriptors (systemd's default
    soft limit): connections beyond rest.max_connections (256) close the oldest idle ones, so
    the descriptors never run out and /health still answers."""
    port = free_port()
    async with Plant(FROZEN).simulator() as sim, daemon_process(
        _env(tmp_path, sim.port, GIVTCP_REST__PORT=str(port)), tmp_path, nofile=1024
    ) as daemon:  # fmt: skip
        await daemon.wait_event("REST API listening")
        loop = asyncio.get_running_loop()
        idle = await loop.run_in_executor(None, _open_idle, port, 1100)
        try:
            timeout = aiohttp.ClientTimeout(total=10)
            async with aiohttp.ClientSession(timeout=timeout) as http:
                async with http.get(f"http://127.0.0.1:{port}/health") as resp:
                    assert resp.status in (200, 503)  # answered: online or not
                    assert "inverters" in await resp.json()
                async with http.get(f"http://127.0.0.1:{port}/metrics") as resp:
                    metrics = await resp.text()
        finally:
            for sock in idle:
                sock.close()
        assert len(idle) == 1100
        prefix = 'givtcp_rest_connections_closed_total{reason="evicted"}'
        evicted = next(line for line in metrics.splitlines() if line.startswith(prefix))
        assert float(evicted.rsplit(" ", 1)[1]) >= 1100 - 256  # the rest stayed connected
        floods = [t for t in daemon.text if "out of system resource" in t]
        assert len(floods) <= 1, floods[:3]


async def test_slow_headers_and_bodies_are_cut_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from givtcp_async.sinks import rest

    monkeypatch.setattr(rest, "HEADER_TIMEOUT", 0.5)
    monkeypatch.setattr(rest, "BODY_TIMEOUT", 0.5)
    async with rest_rig(tmp_path) as r:
        port = int(r.base.rsplit(":", 1)[1])
        before = r.registers()
        # Half a request line, then nothing: closed once the header time is up.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /hea")
        async with asyncio.timeout(5):
            assert await reader.read() == b""
        writer.close()
        # Headers announcing a body that never comes: 408, nothing written.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /setChargeTarget HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     b"Content-Length: 10\r\n\r\n8")  # fmt: skip
        async with asyncio.timeout(5):
            answer = await reader.readuntil(b"\r\n")
            assert b"Connection: close" in await reader.readuntil(b"\r\n\r\n")
        writer.close()
        assert answer.startswith(b"HTTP/1.1 408"), answer
        assert r.registers() == before


def test_accept_errors_are_logged_once_a_minute() -> None:
    loop = asyncio.new_event_loop()
    seen: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: seen.append(context))
    try:
        with capture_logs() as logs, AcceptErrorLimiter(loop) as limiter:
            for _ in range(1000):
                limiter(loop, {"message": "socket.accept() out of system resource",
                               "exception": OSError(24, "Too many open files")})  # fmt: skip
            limiter(loop, {"message": "something else"})
        assert loop.get_exception_handler() is not limiter  # put back
    finally:
        loop.close()
    assert [e["event"] for e in logs] == [
        "REST cannot accept connections: out of file descriptors or memory"
    ]
    assert limiter.held_back == 999
    assert [c["message"] for c in seen] == ["something else"]  # the rest passed on


# --- 6: a burst of large MQTT commands stays bounded in memory ---------------------------------


async def test_a_burst_of_large_mqtt_commands_adds_less_than_60_mib(tmp_path: Path) -> None:
    broker = Mosquitto(tmp_path)
    # Let the broker queue the whole burst for the daemon (its default drops beyond 1,000).
    broker.config.write_text(
        broker.config.read_text() + "max_queued_messages 0\nmax_queued_bytes 0\n"
    )
    broker.start()
    plant = Plant(FROZEN)
    burst, size = 3000, 60_000
    env = _env(tmp_path, 0, GIVTCP_MQTT__HOST="127.0.0.1", GIVTCP_MQTT__PORT=str(broker.port),
               GIVTCP_MQTT__DISCOVERY="false", GIVTCP_REST__ENABLED="false")  # fmt: skip
    try:
        async with (
            plant.simulator() as sim,
            aiomqtt.Client("127.0.0.1", broker.port) as listener,
            aiomqtt.Client("127.0.0.1", broker.port) as sender,
        ):
            env["GIVTCP_INVERTERS__0__PORT"] = str(sim.port)
            await listener.subscribe(f"GivEnergy/{plant.serial}/control/+/result")

            async def results() -> int:
                count = 0
                async for _message in listener.messages:
                    count += 1
                    if count == burst:
                        break
                return count

            async with daemon_process(env, tmp_path) as daemon:
                await daemon.wait_event("plant detected")
                await daemon.wait_event("MQTT connected")
                before = _reset_peak(daemon.proc.pid)
                counting = asyncio.ensure_future(results())
                topic = f"GivEnergy/{plant.serial}/control/setChargeTarget"
                payload = b"x" * size
                for _ in range(burst):
                    await sender.publish(topic, payload, qos=0)
                async with asyncio.timeout(120):
                    answered = await counting  # every command gets its result
                peak = _status(daemon.proc.pid, "VmHWM")
        grown = (peak - before) / 1024
        print(f"\nburst of {burst} x {size} B: daemon peak RSS +{grown:.1f} MiB, "
              f"{answered} results")  # fmt: skip
        assert answered == burst
        assert grown < 60, grown
    finally:
        broker.stop()


def _status(pid: int, key: str) -> int:
    """A ``/proc/<pid>/status`` figure in kB (VmRSS, VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def _reset_peak(pid: int) -> int:
    """Make the process's peak RSS its current RSS (Linux ``clear_refs``); that RSS in kB."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")
    return _status(pid, "VmRSS")


def main(argv: list[str]) -> int:
    """The CLI in this process; its logging set-up (on a captured stderr) is undone after."""
    try:
        return _main(argv)
    finally:
        reset_logging()
