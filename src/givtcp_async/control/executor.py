"""Carrying out control commands: plan, allow-list, skip-if-equal, write, check echoes, read back.

One :class:`Controller` per inverter. Commands run one at a time (an ``asyncio.Lock``); their
register traffic goes through the connection's queue ahead of polls: reads at
``Priority.COMMAND``, writes at ``Priority.WRITE``. Every command ends in a
:class:`CommandResult` naming each register planned, its old and new value, whether it was
written and whether the read-back confirmed it. Nothing raises for a command that fails: the
result says so.

Statuses:

* ``ok`` - every planned value is on the inverter (written, or already there), confirmed;
* ``rejected`` - refused before anything was sent (unknown function, bad payload, not on this
  model, allow-list, write budget);
* ``failed`` - nothing on the inverter changed (the fresh read, the first write or the plan
  failed);
* ``partial`` - something changed but not everything is as planned or confirmed; the registers
  say exactly which.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any, Final

import structlog

from givtcp_async.cache import RegisterCache
from givtcp_async.connection import DongleConnection, Priority
from givtcp_async.control import allowlist
from givtcp_async.control.accounting import WriteLedger
from givtcp_async.control.catalogue import (
    CATALOGUE,
    DEFAULT_RESERVE,
    Catalogue,
    ControlFunction,
    PlanContext,
    PlanError,
    Verify,
    Write,
)
from givtcp_async.control.clock import Clock, SystemClock
from givtcp_async.control.layout import CLOCK, Layout
from givtcp_async.control.payloads import Payload, RawPayload
from givtcp_async.control.persist import read_json, write_json
from givtcp_async.control.result import (
    CommandResult,
    RegisterChange,
    Status,
    rejected,
    state_error,
)
from givtcp_async.errors import (
    CommunicationError,
    DeviceErrorResponse,
    StateError,
    UnknownFunction,
    ValidationFailed,
    WriteBudgetExceeded,
    WriteNotAllowed,
    WriteTooSoon,
)
from givtcp_async.protocol.frames import FunctionCode, ReadResponse
from givtcp_async.registers.models import Model

log = structlog.get_logger(__name__)

INVERTER: Final = 0x11
# A clock read back may trail the value written by this much and lead it by the time taken.
_CLOCK_SLACK: Final = timedelta(seconds=5)


class ControlMemory:
    """What control remembers between commands: the last battery reserve below 100 %.

    Persisted as ``<serial>.control.json``: ``{"version": 1, "saved_reserve": 20}``.
    """

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self.saved_reserve = DEFAULT_RESERVE
        data = read_json(path) if path is not None else None
        if isinstance(data, dict) and isinstance(data.get("saved_reserve"), int):
            self.saved_reserve = int(data["saved_reserve"])

    def remember_reserve(self, value: int) -> None:
        if not DEFAULT_RESERVE <= value < 100 or value == self.saved_reserve:
            return
        self.saved_reserve = value
        if self.path is not None:
            write_json(self.path, {"version": 1, "saved_reserve": value})


Listener = Callable[[CommandResult], None]


class Controller:
    """Runs control commands against one inverter."""

    def __init__(
        self,
        connection: DongleConnection,
        model: Model,
        *,
        device: int = INVERTER,
        cache: RegisterCache | None = None,
        ledger: WriteLedger | None = None,
        memory: ControlMemory | None = None,
        clock: Clock | None = None,
        tz: tzinfo | None = None,
        catalogue: Catalogue = CATALOGUE,
    ) -> None:
        self.connection = connection
        self.model = model
        self.layout = Layout(model)
        self.device = device
        self.cache = cache
        self.ledger = ledger or WriteLedger(clock=clock, tz=tz)
        self.memory = memory or ControlMemory()
        self.clock: Clock = clock or SystemClock()
        self.tz = tz
        self.catalogue = catalogue
        self.lock = asyncio.Lock()
        self._listeners: list[Listener] = []

    # --- public API --------------------------------------------------------------------------

    def local_now(self) -> datetime:
        """Now in the daemon's configured timezone (the inverter's local time)."""
        now = self.clock.now()
        return now.astimezone(self.tz) if self.tz is not None else now.astimezone()

    def add_listener(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener`` after every command that reached the inverter; returns a remover."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def resolve(
        self, name: str, raw: RawPayload = None
    ) -> tuple[ControlFunction, Payload] | CommandResult:
        """The function and validated payload of a command as GivTCP sends it, or the
        rejection saying why it cannot run."""
        at = self.clock.now()
        try:
            return self.catalogue.resolve(name, raw, self.model)
        except UnknownFunction as err:
            known = "a function of the catalogue (see `givtcp-async write --list`)"
            errors = [{"field": "function", "value": name, "allowed": known}]
            return rejected(name, str(err), errors, at=at)
        except ValidationFailed as err:
            return rejected(self._canonical(name), str(err), err.errors, at=at)

    async def execute(self, name: str, raw: RawPayload = None) -> CommandResult:
        """Parse, validate and run one command given as GivTCP sends it. Never raises for a
        command that cannot be carried out: the result says why. Timed overrides are refused
        here: :class:`givtcp_async.control.service.ControlService` routes them."""
        resolved = self.resolve(name, raw)
        if isinstance(resolved, CommandResult):
            return resolved
        return await self.run(*resolved)

    async def preview(self, name: str, raw: RawPayload = None) -> list[Write]:
        """The writes a command would make now, without writing (raises on rejection)."""
        fn, payload = self.catalogue.resolve(name, raw, self.model)
        async with self.lock:
            values = await self.read_registers(fn.needs(self.layout))
        writes = fn.plan(payload, self.context(values))
        allowlist.check_writes(self.model, ((w.register, w.value) for w in writes))
        return writes

    async def run(
        self,
        fn: ControlFunction,
        payload: Payload,
        *,
        window: tuple[datetime, datetime] | None = None,
    ) -> CommandResult:
        """Run a resolved command (takes the command lock); a timed override is refused (its
        manager runs it)."""
        if fn.override or fn.local:
            needs = "the timed-override manager" if fn.override else "the running daemon"
            return rejected(fn.name, f"{fn.name} needs {needs}", at=self.clock.now())
        async with self.lock:
            return await self.carry_out(fn, payload, window=window)

    async def run_plan(
        self, function: str, writes: Sequence[Write], *, verify: Verify = Verify.EXACT
    ) -> CommandResult:
        """Carry out explicit writes under the same rules (takes the command lock)."""
        async with self.lock:
            return await self.carry_out_plan(
                function, None, lambda _values: list(writes), (), verify
            )

    # --- under the lock ----------------------------------------------------------------------

    def context(
        self, values: Mapping[int, int], window: tuple[datetime, datetime] | None = None
    ) -> PlanContext:
        return PlanContext(
            model=self.model,
            now=self.local_now(),
            registers=dict(values),
            saved_reserve=self.memory.saved_reserve,
            window=window,
        )

    async def carry_out(
        self,
        fn: ControlFunction,
        payload: Payload,
        *,
        window: tuple[datetime, datetime] | None = None,
    ) -> CommandResult:
        """Run ``fn`` with the command lock already held."""
        return await self.carry_out_plan(
            fn.name,
            payload.model_dump(mode="json", by_alias=True, exclude_none=True),
            lambda values: fn.plan(payload, self.context(values, window)),
            fn.needs(self.layout),
            fn.verify,
        )

    async def read_registers(self, registers: Iterable[int]) -> dict[int, int]:
        """Fresh values of ``registers`` (whole read blocks), offered to the cache too."""
        values: dict[int, int] = {}
        for resp in await self._read_blocks(registers):
            values.update({resp.base_register + i: v for i, v in enumerate(resp.values)})
        return values

    async def _read_blocks(self, registers: Iterable[int]) -> list[ReadResponse]:
        out = []
        for base, count in sorted({self.layout.block_of(r) for r in registers}):
            resp = await self.connection.read(
                self.device, FunctionCode.READ_HOLDING, base, count, priority=Priority.COMMAND
            )
            if self.cache is not None:
                self.cache.offer(resp)
            out.append(resp)
        return out

    async def carry_out_plan(
        self,
        function: str,
        payload: dict[str, Any] | None,
        make_plan: Callable[[Mapping[int, int]], list[Write]],
        needs: Sequence[int],
        verify: Verify,
        *,
        restores: bool = False,
    ) -> CommandResult:
        """The whole command cycle; the caller holds the command lock. ``restores``: every write
        sent will need a restore write later (a timed override starting), so both must fit the
        daily budget."""
        at = self.clock.now()

        def result(status: Status, message: str, changes: Sequence[RegisterChange] = (),
                   errors: Iterable[Mapping[str, Any]] = ()) -> CommandResult:  # fmt: skip
            return CommandResult(
                function=function,
                status=status,
                message=message,
                payload=payload,
                registers=tuple(changes),
                errors=tuple(dict(e) for e in errors),
                at=at,
            )

        try:
            values = await self.read_registers(needs) if needs else {}
            writes = make_plan(values)
        except PlanError as err:
            return result("failed", f"{function}: {err}; nothing written")
        except CommunicationError as err:
            return result(
                "failed", f"{function}: reading the inverter failed ({err}); nothing written"
            )
        try:
            allowlist.check_writes(self.model, ((w.register, w.value, w.restore) for w in writes))
        except WriteNotAllowed as err:
            problems = getattr(err, "problems", [])
            return result("rejected", f"{function}: {err}; nothing written", errors=problems)
        if not writes:
            return result("ok", f"{function}: nothing to write")
        missing = {w.register for w in writes} - values.keys()
        try:
            if missing:
                values.update(await self.read_registers(missing))
        except CommunicationError as err:
            return result(
                "failed", f"{function}: reading the inverter failed ({err}); nothing written"
            )
        self._remember(values.get(self.layout.reserve) if self.layout.reserve else None)

        # Decide what to send.
        todo: list[tuple[Write, str]] = []  # (write, reason to skip or "")
        for w in writes:
            current = values.get(w.register)
            if not w.always and current == w.value:
                todo.append((w, "already set"))
            elif w.expect is not None and current != w.expect:
                todo.append((w, f"left as is: changed to {current} since (expected {w.expect})"))
            else:
                todo.append((w, ""))
        sending = [w for w, skip in todo if not skip]
        if not all(w.restore for w in sending):  # a restore is never refused by the limits
            try:
                self.ledger.check(
                    len(sending),
                    registers=[w.register for w in sending],
                    restores=len(sending) if restores else 0,
                )
            except WriteTooSoon as err:
                interval = self.ledger.min_interval
                seconds = f"{interval.total_seconds():g}" if interval is not None else "?"
                return result(
                    "rejected",
                    f"{function}: {err}; nothing written",
                    errors=[
                        {
                            "field": "interval",
                            "value": [w.register for w in sending],
                            "allowed": f"each register at most once every {seconds} s",
                        }
                    ],
                )
            except WriteBudgetExceeded as err:
                return result(
                    "rejected",
                    f"{function}: {err}; nothing written",
                    errors=[
                        {
                            "field": "budget",
                            "value": len(sending) * (2 if restores else 1),
                            "allowed": self.ledger.remaining_today(),
                        }
                    ],
                )

        # Write in order; stop at the first problem. Each write is counted, durably, first.
        echoes: dict[int, int] = {}
        notes: dict[int, str] = {}
        failure = ""
        sent = 0
        written_at = self.clock.now()
        for w, skip in todo:
            if skip:
                continue
            try:
                self.ledger.record(w.register, durable=not w.restore)
            except StateError as err:
                if not sent:
                    return result(
                        "rejected",
                        f"{function}: the write count cannot be saved ({err}); nothing written",
                        errors=[state_error(err)],
                    )
                notes[w.register] = f"not sent: the write count cannot be saved ({err})"
                failure = f"HR{w.register} := {w.value} not sent (the write count cannot be saved)"
                break
            sent += 1
            try:
                echo = await self.connection.write(
                    self.device, w.register, w.value, priority=Priority.WRITE
                )
            except DeviceErrorResponse as err:
                notes[w.register] = f"refused by the inverter ({err})"
                failure = f"HR{w.register} := {w.value} refused by the inverter"
                break
            except CommunicationError as err:
                notes[w.register] = f"no echo ({type(err).__name__}: {err})"
                failure = f"HR{w.register} := {w.value} not confirmed ({type(err).__name__})"
                break
            echoes[w.register] = echo.value
            if self.cache is not None:
                self.cache.offer_write(echo)
            if echo.value != w.value and verify is Verify.NONE:
                notes[w.register] = f"echoed {echo.value} (a command register: not compared)"
            elif echo.value != w.value:
                notes[w.register] = f"echo mismatch: inverter holds {echo.value}"
                failure = f"HR{w.register} := {w.value} echoed {echo.value}"
                break

        # Read back.
        readback: dict[int, int] | None = None
        read_error = ""
        if verify is not Verify.NONE and (echoes or failure):
            try:
                readback = await self.read_registers([w.register for w in writes])
            except CommunicationError as err:
                read_error = f"read-back failed ({type(err).__name__})"
        elif verify is not Verify.NONE:
            readback = values  # nothing sent: the fresh read is the read-back
        clock_ok = (
            self._clock_verified(writes, readback, written_at) if verify is Verify.CLOCK else None
        )

        changes: list[RegisterChange] = []
        for w, skip in todo:
            rb = readback.get(w.register) if readback is not None else None
            if verify is Verify.NONE or rb is None:
                verified: bool | None = None
            elif verify is Verify.CLOCK:
                verified = clock_ok
            else:
                verified = rb == w.value
            if skip.startswith("left as is"):
                verified = None
            note = skip or notes.get(w.register, "")
            if not skip and w.register not in echoes and w.register not in notes:
                note = "not attempted (an earlier write failed)"
            elif not note or note == "already set":
                note = "; ".join(n for n in (note, w.note) if n)
            changes.append(
                RegisterChange(
                    register=w.register,
                    old=values.get(w.register),
                    new=w.value,
                    written=w.register in echoes,
                    echo=echoes.get(w.register),
                    readback=rb,
                    verified=verified,
                    note=note,
                )
            )
        status, message = judge(function, changes, failure, read_error, verify)
        rounded = "; ".join(w.note for w in writes if w.note)
        if rounded:
            message = f"{message} ({rounded})"
        if readback is not None and self.layout.reserve in readback:
            self._remember(readback[self.layout.reserve])
        res = result(status, message, changes)
        self._notify(res)
        return res

    # --- helpers -----------------------------------------------------------------------------

    def _clock_verified(
        self, writes: Sequence[Write], readback: Mapping[int, int] | None, written_at: datetime
    ) -> bool | None:
        if readback is None:
            return None
        planned = {w.register: w.value for w in writes}
        try:
            want = _clock_value(planned)
            got = _clock_value(readback)
        except (KeyError, ValueError):
            return False
        elapsed = self.clock.now() - written_at
        return -_CLOCK_SLACK <= got - want <= elapsed + _CLOCK_SLACK

    def _remember(self, reserve: int | None) -> None:
        if reserve is not None:
            try:
                self.memory.remember_reserve(reserve)
            except StateError as err:  # already logged with its path; Eco falls back to 4 %
                log.warning("the remembered reserve is kept in memory only", error=str(err))

    def _notify(self, res: CommandResult) -> None:
        for listener in list(self._listeners):
            try:
                listener(res)
            except Exception:  # a listener must not break control
                log.exception("control listener failed", function=res.function)

    def _canonical(self, name: str) -> str:
        try:
            return self.catalogue.get(name).name
        except UnknownFunction:
            return name


def judge(
    function: str,
    changes: Sequence[RegisterChange],
    failure: str,
    read_error: str,
    verify: Verify,
) -> tuple[Status, str]:
    """A command's status and message from what happened to each planned register."""
    intended = [c for c in changes if not c.note.startswith("left as is")]
    changed = [
        c
        for c in intended
        if c.written or (c.readback is not None and c.old is not None and c.readback != c.old)
    ]
    wrote = ", ".join(f"HR{c.register}" for c in changed) or "nothing"
    if failure:
        tail = f"; {read_error}" if read_error else ""
        if changed:
            return "partial", f"{function}: {failure}; changed: {wrote}{tail}"
        return "failed", f"{function}: {failure}; nothing changed{tail}"
    if any(c.verified is False for c in intended):
        bad = ", ".join(f"HR{c.register}" for c in intended if c.verified is False)
        if changed:
            return "partial", f"{function}: read-back differs for {bad}; changed: {wrote}"
        return "failed", f"{function}: read-back differs for {bad}; nothing changed"
    if read_error:
        return (
            "partial",
            f"{function}: written and echoed ({wrote}) but {read_error}: not verified",
        )
    sent = sum(1 for c in intended if c.written)
    skipped = sum(1 for c in intended if c.note.startswith("already set"))
    left = len(changes) - len(intended)
    parts = [f"{sent} written"]
    if skipped:
        parts.append(f"{skipped} already set")
    if left:
        parts.append(f"{left} left as is")
    how = "not read back" if verify is Verify.NONE else "verified"
    return "ok", f"{function}: {', '.join(parts)}; {how}"


def _clock_value(regs: Mapping[int, int]) -> datetime:
    year, month, day, hour, minute, second = (regs[r] for r in CLOCK)
    return datetime(2000 + year, month, day, hour, minute, second)  # noqa: DTZ001 - inverter-local
