"""A fast first state (issue #16): the first refresh reuses detection's reads; meter and pack
scans are remembered per inverter in the state directory."""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from givtcp_async import scan_memory
from givtcp_async.cache import RegisterCache
from givtcp_async.connection import ConnectionSettings, DongleConnection
from givtcp_async.protocol.frames import ReadRequest
from givtcp_async.reader import PlantReader
from givtcp_async.registers.plan import LV_PACKS, METERS
from givtcp_async.simulator.plant import Plant, PlantConfig
from givtcp_async.simulator.server import DongleSimulator
from tests.harness import running_daemon
from tests.test_cli import clean_env, cli

START = datetime(2026, 6, 21, 13, tzinfo=ZoneInfo("Europe/London")).replace(tzinfo=None)


def _reads(sim: DongleSimulator, after: int = 0) -> list[tuple[int, int, int]]:
    return [(r.device_address, int(r.function), r.base_register)
            for r in sim.requests_seen(after) if isinstance(r, ReadRequest)]  # fmt: skip


def test_scan_memory_round_trip_and_hostile_files(tmp_path: Path) -> None:
    now = time.time()
    assert scan_memory.remembered(tmp_path, "SA1234G567", "meters", now) is None
    scan_memory.remember(tmp_path, "SA1234G567", "meters", [0x02, 0x01], now)
    scan = scan_memory.remembered(tmp_path, "SA1234G567", "meters", now + 10)
    assert scan is not None
    assert scan.found == (0x01, 0x02)
    assert scan.due == pytest.approx(now + scan_memory.RESCAN_AFTER)
    # A day later, or from the future (the clock went back): scan again.
    assert scan_memory.remembered(tmp_path, "SA1234G567", "meters", now + 86_401) is None
    assert scan_memory.remembered(tmp_path, "SA1234G567", "meters", now - 60) is None
    path = scan_memory.memory_file(tmp_path, "SA1234G567", "packs")
    for bad in (
        {"version": 1, "scanned_at": now, "found": [0x11]},  # not a pack address
        {"version": 1, "scanned_at": now, "found": [True]},
        {"version": 1, "scanned_at": "now", "found": []},
        {"version": 1, "scanned_at": float("nan"), "found": []},
        {"version": 2, "scanned_at": now, "found": []},
        {"version": 1, "scanned_at": now, "found": list(range(0x32, 0x40))},
        [1, 2, 3],
    ):
        path.write_text(json.dumps(bad))
        assert scan_memory.remembered(tmp_path, "SA1234G567", "packs", now) is None, bad
    path.write_text("{not json")
    assert scan_memory.remembered(tmp_path, "SA1234G567", "packs", now) is None
    with pytest.raises(ValueError, match="unknown scan kind"):
        scan_memory.memory_file(tmp_path, "SA1234G567", "bogus")


async def test_first_refresh_reuses_detection_and_remembered_packs_skip_probes() -> None:
    plant = Plant(PlantConfig(speed=0, start=START))
    async with plant.simulator() as sim:
        settings = ConnectionSettings("127.0.0.1", sim.port, pacing=0.0)
        async with DongleConnection(settings) as conn:
            await conn.wait_connected(5)
            reader = PlantReader(conn, RegisterCache(), probe_meters=False)
            layout = await reader.detect()
            detected = set(_reads(sim))
            mark = sim.mark()
            report = await reader.refresh(layout.plan.blocks, reuse_within=60.0)
            assert report.ok
            again = _reads(sim, mark)
            reused = {(b.device_address, 3 if b.bank.value == "HR" else 4, b.base)
                      for b in report.reused}  # fmt: skip
            assert (0x11, 3, 0) in reused
            assert reused <= detected
            assert not reused & set(again)  # nothing detection read is read twice
            assert len(again) + len(reused) == len(layout.plan.blocks)

            # Packs an earlier scan found are taken without probing the six addresses.
            mark = sim.mark()
            known = await reader.detect(known_packs=lambda serial: (0x32, 0x33))
            assert known.batteries == (0x32, 0x33)
            assert not {a for a, _, _ in _reads(sim, mark)} & set(LV_PACKS)
            mark = sim.mark()
            # A scan finds the packs, and the LV BCU page at 0x31 (not all zero here).
            assert (await reader.rescan_packs(known)).batteries == (0x32, 0x33, 0x31)
            assert {a for a, _, _ in _reads(sim, mark)} == {*LV_PACKS, 0x31}


