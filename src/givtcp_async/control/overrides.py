"""Timed overrides: forceCharge, forceExport, tempPauseCharge, tempPauseDischarge.

Starting one reads the registers its plan will change (fresh), persists them as the pending
restore, applies the plan and schedules the restore. Re-issuing a running override extends it
and keeps the first saved state; ``Cancel`` restores at once. A restore writes each saved value
back only while the register still holds what the override wrote, so a setting someone changed
meanwhile is left alone. A restore that does not fully succeed is kept and retried every minute.

State file ``<serial>.overrides.json``::

    {"version": 1, "overrides": {"forceCharge": {
        "started_at": "...", "ends_at": "...", "last_asserted": "...", "minutes": 30,
        "deadman_minutes": null, "saved": {"94": 2330, ...}, "applied": {"94": 1200, ...},
        "order": [116, 94, ...]}}}

On start-up (:meth:`OverrideManager.start`) overrides whose end passed while the daemon was down
are restored at once; the others are rescheduled. :meth:`OverrideManager.stop` restores them all
on a clean shutdown. An optional dead-man timer restores a forced mode (forceCharge, forceExport)
when nobody re-asserts it (re-issues it, or calls :meth:`OverrideManager.keepalive`) within
N minutes.

What runs is published with every snapshot, under GivTCP's names (:data:`STATE_SPECS`,
:meth:`OverrideManager.readings`): ``Control/Force_Charge`` is ``Running`` or ``Normal`` and
``Control/Force_Charge_Num`` the whole minutes left, and the same for ``Force_Export``,
``Temp_Pause_Charge`` and ``Temp_Pause_Discharge``. Listeners
(:meth:`OverrideManager.add_listener`) hear of every change of that state (start, extension,
restore), once it is recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any, Final, Protocol

import structlog

from givtcp_async.control.accounting import WriteLedger
from givtcp_async.control.catalogue import (
    Catalogue,
    ControlFunction,
    PlanContext,
    PlanError,
    Verify,
    Write,
)
from givtcp_async.control.clock import Clock
from givtcp_async.control.layout import Layout
from givtcp_async.control.payloads import MAX_OVERRIDE_MINUTES, DurationPayload, Payload
from givtcp_async.control.persist import read_json, write_json
from givtcp_async.control.result import CommandResult, rejected, state_error
from givtcp_async.errors import CommunicationError, StateError
from givtcp_async.registers.schema import HA, Derived, Kind

log = structlog.get_logger(__name__)

VERSION: Final = 1
RETRY_AFTER: Final = timedelta(minutes=1)
FORCED_MODES: Final = frozenset({"forceCharge", "forceExport"})  # what the dead-man guards
OVERRIDE_FUNCTIONS: Final = ("forceCharge", "forceExport", "tempPauseCharge", "tempPauseDischarge")
# GivTCP's names for each override's state in the Control group.
STATE_NAMES: Final = {
    "forceCharge": "Force_Charge",
    "forceExport": "Force_Export",
    "tempPauseCharge": "Temp_Pause_Charge",
    "tempPauseDischarge": "Temp_Pause_Discharge",
}
RUNNING: Final = "Running"
NORMAL: Final = "Normal"
CONTROL_PATH: Final = ("Control",)


def _published(_values: Mapping[str, Any], _model: Any) -> Any:
    raise LookupError("published by the override manager, never computed from registers")


def _state_specs(function: str) -> tuple[Derived, ...]:
    name = STATE_NAMES[function]
    return (
        Derived(name, CONTROL_PATH, (), _published, kind=Kind.STATUS,
                ha=HA(platform="select", entity_category="config"), control=function,
                description=f"{RUNNING} while {function} runs, else {NORMAL}", returns=str,
                choices=(NORMAL, RUNNING)),
        Derived(f"{name}_Num", CONTROL_PATH, (), _published, unit="min", kind=Kind.STATUS,
                bounds=(0, MAX_OVERRIDE_MINUTES),
                ha=HA(platform="number", entity_category="config"), control=function,
                description=f"whole minutes until {function} ends (0: not running)",
                returns=int),
    )  # fmt: skip


#: The published state of every timed override, by override function.
STATE_SPECS: Final[Mapping[str, tuple[Derived, ...]]] = {
    fn: _state_specs(fn) for fn in OVERRIDE_FUNCTIONS
}


class PlanRunner(Protocol):
    """What the overrides need of the command executor (:class:`~givtcp_async.control.executor.
    Controller` fits): its lock, fresh reads, plan context and the write-and-verify cycle."""

    lock: asyncio.Lock
    layout: Layout
    catalogue: Catalogue
    clock: Clock
    tz: tzinfo | None
    ledger: WriteLedger

    async def read_registers(self, registers: Iterable[int]) -> dict[int, int]: ...

    def context(
        self, values: Mapping[int, int], window: tuple[datetime, datetime] | None = None
    ) -> PlanContext: ...

    async def carry_out_plan(
        self,
        function: str,
        payload: dict[str, Any] | None,
        make_plan: Callable[[Mapping[int, int]], list[Write]],
        needs: Sequence[int],
        verify: Verify,
        *,
        restores: bool = False,
    ) -> CommandResult: ...


@dataclass(slots=True)
class ActiveOverride:
    """One running override and its pending restore."""

    function: str
    started_at: datetime
    ends_at: datetime
    last_asserted: datetime
    minutes: int
    saved: dict[int, int]  # register -> value before the override (restored at the end)
    applied: dict[int, int]  # register -> value the override wrote
    order: list[int]  # registers in plan order
    deadman_minutes: int | None = None
    retry_at: datetime | None = None
    generation: int = field(default=0, compare=False)

    def deadman_at(self) -> datetime | None:
        if self.deadman_minutes is None:
            return None
        return self.last_asserted + timedelta(minutes=self.deadman_minutes)

    def restore_at(self) -> datetime:
        """When the restore is due: the end, or earlier when the dead-man fires."""
        due = self.ends_at
        deadman = self.deadman_at()
        if deadman is not None and deadman < due:
            due = deadman
        if self.retry_at is not None:
            due = self.retry_at
        return due

    def restore_writes(self) -> int:
        """The most writes the restore can take: one per register the override changed."""
        return sum(1 for reg in self.order if self.applied.get(reg) != self.saved.get(reg))

    def restore_plan(self) -> list[Write]:
        return [
            Write(reg, self.saved[reg], expect=self.applied[reg], restore=True)
            for reg in self.order
            if reg in self.saved and reg in self.applied
        ]

    def to_json(self) -> dict[str, Any]:
        return {
            "started_at": self.started_at.isoformat(),
            "ends_at": self.ends_at.isoformat(),
            "last_asserted": self.last_asserted.isoformat(),
            "minutes": self.minutes,
            "deadman_minutes": self.deadman_minutes,
            "saved": {str(k): v for k, v in self.saved.items()},
            "applied": {str(k): v for k, v in self.applied.items()},
            "order": list(self.order),
        }

    @classmethod
    def from_json(cls, function: str, data: dict[str, Any]) -> ActiveOverride:
        return cls(
            function=function,
            started_at=datetime.fromisoformat(data["started_at"]),
            ends_at=datetime.fromisoformat(data["ends_at"]),
            last_asserted=datetime.fromisoformat(data["last_asserted"]),
            minutes=int(data["minutes"]),
            saved={int(k): int(v) for k, v in data["saved"].items()},
            applied={int(k): int(v) for k, v in data["applied"].items()},
            order=[int(r) for r in data["order"]],
            deadman_minutes=data.get("deadman_minutes"),
        )


def _note_applied(rec: ActiveOverride, res: CommandResult) -> None:
    """Record what the inverter holds after an apply, so the restore expects the truth."""
    for change in res.registers:
        if change.readback is not None:
            rec.applied[change.register] = change.readback
        elif change.written and change.echo is not None:
            rec.applied[change.register] = change.echo
        elif change.old is not None and not change.written:
            rec.applied[change.register] = change.old


class OverrideManager:
    """Starts, extends, cancels, persists and restores the timed overrides of one inverter.

    Give it the inverter's :class:`PlanRunner` (its ``Controller``), ``await start()`` once the
    connection is up, and ``await stop()`` on shutdown; commands reach :meth:`handle` through
    :class:`givtcp_async.control.service.ControlService`.
    """

    def __init__(
        self,
        controller: PlanRunner,
        path: Path | None = None,
        *,
        deadman_minutes: int | None = None,
        clock: Clock | None = None,
    ) -> None:
        if deadman_minutes is not None and deadman_minutes < 1:
            raise ValueError("deadman_minutes must be >= 1")
        self.controller = controller
        self.path = path
        self.deadman_minutes = deadman_minutes
        self.clock: Clock = clock or controller.clock
        self._active: dict[str, ActiveOverride] = {}
        self._timers: dict[str, asyncio.Task[None]] = {}
        self._waiters: dict[str, list[asyncio.Future[CommandResult]]] = {}
        self._listeners: list[Callable[[], None]] = []
        self._started = False
        self.state_errors = 0  # pending restores that could not be saved

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> list[CommandResult]:
        """Load persisted overrides: restore those already due, schedule the rest."""
        self._started = True
        self._load()
        results = []
        now = self.clock.now()
        for name in list(self._active):
            rec = self._active[name]
            if rec.restore_at() <= now:
                async with self.controller.lock:
                    res = await self._restore_locked(name, "ended while the daemon was down")
                results.append(res)
                if not res.ok:
                    self._schedule(name)
            else:
                self._schedule(name)
        return results

    async def stop(self, *, restore: bool = True) -> list[CommandResult]:
        """Clean shutdown: stop the timers and (by default) restore every running override.

        An override whose restore fails stays persisted for the next start.
        """
        for task in self._timers.values():
            task.cancel()
        timers = list(self._timers.values())
        self._timers.clear()
        for task in timers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._started = False
        return await self.restore_all("clean shutdown") if restore else []

    async def restore_all(self, reason: str = "restore all") -> list[CommandResult]:
        results = []
        for name in list(self._active):
            async with self.controller.lock:
                if name in self._active:
                    results.append(await self._restore_locked(name, reason))
        return results

    # --- queries -----------------------------------------------------------------------------

    def active(self) -> dict[str, ActiveOverride]:
        return dict(self._active)

    def add_listener(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call ``listener`` after every change of what runs; returns a remover."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def readings(self, functions: Iterable[str] = OVERRIDE_FUNCTIONS) -> dict[str, Any]:
        """The published state of ``functions`` now: GivTCP's ``Force_Charge`` (``Running`` or
        ``Normal``) and ``Force_Charge_Num`` (whole minutes left), and the same for the other
        overrides."""
        out: dict[str, Any] = {}
        for function in functions:
            name = STATE_NAMES[function]
            rec = self._active.get(function)
            out[name] = RUNNING if rec is not None else NORMAL
            out[f"{name}_Num"] = self.remaining_minutes(function)
        return out

    def remaining_minutes(self, function: str) -> int:
        """Whole minutes until the override's restore (0 when it is not running)."""
        rec = self._active.get(function)
        if rec is None:
            return 0
        seconds = (rec.restore_at() - self.clock.now()).total_seconds()
        return max(0, math.ceil(seconds / 60))

    def status(self, function: str) -> dict[str, Any]:
        """What the Force_Charge / Force_Charge_Num style entities show."""
        rec = self._active.get(function)
        if rec is None:
            return {"function": function, "state": "Normal", "minutes_remaining": 0}
        return {
            "function": function,
            "state": "Running",
            "started_at": rec.started_at.isoformat(),
            "ends_at": rec.ends_at.isoformat(),
            "restore_at": rec.restore_at().isoformat(),
            "minutes_remaining": self.remaining_minutes(function),
            "deadman_minutes": rec.deadman_minutes,
        }

    def completion(self, function: str) -> asyncio.Future[CommandResult]:
        """A future resolved with the restore result when the running override ends."""
        fut: asyncio.Future[CommandResult] = asyncio.get_running_loop().create_future()
        if function not in self._active:
            fut.set_exception(LookupError(f"no {function} override is running"))
        else:
            self._waiters.setdefault(function, []).append(fut)
        return fut

    # --- commands ----------------------------------------------------------------------------

    async def handle(self, fn: ControlFunction, payload: Payload) -> CommandResult:
        """Start, extend or (``Cancel``) end the override ``fn``."""
        if not isinstance(payload, DurationPayload):
            return rejected(fn.name, f"{fn.name} needs a duration payload")
        if not self._started:
            return rejected(fn.name, f"{fn.name}: timed overrides are not running (start() first)")
        if payload.cancel:
            return await self.cancel(fn.name)
        async with self.controller.lock:
            return await self._apply_locked(fn, payload, payload.duration, extend_by=None)

    async def cancel(self, function: str) -> CommandResult:
        """End the override now and restore what it changed."""
        async with self.controller.lock:
            if function not in self._active:
                return CommandResult(
                    function=function,
                    status="ok",
                    message=f"{function}: no override running; nothing to restore",
                    override=self.status(function),
                    at=self.clock.now(),
                )
            return await self._restore_locked(function, "cancelled")

    async def extend(self, function: str, minutes: int) -> CommandResult:
        """Move the end of a running override ``minutes`` later (keeps the first saved state)."""
        fn = self.controller.catalogue.get(function)
        async with self.controller.lock:
            if function not in self._active:
                return rejected(function, f"{function}: no override running to extend",
                                [{"field": "function", "value": function,
                                  "allowed": "a running override"}])  # fmt: skip
            payload = DurationPayload(duration=max(1, minutes))
            return await self._apply_locked(fn, payload, minutes, extend_by=minutes)

    async def keepalive(self, function: str) -> bool:
        """Re-assert a running forced mode for the dead-man timer; False when not running."""
        rec = self._active.get(function)
        if rec is None:
            return False
        rec.last_asserted = self.clock.now()
        self._persist()
        self._schedule(function)
        return True

    # --- internals (command lock held) -------------------------------------------------------

    async def _apply_locked(
        self, fn: ControlFunction, payload: DurationPayload, minutes: int, extend_by: int | None
    ) -> CommandResult:
        ctrl = self.controller
        now = self.clock.now()
        rec = self._active.get(fn.name)
        if rec is not None and extend_by is not None:
            ends = rec.ends_at + timedelta(minutes=extend_by)
        else:
            ends = now + timedelta(minutes=minutes)
        if ends - now > timedelta(minutes=MAX_OVERRIDE_MINUTES):
            return rejected(
                fn.name,
                f"{fn.name}: an override may last at most {MAX_OVERRIDE_MINUTES} minutes from now",
                [{"field": "duration", "value": minutes, "allowed": f"1-{MAX_OVERRIDE_MINUTES}"}],
            )
        start = now
        if rec is not None and ends - rec.started_at <= timedelta(minutes=MAX_OVERRIDE_MINUTES):
            start = rec.started_at  # keep the slot start: fewer writes when re-asserted
        window = (start.astimezone(ctrl.tz), ends.astimezone(ctrl.tz))
        try:
            needs = (
                await ctrl.read_registers(fn.needs(ctrl.layout)) if fn.needs(ctrl.layout) else {}
            )
            writes = fn.plan(payload, ctrl.context(needs, window))
        except (PlanError, CommunicationError) as err:
            return CommandResult(
                function=fn.name,
                status="failed",
                message=f"{fn.name}: {err}; nothing written",
                at=now,
            )
        payload_json = payload.model_dump(mode="json", by_alias=True)
        if rec is None:
            try:
                saved = await ctrl.read_registers(w.register for w in writes)
            except CommunicationError as err:
                return CommandResult(
                    function=fn.name,
                    status="failed",
                    message=f"{fn.name}: reading the inverter failed ({err}); nothing written",
                    at=now,
                )
            rec = ActiveOverride(
                function=fn.name,
                started_at=now,
                ends_at=ends,
                last_asserted=now,
                minutes=minutes,
                saved={w.register: saved[w.register] for w in writes},
                applied={w.register: w.value for w in writes},
                order=[w.register for w in writes],
                deadman_minutes=self.deadman_minutes if fn.name in FORCED_MODES else None,
            )
            fresh = True
        else:
            fresh = False
            previous = copy.deepcopy(rec)
            for w in writes:  # registers the first plan did not touch (rare): save them now
                if w.register not in rec.saved:
                    rec.saved[w.register] = (await ctrl.read_registers([w.register]))[w.register]
                    rec.order.append(w.register)
            rec.applied.update({w.register: w.value for w in writes})
            rec.ends_at, rec.last_asserted, rec.minutes = ends, now, minutes
            rec.retry_at = None
        self._active[fn.name] = rec
        try:
            self._persist(strict=True)  # the pending restore is on disk before anything is written
        except StateError as err:
            if fresh:
                self._active.pop(fn.name, None)
            else:
                self._active[fn.name] = previous
            return rejected(
                fn.name,
                f"{fn.name}: the pending restore cannot be saved ({err}); nothing written",
                [state_error(err)],
                at=now,
            )

        res = await ctrl.carry_out_plan(
            fn.name, payload_json, lambda _v: writes, (), fn.verify, restores=fresh
        )
        _note_applied(rec, res)
        ctrl.ledger.reserve(fn.name, rec.restore_writes())
        self._persist()
        if res.status == "ok" or not fresh:
            self._schedule(fn.name)
            verb = "started" if fresh else "extended"
            return res.model_copy(
                update={
                    "message": f"{res.message}; {verb}, restores at {rec.restore_at().isoformat()}",
                    "override": self.status(fn.name),
                }
            )
        # The override did not fully apply: undo whatever it changed, leave nothing half-set.
        if res.status == "rejected" or not res.written:
            self._drop(fn.name)
            return res.model_copy(update={"override": self.status(fn.name)})
        undo = await self._restore_locked(fn.name, "apply failed")
        return res.model_copy(
            update={
                "message": f"{res.message}; rolled back: {undo.status} ({undo.message})",
                "override": self.status(fn.name),
            }
        )

    async def _restore_locked(self, function: str, reason: str) -> CommandResult:
        rec = self._active[function]
        res = await self.controller.carry_out_plan(
            function, None, lambda _v: rec.restore_plan(), (), Verify.EXACT
        )
        if res.ok:
            self._drop(function)
            log.info("timed override restored", function=function, reason=reason)
        else:
            rec.retry_at = self.clock.now() + RETRY_AFTER
            self._persist()
            log.error(
                "timed override restore incomplete; will retry",
                function=function,
                reason=reason,
                message=res.message,
            )
        out = res.model_copy(
            update={
                "message": f"restore ({reason}): {res.message}",
                "override": {**self.status(function), "reason": reason},
            }
        )
        if res.ok:
            for fut in self._waiters.pop(function, []):
                if not fut.done():
                    fut.set_result(out)
        return out

    def _drop(self, function: str) -> None:
        self._active.pop(function, None)
        self.controller.ledger.release(function)
        self._persist()
        task = self._timers.pop(function, None)
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    def _schedule(self, function: str) -> None:
        if not self._started:
            return
        old = self._timers.pop(function, None)
        if old is not None and old is not asyncio.current_task():
            old.cancel()
        rec = self._active.get(function)
        if rec is None:
            return
        rec.generation += 1
        self._timers[function] = asyncio.create_task(
            self._timer(function, rec.generation), name=f"override-{function}"
        )

    async def _timer(self, function: str, generation: int) -> None:
        while True:
            rec = self._active.get(function)
            if rec is None or rec.generation != generation:
                return
            await self.clock.sleep_until(rec.restore_at())
            async with self.controller.lock:
                rec = self._active.get(function)
                if rec is None or rec.generation != generation:
                    return
                now = self.clock.now()
                if rec.restore_at() > now:
                    continue
                deadman = rec.deadman_at()
                if rec.retry_at is not None:
                    reason = "retry"
                elif deadman is not None and deadman <= now and deadman < rec.ends_at:
                    reason = "dead-man: not re-asserted"
                else:
                    reason = "ended"
                res = await self._restore_locked(function, reason)
                if res.ok:
                    return

    def _changed(self) -> None:
        for listener in list(self._listeners):
            try:
                listener()
            except Exception:  # a listener must not break the overrides
                log.exception("override listener failed")

    def _persist(self, *, strict: bool = False) -> None:
        """Save the pending restores; ``strict``: raise :class:`StateError` when that fails
        (before an override writes), else it is logged and counted (once the writes are made,
        the restore saved before them stays on disk and still undoes them)."""
        self._changed()
        if self.path is None:
            return
        data = {
            "version": VERSION,
            "overrides": {name: rec.to_json() for name, rec in self._active.items()},
        }
        try:
            write_json(self.path, data)
        except StateError:
            self.state_errors += 1
            if strict:
                raise

    def _load(self) -> None:
        if self.path is None:
            return
        data = read_json(self.path)
        if not isinstance(data, dict):
            return
        for name, raw in dict(data.get("overrides", {})).items():
            try:
                self._active[name] = rec = ActiveOverride.from_json(name, raw)
            except (KeyError, TypeError, ValueError) as err:
                log.error("unreadable persisted override dropped", function=name, error=str(err))
                continue
            self.controller.ledger.reserve(name, rec.restore_writes())
