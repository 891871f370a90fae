"""The internal broker (a supervised mosquitto) and a TLS broker with a password."""

from __future__ import annotations

import asyncio
import getpass
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import aiomqtt
import pytest

from givtcp_async.backoff import Backoff
from givtcp_async.sinks.broker import BrokerService, broker_config
from tests.harness import running_daemon
from tests.mqtt_support import watching
from tests.servers import Mosquitto, free_port
from tests.servers import _wait_port as wait_port
from tests.test_mqtt_service import FROZEN, ROOT, service, started

USER, PASSWORD = "givtcp", "pw-test-0123"


def password_file(folder: Path) -> Path:
    path = folder / "passwords"
    path.write_text(f"{USER}:{PASSWORD}\n")
    subprocess.run(["mosquitto_passwd", "-U", str(path)], check=True, capture_output=True)
    return path


async def test_internal_broker_is_started_supervised_and_stopped(tmp_path: Path) -> None:
    port = free_port()
    settings = {"internal_broker": True, "port": port, "username": USER, "password": PASSWORD}
    creds = {"username": USER, "password": PASSWORD}
    async with running_daemon(tmp_path, plant_config=FROZEN, mqtt=settings) as rig:
        broker = next(s for s in rig.daemon.services if isinstance(s, BrokerService))
        broker.backoff = Backoff(initial=0.05, maximum=0.2)
        svc = service(rig)
        async with asyncio.timeout(15):
            await svc.wait_connected(1)
        with pytest.raises(aiomqtt.MqttError):  # the password is required
            async with aiomqtt.Client("127.0.0.1", port, identifier="anonymous"):
                pass
        async with watching(port, f"{ROOT}/#", **creds) as w:
            serial = await started(rig, w)
        # mosquitto dies: the daemon starts it again and reconnects to it.
        first = broker.process
        assert first is not None
        first.kill()
        await first.wait()
        async with asyncio.timeout(15):
            await broker.wait_started(2)
            await svc.wait_connected(2)
        async with watching(port, f"{ROOT}/+/control/+/result", **creds) as w:
            await w.client.publish(f"{ROOT}/{serial}/control/setChargeTarget", "65")
            result = await w.result(f"{ROOT}/{serial}/control/setChargeTarget/result", after=0)
            assert result["status"] == "ok"
        second = broker.process
    assert second is not None
    assert second.returncode is not None  # stopped with the daemon: no orphan
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()


def test_internal_broker_dies_with_a_killed_daemon(tmp_path: Path) -> None:
    """SIGKILL leaves no chance to clean up: the broker must not outlive the daemon anyway."""
    port = free_port()
    script = (
        "import asyncio, sys\n"
        "from givtcp_async.config import Settings\n"
        "from givtcp_async.daemon import Daemon\n"
        "settings = Settings.model_validate({'inverters': [{'host': '127.0.0.1', 'port': 9}],"
        f" 'mqtt': {{'internal_broker': True, 'port': {port}}}, 'rest': {{'enabled': False}},"
        f" 'control': {{'state_dir': {str(tmp_path)!r}}}}})\n"
        "asyncio.run(Daemon(settings).run())\n"
    )
    daemon = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_port(port, daemon)
        brokers = [
            pid
            for pid in os.listdir("/proc")
            if pid.isdigit()
            and _cmdline(pid).startswith(b"/usr/sbin/mosquitto")
            and str(tmp_path).encode() in _cmdline(pid)
        ]
        assert len(brokers) == 1
    finally:
        daemon.kill()
        daemon.wait()
    deadline = time.monotonic() + 5
    try:
        while _cmdline(brokers[0]).startswith(b"/usr/sbin/mosquitto"):
            assert time.monotonic() < deadline, "mosquitto outlived the daemon"
            time.sleep(0.02)  # waiting for the kernel to deliver the parent-death signal
    finally:
        if _cmdline(brokers[0]).startswith(b"/usr/sbin/mosquitto"):
            os.kill(int(brokers[0]), signal.SIGKILL)  # the orphan this test found


def _cmdline(pid: str) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def test_broker_config_requires_the_password_file_when_there_is_one(tmp_path: Path) -> None:
    anonymous = broker_config("127.0.0.1", 1883, tmp_path)
    assert "listener 1883 127.0.0.1" in anonymous
    assert "\nuser " in anonymous  # as root, mosquitto would otherwise become "mosquitto"
    assert "allow_anonymous true" in anonymous
    assert "password_file" not in anonymous
    locked = broker_config("0.0.0.0", 1884, tmp_path, password_file=tmp_path / "pw")
    assert "allow_anonymous false" in locked
    assert f"password_file {tmp_path / 'pw'}" in locked


@pytest.fixture
def tls_broker(tmp_path: Path) -> Iterator[tuple[Mosquitto, Path]]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    broker = Mosquitto(tmp_path)
    broker.config.write_text(
        f"user {getpass.getuser()}\nlistener {broker.port} 127.0.0.1\n"
        f"cafile {cert}\ncertfile {cert}\nkeyfile {key}\n"
        f"allow_anonymous false\npassword_file {password_file(tmp_path)}\n"
        "persistence false\nlog_dest none\n"
    )
    broker.start()
    yield broker, cert
    broker.stop()


async def test_tls_and_password_towards_the_broker(
    tmp_path: Path, tls_broker: tuple[Mosquitto, Path]
) -> None:
    broker, cert = tls_broker
    settings = {
        "host": "127.0.0.1",
        "port": broker.port,
        "username": USER,
        "password": PASSWORD,
        "tls": {"enabled": True, "ca_file": str(cert)},
    }
    tls = aiomqtt.TLSParameters(ca_certs=str(cert))
    async with (
        running_daemon(tmp_path, plant_config=FROZEN, mqtt=settings) as rig,
        watching(broker.port, f"{ROOT}/#", username=USER, password=PASSWORD, tls_params=tls) as w,
    ):
        serial = await started(rig, w)
        assert w.latest[f"{ROOT}/bridge/status"].payload == "online"
        assert serial in w.latest[f"{ROOT}/{serial}/runAll"].payload


async def test_internal_broker_port_taken_by_another_program_stops_the_daemon(
    tmp_path: Path,
) -> None:
    # Something else (a system mosquitto) listens on the port: the daemon must not take it for
    # its own broker and publish there.
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        with pytest.raises(BaseExceptionGroup) as caught:  # noqa: PT012
            async with running_daemon(
                tmp_path, plant_config=FROZEN, mqtt={"internal_broker": True, "port": port}
            ):
                runner = next(t for t in asyncio.all_tasks() if t.get_name() == "test-daemon")
                await asyncio.wait({runner}, timeout=15)
    [error] = caught.value.exceptions
    assert isinstance(error, OSError)
    assert f"127.0.0.1:{port}" in str(error)
    assert "address already in use" in str(error)
