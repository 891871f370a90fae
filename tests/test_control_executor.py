"""Command execution against the simulator: skip-if-equal, echo and read-back checks, failures
half-way, the allow-list, write accounting and budget, and the register semantics of key
functions on each model family."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from givtcp_async.cache import RegisterCache
from givtcp_async.control.accounting import WriteLedger
from givtcp_async.control.catalogue import Write
from givtcp_async.control.executor import Controller, ControlMemory
from givtcp_async.control.payloads import RawPayload
from givtcp_async.control.persist import state_file
from givtcp_async.control.result import CommandResult
from givtcp_async.errors import WriteBudgetExceeded
from givtcp_async.protocol.frames import FunctionCode, ReadRequest, WriteRequest
from givtcp_async.simulator.faults import FaultKind
from tests.control_support import TZ, Rig, rig


def _writes(r: Rig, mark: int) -> list[tuple[int, int]]:
    return r.writes_seen(mark)


# --- skip-if-equal, echo, read-back ----------------------------------------------------------


async def test_write_skipped_when_register_already_holds_the_value(tmp_path: Path) -> None:
    async with rig("gen1", tmp_path) as r:
        first = await r.control.execute("setChargeTarget", "61")
        assert first.status == "ok"
        assert first.written == [116]
        mark = r.sim.mark()
        again = await r.control.execute("setChargeTarget", "61")
        assert again.status == "ok"
        assert again.written == []
        assert again.registers[0].note == "already set"
        assert again.registers[0].verified is True
        assert _writes(r, mark) == []  # nothing sent at all
        assert r.controller.ledger.total == 1


async def test_mixed_plan_writes_only_what_differs(tmp_path: Path) -> None:
    async with rig("gen1", tmp_path) as r:
        r.set_hr(110, 4)
        r.set_hr(59, 0)
        r.set_hr(27, 0)
        mark = r.sim.mark()
        result = await r.control.execute("setBatteryMode", "1")  # 110:=4, 59:=0, 27:=1
        assert result.status == "ok"
        assert _writes(r, mark) == [(27, 1)]
        assert [(c.register, c.written, c.note) for c in result.registers] == [
            (110, False, "already set"),
            (59, False, "already set"),
            (27, True, ""),
        ]


async def test_echo_mismatch_stops_the_plan_and_reports_partial(tmp_path: Path) -> None:
    async with rig("gen1", tmp_path) as r:
        r.set_hr(94, 0)
        r.set_hr(95, 0)
        r.set_hr(116, 50)
        r.store.write_hooks.append(lambda _d, reg, v: 459 if reg == 95 else v)
        mark = r.sim.mark()
        result = await r.control.execute(
            "setChargeSlot1", {"start": "0100", "finish": "0400", "chargeToPercent": "80"}
        )
        assert result.status == "partial"
        assert _writes(r, mark) == [(94, 100), (95, 400)]  # HR116 never sent
        by_reg = {c.register: c for c in result.registers}
        assert by_reg[94].written
        assert by_reg[94].verified is True
        assert by_reg[95].written
        assert by_reg[95].echo == 459
        assert by_reg[95].verified is False
        assert "echo mismatch" in by_reg[95].note
        assert not by_reg[116].written
        assert by_reg[116].note == "not attempted (an earlier write failed)"
        assert r.hr(116) == 50
        assert "HR95 := 400 echoed 459" in result.message
        assert "changed: HR94, HR95" in result.message


async def test_device_error_half_way_reports_exactly_what_was_written(tmp_path: Path) -> None:
    async with rig("gen1", tmp_path) as r:
        r.set_hr(110, 50)
        r.set_hr(59, 0)
        r.set_hr(27, 0)
        r.store.write_hooks.append(lambda _d, reg, v: None if reg == 59 else v)
        result = await r.control.execute("setBatteryMode", "4")  # 110:=4, 59:=1, 27:=0
        assert result.status == "partial"
        changes = {c.register: c for c in result.registers}
        assert changes[110].written
        assert changes[110].readback == 4
        assert not changes[59].written
        assert "refused by the inverter" in changes[59].note
        assert changes[59].readback == 0
        assert not changes[27].written
        assert (r.hr(110), r.hr(59), r.hr(27)) == (4, 0, 0)


async def test_first_write_refused_means_failed_and_nothing_changed(tmp_path: Path) -> None:
    async with rig("gen1", tmp_path) as r:
        r.set_hr(116, 50)
        r.store.write_hooks.append(lambda _d, _reg, _v: None)
        before = r.snapshot()
        result = await r.control.execute("setChargeTarget", "70")
        assert result.status == "failed"
        assert "nothing changed" in result.message
        assert r.snapshot() == before
        assert r.controller.ledger.total == 1  # the write was sent, so it is counted


async def test_unanswered_write_is_failed_and_named(tmp_path: Path) -> None:
    async with rig("gen1", tmp_path) as r:
        r.set_hr(116, 50)
        r.sim.faults.add(FaultKind.DROP, match=lambda req: isinstance(req, WriteRequest))
        result = await r.control.execute("setChargeTarget", "70")
        assert result.status == "failed"
        assert "no echo" in result.registers[0].note
        assert result.registers[0].readback == 50  # the read-back shows it did not land


async def test_read_back_that_differs_is_not_ok(tmp_path: Path) -> None:
    async with rig("gen1", tmp_path) as r:
        r.set_hr(116, 50)
        revert: list[int] = []

        def note(_device: int, register: int, value: int) -> int:
            revert.append(register)
            return value

        r.store.write_hooks.append(note)

        def undo() -> None:  # the inverter quietly puts the old value back
            while revert:
                r.set_hr(revert.pop(), 50)

        r.sim.pre_answer_hooks.append(undo)
        result = await r.control.execute("setChargeTarget", "70")
        assert result.status == "partial"
        assert result.registers[0].written
        assert result.registers[0].echo == 70
        assert result.registers[0].readback == 50
        assert result.registers[0].verified is False
        assert "read-back differs for HR116" in result.message


async def test_fresh_read_failure_writes_nothing(tmp_path: Path) -> None:
    async with rig("gen1", tmp_path) as r:
        r.sim.faults.add(FaultKind.DROP, match=lambda req: isinstance(req, ReadRequest))
        mark = r.sim.mark()
        result = await r.control.execute("setChargeTarget", "70")
        assert result.status == "failed"
        assert "nothing written" in result.message
        assert _writes(r, mark) == []


async def test_allow_list_refuses_before_anything_is_sent(tmp_path: Path) -> None:
    async with rig("gen1", tmp_path) as r:
        before = r.snapshot()
        mark = r.sim.mark()
        for writes, field in [
            ([Write(116, 80), Write(31, 100)], "HR31"),  # the disputed slot-2 register
            ([Write(163, 1)], "HR163"),  # reboot register: only 100
            ([Write(110, 2)], "HR110"),  # below the 4 % floor
            ([Write(318, 1)], "HR318"),  # no pause mode on Gen1
            ([Write(162, 1)], "HR162"),  # destructive installer register
            ([Write(94, 1275)], "HR94"),  # not a time
        ]:
            result = await r.controller.run_plan("test", writes)
            assert result.status == "rejected", writes
            assert any(e["field"] == field for e in result.errors), result.errors
        assert r.snapshot() == before
        assert _writes(r, mark) == []


async def test_allow_list_lets_a_restore_put_back_an_odd_value(tmp_path: Path) -> None:
    async with rig("gen1", tmp_path) as r:
        r.set_hr(94, 100)
        result = await r.controller.run_plan("restore", [Write(94, 60, restore=True)])
        assert result.status == "ok"
        assert r.hr(94) == 60  # the "unset" sentinel as it was


async def test_cache_follows_the_command_and_listeners_hear_of_it(tmp_path: Path) -> None:
    async with rig("gen1", tmp_path) as r:
        cache = RegisterCache()
        controller = Controller(r.conn, r.model, cache=cache, clock=r.clock, tz=TZ)
        heard: list[CommandResult] = []
        controller.add_listener(heard.append)
        result = await controller.execute("setChargeTarget", "66")
        assert result.ok
        assert cache.get(0x11, "HR", 116) == 66
        assert heard == [result]


async def test_commands_run_one_at_a_time(tmp_path: Path) -> None:
    async with rig("gen1", tmp_path) as r:
        mark = r.sim.mark()
        a, b = await asyncio.gather(
            r.control.execute("setChargeTarget", "55"),
            r.control.execute("setBatteryReserve", "25"),
        )
        assert a.ok
        assert b.ok
        kinds = [
            ("w" if isinstance(req, WriteRequest) else "r") for req in r.sim.requests_seen(mark)
        ]
        # read, write, read-back of one command, then the other's: never interleaved
        assert kinds == ["r", "w", "r", "r", "w", "r"]


async def test_unknown_function_is_rejected(tmp_path: Path) -> None:
    async with rig("gen1", tmp_path) as r:
        result = await r.control.execute("setWarpDrive", "9")
        assert result.status == "rejected"
        assert result.errors[0]["field"] == "function"
        assert result.errors[0]["value"] == "setWarpDrive"


# --- accounting ------------------------------------------------------------------------------


async def test_write_count_survives_a_new_instance(tmp_path: Path) -> None:
    path = state_file(tmp_path, "inverter", "writes")
    async with rig("gen1", tmp_path) as r:
        r.set_hr(94, 0)
        r.set_hr(95, 0)
        await r.control.execute("setChargeSlot1", {"start": "0100", "finish": "0400"})
        await r.control.execute("setChargeTarget", "71")
        assert r.controller.ledger.total == 3
    again = WriteLedger(path, clock=r.clock, tz=TZ)
    assert again.total == 3
    assert again.today == 3
    assert again.registers == {94: 1, 95: 1, 116: 1}
    assert again.days == {"2025-06-01": 3}


async def test_daily_budget_rejects_a_command_that_would_exceed_it(tmp_path: Path) -> None:
    async with rig("gen1", tmp_path, budget=3) as r:
        r.set_hr(116, 50)
        assert (await r.control.execute("setChargeTarget", "72")).ok
        r.set_hr(110, 50)
        r.set_hr(59, 0)
        r.set_hr(27, 1)
        before = r.snapshot()
        mark = r.sim.mark()
        result = await r.control.execute("setBatteryMode", "4")  # needs 3 writes, 2 left
        assert result.status == "rejected"
        assert "daily write budget exceeded" in result.message
        assert "3 write(s) needed, 1 of 3 already used today (2 left)" in result.message
        assert r.snapshot() == before
        assert _writes(r, mark) == []
        assert (await r.control.execute("setChargeTarget", "73")).ok  # 1 still fits
        assert r.controller.ledger.remaining_today() == 1
        await r.clock.advance(hours=24)  # a new day, a new budget
        assert r.controller.ledger.remaining_today() == 3


def test_ledger_check_and_corrupt_file(tmp_path: Path) -> None:
    path = tmp_path / "w.json"
    ledger = WriteLedger(path, daily_budget=0)
    with pytest.raises(WriteBudgetExceeded):
        ledger.check(1)
    ledger.check(0)
    path.write_text("{not json")
    assert WriteLedger(path).total == 0
    assert (tmp_path / "w.json.corrupt").exists()


# --- semantics of key functions --------------------------------------------------------------


async def test_charge_slot_2_uses_hr243_not_hr31(tmp_path: Path) -> None:
    async with rig("gen3", tmp_path) as r:
        mark = r.sim.mark()
        result = await r.control.execute("setChargeSlot2", {"start": "02:00", "finish": "03:30"})
        assert result.ok
        assert _writes(r, mark) == [(243, 200), (244, 330)]
    async with rig("gen1", tmp_path) as r:
        result = await r.control.execute("setChargeSlot2", {"start": "0200", "finish": "0330"})
        assert result.status == "rejected"
        assert "charge slot 2 does not exist" in result.message


async def test_discharge_slot_percent_sets_the_reserve_first(tmp_path: Path) -> None:
    async with rig("gen1", tmp_path) as r:
        r.set_hr(110, 4)
        mark = r.sim.mark()
        result = await r.control.execute(
            "setDischargeSlot2", '{"start":"0100","finish":"0400","dischargeToPercent":"55"}'
        )
        assert result.ok
        assert _writes(r, mark) == [(110, 55), (44, 100), (45, 400)]


async def test_original_battery_modes(tmp_path: Path) -> None:
    expected = {
        "1": [(110, 4), (59, 0), (27, 1)],
        "2": [(110, 100), (59, 1), (27, 1), (56, 1600), (57, 700)],
        "3": [(110, 100), (59, 1), (27, 1)],
        "4": [(110, 4), (59, 1), (27, 0)],
    }
    async with rig("gen1", tmp_path) as r:
        for mode, plan in expected.items():
            for reg, value in plan:
                r.set_hr(reg, value + 1)
            mark = r.sim.mark()
            result = await r.control.execute("setBatteryMode", {"mode": mode})
            assert result.ok
            assert _writes(r, mark) == plan, mode


async def test_named_modes_and_the_remembered_reserve(tmp_path: Path) -> None:
    async with rig("gen1", tmp_path) as r:
        assert (await r.control.execute("setBatteryReserve", "20")).ok
        assert (await r.control.execute("setBatteryMode", "Eco (Paused)")).ok
        assert (r.hr(27), r.hr(59), r.hr(110)) == (1, 0, 100)
        assert (await r.control.execute("setBatteryMode", "Timed Export")).ok
        assert (r.hr(27), r.hr(59), r.hr(110)) == (0, 1, 100)
        assert (await r.control.execute("setBatteryMode", "Timed Demand")).ok
        assert (r.hr(27), r.hr(59)) == (1, 1)
        assert (await r.control.execute("setBatteryMode", "Eco")).ok
        assert (r.hr(27), r.hr(59), r.hr(110)) == (1, 0, 20)  # the reserve came back
    memory = ControlMemory(state_file(tmp_path, "inverter", "control"))
    assert memory.saved_reserve == 20


async def test_charge_target_enable_and_disable(tmp_path: Path) -> None:
    async with rig("gen1", tmp_path) as r:
        r.set_hr(20, 0)
        r.set_hr(116, 80)
        mark = r.sim.mark()
        assert (await r.control.execute("enableChargeTarget")).ok
        assert (await r.control.execute("enableChargeTarget", "disable")).ok
        r.set_hr(20, 1)
        r.set_hr(116, 80)
        assert (await r.control.execute("disableChargeTarget")).ok
        assert _writes(r, mark) == [(20, 1), (20, 0), (116, 100), (20, 0), (116, 100)]


@pytest.mark.parametrize(
    ("kind", "watts", "register", "value"),
    [
        ("gen1", 1000, 111, 6),  # HR55 346 Ah x 51.2 V / 100 = 177.15 W per step: the nearest
        ("gen1", 2599, 111, 15),
        ("gen1", 2600, 111, 50),  # at the battery's limit: full rate
        ("gen1", 0, 111, 0),
        ("aio", 1000, 111, 6),  # HV: 52 Ah x 307 V / 100 = 159.6 W per step
        ("gateway", 6000, 313, 50),  # percent of the 12 kW rating
        ("three", 5500, 1110, 50),  # percent of the 11 kW rating
    ],
)
async def test_charge_rate_watts_to_register(
    kind: str, watts: int, register: int, value: int, tmp_path: Path
) -> None:
    async with rig(kind, tmp_path) as r:
        r.set_hr(register, 77)
        mark = r.sim.mark()
        result = await r.control.execute("setChargeRate", str(watts))
        assert result.ok, result.message
        assert _writes(r, mark) == [(register, value)]


async def test_a_rate_between_steps_is_rounded_and_the_result_says_so(tmp_path: Path) -> None:
    async with rig("gen1", tmp_path) as r:
        r.set_hr(111, 77)
        result = await r.control.execute("setChargeRate", "1000")
        assert result.ok, result.message
        assert "1000 W stored as 6 register steps = 1063 W" in result.message
        assert result.registers[0].note == "1000 W stored as 6 register steps = 1063 W"
        exact = await r.control.execute("setChargeRate", "1063")  # on a step: no note
        assert "stored as" not in exact.message


async def test_rate_with_unknown_capacity_fails_without_writing(tmp_path: Path) -> None:
    async with rig("gen1", tmp_path) as r:
        r.set_hr(55, 0)
        mark = r.sim.mark()
        result = await r.control.execute("setDischargeRate", "1000")
        assert result.status == "failed"
        assert "HR55" in result.message
        assert _writes(r, mark) == []


async def test_set_and_sync_date_time(tmp_path: Path) -> None:
    async with rig("gen1", tmp_path) as r:
        mark = r.sim.mark()
        result = await r.control.execute("setDateTime", {"dateTime": "29/02/2024 23:59:58"})
        assert result.ok
        assert _writes(r, mark) == [(35, 24), (36, 2), (37, 29), (38, 23), (39, 59), (40, 58)]
        mark = r.sim.mark()
        result = await r.control.execute("syncDateTime")
        assert result.ok
        # 12:00 UTC on 1 June is 13:00 in London (BST).
        assert _writes(r, mark) == [(35, 25), (36, 6), (37, 1), (38, 13), (39, 0), (40, 0)]


async def test_reboot_writes_100_always_and_is_not_read_back(tmp_path: Path) -> None:
    async with rig("gen1", tmp_path) as r:
        for _ in range(2):
            mark = r.sim.mark()
            result = await r.control.execute("rebootInverter", "restart")
            assert result.ok
            assert _writes(r, mark) == [(163, 100)]  # even though HR163 already holds 100
            assert [req for req in r.sim.requests_seen(mark) if isinstance(req, ReadRequest)] == [
                ReadRequest(
                    0x11, FunctionCode.READ_HOLDING, 120, 60, r.conn.settings.adapter_serial
                )
            ]  # the fresh read only: no read-back of a rebooting inverter


async def test_three_phase_registers(tmp_path: Path) -> None:
    async with rig("three", tmp_path) as r:
        for reg in (1111, 1109, 1078, 1112, 1122):
            r.set_hr(reg, 50 if reg not in (1112, 1122) else 0)
        mark = r.sim.mark()
        steps: list[tuple[str, RawPayload]] = [
            ("setChargeTarget", "90"),
            ("setBatteryReserve", "10"),
            ("setBatteryCutoff", "11"),
            ("enableChargeSchedule", "enable"),
            ("enableDischargeSchedule", "enable"),
            ("setChargeSlot1", {"start": "0130", "finish": "0430"}),
            ("setDischargeSlot2", {"start": "1600", "finish": "1900"}),
        ]
        for name, payload in steps:
            assert (await r.control.execute(name, payload)).ok, name
        assert _writes(r, mark) == [
            (1111, 90),
            (1109, 10),
            (1078, 11),
            (1112, 1),
            (1122, 1),
            (1113, 130),
            (1114, 430),
            (1120, 1600),
            (1121, 1900),
        ]


async def test_ems_registers(tmp_path: Path) -> None:
    async with rig("ems", tmp_path) as r:
        mark = r.sim.mark()
        steps: list[tuple[str, RawPayload]] = [
            ("setChargeSlot2", {"start": "0100", "finish": "0400", "chargeToPercent": "90"}),
            ("setDischargeTarget3", "15"),
            ("setExportSlot1", {"start": "1700", "finish": "1800"}),
            ("setExportTarget", {"exportToPercent": "30", "slot": "2"}),
            ("setEMSChargeStart1", "00:30"),
            ("setEmsPlant", "disable"),
            ("setExportLimit", "5000"),
        ]
        for name, payload in steps:
            assert (await r.control.execute(name, payload)).ok, name
        assert _writes(r, mark) == [
            (2056, 100),
            (2057, 400),
            (2058, 90),
            (2052, 15),
            (2062, 1700),
            (2063, 1800),
            (2067, 30),
            (2053, 30),
            (2040, 0),
            (2071, 5000),
        ]


async def test_ac_coupled_controls(tmp_path: Path) -> None:
    async with rig("ac", tmp_path) as r:
        mark = r.sim.mark()
        steps: list[tuple[str, RawPayload]] = [
            ("setChargeRateAC", "40"),
            ("setDischargeRateAC", {"dischargeRate": "60"}),
            ("setExportPriority", "Grid"),
            ("enableEPS", "disable"),
            ("setBatteryPauseMode", "PauseBoth"),
        ]
        for name, payload in steps:
            assert (await r.control.execute(name, payload)).ok, name
        assert _writes(r, mark) == [(313, 40), (314, 60), (311, 2), (317, 0), (318, 3)]
        result = await r.control.execute("tempPauseCharge", "10")
        assert result.ok  # AC pauses through HR111 (C/100), not HR313 which refuses 0


async def test_preview_plans_without_writing(tmp_path: Path) -> None:
    async with rig("gen3", tmp_path) as r:
        before = r.snapshot()
        mark = r.sim.mark()
        writes = await r.controller.preview("setChargeSlot3", {"start": "0100", "finish": "0200"})
        assert writes == [Write(246, 100), Write(247, 200)]
        assert r.snapshot() == before
        assert _writes(r, mark) == []
