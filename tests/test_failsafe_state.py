"""Writes accounted for and restores that always run (issue 15, points 2, 3, 8 and 9), with the
faults injected for real: a tmpfs that fills, a read-only remount, a directory that cannot be
created, and a ``write`` process killed with SIGKILL while its writes are on the wire."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from givtcp_async.cli import main
from givtcp_async.control.accounting import WriteLedger
from givtcp_async.control.persist import check_state_dir, state_file
from givtcp_async.errors import StateError
from givtcp_async.logging_setup import reset_logging
from givtcp_async.protocol.frames import WriteRequest
from tests.control_support import Rig, build_store, rig
from tests.rest_support import rest_rig
from tests.test_cli import CLI, clean_env
from tests.test_control_overrides import FORCE_CHARGE_REGS, _hrs, _prepare


def _writes(r: Rig, after: int = 0) -> list[tuple[int, int]]:
    return r.writes_seen(after)


# --- a real filesystem that fills up or turns read-only ----------------------------------------


def _mount(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["mount", *args], capture_output=True, text=True, check=False)


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 256 KiB tmpfs mounted for the test (unmounted after it)."""
    where = tmp_path / "tmpfs"
    where.mkdir()
    done = _mount("-t", "tmpfs", "-o", "size=256k,mode=0700", "tmpfs", str(where))
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()}): needs root")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def _fill(where: Path) -> Path:
    """Fill the filesystem to the last byte."""
    filler = where / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while os.write(fd, b"\0" * 4096):
            pass
    except OSError:
        pass  # ENOSPC: full
    finally:
        os.close(fd)
    return filler


def _remount(where: Path, mode: str) -> None:
    done = _mount("-o", f"remount,{mode}", str(where))
    assert done.returncode == 0, done.stderr


async def test_a_full_state_directory_refuses_writes_and_overrides(tmpfs: Path) -> None:
    state = tmpfs / "state"
    async with rig("gen3", state) as r:
        assert (await r.control.execute("setChargeTarget", "81")).ok  # files exist, space left
        saved = _prepare(r)
        filler = _fill(tmpfs)
        mark = r.sim.mark()
        for function, payload in (("setChargeTarget", "82"), ("forceCharge", "30")):
            result = await r.control.execute(function, payload)
            assert result.status == "rejected", result.message
            assert result.errors[0]["field"] == "state_dir"
            assert "No space left on device" in result.message
        assert _writes(r, mark) == []
        assert _hrs(r, FORCE_CHARGE_REGS) == saved
        assert r.controller.ledger.total == 1
        filler.unlink()
        assert (await r.control.execute("setChargeTarget", "82")).ok
    assert WriteLedger(state_file(state, "inverter", "writes")).total == 2


async def test_a_read_only_state_directory_refuses_writes_and_overrides(tmpfs: Path) -> None:
    state = tmpfs / "state"
    async with rig("gen3", state) as r:
        assert (await r.control.execute("setChargeTarget", "81")).ok
        _remount(tmpfs, "ro")
        try:
            mark = r.sim.mark()
            for function, payload in (("forceCharge", "30"), ("setChargeTarget", "82")):
                result = await r.control.execute(function, payload)
                assert result.status == "rejected", result.message
                assert "Read-only file system" in result.message
            assert _writes(r, mark) == []
            assert r.manager.active() == {}
        finally:
            _remount(tmpfs, "rw")


