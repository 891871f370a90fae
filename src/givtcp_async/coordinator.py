"""One coordinator per inverter: connection, detection, the poll schedule, snapshots, commands.

Sinks (MQTT, REST, Influx) never talk to the inverter: they see the coordinator as a
:class:`~givtcp_async.ports.InverterView`, read :attr:`snapshot`, follow :meth:`updates`, and
hand commands to :meth:`execute`, which goes through the same serialised connection queue as
the polls (writes first).

Poll schedule: live blocks every ``poll_interval``; settings blocks every ``settings_interval``
and straight after every command that reached the inverter. When refreshes fail, the interval
doubles (up to 8x) until a clean refresh, so a struggling dongle is not hammered.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import structlog

from givtcp_async import __version__, scan_memory
from givtcp_async.assemble import SnapshotAssembler
from givtcp_async.cache import RegisterCache
from givtcp_async.config import InverterConfig
from givtcp_async.connection import DongleConnection
from givtcp_async.control.accounting import WriteLedger
from givtcp_async.control.catalogue import CATALOGUE, Catalogue, ControlFunction
from givtcp_async.control.clock import Clock, SystemClock
from givtcp_async.control.executor import Controller, ControlMemory
from givtcp_async.control.overrides import OVERRIDE_FUNCTIONS, STATE_SPECS, OverrideManager
from givtcp_async.control.payloads import Payload, RatePayload, RawPayload
from givtcp_async.control.persist import state_file
from givtcp_async.control.result import CommandResult, rejected
from givtcp_async.control.service import ControlService
from givtcp_async.errors import CommunicationError, GivTcpError, IdentityError, NotConnected
from givtcp_async.latest import Latest, sleep_or_wake
from givtcp_async.layout import TreeLayout, givtcp_version
from givtcp_async.ports import Health
from givtcp_async.protocol.frames import ReadResponse, WriteResponse
from givtcp_async.quality.gates import GateSettings, Reading
from givtcp_async.quality.identity import IdentityGuard
from givtcp_async.reader import PlantLayout, PlantReader, RefreshReport, with_devices
from givtcp_async.registers.models import BatterySide, Model
from givtcp_async.registers.plan import Cadence
from givtcp_async.snapshot import Snapshot, Spec
from givtcp_async.tariffs import INPUTS as TARIFF_INPUTS
from givtcp_async.tariffs import TariffSettings, TariffTracker
from givtcp_async.tariffs import specs as tariff_specs

log = structlog.get_logger(__name__)

MAX_BACKOFF_FACTOR = 8
DETECT_RETRY_MAX = 60.0


@dataclass(frozen=True, slots=True)
class CoordinatorOptions:
    """What a coordinator needs beyond its inverter's own section (the daemon builds it from
    the settings: ``data``, ``mqtt.offline_after`` and ``control``)."""

    state_dir: Path  # write ledger, control memory and timed overrides, per serial
    timezone: str  # the inverter's local time (an IANA name)
    stale_after: float  # seconds a value may be republished as its last good one
    offline_after: float  # seconds without a good poll before the inverter is offline
    print_raw: bool  # raw registers in every snapshot
    write_budget_per_day: int | None  # None: no budget
    min_write_interval: float | None  # seconds between writes of one register; None: any
    dead_man_minutes: int | None  # None: forced modes need no re-assertion
    layout: TreeLayout = TreeLayout.GIVTCP3  # the output tree's layout
    tariff: TariffSettings | None = None  # None: no tariff tracking (Energy/Rates)


def merged_specs(specs: Mapping[str, Spec], own: Mapping[str, Spec]) -> Mapping[str, Spec]:
    """``specs`` with ``own`` (the daemon's own values'), one read-only mapping shared by every
    coordinator whose assembler hands out the same ``specs`` with the same own specs (the
    inverters of one layout): not a copy per inverter."""
    key = (id(specs), tuple(map(id, own.values())))
    hit = _MERGED.get(key)
    if hit is not None and hit[0] is specs and hit[1] == tuple(own.values()):
        return hit[2]
    merged = {**specs, **own}
    if len(_MERGED) >= 64:  # a handful of layouts per process; never unbounded
        _MERGED.pop(next(iter(_MERGED)))
    _MERGED[key] = (specs, tuple(own.values()), merged)  # the ids stay theirs while kept
    return merged


_MERGED: dict[
    tuple[int, tuple[int, ...]], tuple[Mapping[str, Spec], tuple[Spec, ...], Mapping[str, Spec]]
] = {}


class InverterCoordinator:
    """Owns one inverter. Run :meth:`run` as a task; cancel it to stop (cleanly)."""

    def __init__(
        self,
        config: InverterConfig,
        options: CoordinatorOptions,
        *,
        clock: Clock | None = None,
    ) -> None:
        self.config = config
        self.options = options
        self.clock: Clock = clock or SystemClock()
        self.tz: tzinfo = ZoneInfo(options.timezone)
        self.offline_after = options.offline_after
        self.cache = RegisterCache(clock=self._monotonic)
        self.conn = DongleConnection(config.connection_settings(), on_response=self._on_fanout)
        self.reader = PlantReader(self.conn, self.cache)
        self.layout: PlantLayout | None = None
        self.controller: Controller | None = None
        self.overrides: OverrideManager | None = None
        self.control: ControlService | None = None
        self.assembler: SnapshotAssembler | None = None
        self._latest: Latest[Snapshot] = Latest()
        # rebootAddon: the daemon's restart (set by the daemon); keep overrides pending when
        # stopping for a restart (the next process takes them up)
        self.restart_hook: Callable[[], None] | None = None
        self.keep_overrides_on_stop = False
        self.tariffs: TariffTracker | None = None
        self._overrides_shown: tuple[str, ...] = ()  # the model's timed overrides
        self._state_specs: dict[str, Spec] = {}
        self._merged_specs: tuple[Mapping[str, Spec], Mapping[str, Spec]] | None = None
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()  # waiting for the next poll, none requested
        self._slow_due = True
        self._next_slow: datetime | None = None
        self._backoff = 1
        self._polls = 0
        self._failed_polls = 0
        self._consecutive_failures = 0
        self._last_good: datetime | None = None
        self._detected = asyncio.Event()
        self.guard: IdentityGuard | None = None
        self._refused: str | None = None  # why detection refused the unit at this address
        self._reported: str | None = None  # the problem last logged
        self._refusing = asyncio.Event()  # set while problem() is not None
        self._packs_remembered = False

    # --- time ------------------------------------------------------------------------------

    def _monotonic(self) -> float:
        return self.clock.now().timestamp()

    def now(self) -> datetime:
        return self.clock.now().astimezone(self.tz)

    # --- public API --------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def serial(self) -> str | None:
        return self.layout.serial if self.layout else self.config.serial

    @property
    def model(self) -> Model | None:
        """The detected model (None until detection)."""
        return self.layout.model if self.layout else None

    def catalogue(self) -> Catalogue:
        """The control functions this inverter serves."""
        return self.controller.catalogue if self.controller is not None else CATALOGUE

    async def link_up(self, timeout: float) -> bool:
        """Whether the link to the dongle is up, waiting up to ``timeout`` seconds for it."""
        if self.conn.connected:
            return True
        try:
            await self.conn.wait_connected(timeout)
        except NotConnected:
            return False
        return True

    @property
    def where(self) -> str:
        return f"{self.config.host}:{self.config.port}"

    def problem(self) -> str | None:
        """Why this inverter is refused right now (None: it is not): the unit at its address is
        not the one identified or configured. Nothing is written or published meanwhile."""
        found = self.guard.found if self.guard is not None else None
        if found is not None and self.guard is not None:
            return (
                f"serial mismatch at {self.where}: found {found}, expected {self.guard.serial}; "
                "refusing every write and publication for it"
            )
        return self._refused

    async def wait_problem(self) -> str:
        """Return the problem once the inverter is refused (at once if it is now)."""
        while True:
            await self._refusing.wait()
            problem = self.problem()
            if problem is not None:
                return problem

    def _report_problem(self) -> None:
        problem = self.problem()
        if problem is None:
            self._refusing.clear()
        else:
            self._refusing.set()
        if problem != self._reported:
            if problem is not None:
                log.error("inverter refused", host=self.config.host, problem=problem)
            elif self._reported is not None:
                log.info("inverter identity confirmed again", host=self.config.host,
                         serial=self.serial)  # fmt: skip
            self._reported = problem

    def health(self) -> Health:
        now = self.now()
        problem = self.problem()
        online = (
            problem is None
            and self.conn.connected
            and self._last_good is not None
            and (now - self._last_good).total_seconds() <= self.offline_after
        )
        return Health(
            connected=self.conn.connected,
            detected=self.layout is not None,
            online=online,
            last_good_poll=self._last_good,
            consecutive_failures=self._consecutive_failures,
            polls=self._polls,
            failed_polls=self._failed_polls,
            backoff_factor=self._backoff,
            problem=problem,
        )

    async def wait_detected(self) -> PlantLayout:
        await self._detected.wait()
        assert self.layout is not None
        return self.layout

    @property
    def snapshot(self) -> Snapshot | None:
        """The latest snapshot (None before the first poll)."""
        return self._latest.value

    def updates(self) -> AsyncIterator[Snapshot]:
        """Every new snapshot; a slow consumer skips to the latest one."""
        return self._latest.updates()

    def request_refresh(self, *, settings: bool = True) -> None:
        """Poll now (and re-read the settings blocks)."""
        if settings:
            self._slow_due = True
        self._idle.clear()
        self._wake.set()

    async def wait_idle(self) -> None:
        """Return once the poll loop is waiting for its next poll with no refresh requested.

        Soak tests and benchmarks change a simulated plant only then, so that no poll reads
        half of one state and half of the next.
        """
        await self._idle.wait()

    async def execute(self, function: str, payload: RawPayload = None) -> CommandResult:
        """Run one control command; never raises for a command that cannot be carried out."""
        problem = self.problem()
        if problem is not None:
            expected = self.guard.serial if self.guard is not None else self.config.serial
            found = self.guard.found if self.guard is not None else None
            return rejected(
                function,
                f"{function}: {problem}; nothing written",
                [{"field": "serial", "value": found, "allowed": expected}],
                at=self.clock.now(),
            )
        if self.control is None:
            return CommandResult(
                function=function,
                status="failed",
                message="the inverter has not been detected yet (no connection)",
                at=self.clock.now(),
            )
        try:
            return await self.control.execute(function, payload)
        except GivTcpError as err:
            return CommandResult(
                function=function, status="failed", message=str(err), at=self.clock.now()
            )

    def metrics(self) -> dict[str, Any]:
        """Counters for /metrics: connection, cache, gates, polls and writes."""
        health = self.health()
        out: dict[str, Any] = {f"connection_{k}": v for k, v in self.conn.stats.as_dict().items()}
        out["pages_accepted"] = self.cache.accepted
        for verdict, n in self.cache.rejections.items():
            out[f"pages_rejected_{verdict.value}"] = n
        out["polls"] = health.polls
        out["failed_polls"] = health.failed_polls
        out["consecutive_failures"] = health.consecutive_failures
        out["online"] = int(health.online)
        out["values_rejected"] = sum(self.assembler.rejections.values()) if self.assembler else 0
        out["writes_total"] = self.controller.ledger.total if self.controller else 0
        if self.controller is not None:
            ledger = self.controller.ledger
            out["writes_refused_budget"] = ledger.refused_budget
            out["writes_refused_interval"] = ledger.refused_interval
            out["state_errors"] = ledger.state_errors + (
                self.overrides.state_errors if self.overrides else 0
            )
        out["identity_mismatch"] = int(self.problem() is not None)
        return out

    # --- running -----------------------------------------------------------------------------

    async def run(self) -> None:
        """Connect, detect, then poll until cancelled; on the way out restore overrides."""
        await self.conn.start()
        try:
            await self._detect()
            assert self.overrides is not None
            for result in await self.overrides.start():
                log.info("override restored at start", function=result.function,
                         status=result.status)  # fmt: skip
            await self._poll_forever()
        finally:
            await self._shutdown()

    async def _shutdown(self) -> None:
        if self.tariffs is not None:
            self.tariffs.close(self.now())
        if self.overrides is not None:
            try:
                async with asyncio.timeout(3.0):
                    await self.overrides.stop(restore=not self.keep_overrides_on_stop)
            except (TimeoutError, GivTcpError) as err:
                log.warning("could not restore overrides on shutdown; kept for next start",
                            error=repr(err))  # fmt: skip
        await self.conn.close()

    async def _detect(self) -> None:
        delay = 2.0
        while True:
            try:
                await self.conn.wait_connected(None)
                # Meters are scanned after the first poll: absent ones time out on some models.
                layout = await self.reader.detect(
                    num_batteries=self.config.num_batteries,
                    meters=False,
                    expected_serial=self.config.serial,
                    known_packs=self._remembered_packs,
                )
                break
            except IdentityError as err:
                # Not the unit configured (or not a GivEnergy serial): keep looking, slowly.
                self._refused = str(err)
                self._report_problem()
                await asyncio.sleep(delay)
                delay = min(delay * 2, DETECT_RETRY_MAX)
            except CommunicationError as err:
                log.warning("detection failed, retrying", host=self.config.host,
                            error=str(err), retry_in=delay)  # fmt: skip
                await asyncio.sleep(delay)
                delay = min(delay * 2, DETECT_RETRY_MAX)
        self._attach(layout)

    def _attach(self, layout: PlantLayout) -> None:
        self.layout = layout
        self.guard = IdentityGuard(layout.serial)
        self.cache.admit = self.guard.judge
        self._refused = None
        self._report_problem()
        options = self.options
        state_dir = options.state_dir
        self.controller = Controller(
            self.conn,
            layout.model,
            cache=self.cache,
            ledger=WriteLedger(
                state_file(state_dir, layout.serial, "writes"),
                daily_budget=options.write_budget_per_day,
                min_interval=options.min_write_interval,
                clock=self.clock,
                tz=self.tz,
            ),
            memory=ControlMemory(state_file(state_dir, layout.serial, "control")),
            clock=self.clock,
            tz=self.tz,
        )
        self.controller.add_listener(self._after_command)
        self.overrides = OverrideManager(
            self.controller,
            state_file(state_dir, layout.serial, "overrides"),
            deadman_minutes=options.dead_man_minutes,
            clock=self.clock,
        )
        self.overrides.add_listener(self._after_override_change)
        self._overrides_shown = tuple(
            fn
            for fn in OVERRIDE_FUNCTIONS
            if self.controller.catalogue.get(fn).available(layout.model)
        )
        self._state_specs = {s.name: s for fn in self._overrides_shown for s in STATE_SPECS[fn]}
        self._merged_specs = None
        self.control = ControlService(self.controller, self.overrides)
        self.control.register("rebootAddon", self._restart)
        tariff = options.tariff
        if tariff is not None and layout.model.battery_side is not BatterySide.NONE:
            self.tariffs = TariffTracker(tariff, state_file(state_dir, layout.serial, "tariff"))
            self._state_specs.update({s.name: s for s in tariff_specs(tariff.currency)})
            self.control.register("switchRate", self._switch_rate)
        self.assembler = SnapshotAssembler(
            layout.model,
            layout.serial,
            layout.fields,
            self.tz,
            gate_settings=GateSettings(stale_after=options.stale_after),
            fresh_age={
                "IR": self.config.poll_interval * (MAX_BACKOFF_FACTOR + 2),
                "HR": self.config.settings_interval * 2 + self.config.poll_interval * 4,
            },
            print_raw=options.print_raw,
            layout=options.layout,
            clock=self._monotonic,
        )
        self._detected.set()

    async def _restart(self, fn: ControlFunction, payload: Payload) -> CommandResult:
        at = self.clock.now()
        if self.restart_hook is None:
            return rejected(fn.name, f"{fn.name}: no daemon to restart here", at=at)
        self.restart_hook()
        return CommandResult(
            function=fn.name,
            status="ok",
            message=f"{fn.name}: the daemon stops cleanly and starts again (timed overrides "
            "stay pending for the new process)",
            at=at,
        )

    async def _switch_rate(self, fn: ControlFunction, payload: Payload) -> CommandResult:
        assert self.tariffs is not None
        assert isinstance(payload, RatePayload)
        rate = payload.rate.value
        self.tariffs.switch(rate, self.now())
        if self.snapshot is not None:
            self._publish_now(self.snapshot)  # the new rate shows before the answer
        return CommandResult(
            function=fn.name,
            status="ok",
            message=f"{fn.name}: the {rate.lower()} rate applies from now",
            payload=payload.model_dump(mode="json"),
            at=self.clock.now(),
        )

    def _after_command(self, result: CommandResult) -> None:
        """Read-your-writes: publish what the command's read-back found before it is answered
        (the listener runs inside the command), then re-read the settings soon after."""
        read_back = [c.register for c in result.registers if c.readback is not None]
        if read_back and self.snapshot is not None and self.assembler is not None:
            self._publish_now(
                self.assembler.patch(
                    self.snapshot, self.cache, read_back, now=self.now(), stats=self._stats()
                )
            )
        if result.written:
            self.request_refresh(settings=True)

    def _after_override_change(self) -> None:
        if self.snapshot is not None:
            self._publish_now(self.snapshot)

    def _on_fanout(self, frame: ReadResponse | WriteResponse, solicited: bool) -> None:
        # Other clients' traffic (cloud, app, another poller) is free data: cache it, once the
        # identity guard knows whose pages to accept.
        if solicited or self.guard is None:
            return
        if isinstance(frame, ReadResponse):
            self.cache.offer(frame, solicited=False)  # the identity guard judges it first
        elif self.guard is not None and self.guard.admit_write(frame):
            self.cache.offer_write(frame)

    async def poll_once(self, *, reuse_within: float = 0.0) -> Snapshot:
        """One refresh: live blocks, plus settings blocks when due; then a new snapshot.

        Blocks read less than ``reuse_within`` seconds ago (by detection) are not read again.
        """
        assert self.layout is not None
        assert self.assembler is not None
        now = self.now()
        slow = self._slow_due or self._next_slow is None or now >= self._next_slow
        plan = self.layout.plan
        blocks = list(plan.by_cadence(Cadence.FAST))
        if slow:
            blocks = list(plan.by_cadence(Cadence.SLOW)) + blocks
        self._slow_due = False
        report = await self.reader.refresh(blocks, reuse_within=reuse_within)
        self._account(report, slow, now)
        snap = self.assembler.build(
            self.cache,
            devices=self.layout.devices,
            now=self.now(),
            stats=self._stats(),
            missed=[b for b, _ in (*report.failed, *report.refused)],
        )
        self._report_problem()
        if self.problem() is None:  # another unit answers: publish nothing of it
            if self.tariffs is not None:  # nor count its import
                fresh = {
                    n: r.value
                    for n in TARIFF_INPUTS
                    if (r := snap.values.get(n)) is not None and not r.stale
                }
                self.tariffs.observe(fresh, snap.taken_at)
            await self._publish(snap)
        return snap

    def _account(self, report: RefreshReport, slow: bool, started: datetime) -> None:
        self._polls += 1
        slow_failed = any(b.cadence is Cadence.SLOW for b, _ in report.failed)
        if slow:
            if slow_failed:
                self._slow_due = True
            else:
                self._next_slow = started + timedelta(seconds=self.config.settings_interval)
        if report.failed:
            self._failed_polls += 1
            self._consecutive_failures += 1
            self._backoff = min(self._backoff * 2, MAX_BACKOFF_FACTOR)
            log.info("poll incomplete", failed=len(report.failed), backoff=self._backoff,
                     first=report.failed[0][1])  # fmt: skip
        else:
            self._consecutive_failures = 0
            self._backoff = 1
        if report.read or report.reused:
            self._last_good = self.now()

    def _stats(self) -> dict[str, Any]:
        health = self.health()
        last = health.last_good_poll
        return {
            "Last_Updated_Time": last,
            "status": "online" if health.online else "offline",
            "Time_Since_Last_Update": (
                round((self.now() - last).total_seconds(), 1) if last else None
            ),
            "GivTCP_Version": givtcp_version(self.options.layout, __version__),
            "Write_Count": self.controller.ledger.total if self.controller else 0,
            "Timeout_Error": self.conn.stats.timeouts,
        }

    async def _publish(self, snap: Snapshot) -> None:
        self._publish_now(snap)

    def _publish_now(self, snap: Snapshot) -> None:
        snap = self._with_state(snap)
        self._latest.put(snap)

    def _with_state(self, snap: Snapshot) -> Snapshot:
        """``snap`` with what the daemon itself knows: the timed overrides' state now and the
        tariff accounting."""
        if self.overrides is None or not self._state_specs:
            return snap
        values: dict[str, Reading] = dict(snap.values)
        readings = self.overrides.readings(self._overrides_shown)
        if self.tariffs is not None:
            readings.update(self.tariffs.readings())
        for name, value in readings.items():
            values[name] = Reading(value, self._state_specs[name].unit)
        return replace(snap, values=values, specs=self._specs_with_state(snap.specs))

    def _specs_with_state(self, specs: Mapping[str, Spec]) -> Mapping[str, Spec]:
        """``specs`` and the daemon's own: one merged mapping per distinct ``specs`` (the
        assembler hands out the same one while the plant's layout holds), not one per poll."""
        if self._state_specs.keys() <= specs.keys():
            return specs
        merged = self._merged_specs
        if merged is None or merged[0] is not specs:
            merged = self._merged_specs = (specs, merged_specs(specs, self._state_specs))
        return merged[1]

    def _remembered_packs(self, serial: str) -> tuple[int, ...] | None:
        state_dir = self.options.state_dir
        scan = scan_memory.remembered(state_dir, serial, "packs", self.clock.now().timestamp())
        self._packs_remembered = scan is not None
        return None if scan is None else scan.found

    async def _scan(self, kind: str, *, probe: bool = True) -> None:
        """Probe the packs or the meters now (``probe``: else take the layout's) and remember
        what answered."""
        assert self.layout is not None
        if kind == "packs":
            if probe:
                self.layout = await self.reader.rescan_packs(self.layout)
            found = self.layout.batteries
        else:
            if probe:
                self.layout = await self.reader.add_meters(self.layout)
            found = self.layout.meters
        scan_memory.remember(self.options.state_dir, self.layout.serial, kind, found,
                             self.clock.now().timestamp())  # fmt: skip

    async def _poll_forever(self) -> None:
        # Meters: the last scan's result when it is recent, else a scan after the first poll
        # (absent meters time out on some models); then again every RESCAN_AFTER seconds.
        # Packs: detection took the remembered ones, if any; they are probed after that poll.
        assert self.layout is not None
        state_dir = self.options.state_dir
        now = self.clock.now()
        meters = scan_memory.remembered(state_dir, self.layout.serial, "meters", now.timestamp())
        next_scan = None
        if meters is not None:
            self.layout = with_devices(self.layout, meters=meters.found)
            next_scan = datetime.fromtimestamp(meters.due, self.tz)
        packs_due = self.config.num_batteries is None and self.layout.model.battery_side is (
            BatterySide.LV
        )
        # The first poll takes what detection read moments ago (within one poll interval).
        reuse = self.config.poll_interval
        while True:
            started = self.clock.now()
            try:
                await self.poll_once(reuse_within=reuse)
                reuse = 0.0
                if packs_due:  # the remembered packs are checked; detection's are kept
                    await self._scan("packs", probe=self._packs_remembered)
                    packs_due = False
                if next_scan is None or started >= next_scan:
                    await self._scan("meters")
                    next_scan = started + timedelta(seconds=scan_memory.RESCAN_AFTER)
            except GivTcpError as err:  # a bug-free poll never raises; keep the loop alive
                log.error("poll failed", error=repr(err))
            interval = self.config.poll_interval * self._backoff
            await self._sleep_or_wake(started + timedelta(seconds=interval))

    async def _sleep_or_wake(self, until: datetime) -> None:
        await sleep_or_wake(self.clock, until, self._wake, self._idle)
