"""One coordinator per charger: its poll loop, snapshots, commands and charging policy.

It runs in the daemon's task group beside the inverters' coordinators and shares nothing with
them but a read of the first inverter's latest snapshot (for the import cap and the modes): a
charger that is unplugged, rebooting or unreachable never delays an inverter poll.

Poll loop: every ``poll_interval`` both register blocks are read over the charger's own
connection; the snapshot passes the gates and is published (a failed poll republishes the last
good values, stale, so ``Stats/status`` turns offline after ``offline_after``). After
``lockout_after`` consecutive failed polls the connection is closed and left alone for
``lockout_pause`` seconds: GivTCP's pause for the charger's Modbus port, which locks out a
client that keeps failing. After each good poll :func:`givtcp_async.evc.policy.decide` may act.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo

import structlog

from givtcp_async import __version__
from givtcp_async.control.accounting import WriteLedger
from givtcp_async.control.clock import Clock, SystemClock
from givtcp_async.control.payloads import RawPayload
from givtcp_async.control.persist import state_file
from givtcp_async.control.result import CommandResult
from givtcp_async.errors import CommunicationError
from givtcp_async.evc.connection import EvcConnection, EvcLinkSettings
from givtcp_async.evc.controls import EvcController, Limits
from givtcp_async.evc.policy import ChargerView, GridView, decide
from givtcp_async.evc.snapshot import EvcAssembler, EvcSnapshot, serial_of
from givtcp_async.evc.state import StateStore
from givtcp_async.latest import Latest, sleep_or_wake
from givtcp_async.ports import ChargerHealth
from givtcp_async.quality.gates import GateSettings
from givtcp_async.registers.evc import BLOCKS, CHARGING
from givtcp_async.snapshot import Snapshot

log = structlog.get_logger(__name__)

# Names of the inverter's grid import current: single phase, else the largest phase.
_PHASE_CURRENTS: Final = ("Grid_Phase1_Current", "Grid_Phase2_Current", "Grid_Phase3_Current")

GridSource = Callable[[], Snapshot | None]


@dataclass(frozen=True, slots=True)
class EvcSettings:
    """One charger and how it is polled and steered."""

    link: EvcLinkSettings
    name: str = "GivTCP"  # Home Assistant prefix, as the inverters'
    serial: str | None = None  # expected; a different charger at this address is refused
    poll_interval: float = 10.0
    lockout_after: int = 10  # consecutive failed polls before the pause (GivTCP: 10)
    lockout_pause: float = 300.0  # seconds (GivTCP: 5 minutes)
    offline_after: float = 120.0
    stale_after: float = 600.0
    grid_max_age: float = 90.0  # an inverter reading older than this cannot steer the cap


def grid_view(snap: Snapshot) -> GridView:
    """The inputs of the charging policy from an inverter snapshot (fresh values only)."""

    def fresh(name: str) -> float | None:
        reading = snap.values.get(name)
        if reading is None or reading.stale or not isinstance(reading.value, int | float):
            return None
        return float(reading.value)

    current = fresh("Grid_Current")
    if current is None:
        phases = [v for v in map(fresh, _PHASE_CURRENTS) if v is not None]
        current = max(phases) if phases else None
    power = fresh("Grid_Power")  # + export, - import
    if current is not None and power is not None and power >= 0:
        current = 0.0  # exporting: nothing is drawn from the grid
    return GridView(current, fresh("PV_Power"), fresh("Load_Power"), fresh("Grid_Voltage"))


class EvcCoordinator:
    """Owns one charger. Run :meth:`run` as a task; cancel it to stop."""

    def __init__(
        self,
        settings: EvcSettings,
        *,
        state_dir: Path | None = None,
        tz: tzinfo | None = None,
        clock: Clock | None = None,
        grid: GridSource | None = None,
        grid_refresh: Callable[[], None] | None = None,
        write_budget: int | None = None,
    ) -> None:
        self.settings = settings
        self.clock: Clock = clock or SystemClock()
        self.tz: tzinfo = tz or ZoneInfo("UTC")
        self.state_dir = state_dir
        self.write_budget = write_budget
        self.grid = grid
        # Asks the inverter for a fresh poll after a policy step, so the next decision sees it.
        self.grid_refresh = grid_refresh
        self.conn = EvcConnection(settings.link, monotonic=self._monotonic)
        self.assembler = EvcAssembler(
            self.tz, GateSettings(stale_after=settings.stale_after), self._monotonic
        )
        self.serial: str | None = settings.serial
        self.controller: EvcController | None = None
        self._latest: Latest[EvcSnapshot] = Latest()
        self._wake = asyncio.Event()
        self._polls = 0
        self._failed_polls = 0
        self._consecutive = 0
        self._last_good: datetime | None = None
        self._acted_at: datetime | None = None
        self._identified = asyncio.Event()
        if self.serial is not None:
            self._attach(self.serial)

    # --- time ------------------------------------------------------------------------------

    def _monotonic(self) -> float:
        return self.clock.now().timestamp()

    def now(self) -> datetime:
        return self.clock.now().astimezone(self.tz)

    # --- public API --------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.settings.name

    @property
    def address(self) -> str:
        return f"{self.settings.link.host}:{self.settings.link.port}"

    @property
    def offline_after(self) -> float:
        return self.settings.offline_after

    def health(self) -> ChargerHealth:
        last = self._last_good
        online = last is not None and (
            (self.now() - last).total_seconds() <= self.settings.offline_after
        )
        return ChargerHealth(
            connected=self.conn.connected,
            online=online,
            last_good_poll=last,
            consecutive_failures=self._consecutive,
            polls=self._polls,
            failed_polls=self._failed_polls,
            paused_for=self.conn.paused_for(),
        )

    def metrics(self) -> dict[str, Any]:
        health = self.health()
        out: dict[str, Any] = {f"connection_{k}": v for k, v in self.conn.stats.as_dict().items()}
        out.update(
            polls=health.polls,
            failed_polls=health.failed_polls,
            consecutive_failures=health.consecutive_failures,
            online=int(health.online),
            values_rejected=sum(self.assembler.rejections.values()),
            writes_total=self.controller.ledger.total if self.controller else 0,
        )
        return out

    @property
    def acted_at(self) -> datetime | None:
        """When the charging policy last changed the charger (None: never)."""
        return self._acted_at

    async def wait_identified(self) -> str:
        """The charger's serial, once a poll has read it (or the configuration gave it)."""
        await self._identified.wait()
        assert self.serial is not None
        return self.serial

    @property
    def snapshot(self) -> EvcSnapshot | None:
        """The latest snapshot (None before the charger's serial is known)."""
        return self._latest.value

    def updates(self) -> AsyncIterator[EvcSnapshot]:
        """Every new snapshot; a slow consumer skips to the latest one."""
        return self._latest.updates()

    def request_refresh(self) -> None:
        """Poll now."""
        self._wake.set()

    async def execute(self, function: str, payload: RawPayload = None) -> CommandResult:
        """Run one control command; never raises for a command that cannot be carried out."""
        if self.controller is None:
            return CommandResult(
                function=function,
                status="failed",
                message="the charger has not been reached yet (its serial is not known)",
                at=self.clock.now(),
            )
        return await self.controller.execute(function, payload)

    # --- running -----------------------------------------------------------------------------

    async def run(self) -> None:
        """Poll (and steer) until cancelled; the connection is closed on the way out."""
        try:
            while True:
                started = self.clock.now()
                try:
                    snap = await self.poll_once()
                    if snap is not None and self._consecutive == 0:
                        await self._steer(snap)
                except CommunicationError as err:  # a command-path failure; keep the loop alive
                    log.warning("charger policy step failed", error=str(err))
                wait = max(self.settings.poll_interval, self.conn.paused_for())
                await sleep_or_wake(self.clock, started + timedelta(seconds=wait), self._wake)
        finally:
            await self.conn.close()

    async def poll_once(self) -> EvcSnapshot | None:
        """Read both blocks and publish a snapshot (None while the serial is unknown)."""
        self._polls += 1
        registers = None
        if self.conn.paused_for() <= 0:  # nothing is sent during the lock-out pause
            try:
                registers = await self._read()
            except CommunicationError as err:
                self._failed(str(err))
        if registers is not None and not self._identify(registers):
            registers = None
        if registers is not None:
            self._consecutive = 0
            self._last_good = self.now()
        if self.serial is None or self.controller is None:
            return None
        snap = self.assembler.build(
            registers,
            serial=self.serial,
            held=self.controller.store.state.held_values(),
            now=self.now(),
            stats=self._stats(),
        )
        await self._latest.set(snap)
        return snap

    # --- internals ---------------------------------------------------------------------------

    async def _read(self) -> dict[int, int]:
        registers: dict[int, int] = {}
        for base, count in BLOCKS:
            words = await self.conn.read_holding(base, count)
            registers.update({base + i: v for i, v in enumerate(words)})
        return registers

    def _identify(self, registers: Mapping[int, int]) -> bool:
        serial = serial_of(registers)
        if serial is None:
            self._failed("no charger serial in HR38-68: not a GivEnergy charger")
            return False
        if self.serial is None:
            self._attach(serial)
            log.info("charger identified", serial=serial, address=self.address)
        elif serial != self.serial:
            self._failed(f"a different charger answers ({serial}, expected {self.serial})")
            return False
        return True

    def _attach(self, serial: str) -> None:
        self.serial = serial
        state_dir = self.state_dir
        self.controller = EvcController(
            self.conn,
            StateStore(state_file(state_dir, serial, "evc") if state_dir else None),
            ledger=WriteLedger(
                state_file(state_dir, serial, "writes") if state_dir else None,
                daily_budget=self.write_budget,
                clock=self.clock,
                tz=self.tz,
            ),
            limits=self._limits,
            clock=self.clock,
        )
        self.controller.add_listener(self._after_command)
        self._identified.set()

    def _limits(self) -> Limits:
        snap = self.snapshot
        low = snap.value("Evse_Min_Current") if snap else None
        high = snap.value("Evse_Max_Current") if snap else None
        limits = Limits(now=self.now().replace(tzinfo=None))
        if isinstance(low, int | float) and isinstance(high, int | float) and 0 < low <= high:
            limits = Limits(limits.now, int(low), int(high))
        return limits

    def _after_command(self, result: CommandResult) -> None:
        self.request_refresh()

    def _failed(self, why: str) -> None:
        self._failed_polls += 1
        self._consecutive += 1
        if self._consecutive >= self.settings.lockout_after:
            pause = self.settings.lockout_pause
            log.error("charger failed repeatedly; pausing its Modbus port (lock-out)",
                      failures=self._consecutive, pause=pause, error=why)  # fmt: skip
            self.conn.pause(pause)
            self._consecutive = 0
        else:
            log.info("charger poll failed", failures=self._consecutive, error=why)

    def _stats(self) -> dict[str, Any]:
        health = self.health()
        return {
            "Last_Updated_Time": health.last_good_poll,
            "status": "online" if health.online else "offline",
            "GivTCP_Version": f"givtcp-async {__version__}",
            "Write_Count": self.controller.ledger.total if self.controller else 0,
            "Timeout_Error": self.conn.stats.timeouts,
        }

    def _grid(self) -> GridView | bool | None:
        """The inverter's view; None when unknown or too old, False: wait for a newer one."""
        if self.grid is None:
            return None
        snap = self.grid()
        if snap is None:
            return None
        age = (self.clock.now() - snap.taken_at).total_seconds()
        if age > self.settings.grid_max_age:
            return None
        if self._acted_at is not None and snap.taken_at <= self._acted_at:
            return False  # this reading predates our last change: wait for one that shows it
        return grid_view(snap)

    async def _steer(self, snap: EvcSnapshot) -> None:
        assert self.controller is not None
        store = self.controller.store
        limit, low, high = (snap.fresh(n) for n in
                            ("Charge_Limit", "Evse_Min_Current", "Evse_Max_Current"))  # fmt: skip
        power, energy = snap.fresh("Active_Power"), snap.fresh("Charge_Session_Energy")
        view = ChargerView(
            charging=snap.fresh("Charging_State") == CHARGING,
            plugged=snap.fresh("Connection_Status") == "Connected",
            limit=float(limit) if isinstance(limit, int | float) else None,
            evse_min=float(low) if isinstance(low, int | float) and low > 0 else 6.0,
            evse_max=float(high) if isinstance(high, int | float) and high > 0 else 32.0,
            power=float(power) if isinstance(power, int | float) else 0.0,
            session_energy=float(energy) if isinstance(energy, int | float) else None,
        )
        grid = self._grid()
        if grid is False:
            return
        decision = decide(view, grid if isinstance(grid, GridView) else None, store.state)
        try:
            for action in decision.actions:
                payload: dict[str, Any]
                if action.kind == "limit":
                    name, payload = "setCurrentLimit", {"current": action.amps}
                else:
                    name, payload = "setChargeControl", {"mode": action.kind.capitalize()}
                result = await self.controller.execute(
                    name, payload, policy=True, safety=action.safety
                )
                self._acted_at = self.clock.now()
                log.info("charger policy", action=action.kind, amps=action.amps,
                         reason=action.reason, status=result.status,
                         message=result.message)  # fmt: skip
                if not result.ok:
                    return  # try again after the next poll
        finally:
            if decision.actions and self.grid_refresh is not None:
                self.grid_refresh()
        changes: dict[str, Any] = {"stopped_by": decision.stopped_by}
        if decision.user_limit is not None:
            changes["user_limit"] = decision.user_limit
        try:
            store.update(**changes)
        except OSError as err:
            log.warning("could not save the charger state", error=str(err))
