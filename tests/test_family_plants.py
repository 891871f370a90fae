"""The simulated plants of every family (issue 12, item 9): they move, obey their controls, carry
the meters real sites have and start with "today" counters true to the time of day; and every
capture keeps being served (``simulate --capture``) and read."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest

from givtcp_async.assemble import SnapshotAssembler
from givtcp_async.cli.read import read_plant
from givtcp_async.connection import ConnectionSettings
from givtcp_async.protocol.capture import load_capture
from givtcp_async.simulator.families import FAMILIES, FamilyPlant, build_family_plant, in_slot
from givtcp_async.simulator.plant import build_default_plant
from givtcp_async.simulator.server import DongleSimulator, SimulatorConfig
from givtcp_async.simulator.store import RegisterStore
from givtcp_async.snapshot import Snapshot
from tests.conftest import CAPTURES
from tests.servers import free_port
from tests.sim_support import cli_command

TZ = ZoneInfo("Europe/London")
NOON = datetime(2026, 6, 21, 13, 0, tzinfo=TZ)  # 13:00 in June: a sunny morning's energy behind us
NIGHT = datetime(2026, 6, 21, 2, 0, tzinfo=TZ)
FAST = {"pacing": 0.0, "read_timeout": 0.3, "read_retries": 0, "retry_delay": 0.01}


def s16(value: int) -> int:
    return value - 0x10000 if value & 0x8000 else value


async def read_store(store: RegisterStore, sync: Any = None) -> Snapshot:
    """The store served on 127.0.0.1 and read once, as ``givtcp-async read`` does."""
    sim = DongleSimulator(store, SimulatorConfig())
    if sync is not None:
        sim.pre_answer_hooks.append(sync)
    async with sim:
        layout, cache = await read_plant(
            ConnectionSettings("127.0.0.1", sim.port, **FAST),  # type: ignore[arg-type]
            timeout=5.0,
        )
    assembler = SnapshotAssembler(layout.model, layout.serial, layout.fields, TZ)
    return assembler.build(cache, devices=layout.devices, now=datetime.now(TZ))


# --- today's counters at start -----------------------------------------------------------------


def test_single_phase_today_counters_hold_the_morning() -> None:
    truth = build_default_plant(start=NOON, speed=0).truth()
    noon = {k: float(v) for k, v in truth.values.items() if k.endswith("_kWh")}  # type: ignore[arg-type]
    assert noon["PV_Energy_Today_kWh"] > 5  # not 0 at 13:00 in June with 5 kW of PV
    assert noon["Load_Energy_Today_kWh"] > 1
    assert noon["Battery_Charge_Energy_Today_kWh"] <= 19.0  # never more than the packs hold
    plant = build_default_plant(start=datetime(2026, 6, 21, 0, 1, tzinfo=TZ), speed=0)
    early = {k: float(v) for k, v in plant.truth().values.items() if k.endswith("_kWh")}  # type: ignore[arg-type]
    assert early["PV_Energy_Today_kWh"] == 0
    assert early["Import_Energy_Today_kWh"] < 0.1


@pytest.mark.parametrize("family", FAMILIES)
def test_family_today_counters_hold_the_morning(family: str) -> None:
    plant = build_family_plant(family, start=NOON, speed=0)
    assert plant.today_kwh("pv") > 5
    assert plant.today_kwh("load") > 1
    early = build_family_plant(family, start=datetime(2026, 6, 21, 0, 1, tzinfo=TZ), speed=0)
    assert early.today_kwh("pv") == 0
    # Lifetime counters are the image's plus what the model made: never below today's.
    assert plant.total_wh("pv") >= plant.today_wh("pv")


def test_gateway_today_registers_carry_the_counters() -> None:
    plant = build_family_plant("gateway", start=NOON, speed=0)
    assert plant.ir(1643) == round(plant.today_wh("pv") / 100)  # PV today, 0.1 kWh
    assert plant.ir(1643) > 50


# --- moving in real time and obeying the controls ------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
def test_family_plants_move_and_totals_only_grow(family: str) -> None:
    plant = build_family_plant(family, start=NOON, speed=0)
    before = {k: plant.total_wh(k) for k in ("pv", "load", "import", "export")}
    seen = set()
    for _ in range(12):
        plant.advance(300)
        seen.add(round(plant.pv))
        for key, value in before.items():
            assert plant.total_wh(key) >= value
            before[key] = plant.total_wh(key)
    assert len(seen) > 6  # PV moves with the sun and the clouds
    assert abs(plant.load + 0 - (plant.pv + plant.grid + plant.battery)) < 1e-6


def test_real_time_speed_moves_with_the_clock() -> None:
    now = [0.0]
    plant = FamilyPlant("ems", start=NOON, speed=1.0, monotonic=lambda: now[0])
    first = plant.now()
    now[0] += 120
    plant.sync()
    assert (plant.now() - first).total_seconds() == pytest.approx(120)


def _write(plant: FamilyPlant, register: int, value: int) -> None:
    assert plant.store.write(0x11, register, value) is not None


def test_ems_obeys_its_slots_and_plant_enable() -> None:
    plant = build_family_plant("ems", start=NIGHT, speed=0)
    _write(plant, 2053, 130)  # charge slot 1: 01:30-03:00, target 90 %
    _write(plant, 2054, 300)
    _write(plant, 2055, 90)
    plant.advance(600)
    assert plant.soc() < 90
    assert s16(plant.ir(2090)) < -1000  # IR2090 total battery: charging
    assert s16(plant.ir(2089)) > 1000  # IR2089 grid: importing for it
    _write(plant, 2040, 0)  # plant control off: the slots no longer apply
    plant.advance(600)
    assert s16(plant.ir(2090)) >= 0
    _write(plant, 2040, 1)
    _write(plant, 2053, 0)
    _write(plant, 2054, 0)
    _write(plant, 2062, 130)  # export slot 1 01:30-03:00 down to 20 %: full discharge
    _write(plant, 2063, 300)
    _write(plant, 2064, 20)
    _write(plant, 2071, 2000)  # export limit
    plant.advance(600)
    assert s16(plant.ir(2090)) > 0
    assert -s16(plant.ir(2089)) <= 2000 + 1  # export held at the limit


def test_gateway_obeys_charge_slot_and_pause() -> None:
    plant = build_family_plant("gateway", start=NIGHT, speed=0)
    for register, value in ((94, 130), (95, 300), (96, 1), (116, 100), (318, 0)):
        _write(plant, register, value)
    plant.advance(600)
    assert s16(plant.ir(1702)) > 1000  # the Gateway's AIO total: + while charging
    assert all(s16(plant.ir(1816 + i)) > 0 for i in range(2))
    _write(plant, 318, 1)  # pause charging
    plant.advance(600)
    assert s16(plant.ir(1702)) <= 0


def test_three_phase_obeys_ac_charge() -> None:
    plant = build_family_plant("three-phase", start=NIGHT, speed=0)
    for register, value in ((1113, 130), (1114, 300), (1111, 100), (1112, 1)):
        _write(plant, register, value)
    plant.advance(600)
    charge = plant.ir(1138) << 16 | plant.ir(1139)
    assert charge > 10_000  # IR1138-1139 battery charge power, 0.1 W
    _write(plant, 1112, 0)
    plant.advance(600)
    assert (plant.ir(1138) << 16 | plant.ir(1139)) == 0


def test_three_phase_grid_voltages_are_line_to_line_as_on_the_captured_unit() -> None:
    plant = build_family_plant("three-phase", start=NIGHT, speed=0)
    for _ in range(3):
        plant.advance(3600)
        volts = [plant.ir(1061 + k) / 10 for k in range(3)]
        assert all(385 <= v <= 415 for v in volts), volts  # the capture: 401.7 V


def test_slot_spanning_midnight() -> None:
    assert in_slot(2330, 130, 0)
    assert in_slot(2330, 130, 23 * 60 + 45)
    assert not in_slot(2330, 130, 2 * 60)
    assert not in_slot(100, 100, 60)  # an empty slot


# --- read end to end: the meters answer ---------------------------------------------------------


async def test_single_phase_plant_has_its_em115_at_0x01() -> None:
    plant = build_default_plant(start=NOON, speed=0)
    snap = await read_store(plant.store, plant.sync)
    assert [m.address for m in snap.meters] == [0x01]
    meter = snap.meters[0].values
    assert meter["Phase_1_Power"].value == snap.values["Grid_Power"].value
    assert snap.value("Meter_Type") == "EM115"
    assert snap.value("PV_Energy_Today_kWh") > 5


@pytest.mark.parametrize(("family", "meters"), [("ems", [1, 3]), ("gateway", [1, 2])])
async def test_family_plants_read_end_to_end(family: str, meters: list[int]) -> None:
    plant = build_family_plant(family, start=NOON, speed=0)
    snap = await read_store(plant.store, plant.sync)
    assert [m.address for m in snap.meters] == meters
    assert snap.values["Grid_Power"].value == (
        round(plant.grid) if family == "ems" else -round(plant.grid)
    )
    assert snap.values["Battery_Power"].value == round(plant.battery)
    if family == "gateway":
        assert snap.value("PV_Energy_Today_kWh") == pytest.approx(plant.today_kwh("pv"), abs=0.1)
        assert snap.value("AIO_1_SOC") == round(plant.units[0].soc)
    else:
        assert snap.value("Inverter_1_SOC") == round(plant.units[0].soc)


# --- every capture is still served and read ------------------------------------------------------

# Two captures never read HR0-59 (their pollers skip it): nothing to detect the model from.
NO_DETECTION = {"givhy80g3hv_hass295_120s.jsonl", "giv3hy11_hass174_180s.jsonl"}
CAPTURE_FILES = sorted(p for p in CAPTURES.glob("*/*.jsonl") if p.name not in NO_DETECTION)


@pytest.mark.parametrize("path", CAPTURE_FILES, ids=lambda p: p.name)
async def test_every_capture_is_served_and_read(path: Path) -> None:
    snap = await read_store(RegisterStore.from_capture(load_capture(path)))
    assert snap.values
    assert snap.value("Invertor_Serial_Number")


# --- the commands ------------------------------------------------------------------------------


async def _first_json_line(*args: str) -> tuple[asyncio.subprocess.Process, dict[str, Any]]:
    proc = await asyncio.create_subprocess_exec(
        *cli_command(), *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    assert proc.stdout is not None
    async with asyncio.timeout(30):
        while True:
            line = await proc.stdout.readline()
            assert line, "exited before printing its JSON line"
            if line.startswith(b"{"):
                return proc, json.loads(line)


async def _stop(proc: asyncio.subprocess.Process) -> int:
    proc.send_signal(signal.SIGTERM)
    async with asyncio.timeout(20):
        return await proc.wait()


async def test_simulate_plant_gateway_serves_a_gateway() -> None:
    proc, info = await _first_json_line(
        "simulate", "--plant", "gateway", "--host", "127.0.0.1", "--port", "0"
    )
    try:
        port = int(info["listening"].rsplit(":", 1)[1])
        layout, _cache = await read_plant(
            ConnectionSettings("127.0.0.1", port, **FAST),  # type: ignore[arg-type]
            timeout=5.0,
        )
        assert layout.model.family.value == "gateway"
    finally:
        assert await _stop(proc) == 0


async def test_bad_plant_options_are_usage_errors() -> None:
    for args in (
        ("simulate", "--plant", "ems", "--batteries", "3"),
        ("simulate", "--plant", "ems", "--capture", "x.jsonl"),
        ("simulate", "--plant", "boiler"),
        ("demo", "--plant", "gateway", "--batteries", "4"),
    ):
        proc = await asyncio.create_subprocess_exec(
            *cli_command(), *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        _out, err = await proc.communicate()
        assert proc.returncode == 2, (args, err)
        assert b"plant" in err or b"batteries" in err, err


# --- the demo, end to end: REST shows the family's values and its controls act on the plant --


async def _runall(session: aiohttp.ClientSession, url: str, ready: Any) -> dict[str, Any]:
    """GET /runAll until ``ready(answer)`` (the first polls take a few seconds)."""
    async with asyncio.timeout(60):
        while True:
            try:
                async with session.get(f"{url}runAll") as resp:
                    if resp.status == 200:
                        body: dict[str, Any] = await resp.json()
                        if ready(body):
                            return body
            except aiohttp.ClientConnectorError:
                pass  # REST starts listening just after the demo prints its address
            await asyncio.sleep(0.5)


async def test_demo_plant_ems_serves_the_ems_and_obeys_its_slots(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIVTCP_", "MQTT_"))}
    proc = await asyncio.create_subprocess_exec(
        *cli_command(), "demo", "--plant", "ems", "--port", str(port), cwd=tmp_path, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    drain: asyncio.Task[bytes] | None = None
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(30):
            info: dict[str, Any] = {}
            while "dashboard" not in info:  # the logs are JSON lines too
                line = await proc.stdout.readline()
                assert line, "the demo exited"
                info = json.loads(line)
        assert info["plant"] == "ems"
        drain = asyncio.create_task(proc.stdout.read())  # the logs: never let the pipe fill
        url = info["dashboard"]
        async with aiohttp.ClientSession() as session:
            first = await _runall(session, url, lambda b: "Inverters" in b and "Meter_Details" in b)
            assert first["Inverters"]["Inverter_1"]["Inverter_1_Serial_Number"] == "CE2231G000"
            assert "Meter_3_Power" in first["Power"]["Meters"]
            assert set(first["Meter_Details"]) == {"Meter_ID1", "Meter_ID3"}
            # A slot around the plant's "now" (its clock is the wall clock): a charge slot
            # charges it from the grid; when it is already full, an export slot empties it.
            now = datetime.now(TZ)
            first_hour, last_hour = now.hour, (now.hour + 1) % 24
            full = first["Inverters"]["Inverter_1"]["Inverter_1_SOC"] >= 95
            if full:
                function = "setExportSlot1"
                payload = {"start": f"{first_hour:02d}:00", "finish": f"{last_hour:02d}:59"}
            else:
                function = "setChargeSlot1"
                payload = {"start": f"{first_hour:02d}00", "finish": f"{last_hour:02d}59",
                           "chargeToPercent": "100"}  # fmt: skip
            async with session.post(f"{url}{function}", json=payload) as resp:
                result = await resp.json()
                assert resp.status == 200, result
                assert result["status"] == "ok", result
            sign = 1 if full else -1
            moved = await _runall(
                session, url, lambda b: sign * b["Power"]["Power"].get("Battery_Power", 0) > 1000
            )
            if not full:
                assert moved["Power"]["Power"]["Grid_Power"] > 1000  # importing for it
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            async with asyncio.timeout(20):
                assert await proc.wait() == 0
        if drain is not None:
            await drain


@pytest.mark.parametrize("family", FAMILIES)
def test_family_clock_runs_and_set_date_time_moves_it(family: str) -> None:
    plant = build_family_plant(family, start=NOON, speed=0)
    shown = [plant.hr(r) for r in range(35, 41)]
    assert shown == [26, 6, 21, 13, 0, 0]  # HR35-40: the plant's time, not the capture's
    plant.advance(90)
    assert [plant.hr(r) for r in range(38, 41)] == [13, 1, 30]
    for register, value in zip(range(35, 41), (26, 6, 21, 15, 30, 0), strict=True):
        _write(plant, register, value)  # setDateTime: one register after another
    plant.advance(10)
    assert [plant.hr(r) for r in range(38, 41)] == [15, 30, 10]
