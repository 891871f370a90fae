"""The internal MQTT broker: a supervised local mosquitto (``mqtt.internal_broker = true``).

GivTCP offered a built-in broker for setups without one. Here the daemon writes a mosquitto
configuration into ``<state_dir>/mosquitto/``, starts ``mosquitto -c`` on ``mqtt.host:port``
(127.0.0.1:1883 by default), restarts it with back-off if it dies, and stops it on shutdown
(after the MQTT service has published ``offline``). Retained messages persist in the same
folder across restarts. With ``mqtt.username``/``password`` set the broker requires them;
otherwise it accepts anonymous clients, which is why it listens on localhost by default. The
listener has no TLS.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import structlog

from givtcp_async.backoff import Backoff
from givtcp_async.config import MqttConfig
from givtcp_async.ports import InverterView, Links

log = structlog.get_logger(__name__)

MOSQUITTO: Final = "/usr/sbin/mosquitto"
MOSQUITTO_PASSWD: Final = "/usr/bin/mosquitto_passwd"
READY_TIMEOUT: Final = 10.0
STOP_TIMEOUT: Final = 2.0
HEALTHY_AFTER: Final = 30.0  # a run this long resets the restart back-off
_PR_SET_PDEATHSIG: Final = 1


def find_binary(name: str, default: str) -> str | None:
    for candidate in (default, shutil.which(name)):
        if candidate and Path(candidate).exists():
            return candidate
    return None


def broker_config(
    host: str,
    port: int,
    folder: Path,
    *,
    password_file: Path | None = None,
    user: str | None = None,
) -> str:
    """The mosquitto configuration the daemon runs its broker with.

    ``user``: started as root, mosquitto switches to this user (by default ``mosquitto``, which
    could not read the daemon's files); it runs as the daemon's own user unless told otherwise.
    """
    lines = [
        "# Written by givtcp-async at every start of its internal broker; edits are lost.",
        f"user {user or _current_user()}",
        f"listener {port} {host}",
        f"allow_anonymous {'false' if password_file else 'true'}",
        "persistence true",
        f"persistence_location {folder}/",
        "autosave_interval 300",
        "log_dest stderr",
        "log_type error",
        "log_type warning",
        "log_type notice",
        "log_timestamp false",
    ]
    if password_file is not None:
        lines.append(f"password_file {password_file}")
    return "\n".join(lines) + "\n"


def _current_user() -> str:
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:  # no passwd entry (some containers): keep the numeric identity
        return str(os.getuid())


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """Linux: the broker gets SIGTERM if the daemon dies without stopping it."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def port_taken(host: str, port: int) -> str | None:
    """Why ``host:port`` cannot be listened on right now (None: it can)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError as err:
        return str(err)
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        # As mosquitto does: a port whose last connections linger in TIME_WAIT is free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as err:
            reason = err.strerror or str(err)
            return reason[:1].lower() + reason[1:]
    return None


def broker_service(
    mqtt: MqttConfig, views: Sequence[InverterView], links: Links, *, state_dir: Path
) -> BrokerService | None:
    """The daemon's factory: a broker when ``mqtt.internal_broker`` is on (its files under
    ``<state_dir>/mosquitto``)."""
    if not (mqtt.enabled and mqtt.internal_broker):
        return None
    return BrokerService(mqtt, state_dir / "mosquitto", links)


class BrokerService:
    """Runs and supervises mosquitto until cancelled; :attr:`ready` is set while it listens."""

    name = "mqtt-broker"

    def __init__(
        self,
        mqtt: MqttConfig,
        folder: Path,
        links: Links | None = None,
        *,
        binary: str | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        self.links = links or Links()
        self.host = mqtt.host or "127.0.0.1"
        self.port = mqtt.port
        self.username = mqtt.username
        self.password = mqtt.password.get_secret_value() if mqtt.password else None
        self.folder = folder
        self.binary = binary or find_binary("mosquitto", MOSQUITTO)
        self.backoff = backoff or Backoff(initial=1.0, maximum=30.0)
        self.ready = asyncio.Event()
        self.links.broker_ready.append(self.ready)
        self.process: asyncio.subprocess.Process | None = None
        self.starts = 0  # times mosquitto came up listening
        self._started = asyncio.Condition()
        self._tail: deque[str] = deque(maxlen=20)

    async def wait_started(self, times: int = 1) -> None:
        """Return once mosquitto has come up listening ``times`` times in all."""
        async with self._started:
            await self._started.wait_for(lambda: self.starts >= times)

    async def run(self) -> None:
        if self.binary is None:
            log.error("mqtt.internal_broker is on but mosquitto is not installed",
                      looked_for=MOSQUITTO)  # fmt: skip
            await asyncio.Event().wait()  # nothing to supervise; wait to be cancelled
        try:
            first = True
            while True:
                started = time.monotonic()
                taken = await asyncio.to_thread(port_taken, self.host, self.port)
                if taken is not None:
                    # Starting mosquitto now would find the port taken and exit, while the
                    # readiness check connected to whatever holds it: never serve from there.
                    text = (
                        f"cannot start the internal MQTT broker on {self.host}:{self.port}: "
                        f"{taken} (another broker? set mqtt.port, or mqtt.internal_broker off)"
                    )
                    if first:
                        raise OSError(text)
                    log.error("internal MQTT broker not restarted", reason=text)
                    rc = None
                else:
                    rc = await self._run_once()
                first = False
                if time.monotonic() - started > HEALTHY_AFTER:
                    self.backoff.reset()
                delay = self.backoff.next_delay()
                log.warning("internal MQTT broker exited; restarting", returncode=rc,
                            retry_in=round(delay, 2), last_lines=list(self._tail))  # fmt: skip
                await asyncio.sleep(delay)
        finally:
            await self._stop()

    async def _run_once(self) -> int | None:
        config = await asyncio.to_thread(self._write_files)
        assert self.binary is not None
        self._tail.clear()
        self.process = await asyncio.create_subprocess_exec(
            self.binary,
            "-c",
            str(config),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,  # a terminal's Ctrl-C reaches the daemon, not the broker
            preexec_fn=_die_with_parent,  # only prctl: safe before exec
        )
        proc = self.process
        reader = asyncio.create_task(self._read_log(proc), name="mosquitto-log")
        try:
            if await self._wait_listening(proc):
                log.info("internal MQTT broker listening", host=self.host, port=self.port,
                         pid=proc.pid)  # fmt: skip
                self.ready.set()
                async with self._started:
                    self.starts += 1
                    self._started.notify_all()
            return await proc.wait()
        finally:
            self.ready.clear()
            if proc.returncode is not None:
                await asyncio.wait({reader}, timeout=1.0)
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader

    def _write_files(self) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        password_file: Path | None = None
        if self.username is not None:
            password_file = self.folder / "passwords"
            self._write_password_file(password_file)
        config = self.folder / "mosquitto.conf"
        config.write_text(
            broker_config(self.host, self.port, self.folder, password_file=password_file)
        )
        return config

    def _write_password_file(self, path: Path) -> None:
        """``user:password``, hashed in place by mosquitto_passwd -U (never on a command line)."""
        assert self.username is not None
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(f"{self.username}:{self.password or ''}\n")
        tool = find_binary("mosquitto_passwd", MOSQUITTO_PASSWD)
        if tool is None:
            raise RuntimeError("mosquitto_passwd is needed to set a password on the broker")
        subprocess.run([tool, "-U", str(path)], check=True, capture_output=True, timeout=10)

    async def _wait_listening(self, proc: asyncio.subprocess.Process) -> bool:
        deadline = time.monotonic() + READY_TIMEOUT
        while proc.returncode is None and time.monotonic() < deadline:
            try:
                _, writer = await asyncio.open_connection(self.host, self.port)
            except OSError:
                await asyncio.sleep(0.05)  # not listening yet: poll again shortly
                continue
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            return True
        return False

    async def _read_log(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stderr is not None
        while line := await proc.stderr.readline():
            text = line.decode("utf-8", "replace").rstrip()
            self._tail.append(text)
            log.debug("mosquitto", line=text)

    async def _stop(self) -> None:
        """Let the MQTT service say goodbye, then terminate mosquitto (kill if it lingers)."""
        proc = self.process
        self.ready.clear()
        if proc is None or proc.returncode is not None:
            return
        await self.links.wait_mqtt_stopped(1.5)
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            async with asyncio.timeout(STOP_TIMEOUT):
                await proc.wait()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
        log.info("internal MQTT broker stopped", returncode=proc.returncode)
