"""Timed overrides in simulated time: revert, cancel, extend, minutes remaining, restart of the
daemon (persisted restore read by a fresh instance), clean shutdown and the dead-man timer."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from givtcp_async.control.persist import state_file
from givtcp_async.control.result import CommandResult
from tests.control_support import Rig, rig

# forceCharge on the Gen3 plant: target, slot-1 target, slot 1, AC charge, rate, pause off.
FORCE_CHARGE_REGS = (116, 242, 94, 95, 96, 111, 318)


def _hrs(r: Rig, regs: tuple[int, ...]) -> dict[int, int]:
    return {reg: r.hr(reg) for reg in regs}


def _prepare(r: Rig) -> dict[int, int]:
    """Distinctive settings the override must change and the restore must bring back."""
    for reg, value in {116: 80, 242: 90, 94: 2330, 95: 530, 96: 0, 111: 20, 318: 1}.items():
        r.set_hr(reg, value)
    return _hrs(r, FORCE_CHARGE_REGS)


async def _done(fut: asyncio.Future[CommandResult]) -> CommandResult:
    async with asyncio.timeout(10):
        return await fut


def _persisted(r: Rig) -> dict[str, object]:
    data = json.loads(state_file(r.state_dir, "inverter", "overrides").read_text())
    overrides = data["overrides"]
    assert isinstance(overrides, dict)
    return overrides


async def test_force_charge_applies_and_reverts_in_simulated_time(tmp_path: Path) -> None:
    async with rig("gen3", tmp_path) as r:
        saved = _prepare(r)
        result = await r.control.execute("forceCharge", "30")
        assert result.ok, result.message
        # 12:00 UTC = 13:00 London: slot 1 is 13:00-13:30, full rate, target 100, pause off.
        assert _hrs(r, FORCE_CHARGE_REGS) == {
            116: 100, 242: 100, 94: 1300, 95: 1330, 96: 1, 111: 50, 318: 0
        }  # fmt: skip
        assert result.override is not None
        assert result.override["state"] == "Running"
        assert result.override["minutes_remaining"] == 30
        record = _persisted(r)["forceCharge"]
        assert isinstance(record, dict)
        assert record["saved"] == {str(k): v for k, v in saved.items()}

        restored = r.manager.completion("forceCharge")
        await r.clock.advance(minutes=10, seconds=30)
        assert r.manager.remaining_minutes("forceCharge") == 20
        await r.clock.advance(minutes=19)
        assert not restored.done()
        assert r.manager.remaining_minutes("forceCharge") == 1
        await r.clock.advance(seconds=30)
        final = await _done(restored)
        assert final.ok, final.message
        assert final.override is not None
        assert final.override["reason"] == "ended"
        assert _hrs(r, FORCE_CHARGE_REGS) == saved
        assert r.manager.remaining_minutes("forceCharge") == 0
        assert _persisted(r) == {}


async def test_cancel_restores_at_once(tmp_path: Path) -> None:
    async with rig("gen3", tmp_path) as r:
        saved = _prepare(r)
        assert (await r.control.execute("forceCharge", {"duration": "45"})).ok
        for word in ("Cancel", "Normal", "0"):
            result = await r.control.execute("forceCharge", word)
            assert result.ok
        assert _hrs(r, FORCE_CHARGE_REGS) == saved
        assert r.manager.status("forceCharge") == {
            "function": "forceCharge",
            "state": "Normal",
            "minutes_remaining": 0,
        }


async def test_reissue_extends_and_keeps_the_first_saved_state(tmp_path: Path) -> None:
    async with rig("gen3", tmp_path) as r:
        saved = _prepare(r)
        assert (await r.control.execute("forceCharge", "30")).ok
        await r.clock.advance(minutes=10)
        mark = r.sim.mark()
        again = await r.control.execute("forceCharge", "30")
        assert again.ok
        assert again.message.endswith("extended, restores at 2025-06-01T12:40:00+00:00")
        assert r.writes_seen(mark) == [(95, 1340)]  # only the slot end moves
        assert r.manager.remaining_minutes("forceCharge") == 30
        restored = r.manager.completion("forceCharge")
        await r.clock.advance(minutes=29)
        assert not restored.done()
        ext = await r.manager.extend("forceCharge", 15)
        assert ext.ok
        assert r.hr(95) == 1355
        assert r.manager.remaining_minutes("forceCharge") == 16
        await r.clock.advance(minutes=16)
        assert (await _done(restored)).ok
        assert _hrs(r, FORCE_CHARGE_REGS) == saved  # the state before the first issue


async def test_restart_before_the_end_reschedules_the_restore(tmp_path: Path) -> None:
    async with rig("gen1", tmp_path) as r:
        before = _hrs(r, (110, 112, 27, 59, 56, 57))
        assert (await r.control.execute("forceExport", "60")).ok
        assert (r.hr(110), r.hr(112), r.hr(27), r.hr(59)) == (4, 50, 0, 1)
        await r.manager.stop(restore=False)  # the daemon dies; the restore stays on disk
        await r.clock.advance(minutes=20)
        control, manager = r.new_controller()
        assert await manager.start() == []  # not due yet: rescheduled
        assert manager.remaining_minutes("forceExport") == 40
        restored = manager.completion("forceExport")
        await r.clock.advance(minutes=40)
        assert (await _done(restored)).ok
        assert _hrs(r, (110, 112, 27, 59, 56, 57)) == before
        await manager.stop()
        assert control.overrides is manager


async def test_restart_after_the_end_restores_at_once(tmp_path: Path) -> None:
    async with rig("gen1", tmp_path) as r:
        before = r.hr(112)
        assert (await r.control.execute("tempPauseDischarge", "15")).ok
        assert r.hr(112) == 0
        await r.manager.stop(restore=False)
        await r.clock.advance(hours=2)  # the daemon was down past the end
        _controller, manager = r.new_controller()
        results = await manager.start()
        assert [res.status for res in results] == ["ok"]
        assert results[0].override is not None
        assert results[0].override["reason"] == "ended while the daemon was down"
        assert r.hr(112) == before
        await manager.stop()


async def test_clean_shutdown_restores(tmp_path: Path) -> None:
    async with rig("gen1", tmp_path) as r:
        before = r.hr(111)
        assert (await r.control.execute("tempPauseCharge", "90")).ok
        assert r.hr(111) == 0
        results = await r.manager.stop()
        assert [res.status for res in results] == ["ok"]
        assert r.hr(111) == before
        assert _persisted(r) == {}


async def test_dead_man_reverts_when_not_reasserted(tmp_path: Path) -> None:
    async with rig("gen3", tmp_path, deadman=10) as r:
        saved = _prepare(r)
        assert (await r.control.execute("forceCharge", "60")).ok
        assert r.manager.remaining_minutes("forceCharge") == 10
        restored = r.manager.completion("forceCharge")
        await r.clock.advance(minutes=10)
        final = await _done(restored)
        assert final.override is not None
        assert final.override["reason"] == "dead-man: not re-asserted"
        assert _hrs(r, FORCE_CHARGE_REGS) == saved


async def test_dead_man_is_held_off_by_reassertion(tmp_path: Path) -> None:
    async with rig("gen3", tmp_path, deadman=10) as r:
        _prepare(r)
        assert (await r.control.execute("forceExport", "60")).ok
        restored = r.manager.completion("forceExport")
        await r.clock.advance(minutes=8)
        assert await r.manager.keepalive("forceExport")
        await r.clock.advance(minutes=8)
        assert (await r.control.execute("forceExport", "60")).ok  # re-issuing re-asserts
        await r.clock.advance(minutes=8)
        assert not restored.done()
        assert r.manager.remaining_minutes("forceExport") == 2
        await r.clock.advance(minutes=2)
        assert (await _done(restored)).ok
        assert not await r.manager.keepalive("forceExport")


async def test_dead_man_does_not_apply_to_temporary_pauses(tmp_path: Path) -> None:
    async with rig("gen1", tmp_path, deadman=5) as r:
        assert (await r.control.execute("tempPauseCharge", "30")).ok
        assert r.manager.remaining_minutes("tempPauseCharge") == 30


async def test_a_register_changed_meanwhile_is_left_alone(tmp_path: Path) -> None:
    async with rig("gen3", tmp_path) as r:
        saved = _prepare(r)
        assert (await r.control.execute("forceCharge", "30")).ok
        assert (await r.control.execute("setChargeTarget", "85")).ok  # someone else's choice
        result = await r.control.execute("forceCharge", "Cancel")
        assert result.ok
        notes = {c.register: c.note for c in result.registers}
        assert notes[116].startswith("left as is: changed to 85")
        assert r.hr(116) == 85
        assert {reg: r.hr(reg) for reg in FORCE_CHARGE_REGS if reg != 116} == {
            reg: v for reg, v in saved.items() if reg != 116
        }


async def test_failed_restore_is_kept_and_retried(tmp_path: Path) -> None:
    async with rig("gen3", tmp_path) as r:
        saved = _prepare(r)
        assert (await r.control.execute("forceCharge", "30")).ok
        refuse = {"on": True}
        r.store.write_hooks.append(lambda _d, reg, v: None if reg == 94 and refuse["on"] else v)
        attempts: asyncio.Queue[CommandResult] = asyncio.Queue()
        r.controller.add_listener(attempts.put_nowait)
        restored = r.manager.completion("forceCharge")
        await r.clock.advance(minutes=30)
        async with asyncio.timeout(10):
            first = await attempts.get()
        # The restore stopped at HR94 (after HR116 and HR242): the override stays pending.
        assert first.status == "partial"
        assert first.written == [116, 242]
        assert not restored.done()
        assert "forceCharge" in _persisted(r)
        refuse["on"] = False
        await r.clock.advance(minutes=1)
        final = await _done(restored)
        assert final.ok
        assert final.override is not None
        assert final.override["reason"] == "retry"
        assert _hrs(r, FORCE_CHARGE_REGS) == saved


async def test_apply_failing_half_way_is_rolled_back(tmp_path: Path) -> None:
    async with rig("gen3", tmp_path) as r:
        saved = _prepare(r)
        r.store.write_hooks.append(lambda _d, reg, v: None if reg == 96 else v)
        result = await r.control.execute("forceCharge", "30")
        assert result.status == "partial"
        assert "rolled back: ok" in result.message
        assert _hrs(r, FORCE_CHARGE_REGS) == saved
        assert r.manager.active() == {}
        assert _persisted(r) == {}


async def test_cancel_or_extend_without_a_running_override(tmp_path: Path) -> None:
    async with rig("gen1", tmp_path) as r:
        mark = r.sim.mark()
        result = await r.control.execute("forceExport", "Cancel")
        assert result.ok
        assert "no override running" in result.message
        ext = await r.manager.extend("forceExport", 10)
        assert ext.status == "rejected"
        assert r.writes_seen(mark) == []


async def test_apply_with_an_echo_mismatch_is_rolled_back_too(tmp_path: Path) -> None:
    async with rig("gen3", tmp_path) as r:
        saved = _prepare(r)
        once = [True]

        def corrupt(_device: int, register: int, value: int) -> int:
            if register == 95 and once:
                once.clear()
                return 1201
            return value

        r.store.write_hooks.append(corrupt)
        result = await r.control.execute("forceCharge", "30")
        assert result.status == "partial"
        assert "rolled back: ok" in result.message
        assert _hrs(r, FORCE_CHARGE_REGS) == saved  # HR95 too, though it held 1201
        assert r.manager.active() == {}


async def test_overrides_refused_before_the_manager_starts(tmp_path: Path) -> None:
    async with rig("gen1", tmp_path) as r:
        control, _manager = r.new_controller()  # not started: its state is not loaded
        mark = r.sim.mark()
        result = await control.execute("forceCharge", "30")
        assert result.status == "rejected"
        assert r.writes_seen(mark) == []
