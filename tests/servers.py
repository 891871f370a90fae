"""Real servers for the tests: a mosquitto broker and a VictoriaMetrics (InfluxDB write API).

Each runs as a subprocess on a free 127.0.0.1 port and can be stopped and started again on the
same port (broker restart and database outage tests).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _find(binary: str, *extra: str) -> str:
    for candidate in (shutil.which(binary), *extra):
        if candidate and Path(candidate).exists():
            return candidate
    raise RuntimeError(f"{binary} is not installed; run scripts/test.sh to install it")


def _wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    """Return once ``port`` accepts connections; fail if the process dies first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            # Not listening yet: the next attempt is the wait (connect itself blocks briefly).
            time.sleep(0.02)
    raise RuntimeError(f"nothing listens on port {port} after {timeout} s")


def _wait_port_closed(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                time.sleep(0.02)
        except OSError:
            return
    raise RuntimeError(f"port {port} still open after {timeout} s")


class _Process:
    def __init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = free_port()

    def _command(self) -> list[str]:
        raise NotImplementedError

    def _ready(self) -> None:
        assert self.proc is not None
        _wait_port(self.port, self.proc)

    def start(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            return
        self.proc = subprocess.Popen(
            self._command(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        self._ready()

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.proc = None
        _wait_port_closed(self.port)

    def restart(self) -> None:
        self.stop()
        self.start()


class Mosquitto(_Process):
    """A mosquitto broker with anonymous access on 127.0.0.1:<port>, sending without delay
    (``set_tcp_nodelay``, as the daemon's own connection does)."""

    def __init__(self, workdir: Path) -> None:
        super().__init__()
        self.binary = _find("mosquitto", "/usr/sbin/mosquitto")
        self.config = workdir / "mosquitto.conf"
        self.config.write_text(
            f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous true\n"
            "persistence false\n"
            "log_dest none\n"
            # Send at once: a command and its result are a few small packets each way, and
            # Nagle's algorithm would hold one for the peer's delayed ACK (~45 ms a message).
            "set_tcp_nodelay true\n"
        )

    def _command(self) -> list[str]:
        return [self.binary, "-c", str(self.config)]


class VictoriaMetrics(_Process):
    """VictoriaMetrics accepting the InfluxDB v2 write API on 127.0.0.1:<port>."""

    def __init__(self, workdir: Path) -> None:
        super().__init__()
        self.binary = _find("victoria-metrics", "/usr/bin/victoria-metrics")
        self.data = workdir / "vm-data"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _command(self) -> list[str]:
        return [
            self.binary,
            f"-httpListenAddr=127.0.0.1:{self.port}",
            f"-storageDataPath={self.data}",
            "-retentionPeriod=100y",
            "-search.latencyOffset=0s",
            "-loggerLevel=ERROR",
        ]

    def _ready(self) -> None:
        super()._ready()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=1) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                time.sleep(0.02)
        raise RuntimeError("victoria-metrics did not become healthy")
