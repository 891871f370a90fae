"""The command line as a user runs it: real subprocesses against real simulators over TCP.

``write`` (test_control_cli), ``simulate`` (test_simulator), ``capture decode`` (test_capture) and
``config check`` (test_config) have their own files; here are ``read``, ``discover``, ``demo``,
``run`` and ``--help`` for every command.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from givtcp_async import discover
from givtcp_async.cli import build_parser
from givtcp_async.simulator.plant import Plant, PlantConfig
from givtcp_async.simulator.server import DongleSimulator
from tests.mqtt_support import watching
from tests.servers import Mosquitto, free_port

CLI = [sys.executable, "-m", "givtcp_async"]
_SETTINGS_ENV = re.compile(
    r"^(GIVTCP_(?!SHARED$).*|INVERTOR_IP.*|NUM_?BATTERIES.*|MQTT_.*|INFLUX_.*|LOG_LEVEL"
    r"|DEBUG_FILE_LOCATION|PRINT_RAW|HA_AUTO_D|HADEVICEPREFIX.*|SELF_RUN.*|NOTIFY_SOCKET"
    r"|WATCHDOG_.*)$"
)


def clean_env(**extra: str) -> dict[str, str]:
    """The test's environment without any setting a developer may have exported."""
    return {**{k: v for k, v in os.environ.items() if not _SETTINGS_ENV.match(k)}, **extra}


