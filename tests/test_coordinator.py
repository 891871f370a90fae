"""The coordinator's poll schedule, against the simulated plant over TCP on a frozen plant clock.

The daemon follows the plant's simulated clock, frozen (speed 0): time moves only when a test
advances it, so every poll happens at an exact simulated instant. :class:`SteppedClock` wakes the
poll loop's sleep exactly when an advance passes its deadline and returns from the advance only
once the loop has looked at the new time: "no poll yet" is as certain as "a poll now", without
sleeping in the test.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo

import pytest

from givtcp_async.coordinator import MAX_BACKOFF_FACTOR, InverterCoordinator
from givtcp_async.protocol.frames import FunctionCode, ReadRequest, Request
from givtcp_async.quality.pages import PageVerdict
from givtcp_async.registers.plan import LV_BCU, LV_PACKS, Block, Cadence
from givtcp_async.registers.schema import Bank, Enc, Field
from givtcp_async.simulator.faults import FaultKind
from givtcp_async.simulator.plant import Plant, PlantClock, PlantConfig, PlantTruth
from givtcp_async.snapshot import Snapshot
from tests import harness
from tests.harness import Rig, running_daemon
from tests.test_snapshot_truth import mismatches, same

START: Final = datetime(2026, 6, 21, 13, 0, tzinfo=ZoneInfo("Europe/London"))  # PV, load, battery
POLL: Final = 5.0
SETTINGS: Final = 30.0
TIMING: Final = {"poll_interval": POLL, "settings_interval": SETTINGS}

Key = tuple[int, int, int, int]  # device address, function code, base register, count
_FUNCTION: Final = {Bank.HOLDING: FunctionCode.READ_HOLDING, Bank.INPUT: FunctionCode.READ_INPUT}


def key_of(block: Block) -> Key:
    return (block.device_address, int(_FUNCTION[block.bank]), block.base, block.count)


def reads(requests: Iterable[Request]) -> list[Key]:
    """The read requests among ``requests``, as keys, in order."""
    return [
        (r.device_address, int(r.function), r.base_register, r.register_count)
        for r in requests
        if isinstance(r, ReadRequest)
    ]


def live_page(req: Request) -> bool:
    """The inverter's first live page, IR(0..59): the first block of every poll's live part."""
    return (
        isinstance(req, ReadRequest)
        and req.device_address == 0x11
        and req.function is FunctionCode.READ_INPUT
        and req.base_register == 0
    )


def at(seconds: float) -> datetime:
    return START + timedelta(seconds=seconds)


class SteppedClock(PlantClock):
    """The frozen plant's clock for the daemon, moved by :meth:`advance` only.

    The poll loop is its only sleeper; ``deadline`` is when its current sleep ends.
    """

    def __init__(self, plant: Plant) -> None:
        super().__init__(plant)
        self.deadline: datetime | None = None
        self._moved = asyncio.Condition()
        self._advances = 0
        self._looked = 0  # the advance the sleeper last compared with its deadline

    async def sleep_until(self, when: datetime) -> None:
        async with self._moved:
            self.deadline = when
            try:
                while True:
                    self._looked = self._advances
                    self._moved.notify_all()
                    if self.now() >= when:
                        return
                    await self._moved.wait()
            finally:
                self.deadline = None
                self._moved.notify_all()

    async def sleeping(self) -> datetime:
        """The deadline of the poll loop's sleep, once it sleeps."""
        async with self._moved:
            await self._moved.wait_for(lambda: self.deadline is not None)
            assert self.deadline is not None
            return self.deadline

    async def advance(self, seconds: float) -> bool:
        """Move the plant on; True when that ended the sleep, once the sleeper has seen it."""
        async with self._moved:
            deadline = self.deadline
            assert deadline is not None, "advance only while the poll loop sleeps"
            self.plant.advance(seconds)
            self._advances += 1
            self._moved.notify_all()
            await self._moved.wait_for(
                lambda: self._looked == self._advances or self.deadline is None
            )
            return self.now() >= deadline


@dataclass(frozen=True, slots=True)
class Poll:
    snapshot: Snapshot
    requests: list[Key]  # the reads the simulator saw during the poll, in order