async def test_a_restart_takes_packs_and_meters_from_memory(tmp_path: Path) -> None:
    config = PlantConfig(speed=0, start=START)
    state = tmp_path / "state"
    async with running_daemon(tmp_path, plant_config=config) as rig:
        await rig.first_snapshot()
        await rig.next_snapshot()  # the scans are kept after the first poll
        serial = rig.plant.serial
        packs = scan_memory.remembered(state, serial, "packs", time.time())
        meters = scan_memory.remembered(state, serial, "meters", time.time())
        assert packs is not None
        assert packs.found == (0x31, 0x32, 0x33)  # the packs and the LV BCU
        assert meters is not None
        assert meters.found == (0x01,)  # the plant's EM115
        first_start = _reads(rig.sim)
    assert any(a in METERS for a, _, _ in first_start)
    async with running_daemon(tmp_path, plant_config=config) as rig:
        snap = await rig.first_snapshot()
        # The first snapshot has the remembered packs; the LV BCU waits for the pack rescan
        # after it (one request less before the first /runAll).
        assert [b.address for b in snap.batteries] == [0x32, 0x33]
        reads = _reads(rig.sim)
        first_poll = reads.index((0x11, 4, 0))  # the first poll's live page
        before = {a for a, _, _ in reads[: first_poll + 1]}
        assert not before & {0x31, 0x34, 0x35, 0x36, 0x37}  # absent packs not probed first
        assert not before & (set(METERS) - {0x01})  # no probe of the absent meters
        # The remembered packs are checked right after the first poll; meters are not scanned.
        for address in (0x34, 0x35, 0x36, 0x37):
            await rig.sim.wait_for(
                lambda e, a=address: (
                    e.kind == "request"  # type: ignore[misc]
                    and getattr(e.frame, "device_address", None) == a
                )
            )
        assert {a for a, _, _ in _reads(rig.sim)} & set(METERS) == {0x01}  # polled, no scan
        later = await rig.next_snapshot()
        assert [b.address for b in later.batteries] == [0x32, 0x33, 0x31]  # the rescan's BCU


async def test_read_remembers_absent_meters(tmp_path: Path) -> None:
    plant = Plant(PlantConfig(speed=0, start=START))
    env = {**clean_env(), "GIVTCP_INVERTERS__0__PACING": "0"}
    async with plant.simulator() as sim:
        argv = ("read", "--host", "127.0.0.1", "--port", str(sim.port), "--compact",
                "--state-dir", str(tmp_path / "state"))  # fmt: skip
        code, out, err = await cli(*argv, cwd=tmp_path, env=env)
        assert code == 0, err
        assert {a for a, _, _ in _reads(sim)} & set(METERS) == set(METERS)  # scanned
        mark = sim.mark()
        code, again, err = await cli(*argv, cwd=tmp_path, env=env)
        assert code == 0, err
        reads = _reads(sim, mark)
        assert {a for a, _, _ in reads} & set(METERS) == {0x01}  # remembered: only the EM115
        assert len(reads) < len(_reads(sim)) - len(reads)
        # GivTCP 3.5's layout: the inverter's details under its serial
        first, second = (json.loads(text) for text in (out, again))
        serial = next(key for key in first if "Invertor_Serial_Number" in first[key])
        first, second = first[serial], second[serial]
        for name in ("Invertor_Serial_Number", "Invertor_Type", "Invertor_Firmware"):
            assert second[name] == first[name]