async def cli(
    *args: str, cwd: Path, timeout: float = 60, env: dict[str, str] | None = None
) -> tuple[int, str, str]:
    """Run the CLI to completion (asynchronously, so in-process simulators keep serving)."""
    proc = await asyncio.create_subprocess_exec(
        *CLI,
        *args,
        cwd=cwd,
        env=env or clean_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(timeout):
            out, err = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


# --- --help ----------------------------------------------------------------------------------


def _commands() -> list[list[str]]:
    """Every command and subcommand path of the parser."""
    out: list[list[str]] = [[]]

    def walk(parser: argparse.ArgumentParser, prefix: list[str]) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    out.append([*prefix, name])
                    walk(sub, [*prefix, name])

    walk(build_parser(), [])
    return out


async def test_help_everywhere(tmp_path: Path) -> None:
    commands = _commands()
    names = {" ".join(c) for c in commands}
    assert {"run", "read", "write", "discover", "simulate", "demo", "capture decode",
            "config check"} <= names  # fmt: skip
    results = await asyncio.gather(*(cli(*c, "--help", cwd=tmp_path) for c in commands))
    for command, (code, out, err) in zip(commands, results, strict=True):
        assert code == 0, (command, err)
        assert out.startswith("usage: givtcp-async"), command
        assert err == "", (command, err)


async def test_unknown_command_is_usage_error(tmp_path: Path) -> None:
    code, _, err = await cli("frobnicate", cwd=tmp_path)
    assert code == 2
    assert "invalid choice" in err


# --- simulators on loopback addresses --------------------------------------------------------


@contextlib.asynccontextmanager
async def simulators(hosts: list[str]) -> AsyncIterator[tuple[int, dict[str, str]]]:
    """A simulated plant on each host, all on one port; (port, host -> inverter serial)."""
    for _ in range(20):
        port = free_port()
        sims: list[DongleSimulator] = []
        serials: dict[str, str] = {}
        try:
            for i, host in enumerate(hosts):
                plant = Plant(PlantConfig(seed=10 + i))
                sim = plant.simulator(plant.simulator_config(host=host, port=port))
                sims.append(sim)
                await sim.start()
                serials[host] = plant.serial
        except OSError:  # the port is taken on one of the addresses: try another
            for sim in sims:
                await sim.close()
            continue
        try:
            yield port, serials
        finally:
            for sim in sims:
                await sim.close()
        return
    raise RuntimeError("no port free on every address")


@contextlib.asynccontextmanager
async def listener(host: str, port: int, reply: bytes | None) -> AsyncIterator[None]:
    """Something else listening on the dongle port: it sends ``reply`` (None: stays silent)."""
    connections: set[asyncio.StreamWriter] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.add(writer)
        try:
            await reader.read(100)  # whatever the client says
            if reply is not None:
                writer.write(reply)
                await writer.drain()
                writer.close()
            else:
                await reader.read()  # silent until the client hangs up
        except OSError:
            pass
        finally:
            connections.discard(writer)
            writer.close()

    server = await asyncio.start_server(handle, host, port)
    try:
        yield
    finally:
        server.close()
        for writer in list(connections):
            writer.transport.abort()
        await server.wait_closed()


# --- read ------------------------------------------------------------------------------------


async def test_read_prints_the_runall_groups(tmp_path: Path) -> None:
    fast = clean_env(GIVTCP_INVERTERS__0__PACING="0")
    async with simulators(["127.0.0.1"]) as (port, serials):
        code, out, err = await cli(
            "read", "--host", "127.0.0.1", "--port", str(port), "--no-meters", "--compact",
            cwd=tmp_path, env=fast,
        )  # fmt: skip
        assert code == 0, err
        assert len(out.splitlines()) == 1
        tree = json.loads(out)
        serial = serials["127.0.0.1"]
        # GivTCP 3.5's layout: the details under the serial, the packs under their stack.
        assert {"Power", "Energy", serial, "Control", "Timeslots",
                "Battery_Details"} <= set(tree)  # fmt: skip
        assert {"Power", "Flows"} <= set(tree["Power"])
        assert {"Today", "Total"} <= set(tree["Energy"])
        assert tree[serial]["Invertor_Serial_Number"] == serial
        assert len(tree["Battery_Details"]["Battery_Stack_1"]) == 2 + 2  # BMS values, 2 packs
        # GivTCP's raw block is on by default (as GivTCP's add-on had it), with its names.
        assert tree["raw"]["invertor"]["serial_number"] == serial
        code, out, err = await cli(
            "read", "--host", "127.0.0.1", "--port", str(port), "--no-meters", "--compact",
            cwd=tmp_path, env={**fast, "GIVTCP_DATA__PRINT_RAW": "false"},
        )  # fmt: skip
        assert code == 0, err
        assert "raw" not in json.loads(out)

        # GivTCP 2.4's layout on request (the variable's "2.4" is one of its spellings).
        code, out, err = await cli(
            "read", "--host", "127.0.0.1", "--port", str(port), "--no-meters", "--compact",
            cwd=tmp_path, env={**fast, "GIVTCP_DATA__LAYOUT": "2.4"},
        )  # fmt: skip
        assert code == 0, err
        tree = json.loads(out)
        assert tree["Invertor_Details"]["Invertor_Serial_Number"] == serial
        assert serial not in tree
        # Battery_Stack_1 (BMS values), 2 packs, the LV BCU
        assert len(tree["Battery_Details"]) == 1 + 2 + 1
        assert tree["Battery_Details"]["LV_BCU"]["LV_BCU_Charge_Current_Request"] == 83

        code, out, err = await cli(
            "read", "--host", "127.0.0.1", "--port", str(port), "--no-meters", "--raw", "--units",
            cwd=tmp_path, env=fast,
        )  # fmt: skip
        assert code == 0, err
        tree = json.loads(out)
        assert tree["raw"]
        soc = tree["Power"]["Power"]["SOC"]
        assert soc["unit"] == "%"
        assert 0 <= soc["value"] <= 100


async def test_read_failures(tmp_path: Path) -> None:
    port = free_port()  # nothing listens
    code, out, err = await cli(
        "read", "--host", "127.0.0.1", "--port", str(port), "--timeout", "1", cwd=tmp_path
    )
    assert (code, out) == (1, "")
    assert "cannot read the inverter" in err
    code, _, err = await cli("read", cwd=tmp_path)  # no inverter configured anywhere
    assert code == 2
    assert "no inverter configured" in err


# --- discover --------------------------------------------------------------------------------


async def test_discover_finds_exactly_the_dongles(tmp_path: Path) -> None:
    dongles = ["127.0.0.2", "127.0.0.3", "127.0.0.5"]
    async with simulators(dongles) as (port, serials):
        http = b"HTTP/1.0 200 OK\r\nContent-Type: text/html\r\n\r\n<html>camera</html>\r\n"
        async with (
            listener("127.0.0.4", port, http),  # a camera with the port open
            listener("127.0.0.6", port, None),  # accepts, never answers
        ):
            started = time.monotonic()
            code, out, err = await cli(
                "discover", "127.0.0.0/29", "--port", str(port), "--timeout", "1", cwd=tmp_path
            )
            elapsed = time.monotonic() - started
    assert code == 0, err
    found = json.loads(out)
    assert [d["address"] for d in found] == dongles
    for item in found:
        assert item["serial"] == serials[item["address"]]
        assert item["port"] == port
        assert item["model"] == "Hybrid Gen3"
        assert item["device_type_code"] == "2001"
        assert re.fullmatch(r"D0\.\d+-A0\.\d+", item["firmware"])
        assert item["adapter_serial"].startswith("WG")
    assert "scanning 6 address(es) in 127.0.0.0/29" in err
    assert "3 dongle(s) found" in err
    assert elapsed < 10


async def test_discover_nothing_found_and_bad_targets(tmp_path: Path) -> None:
    port = free_port()
    code, out, err = await cli(
        "discover", "127.0.0.8/30", "--port", str(port), "--timeout", "0.5", cwd=tmp_path
    )
    assert code == 1, err
    assert json.loads(out) == []
    assert "0 dongle(s) found" in err
    for bad in (["not-a-network"], ["10.0.0.0/8"], ["::1"], ["127.0.0.1", "--timeout", "0"]):
        code, out, err = await cli("discover", *bad, cwd=tmp_path)
        assert (code, out) == (2, ""), bad
        assert err.startswith("givtcp-async: ")


async def test_discover_a_24_of_silent_hosts_in_under_10_s(tmp_path: Path) -> None:
    """The worst case: every address accepts the connection and never answers, so each costs
    the whole answer timeout; two are dongles."""
    dongles = ["127.0.1.77", "127.0.1.200"]
    async with simulators(dongles) as (port, serials), contextlib.AsyncExitStack() as stack:
        for last in range(1, 255):
            host = f"127.0.1.{last}"
            if host not in dongles:
                await stack.enter_async_context(listener(host, port, None))
        started = time.monotonic()
        code, out, err = await cli("discover", "127.0.1.0/24", "--port", str(port), cwd=tmp_path)
        elapsed = time.monotonic() - started
    assert code == 0, err
    assert [(d["address"], d["serial"]) for d in json.loads(out)] == [
        (host, serials[host]) for host in dongles
    ]
    assert "254/254 probed, 2 found" in err
    assert elapsed < 10


async def test_probe_rejects_what_is_not_a_dongle() -> None:
    port = free_port()
    garbage = bytes(range(256)) * 8
    async with listener("127.0.0.1", port, garbage):
        assert await discover.probe("127.0.0.1", port, timeout=1) is None
    async with listener("127.0.0.1", port, None):
        started = time.monotonic()
        assert await discover.probe("127.0.0.1", port, timeout=0.5) is None
        assert time.monotonic() - started < 2
    assert await discover.probe("127.0.0.1", port, timeout=0.5) is None  # nothing listens


def test_targets_and_local_networks() -> None:
    nets = discover.parse_targets(["127.0.0.0/30", "127.0.0.1", "127.0.0.9/31"])
    assert discover.targets_of(nets) == ["127.0.0.1", "127.0.0.2", "127.0.0.8", "127.0.0.9"]
    with pytest.raises(ValueError, match="at most a /16"):
        discover.parse_targets(["10.0.0.0/15"])
    # Both ways of listing interfaces agree (iproute2's `ip`, and ioctl where it is missing, as
    # in the Docker image); they read the interfaces only and send nothing.
    by_ip = discover._interfaces_ip()
    assert by_ip is not None
    assert set(discover._interfaces_ioctl()) <= set(by_ip)
    networks, _ = discover.local_networks()
    for net in networks:
        assert not net.is_loopback
        assert net.prefixlen >= discover.MAX_LOCAL_PREFIX or net.prefixlen == 24


# --- demo ------------------------------------------------------------------------------------


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[tuple[Any, dict[str, Any]]]:
    """``givtcp-async demo`` on a free port; (process, its JSON line)."""
    import subprocess

    port = free_port()
    proc = subprocess.Popen(
        [*CLI, "demo", "--port", str(port)],
        cwd=tmp_path,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line, proc.stderr.read() if proc.stderr else ""
        info = json.loads(line)
        yield proc, info
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return int(resp.status), resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()
    except OSError as err:
        return 0, str(err)


def test_demo_serves_health_and_stops_on_sigterm(demo: tuple[Any, dict[str, Any]]) -> None:
    proc, info = demo
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/", info["dashboard"])
    assert re.fullmatch(r"127\.0\.0\.1:\d+", info["simulator"])
    assert info["mqtt"] is None
    assert info["influx"] is None
    assert proc.stderr is not None
    for line in proc.stderr:  # JSON log lines; the daemon has read the simulated inverter
        if '"plant detected"' in line:
            assert json.loads(line)["serial"] == info["serial"]
            break
    else:
        pytest.fail("demo exited before reading the plant")
    # Keep reading its logs so that a full pipe never blocks it.
    threading.Thread(target=proc.stderr.read, daemon=True).start()
    # /health says 200 once the first poll has succeeded. Another process's HTTP endpoint gives
    # no event to wait on, so it is asked every 0.1 s (as Docker's HEALTHCHECK would).
    deadline = time.monotonic() + 20
    status, body = 0, ""
    while time.monotonic() < deadline:
        status, body = _get(info["dashboard"] + "health")
        if status == 200:
            break
        time.sleep(0.1)
    assert status == 200, body
    health = json.loads(body)
    assert [i["serial"] for i in health["inverters"]] == [info["serial"]]
    assert health["inverters"][0]["online"] is True
    status, body = _get(info["dashboard"] + "runAll")
    assert status == 200
    assert json.loads(body)[info["serial"]]["Invertor_Serial_Number"] == info["serial"]
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=5) == 0
    assert time.monotonic() - started < 5


@contextlib.asynccontextmanager
async def demo_process(
    tmp_path: Path, *flags: str, mqtt_port: int, stderr: Any = asyncio.subprocess.DEVNULL
) -> AsyncIterator[tuple[asyncio.subprocess.Process, dict[str, Any]]]:
    """``givtcp-async demo`` (REST on a free port, MQTT on ``mqtt_port``); the process and its
    JSON line. Killed at the end if a test left it running."""
    proc = await asyncio.create_subprocess_exec(
        *CLI, "demo", "--port", str(free_port()), *flags,
        cwd=tmp_path,
        env=clean_env(GIVTCP_MQTT__PORT=str(mqtt_port)),
        stdout=asyncio.subprocess.PIPE,
        stderr=stderr,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(20):
            info = json.loads(await proc.stdout.readline())
        assert info["mqtt"] == f"127.0.0.1:{mqtt_port}"
        yield proc, info
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_demo_publishes_to_a_configured_broker(tmp_path: Path, mosquitto: Mosquitto) -> None:
    port = mosquitto.port
    async with demo_process(tmp_path, "--mqtt-host", "127.0.0.1", mqtt_port=port) as (proc, info):
        assert "mqtt" in info["services"]
        serial = info["serial"]
        async with watching(port, "GivEnergy/#") as watch:
            soc = await watch.wait_topic(f"GivEnergy/{serial}/Power/Power/SOC", timeout=30)
            assert 0 <= float(soc.payload) <= 100
            # The simulated inverter obeys GivTCP's control topic.
            mark = watch.mark()
            await watch.client.publish(f"GivEnergy/control/{serial}/setChargeTarget", "80")
            result = await watch.wait_topic(
                f"GivEnergy/{serial}/control/setChargeTarget/result", after=mark, timeout=30
            )
            assert json.loads(result.payload)["status"] == "ok"
            mark = watch.mark()
            proc.send_signal(signal.SIGTERM)
            async with asyncio.timeout(5):
                assert await proc.wait() == 0
            await watch.wait_topic("GivEnergy/bridge/status", "offline", after=mark)


async def test_demo_with_the_internal_broker_runs_and_stops_without_warnings(
    tmp_path: Path,
) -> None:
    """Full publishes (discovery, state) and Ctrl-C leave no MQTT client or broker warning on
    stderr (aiomqtt used to warn of "pending publish calls" at every full publish), and
    offline is published before the broker stops."""
    port = free_port()
    stderr_path = tmp_path / "stderr.txt"
    with stderr_path.open("wb") as stderr:  # a file: a full pipe would block the demo
        demo = demo_process(tmp_path, "--internal-broker", mqtt_port=port, stderr=stderr)
        async with demo as (proc, info):
            assert info["services"][:2] == ["mqtt-broker", "mqtt"]
            serial = info["serial"]
            await _listening(port)  # the broker starts with the daemon
            async with watching(port, "GivEnergy/#", "homeassistant/#") as watch:
                # State goes out after discovery: both full publishes are done.
                await watch.wait_topic(f"GivEnergy/{serial}/Power/Power/SOC", timeout=30)
                assert any(s.topic.startswith("homeassistant/") for s in watch.log)
                mark = watch.mark()
                proc.send_signal(signal.SIGINT)
                async with asyncio.timeout(10):
                    assert await proc.wait() == 0
                await watch.wait_topic(f"GivEnergy/{serial}/Stats/status", "offline", after=mark)
                await watch.wait_topic("GivEnergy/bridge/status", "offline", after=mark)
    text = stderr_path.read_text()
    lines = text.splitlines()
    records = [json.loads(line) for line in lines if line.startswith("{")]
    events = [r["event"] for r in records]
    assert not [line for line in lines if "pending publish" in line]
    mqtt_loggers = ("givtcp_async.sinks.mqtt", "givtcp_async.sinks.broker")
    noisy = [
        r
        for r in records
        if r["level"] not in ("debug", "info") and r.get("logger", "").startswith(mqtt_loggers)
    ]
    assert not noisy
    assert events.index("MQTT offline published") < events.index("internal MQTT broker stopped")
    assert "Traceback" not in text


async def _listening(port: int, timeout: float = 20.0) -> None:
    """Wait until something accepts connections on 127.0.0.1:``port`` (another process's
    socket gives no event to wait on: it is tried every 0.05 s)."""
    async with asyncio.timeout(timeout):
        while True:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(0.05)
                continue
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            return


# --- run -------------------------------------------------------------------------------------


async def test_run_with_a_bad_config_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[[inverters]]\nhost = "127.0.0.1"\n\n[mqtt]\nport = 70000\n')
    code, out, err = await cli("run", "--config", str(path), cwd=tmp_path)
    assert (code, out) == (2, "")
    assert "mqtt.port" in err
    code, _, err = await cli("run", cwd=tmp_path)  # nothing configured
    assert code == 2
    assert "no inverter configured" in err
    code, _, err = await cli("run", "--config", str(tmp_path / "missing.toml"), cwd=tmp_path)
    assert code == 2
    assert "missing.toml" in err


async def test_a_log_file_that_cannot_be_opened_is_a_configuration_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    log_file = blocker / "givtcp.log"  # under a regular file: not even root can create it
    env = clean_env(GIVTCP_LOGGING__FILE=str(log_file), GIVTCP_CONTROL__STATE_DIR=str(tmp_path))
    port = str(free_port())
    for command in (["run", "--host", "127.0.0.1"], ["demo", "--port", port],
                    ["write", "setChargeTarget", "80", "--host", "127.0.0.1"]):  # fmt: skip
        code, out, err = await cli(*command, cwd=tmp_path, env=env)
        assert (code, out) == (2, ""), (command, err)
        assert err.startswith(f"givtcp-async: logging.file: cannot open {log_file}: "), err
        assert len(err.splitlines()) == 1, err


async def test_run_exits_1_when_a_service_cannot_start(tmp_path: Path) -> None:
    blocker = await asyncio.start_server(lambda _r, _w: None, "127.0.0.1", 0)
    port = blocker.sockets[0].getsockname()[1]
    try:
        env = clean_env(GIVTCP_REST__PORT=str(port), GIVTCP_CONTROL__STATE_DIR=str(tmp_path))
        code, out, err = await cli(
            "run", "--host", "127.0.0.1", "--port", str(free_port()), cwd=tmp_path, env=env
        )
    finally:
        blocker.close()
        await blocker.wait_closed()
    assert (code, out) == (1, "")
    assert f"givtcp-async: failed: cannot listen on 127.0.0.1:{port}: address already in use" in err
    assert "Traceback" not in err
