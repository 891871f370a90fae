"""The snapshot the daemon reads from the simulated plant equals the plant's own truth."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from givtcp_async.simulator.plant import LV_BCU, LV_BCU_WORDS, PlantConfig
from givtcp_async.snapshot import Snapshot
from tests.harness import running_daemon

# Presentation differences between the plant's truth (raw register meaning) and the published
# GivTCP field, worked out from the register map's option tables.
CALIBRATION = {
    0: "Off",
    1: "Discharging",
    2: "Set Lower Limit",
    3: "Charging",
    4: "Set Upper Limit",
    5: "Balancing",
    6: "Set Full Capacity",
    7: "Finished",
}


# Load energy has no register: the plant integrates it exactly, the daemon derives it from four
# counters of 0.1 kWh resolution each (SPEC §6.1), so they agree within four half-steps.
DERIVED_TOLERANCE = {"Load_Energy_Today_kWh": 0.2, "Load_Energy_Total_kWh": 0.2}


def same(truth: Any, published: Any, name: str) -> bool:
    if name in DERIVED_TOLERANCE:
        return published is not None and abs(truth - published) <= DERIVED_TOLERANCE[name]
    if name == "Battery_Calibration_Status":
        return bool(CALIBRATION.get(truth, truth) == published)
    if isinstance(truth, datetime):
        return isinstance(published, datetime) and published.replace(tzinfo=None) == truth
    if isinstance(truth, float) or isinstance(published, float):
        # Registers carry 0.1 kWh / 0.01 V: the plant's truth is at the same resolution.
        return abs(float(truth) - float(published)) < 1e-6
    return bool(truth == published)


def mismatches(truth: dict[str, Any], snap_values: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    return [(n, v, snap_values.get(n)) for n, v in truth.items()
            if not same(v, snap_values.get(n), n)]  # fmt: skip


def published(snap: Snapshot) -> dict[str, Any]:
    return {n: r.value for n, r in snap.values.items()}


async def test_snapshot_equals_plant_truth_field_by_field(tmp_path: Path) -> None:
    start = datetime(
        2026, 6, 21, 13, 0, tzinfo=ZoneInfo("Europe/London")
    )  # midsummer noon: PV, load and battery all active
    async with running_daemon(tmp_path, plant_config=PlantConfig(speed=0, start=start)) as rig:
        snap = await rig.first_snapshot()
        truth = rig.plant.truth()
        assert len(truth.values) > 100
        assert mismatches(dict(truth.values), published(snap)) == []
        packs = [b for b in snap.batteries if b.address != LV_BCU]
        assert len(packs) == len(truth.batteries) == 2
        (bcu,) = (b for b in snap.batteries if b.address == LV_BCU)
        words = dict(zip(("Status_1", "Status_2", "Charge_Current_Request",
                          "Discharge_Current_Request"), LV_BCU_WORDS, strict=True))  # fmt: skip
        assert {n: r.value for n, r in bcu.values.items()} == {
            f"LV_BCU_{k}": v for k, v in words.items()
        }
        for pack_truth, pack in zip(truth.batteries, packs, strict=True):
            values = {n: r.value for n, r in pack.values.items()}
            assert mismatches(dict(pack_truth), values) == []
        assert snap.values["PV_Power"].value > 0  # the comparison covered a live plant
        assert not snap.stale()


async def test_daemon_stops_within_five_seconds_leaving_nothing_running(tmp_path: Path) -> None:
    before = set(asyncio.all_tasks())
    async with running_daemon(tmp_path, plant_config=PlantConfig(speed=0)) as rig:
        await rig.first_snapshot()
        rig.daemon.stop()
        started = time.monotonic()
    assert time.monotonic() - started < 5.0
    assert set(asyncio.all_tasks()) - before == {asyncio.current_task()} - before
    assert rig.sim.client_count == 0