@dataclass(slots=True)
class Frozen:
    """A daemon on the frozen plant, after its first poll."""

    rig: Rig
    clock: SteppedClock
    first: Snapshot

    @property
    def coord(self) -> InverterCoordinator:
        return self.rig.coordinator

    def blocks(self, cadence: Cadence) -> list[Key]:
        assert self.coord.layout is not None
        return [key_of(b) for b in self.coord.layout.plan.by_cadence(cadence)]

    @property
    def fast(self) -> list[Key]:
        """What a poll reads when the settings are not due: the live blocks."""
        return self.blocks(Cadence.FAST)

    @property
    def full(self) -> list[Key]:
        """What a poll reads when the settings are due: settings blocks first, then live ones."""
        return self.blocks(Cadence.SLOW) + self.blocks(Cadence.FAST)

    def counters(self) -> tuple[int, int, int, int]:
        """(polls, failed_polls, consecutive_failures, backoff_factor)."""
        h = self.coord.health()
        return (h.polls, h.failed_polls, h.consecutive_failures, h.backoff_factor)

    async def next_poll_at(self) -> datetime:
        """When the next poll is due, on the plant's clock (once the poll loop waits for it)."""
        await self.coord.wait_idle()
        return await self.clock.sleeping()

    async def finished(self, polls_before: int) -> Snapshot:
        """The snapshot of the poll after the first ``polls_before``, once the loop waits again."""
        async with asyncio.timeout(20):
            async for snap in self.coord.updates():
                if self.coord.health().polls > polls_before:
                    await self.coord.wait_idle()
                    return snap
        raise AssertionError("no snapshot")

    async def advance(self, seconds: float) -> Poll | None:
        """Move the plant's clock on; the poll that made due (finished), or None if none was."""
        await self.next_poll_at()
        polls = self.coord.health().polls
        mark = self.rig.sim.mark()
        if not await self.clock.advance(seconds):
            assert self.coord.health().polls == polls
            assert self.rig.sim.requests_seen(mark) == []
            return None
        snap = await self.finished(polls)
        assert self.coord.health().polls == polls + 1
        assert snap.taken_at == self.clock.now()
        return Poll(snap, reads(self.rig.sim.requests_seen(mark)))

    async def poll_at(self, seconds_from_now: float) -> Poll:
        """Advance to the poll ``seconds_from_now`` away; none may be due a second sooner."""
        assert await self.advance(seconds_from_now - 1) is None
        poll = await self.advance(1)
        assert poll is not None
        return poll


@contextlib.asynccontextmanager
async def frozen_daemon(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **inverter: Any
) -> AsyncIterator[Frozen]:
    # running_daemon(use_plant_clock=True) builds the daemon's clock as harness.PlantClock.
    monkeypatch.setattr(harness, "PlantClock", SteppedClock)
    config = PlantConfig(speed=0, start=START.replace(tzinfo=None))
    async with running_daemon(
        tmp_path, plant_config=config, use_plant_clock=True, inverter={**TIMING, **inverter}
    ) as rig:
        clock = rig.coordinator.clock
        assert isinstance(clock, SteppedClock)
        first = await rig.first_snapshot()
        assert first.taken_at == START
        frozen = Frozen(rig, clock, first)
        assert await frozen.next_poll_at() == at(POLL)
        yield frozen


# --- what a published value may be ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Truths:
    """The plant's truth when the settings blocks were last read, and when the live ones were."""

    settings: PlantTruth
    live: PlantTruth


