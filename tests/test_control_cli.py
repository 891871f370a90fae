"""``givtcp-async write`` as a subprocess against ``givtcp-async simulate`` on 127.0.0.1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from givtcp_async.control.catalogue import CATALOGUE
from tests.control_support import GEN1_CAPTURE
from tests.servers import free_port

CLI = [sys.executable, "-m", "givtcp_async"]


def _env(state_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIVTCP_")}
    env["GIVTCP_CONTROL__STATE_DIR"] = str(state_dir)
    return env


@pytest.fixture
def simulator(tmp_path: Path) -> Iterator[int]:
    """``givtcp-async simulate`` serving the Gen1 capture on a free port."""
    port = free_port()
    proc = subprocess.Popen(
        [*CLI, "simulate", "--port", str(port), "--capture", str(GEN1_CAPTURE)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        cwd=tmp_path,
        env=_env(tmp_path / "sim-state"),
        text=True,
    )
    try:
        assert proc.stdout is not None
        for line in proc.stdout:  # log lines may come first; this JSON line means "listening"
            if line.startswith("{"):
                assert json.loads(line) == {"listening": f"127.0.0.1:{port}"}
                break
        else:
            pytest.fail("the simulator exited before listening")
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _write(port: int, tmp_path: Path, *args: str) -> tuple[int, list[dict[str, Any]], str]:
    done = subprocess.run(
        [*CLI, "write", *args, "--host", "127.0.0.1", "--port", str(port), "--timeout", "5"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=_env(tmp_path / "state"),
        timeout=60,
        check=False,
    )
    results = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    return done.returncode, results, done.stderr


def test_write_ok_rejected_and_unknown(simulator: int, tmp_path: Path) -> None:
    code, results, _err = _write(simulator, tmp_path, "setChargeTarget", '{"chargeToPercent":"57"}')
    assert code == 0
    [result] = results
    assert result["status"] == "ok"
    assert result["registers"][0]["register"] == 116
    assert result["registers"][0]["new"] == 57
    assert result["registers"][0]["verified"] is True

    code, results, err = _write(simulator, tmp_path, "setChargeTarget", "57")
    assert code == 0
    assert results[0]["registers"][0]["note"] == "already set"

    code, results, err = _write(simulator, tmp_path, "setChargeTarget", "101")
    assert code == 2
    assert results[0]["status"] == "rejected"
    assert results[0]["errors"][0] == {
        "field": "chargeToPercent",
        "value": "101",
        "allowed": "4-100",
        "message": "out of range",
    }
    assert err.strip().splitlines()[-1].startswith("givtcp-async: rejected: setChargeTarget")

    code, results, err = _write(simulator, tmp_path, "setChargeSlot2", '{"start":"0100"}')
    assert code == 2
    assert results[0]["errors"][0]["field"] == "function"

    code, results, _err = _write(simulator, tmp_path, "frobnicate")
    assert code == 2
    assert results[0]["status"] == "rejected"

    counter = json.loads(next((tmp_path / "state").glob("*.writes.json")).read_text())
    assert counter["total"] == 1
    assert counter["registers"] == {"116": 1}


def test_timed_override_detached_then_cancelled(simulator: int, tmp_path: Path) -> None:
    code, results, err = _write(simulator, tmp_path, "forceExport", "20", "--detach")
    assert code == 0, err
    assert results[0]["override"]["state"] == "Running"
    assert "left running" in err
    [pending] = (tmp_path / "state").glob("*.overrides.json")
    assert "forceExport" in json.loads(pending.read_text())["overrides"]

    code, results, err = _write(simulator, tmp_path, "forceExport", "Cancel")
    assert code == 0, err
    assert results[0]["status"] == "ok"
    assert results[0]["message"].startswith("restore (cancelled)")
    assert json.loads(pending.read_text())["overrides"] == {}


def test_unreachable_inverter_fails(tmp_path: Path) -> None:
    code, results, err = _write(free_port(), tmp_path, "setChargeTarget", "50")
    assert code == 1
    assert results == []
    assert "cannot reach or identify the inverter" in err


def test_usage_errors_and_list(tmp_path: Path) -> None:
    done = subprocess.run([*CLI, "write"], capture_output=True, text=True, check=False)
    assert done.returncode == 2
    listed = subprocess.run(
        [*CLI, "write", "--list"], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    names = {json.loads(line)["name"] for line in listed}
    assert {fn.name for fn in CATALOGUE} <= names
    assert {"setChargeSlot", "setDischargeTarget"} <= names
