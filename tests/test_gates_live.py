"""The gates at work: bad pages fed through the simulator's faults never reach a snapshot.

Each poll after the first meets one fault on the inverter's live page IR(0..59) or a battery
page. Every published value must then equal the plant's truth *now*, or be the previous good
value marked stale: a wrong value is never published, and nothing is ever replaced by 0.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from givtcp_async.protocol.frames import ReadRequest, Request
from givtcp_async.quality.pages import PageVerdict
from givtcp_async.simulator.faults import FaultKind
from givtcp_async.simulator.plant import PlantConfig
from givtcp_async.snapshot import Snapshot
from tests.harness import Rig, running_daemon
from tests.test_snapshot_truth import same

START = datetime(2026, 6, 21, 13, 0, tzinfo=ZoneInfo("Europe/London"))


def live_page(req: Request) -> bool:
    return isinstance(req, ReadRequest) and req.device_address == 0x11 and req.base_register == 0 \
        and int(req.function) == 4  # fmt: skip


def battery_page(req: Request) -> bool:
    return isinstance(req, ReadRequest) and req.device_address == 0x32


def check(snap: Snapshot, truth: dict[str, Any], before: dict[str, Any]) -> list[str]:
    """Names whose published value is neither the truth now nor the last good value, stale."""
    wrong = []
    for name, value in truth.items():
        reading = snap.values.get(name)
        if reading is None or reading.value is None:
            continue  # unavailable is allowed; a wrong value is not
        if isinstance(value, datetime) and isinstance(reading.value, datetime):
            # The inverter's clock is shown as of the poll: the daemon's clock runs on while the
            # frozen plant's does not, so it may be a few seconds ahead of this truth.
            ahead = (reading.value.replace(tzinfo=None) - value).total_seconds()
            if not reading.stale and not 0 <= ahead <= 5:
                wrong.append(f"{name}: published {reading.value!r}, truth {value!r}")
            continue
        if reading.stale:
            if not same(before[name], reading.value, name):
                wrong.append(f"{name}: stale {reading.value!r} but last good was {before[name]!r}")
        elif not same(value, reading.value, name):
            wrong.append(f"{name}: published {reading.value!r}, truth {value!r}")
    return wrong


async def poll_with_fault(rig: Rig, kind: FaultKind, match: Any) -> Snapshot:
    rig.sim.faults.add(kind, match=match)
    rig.plant.advance(600)  # the plant moves on: a stale value now differs from the truth
    rig.coordinator.request_refresh(settings=True)
    return await rig.next_snapshot()


# (fault, which request it hits, the page gate's verdict if it is the gate that acts, whether
# the page's values must go stale). A spliced answer still carries the whole frame after the
# cut-off one: the stream decoder recovers it, so nothing goes stale.
CASES = [
    (FaultKind.ZERO_PAGE, live_page, PageVerdict.ZERO_PAGE, True),
    (FaultKind.GARBAGE_PAGE, live_page, PageVerdict.PATTERN_A, True),
    (FaultKind.ZERO_PAGE, battery_page, PageVerdict.ZERO_PAGE, True),
    (FaultKind.BAD_CRC, live_page, None, True),
    (FaultKind.TRUNCATE, live_page, None, True),
    (FaultKind.DROP, live_page, None, True),
    (FaultKind.SPLICE, live_page, None, False),
]


@pytest.mark.parametrize(("kind", "match", "verdict", "goes_stale"), CASES)
async def test_bad_pages_never_reach_the_snapshot(
    tmp_path: Path, kind: FaultKind, match: Any, verdict: PageVerdict | None, goes_stale: bool
) -> None:
    config = PlantConfig(speed=0, start=START)
    # One attempt per read so the fault is not simply retried away: the gate must act.
    async with running_daemon(tmp_path, plant_config=config, inverter={"read_retries": 0}) as rig:
        first = await rig.first_snapshot()
        truth_before = dict(rig.plant.truth().values)
        assert check(first, truth_before, truth_before) == []
        crc_before = rig.coordinator.conn.stats.crc_failures
        snap = await poll_with_fault(rig, kind, match)
        truth_now = dict(rig.plant.truth().values)
        assert truth_now["PV_Energy_Today_kWh"] != truth_before["PV_Energy_Today_kWh"]
        assert check(snap, truth_now, truth_before) == []
        assert bool(snap.stale()) is goes_stale
        if verdict is not None:
            assert rig.coordinator.cache.rejections[verdict] >= 1
        if kind is FaultKind.BAD_CRC:
            assert rig.coordinator.conn.stats.crc_failures > crc_before
        # The next clean poll brings everything back, fresh and true.
        rig.coordinator.request_refresh(settings=True)
        clean = await rig.next_snapshot()
        assert check(clean, dict(rig.plant.truth().values), truth_before) == []
        assert not [n for n in clean.stale() if "/" not in n]