def wrong_values(snap: Snapshot, now: PlantTruth, last_good: Truths) -> list[str]:
    """Published values that are neither true nor, marked stale, the last good value.

    A fresh setting (holding register) is the truth when the settings were last read: they are
    read every settings interval. The inverter's clock, which moves meanwhile, is published as
    of its poll (the time it read plus the time since).
    """
    packs = [d for d in snap.batteries if d.address != LV_BCU]
    assert len(packs) == len(now.batteries)
    groups = [("", snap.values, snap.specs, now.values, last_good.settings.values,
               last_good.live.values)]  # fmt: skip
    for i, pack in enumerate(packs):
        groups.append((f"pack {i + 1} ", pack.values, pack.specs, now.batteries[i],
                       last_good.settings.batteries[i], last_good.live.batteries[i]))  # fmt: skip
    problems = []
    for label, readings, specs, truth, settings, live in groups:
        for name, true_now in truth.items():
            reading, spec = readings[name], specs.get(name)
            holding = isinstance(spec, Field) and spec.bank is Bank.HOLDING
            if isinstance(spec, Field) and spec.enc is Enc.DATETIME:
                # The clock as of its poll: now when fresh; stale, as of a poll between the last
                # settings read and now.
                shown = reading.value.replace(tzinfo=None) if reading.value else None
                ok = (
                    same(true_now, reading.value, name)
                    if not reading.stale
                    else shown is not None and settings[name] <= shown <= true_now
                )
                if not ok:
                    problems.append(f"{label}{name}: {reading.value!r}, now {true_now!r}")
                continue
            if reading.stale:
                expected = (settings if holding else live)[name]
                ok = reading.value is not None and same(expected, reading.value, name)
            else:
                expected = settings[name] if holding else true_now
                ok = same(expected, reading.value, name)
            if not ok:
                state = "stale" if reading.stale else "fresh"
                problems.append(f"{label}{name}: {state} {reading.value!r}, expected {expected!r}")
    return problems


def stale_but_moved(snap: Snapshot, now: PlantTruth) -> list[str]:
    """Stale values whose truth has moved on (so publishing the stale one is visibly not new)."""
    return [
        n
        for n, v in now.values.items()
        if snap.values[n].stale and not same(v, snap.values[n].value, n)
    ]


def live(snap: Snapshot, name: str) -> bool:
    """Whether ``name`` is read from the input registers (the live blocks)."""
    spec = snap.specs.get(name)
    return isinstance(spec, Field) and spec.bank is Bank.INPUT


# --- the schedule ----------------------------------------------------------------------------