def test_daemon_and_write_refuse_to_start_without_a_writable_state_dir(
    tmpfs: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in list(os.environ):
        if name.startswith(("GIVTCP_", "MQTT_", "INVERTOR_", "INFLUX_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("GIVTCP_INVERTERS__0__HOST", "127.0.0.1")
    monkeypatch.setenv("GIVTCP_CONTROL__STATE_DIR", str(tmpfs / "state"))
    _remount(tmpfs, "ro")
    try:
        for args in (["run"], ["write", "setChargeTarget", "80"]):
            try:
                code = main(args)
            finally:
                reset_logging()
            out, err = capsys.readouterr()
            assert code == 2, (args, err)
            assert out == ""
            assert err.splitlines() == [
                f"givtcp-async: control.state_dir: {tmpfs / 'state'} is not writable: "
                "Read-only file system"
            ], err
    finally:
        _remount(tmpfs, "rw")


def test_a_state_directory_that_cannot_be_created_is_refused(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(StateError, match="is not writable: Not a directory"):
        check_state_dir(blocker / "state")
    check_state_dir(tmp_path / "fine" / "state")
    assert list((tmp_path / "fine" / "state").iterdir()) == []  # the probe is gone


# --- 2: the budget never blocks a restore; an override starts only if its restore fits ---------


async def test_an_override_starts_only_if_its_restore_fits_and_its_restore_always_runs(
    tmp_path: Path,
) -> None:
    async with rig("gen3", tmp_path) as r:
        saved = _prepare(r)
        ledger = r.controller.ledger
        n = len(FORCE_CHARGE_REGS)  # every register differs: 7 writes, 7 to restore
        ledger.daily_budget = 2 * n - 1  # room to apply, not to undo
        result = await r.control.execute("forceCharge", "30")
        assert result.status == "rejected", result.message
        assert f"{n} write(s) needed and {n} kept for the restore" in result.message
        assert _hrs(r, FORCE_CHARGE_REGS) == saved
        assert ledger.total == 0

        ledger.daily_budget = 2 * n + 1
        result = await r.control.execute("forceCharge", "30")
        assert result.ok, result.message
        assert ledger.reserved == n
        assert ledger.remaining_today() == 1
        assert (await r.control.execute("setBatteryReserve", "30")).ok  # the one left
        refused = await r.control.execute("setBatteryCutoff", "20")
        assert refused.status == "rejected"
        assert refused.errors[0]["field"] == "budget"
        assert f"{n} kept for pending restores" in refused.message
        # The budget is spent to the last write, yet Cancel restores everything.
        cancelled = await r.control.execute("forceCharge", "Cancel")
        assert cancelled.ok, cancelled.message
        assert _hrs(r, FORCE_CHARGE_REGS) == saved
        assert ledger.reserved == 0
        assert ledger.today == 2 * n + 1

        # A restore is never refused, even over a spent budget (a reservation made by an older
        # version, or a budget lowered meanwhile).
        ledger.daily_budget = 2 * n + 20
        assert (await r.control.execute("tempPauseCharge", "30")).ok
        ledger.daily_budget = 0
        assert ledger.remaining_today() == 0
        assert (await r.control.execute("tempPauseCharge", "Cancel")).ok
        assert ledger.refused_budget == 2


async def test_the_minimum_interval_refuses_a_flood_but_never_a_restore(tmp_path: Path) -> None:
    async with rig("gen3", tmp_path) as r:
        ledger = r.controller.ledger
        ledger.min_interval = timedelta(seconds=10)
        assert (await r.control.execute("setChargeTarget", "80")).ok
        mark = r.sim.mark()
        flood = await r.control.execute("setChargeTarget", "70")
        assert flood.status == "rejected"
        assert flood.errors[0]["field"] == "interval"
        assert "HR116 was written 0 s ago" in flood.message
        assert _writes(r, mark) == []
        assert ledger.refused_interval == 1
        await r.clock.advance(seconds=10)
        assert (await r.control.execute("setChargeTarget", "70")).ok
        # An override and its immediate Cancel: the restore writes the same registers at once.
        assert (await r.control.execute("tempPauseCharge", "30")).ok
        cancelled = await r.control.execute("tempPauseCharge", "Cancel")
        assert cancelled.ok, cancelled.message
        assert ledger.refused_interval == 1


async def test_refusals_are_counted_in_metrics_and_answered_429(tmp_path: Path) -> None:
    control = {"write_budget_per_day": 2, "min_write_interval": 10}
    async with rest_rig(tmp_path, control=control) as r:
        status, body = await r.post("setChargeTarget", "80")
        assert status == 200, body
        status, body = await r.post("setChargeTarget", "70")
        assert status == 429, body
        assert body["errors"][0]["field"] == "interval"
        slot = {"start": "0111", "finish": "0222"}
        status, body = await r.post("setChargeSlot2", slot)  # two writes, one left
        assert status == 429, body
        assert body["errors"][0]["field"] == "budget"
        metrics = await r.metrics()
        assert metrics["givtcp_writes_refused_interval_total"][0][1] == 1
        assert metrics["givtcp_writes_refused_budget_total"][0][1] == 1


def test_the_defaults_are_a_budget_and_an_interval() -> None:
    from givtcp_async.config import ControlConfig

    control = ControlConfig()
    assert control.write_budget_per_day == 500
    assert control.min_write_interval == 10


# --- 8: recorded >= sent, even when killed mid-command ------------------------------------------


async def test_the_write_count_is_durable_before_each_write_under_kill_9(tmp_path: Path) -> None:
    """``write`` runs commands of two writes each and is killed (SIGKILL) the moment one of its
    writes reaches the dongle: first, second, first ... The count on disk must cover every
    write the dongle received."""
    store, _ = build_store("gen1")
    from givtcp_async.simulator.server import DongleSimulator

    state = tmp_path / "state"
    async with DongleSimulator(store) as sim:
        env = clean_env(
            GIVTCP_INVERTERS__0__HOST="127.0.0.1",
            GIVTCP_INVERTERS__0__PORT=str(sim.port),
            GIVTCP_CONTROL__STATE_DIR=str(state),
            GIVTCP_CONTROL__MIN_WRITE_INTERVAL="0",
            GIVTCP_LOGGING__LEVEL="ERROR",
        )
        kills = 0
        for i in range(3):
            slot = {"start": f"{i + 1:02d}00", "finish": f"{i + 1:02d}30"}  # HR94, HR95
            mark = sim.mark()
            proc = await asyncio.create_subprocess_exec(
                *CLI, "write", "setChargeSlot1", json.dumps(slot), env=env, cwd=tmp_path,
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
            )  # fmt: skip
            try:
                nth = 1 + i % 2
                for _ in range(nth):
                    ev = await sim.wait_for(
                        lambda e: e.kind == "request" and isinstance(e.frame, WriteRequest),
                        after=mark,
                        timeout=30,
                    )
                    mark = ev.seq + 1
                proc.kill()
                kills += 1
            finally:
                if proc.returncode is None:
                    proc.kill()
                await proc.wait()
        sent = len([r for r in sim.requests_seen() if isinstance(r, WriteRequest)])
    recorded = WriteLedger(state_file(state, "SA2114G000", "writes")).total
    assert kills == 3
    assert sent >= 4
    assert recorded >= sent, (recorded, sent)
    assert os.listdir(state)  # no temporary files left behind but the state itself
    assert not [n for n in os.listdir(state) if n.endswith(".tmp")]