async def test_live_blocks_every_poll_interval_settings_every_settings_interval(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with frozen_daemon(tmp_path, monkeypatch) as fz:
        assert fz.blocks(Cadence.SLOW)
        assert fz.blocks(Cadence.FAST)
        t0 = fz.rig.plant.truth()
        last_good = Truths(settings=t0, live=t0)
        polls: list[Poll] = []
        for k in range(1, 13):  # a minute: twelve polls, the settings at 30 s and 60 s
            poll = await fz.poll_at(POLL)
            assert poll.snapshot.taken_at == at(k * POLL)
            assert await fz.next_poll_at() == at((k + 1) * POLL)
            now = fz.rig.plant.truth()
            last_good = Truths(settings=now if k % 6 == 0 else last_good.settings, live=now)
            assert wrong_values(poll.snapshot, now, last_good) == []
            polls.append(poll)
        assert [p.requests for p in polls] == [
            fz.full if k % 6 == 0 else fz.fast for k in range(1, 13)
        ]
        per_block = Counter(key for p in polls for key in p.requests)
        assert per_block == {
            **dict.fromkeys(fz.blocks(Cadence.FAST), 12),
            **dict.fromkeys(fz.blocks(Cadence.SLOW), 2),
        }
        assert fz.counters() == (13, 0, 0, 1)
        assert not any(p.snapshot.stale() for p in polls)


async def test_a_command_that_wrote_polls_at_once_with_the_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with frozen_daemon(tmp_path, monkeypatch) as fz:
        assert await fz.advance(2) is None
        assert fz.rig.plant.holding(116) == 100  # the charge target
        polls = fz.coord.health().polls
        before = fz.rig.sim.mark()
        result = await fz.coord.execute("setChargeTarget", {"chargeToPercent": "80"})
        assert (result.status, result.written) == ("ok", [116]), result.message
        # execute() returns as soon as the command is done (it asks for the poll without
        # waiting): every request so far is the command's, every later one the poll's.
        after = fz.rig.sim.mark()
        command = fz.rig.sim.requests_seen(before)
        assert any(not isinstance(r, ReadRequest) for r in command)  # the write
        snap = await fz.finished(polls)
        assert snap.taken_at == at(2)  # the clock did not move: the poll did not wait for it
        assert reads(fz.rig.sim.requests_seen(after)) == fz.full
        assert snap.value("Target_SOC") == 80
        # The schedule starts again from that poll: live blocks 5 s on, settings 30 s on.
        assert await fz.next_poll_at() == at(2 + POLL)
        for k in range(1, 7):
            poll = await fz.poll_at(POLL)
            assert poll.snapshot.taken_at == at(2 + k * POLL)
            assert poll.requests == (fz.full if k == 6 else fz.fast)
        assert fz.counters() == (8, 0, 0, 1)


async def test_a_rejected_command_or_one_that_wrote_nothing_does_not_poll(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with frozen_daemon(tmp_path, monkeypatch) as fz:
        assert await fz.advance(2) is None
        mark = fz.rig.sim.mark()
        rejected = await fz.coord.execute("setChargeTarget", {"chargeToPercent": "150"})
        assert rejected.status == "rejected"
        assert fz.rig.sim.requests_seen(mark) == []  # refused before anything was sent
        unchanged = await fz.coord.execute("setChargeTarget", {"chargeToPercent": "100"})
        assert (unchanged.status, unchanged.written) == ("ok", []), unchanged.message
        # Neither asked for a poll: the loop still sleeps until 5 s, and that poll is the
        # usual one (a requested poll would have run now, read the settings and moved it).
        assert fz.coord.health().polls == 1
        assert await fz.next_poll_at() == at(POLL)
        poll = await fz.poll_at(POLL - 2)
        assert poll.snapshot.taken_at == at(POLL)
        assert poll.requests == fz.fast
        assert fz.counters() == (2, 0, 0, 1)


async def test_a_command_answers_only_once_its_read_back_is_published(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with frozen_daemon(tmp_path, monkeypatch) as fz:
        assert await fz.advance(2) is None
        first = fz.coord.snapshot
        assert first is not None
        assert (first.value("Eco_Mode"), first.value("Mode")) == ("enable", "Eco")
        writes = fz.coord.metrics()["writes_total"]
        result = await fz.coord.execute("setBatteryMode", {"mode": "Timed Export"})
        assert result.status == "ok", result.message
        # No await since the answer: no poll can have run, yet the snapshot shows the change,
        # derived values (Mode) included, with the live values and their time left alone.
        snap = fz.coord.snapshot
        assert snap is not None
        assert snap is not first
        assert fz.coord.health().polls == 1
        assert (snap.value("Eco_Mode"), snap.value("Enable_Discharge_Schedule")) == (
            "disable",
            "enable",
        )
        assert snap.value("Mode") == "Timed Export"
        assert snap.taken_at == first.taken_at
        assert snap.values["PV_Power_String_1"] is first.values["PV_Power_String_1"]
        assert snap.stats["Write_Count"] == writes + 2
        # A command that found everything already set shows what it read, unchanged.
        again = await fz.coord.execute("setBatteryMode", {"mode": "Timed Export"})
        assert (again.status, again.written) == ("ok", [])
        assert fz.coord.snapshot is not None
        assert fz.coord.snapshot.value("Mode") == "Timed Export"


# --- failures and back-off -----------------------------------------------------------------------


async def test_failed_polls_back_off_to_eight_times_and_one_clean_poll_resets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One attempt per read, so each dropped request fails its poll.
    async with frozen_daemon(tmp_path, monkeypatch, read_retries=0) as fz:
        plant, sim = fz.rig.plant, fz.rig.sim
        t0 = plant.truth()
        last_good = Truths(settings=t0, live=t0)
        sim.faults.add(FaultKind.DROP, count=4, match=live_page)
        elapsed = 0.0
        # (seconds from the previous poll, whether the settings are due, backoff after it)
        failing = [(POLL, False, 2), (2 * POLL, False, 4), (4 * POLL, True, 8), (8 * POLL, True, 8)]
        assert MAX_BACKOFF_FACTOR == 8
        moved: set[str] = set()
        for n, (wait, settings_due, factor) in enumerate(failing, start=1):
            poll = await fz.poll_at(wait)
            elapsed += wait
            assert poll.snapshot.taken_at == at(elapsed)
            assert poll.requests == (fz.full if settings_due else fz.fast)  # no retries
            assert fz.counters() == (1 + n, n, n, factor)
            assert await fz.next_poll_at() == at(elapsed + factor * POLL)
            now = plant.truth()
            if settings_due:  # the settings blocks were read: those are fresh
                last_good = Truths(settings=now, live=last_good.live)
            assert wrong_values(poll.snapshot, now, last_good) == []
            stale = {name for name, r in poll.snapshot.values.items() if r.stale}
            assert "PV_Power" in stale  # IR(0..59) went unanswered
            assert not any(r.stale for b in poll.snapshot.batteries for r in b.values.values())
            moved.update(stale_but_moved(poll.snapshot, now))
        assert moved  # the stale values were visibly the old ones, not the plant's new ones

        clean = await fz.poll_at(8 * POLL)
        elapsed += 8 * POLL
        assert clean.snapshot.taken_at == at(elapsed)
        assert clean.requests == fz.full
        assert fz.counters() == (6, 4, 0, 1)
        assert await fz.next_poll_at() == at(elapsed + POLL)
        now = plant.truth()
        assert wrong_values(clean.snapshot, now, Truths(now, now)) == []
        assert clean.snapshot.stale() == []
        assert (await fz.poll_at(POLL)).requests == fz.fast
        assert fz.counters() == (7, 4, 0, 1)


async def test_polls_while_the_link_is_down_back_off_and_publish_only_stale_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with frozen_daemon(tmp_path, monkeypatch, read_retries=0) as fz:
        plant, sim, coord = fz.rig.plant, fz.rig.sim, fz.coord
        t0 = plant.truth()
        # The dongle drops the daemon when it asks for the live page, then refuses to reconnect.
        sim.refuse_connections(3600)
        sim.faults.add(FaultKind.DISCONNECT, match=live_page)
        elapsed = 0.0
        moved: set[str] = set()
        for n, (wait, factor) in enumerate(
            [(POLL, 2), (2 * POLL, 4), (4 * POLL, 8), (8 * POLL, 8)], start=1
        ):
            poll = await fz.poll_at(wait)
            elapsed += wait
            # The first poll's first read loses the link; from then on every read fails at
            # once, without a request queued behind the dead link.
            assert poll.requests == (fz.fast[:1] if n == 1 else [])
            assert fz.counters() == (1 + n, n, n, factor)
            assert await fz.next_poll_at() == at(elapsed + factor * POLL)
            health = coord.health()
            assert (health.connected, health.online) == (False, False)
            assert health.last_good_poll == START
            snap = poll.snapshot
            assert (snap.stats["status"], snap.stats["Last_Updated_Time"]) == ("offline", START)
            now = plant.truth()
            assert wrong_values(snap, now, Truths(t0, t0)) == []
            assert all(r.stale for name, r in snap.values.items() if live(snap, name))
            # (the LV BCU page is read at the settings cadence: it stays fresh as long as one)
            assert all(r.stale for b in snap.batteries if b.address != LV_BCU
                       for r in b.values.values())  # fmt: skip
            moved.update(stale_but_moved(snap, now))
        assert moved

        sim.refuse_connections(0)  # listening again
        await coord.conn.wait_connected(10)
        clean = await fz.poll_at(8 * POLL)
        elapsed += 8 * POLL
        assert clean.requests == fz.full
        assert fz.counters() == (6, 4, 0, 1)
        assert await fz.next_poll_at() == at(elapsed + POLL)
        now = plant.truth()
        assert wrong_values(clean.snapshot, now, Truths(now, now)) == []
        assert clean.snapshot.stale() == []
        assert (clean.snapshot.stats["status"], coord.health().last_good_poll) == (
            "online",
            at(elapsed),
        )


# --- NUM_BATTERIES -----------------------------------------------------------------------------


async def _refreshed(rig: Rig) -> tuple[Snapshot, list[Key]]:
    """One more poll (settings included): its snapshot and the reads it made."""
    await rig.coordinator.wait_idle()
    mark = rig.sim.mark()
    rig.coordinator.request_refresh(settings=True)
    snap = await rig.next_snapshot()
    await rig.coordinator.wait_idle()
    return snap, reads(rig.sim.requests_seen(mark))


def pack_reads(keys: Sequence[Key]) -> list[int]:
    return [k[0] for k in keys if k[0] in LV_PACKS]


@pytest.mark.parametrize(
    ("num_batteries", "packs"),
    [(None, (0x32, 0x33)), (1, (0x32,)), (2, (0x32, 0x33)), (0, ())],
    ids=["detect", "one", "two", "none"],
)
async def test_num_batteries_chooses_the_packs_read(
    tmp_path: Path, num_batteries: int | None, packs: tuple[int, ...]
) -> None:
    config = PlantConfig(speed=0, start=START.replace(tzinfo=None), batteries=2)
    async with running_daemon(
        tmp_path, plant_config=config, inverter={"num_batteries": num_batteries}
    ) as rig:
        first = await rig.first_snapshot()
        layout = await rig.coordinator.wait_detected()
        # detection's scan finds the LV BCU page too; a pack count reads only the packs
        assert layout.batteries == ((*packs, LV_BCU) if num_batteries is None else packs)
        snap, polled = await _refreshed(rig)
        assert pack_reads(polled) == list(packs)
        truth = rig.plant.truth()
        for s in (first, snap):
            assert [b.address for b in s.batteries] == list(layout.batteries)
            for pack, pack_truth in zip(s.batteries, truth.batteries, strict=False):
                assert pack.serial == pack_truth["Battery_Serial_Number"]
                values = {n: r.value for n, r in pack.values.items()}
                assert mismatches(dict(pack_truth), values) == []
        stack = snap.runall().get("Battery_Details", {}).get("Battery_Stack_1", {})
        published = [key for key, value in stack.items() if isinstance(value, dict)]
        assert published == [b.serial for b in snap.batteries if b.address != LV_BCU]
        if num_batteries is None:  # the LV BCU beside the stacks, as the captured Gen2's
            bcu = snap.runall()["Battery_Details"]["LV_BCU"]
            assert bcu["LV_BCU_Charge_Current_Request"] == 83
        # Detection probes every pack slot only when it has to find the packs itself.
        asked = set(pack_reads(reads(rig.sim.requests_seen())))
        assert asked == (set(LV_PACKS) if num_batteries is None else set(packs))
        assert rig.coordinator.health().failed_polls == 0


async def test_num_batteries_above_the_packs_present_reads_the_slot_but_publishes_no_pack(
    tmp_path: Path,
) -> None:
    # Three configured, two present: the empty slot is read every poll (a pack fitted later is
    # picked up) and answers an all-zero page, which the page gate refuses as "no pack". It is
    # not a failure, and no battery without a serial is published.
    config = PlantConfig(speed=0, start=START.replace(tzinfo=None), batteries=2)
    async with running_daemon(tmp_path, plant_config=config, inverter={"num_batteries": 3}) as rig:
        await rig.first_snapshot()
        layout = await rig.coordinator.wait_detected()
        assert layout.batteries == (0x32, 0x33, 0x34)
        snap, polled = await _refreshed(rig)
        assert pack_reads(polled) == [0x32, 0x33, 0x34]
        assert set(pack_reads(reads(rig.sim.requests_seen()))) == {0x32, 0x33, 0x34}
        assert rig.coordinator.cache.rejections[PageVerdict.NO_PACK] == 2  # one per poll
        health = rig.coordinator.health()
        assert (health.polls, health.failed_polls, health.backoff_factor) == (2, 0, 1)
        truth = rig.plant.truth()
        assert [b.serial for b in snap.batteries] == [
            p["Battery_Serial_Number"] for p in truth.batteries
        ]
        assert [b.address for b in snap.batteries] == [0x32, 0x33]
        for pack, pack_truth in zip(snap.batteries, truth.batteries, strict=True):
            assert mismatches(dict(pack_truth), {n: r.value for n, r in pack.values.items()}) == []
        stack = snap.runall().get("Battery_Details", {}).get("Battery_Stack_1", {})
        published = [key for key, value in stack.items() if isinstance(value, dict)]
        assert published == [b.serial for b in snap.batteries]
        assert snap.stale() == []


async def test_the_inverter_clock_moves_at_every_poll_between_settings_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with frozen_daemon(tmp_path, monkeypatch) as fz:
        first = await fz.poll_at(POLL)
        second = await fz.poll_at(POLL)
        assert fz.fast == second.requests  # the clock's page was not read again
        clock = [p.snapshot.values["Invertor_Time"].value for p in (first, second)]
        assert (clock[1] - clock[0]).total_seconds() == POLL
        truth = fz.rig.plant.truth().values["Invertor_Time"]
        assert clock[1].replace(tzinfo=None) == truth
