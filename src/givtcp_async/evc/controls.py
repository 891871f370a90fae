"""The charger's control functions (GivTCP's names and payloads) and the controller running them.

Each :class:`EvcFunction` is defined once: its names, payload model, a pure planner and the Home
Assistant metadata. A planner returns register writes (checked against the charger's allow-list
:data:`~givtcp_async.registers.evc.WRITABLE`), settings the daemon holds, or both.

:class:`EvcController` runs them as inverter commands run (:mod:`givtcp_async.control.executor`):
a rejected command (unknown name, bad payload, a current outside the charger's own range, the
daily write budget) writes nothing; otherwise the registers are read fresh, writes whose register
already holds the value are skipped (Start/Stop and the clock are always sent), each write is
counted in the write ledger before it is sent and its echo checked, the first problem stops the
plan, and a read-back verifies every register. Results are
:class:`~givtcp_async.control.executor.CommandResult`\\ s with the same statuses.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

import structlog

from givtcp_async.control.accounting import WriteLedger
from givtcp_async.control.catalogue import HaMeta, Platform, Verify, Write
from givtcp_async.control.clock import Clock, SystemClock
from givtcp_async.control.executor import judge
from givtcp_async.control.payloads import Payload, RawPayload, parse_payload
from givtcp_async.control.result import CommandResult, RegisterChange, rejected
from givtcp_async.errors import (
    CommunicationError,
    DeviceErrorResponse,
    UnknownFunction,
    ValidationFailed,
    WriteBudgetExceeded,
)
from givtcp_async.evc import payloads as p
from givtcp_async.evc.state import MAX_IMPORT_CAP, MAX_SESSION_ENERGY, StateStore
from givtcp_async.registers.evc import (
    BLOCKS,
    CHARGE_CONTROL,
    CLOCK,
    CONTROL_CHOICES,
    CURRENT_LIMIT,
    MODES,
    PLUG_AND_GO,
    WRITABLE,
)

if TYPE_CHECKING:  # the link (and pymodbus) are loaded only where a charger is configured
    from givtcp_async.evc.connection import EvcConnection

log = structlog.get_logger(__name__)

_CLOCK_SLACK: Final = timedelta(seconds=5)
DEFAULT_MIN_AMPS: Final = 6
DEFAULT_MAX_AMPS: Final = 32


@dataclass(frozen=True, slots=True)
class Limits:
    """What a planner may know besides the payload."""

    now: datetime  # the charger's local time
    evse_min: int = DEFAULT_MIN_AMPS
    evse_max: int = DEFAULT_MAX_AMPS


@dataclass(frozen=True, slots=True)
class Plan:
    """Register writes in order, then settings to hold once they are on the charger."""

    writes: tuple[Write, ...] = ()
    held: Mapping[str, Any] = field(default_factory=dict)
    note: str = ""  # what a settings-only command did, for its message


Planner = Callable[[Any, Limits], Plan]


@dataclass(frozen=True, slots=True)
class EvcFunction:
    name: str
    summary: str
    payload: type[Payload]
    planner: Planner
    writes: str  # for people: the controls reference (docgen), OpenAPI
    aliases: tuple[str, ...] = ()
    example: str | Mapping[str, Any] | None = None
    ha: HaMeta | None = None
    mirrors: str | None = None  # the Charger field showing the setting
    verify: Verify = Verify.EXACT

    def parse(self, raw: RawPayload) -> Payload:
        return parse_payload(self.payload, raw, None, function=self.name)


# --- planners ------------------------------------------------------------------------------------


def _current_limit(payload: p.CurrentLimitPayload, limits: Limits) -> Plan:
    amps = payload.current
    if not limits.evse_min <= amps <= limits.evse_max:
        allowed = f"{limits.evse_min}-{limits.evse_max} A"
        raise ValidationFailed(
            f"setCurrentLimit: current: outside this charger's range ({allowed})",
            [{"field": "current", "value": amps, "allowed": allowed, "message": "out of range"}],
        )
    return Plan((Write(CURRENT_LIMIT, amps * 10),), {"user_limit": amps})


def _charge_control(payload: p.ChargeControlPayload, _limits: Limits) -> Plan:
    value = CONTROL_CHOICES.index(payload.mode)
    # A person's Start or Stop ends any stop of the daemon's own.
    return Plan((Write(CHARGE_CONTROL, value, always=True),), {"stopped_by": None})


def _plug_and_go(payload: p.PlugAndGoPayload, _limits: Limits) -> Plan:
    return Plan((Write(PLUG_AND_GO, 0 if payload.state else 1),))


def _system_time(payload: p.SystemTimePayload, _limits: Limits) -> Plan:
    t = payload.dateTime
    values = (t.year, t.month, t.day, t.hour, t.minute, t.second)
    return Plan(tuple(Write(r, v, always=True) for r, v in zip(CLOCK, values, strict=True)))


def _import_cap(payload: p.ImportCapPayload, _limits: Limits) -> Plan:
    cap = payload.current
    note = f"import cap {cap} A" if cap else "import cap off"
    return Plan(held={"import_cap": cap}, note=note)


def _charging_mode(payload: p.ChargingModePayload, _limits: Limits) -> Plan:
    return Plan(held={"charging_mode": payload.state}, note=f"charging mode {payload.state}")


def _session_energy(payload: p.SessionEnergyPayload, _limits: Limits) -> Plan:
    energy = payload.energy
    note = f"session energy limit {energy:g} kWh" if energy else "no session energy limit"
    # A new limit applies to the session from now on; a session it stopped stays stopped.
    return Plan(held={"max_session_energy": energy}, note=note)


EVC_FUNCTIONS: Final[tuple[EvcFunction, ...]] = (
    EvcFunction("setChargeControl", "Start or stop charging (Ready clears the command).",
                p.ChargeControlPayload, _charge_control,
                f"HR{CHARGE_CONTROL} := 0 Ready, 1 Start, 2 Stop", ("controlCharge",),
                {"mode": "Start"}, HaMeta(Platform.SELECT, CONTROL_CHOICES),
                "Charger/Charge_Control"),
    EvcFunction("setChargeMode", "Plug and Go: charge as soon as a car is plugged in.",
                p.PlugAndGoPayload, _plug_and_go, f"HR{PLUG_AND_GO} := 0 enable, 1 disable",
                ("chargeMode",), "enable", HaMeta(Platform.SWITCH), "Charger/Plug_and_Go"),
    EvcFunction("setCurrentLimit", "The most current the charger may give the car.",
                p.CurrentLimitPayload, _current_limit,
                f"HR{CURRENT_LIMIT} := A x 10 (the charger's EVSE minimum-maximum, 6-32 A)", (),
                {"current": "16"},
                HaMeta(Platform.NUMBER, minimum=DEFAULT_MIN_AMPS, maximum=DEFAULT_MAX_AMPS,
                       step=1, unit="A"), "Charger/Charge_Limit"),
    EvcFunction("setImportCap", "Hold the house's grid import under this current (0 = off).",
                p.ImportCapPayload, _import_cap, "nothing: held by the daemon", (),
                {"current": "60"},
                HaMeta(Platform.NUMBER, minimum=0, maximum=MAX_IMPORT_CAP, step=1, unit="A"),
                "Charger/Import_Cap"),
    EvcFunction("setChargingMode", "Grid, Hybrid (minimum plus PV surplus) or Solar (surplus).",
                p.ChargingModePayload, _charging_mode, "nothing: held by the daemon", (),
                {"state": "Hybrid"}, HaMeta(Platform.SELECT, MODES), "Charger/Charging_Mode"),
    EvcFunction("setMaxSessionEnergy", "Stop a session at this energy (0 = no limit).",
                p.SessionEnergyPayload, _session_energy, "nothing: held by the daemon", (),
                {"energy": "20.5"},
                HaMeta(Platform.NUMBER, minimum=0, maximum=MAX_SESSION_ENERGY, step=0.1,
                       unit="kWh"), "Charger/Max_Session_Energy"),
    EvcFunction("setSystemTime", "Set the charger's clock.", p.SystemTimePayload, _system_time,
                f"HR{CLOCK[0]}..{CLOCK[-1]} := year, month, day, hour, minute, second",
                (), {"dateTime": "22/07/2024 10:03:44"}, verify=Verify.CLOCK),
)  # fmt: skip
_BY_NAME: Final = {name.lower(): fn for fn in EVC_FUNCTIONS for name in (fn.name, *fn.aliases)}


def find(name: str) -> EvcFunction:
    """The function called ``name`` or an alias (any case, a leading ``/`` ignored)."""
    fn = _BY_NAME.get(name.strip().strip("/").lower())
    if fn is None:
        raise UnknownFunction(f"unknown charger control function {name!r}")
    return fn


def _check_value(write: Write) -> bool:
    register, value = write.register, write.value
    if register == CURRENT_LIMIT:
        return 60 <= value <= p.MAX_AMPS * 10
    if register == PLUG_AND_GO:
        return value in (0, 1)
    if register == CHARGE_CONTROL:
        return value in (0, 1, 2)
    if register in CLOCK:
        bounds = ((2000, 2099), (1, 12), (1, 31), (0, 23), (0, 59), (0, 59))
        lo, hi = bounds[CLOCK.index(register)]
        return lo <= value <= hi
    return False


def _clock_value(words: Sequence[int]) -> datetime:
    year, month, day, hour, minute, second = words
    return datetime(year, month, day, hour, minute, second)  # noqa: DTZ001 - charger-local


def _block_of(register: int) -> tuple[int, int]:
    return next(b for b in BLOCKS if b[0] <= register < b[0] + b[1])


Listener = Callable[[CommandResult], None]


class EvcController:
    """Runs control functions against one charger, one at a time."""

    def __init__(
        self,
        connection: EvcConnection,
        store: StateStore,
        *,
        ledger: WriteLedger | None = None,
        limits: Callable[[], Limits] | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.connection = connection
        self.store = store
        self.clock: Clock = clock or SystemClock()
        self.ledger = ledger or WriteLedger(clock=self.clock)
        self._limits = limits or (lambda: Limits(now=self.clock.now()))
        self.lock = asyncio.Lock()
        self._listeners: list[Listener] = []

    def add_listener(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener`` after every command that was carried out (not rejected)."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    async def execute(
        self, name: str, raw: RawPayload = None, *, policy: bool = False, safety: bool = False
    ) -> CommandResult:
        """Validate and run one command; never raises for one that cannot be carried out.

        ``policy``: the daemon's own step (:mod:`givtcp_async.evc.policy`), which keeps what it
        remembers itself (the held settings of a plan are left alone). ``safety``: a step that
        lowers or stops charging for the import cap: counted, never refused by the budget.
        """
        at = self.clock.now()
        try:
            fn = find(name)
        except UnknownFunction as err:
            known = ", ".join(f.name for f in EVC_FUNCTIONS)
            return rejected(name, str(err), [{"field": "function", "value": name,
                                              "allowed": known}], at=at)  # fmt: skip
        try:
            payload = fn.parse(raw)
            plan = fn.planner(payload, self._limits())
        except ValidationFailed as err:
            return rejected(fn.name, str(err), err.errors, at=at)
        shown = payload.model_dump(mode="json", by_alias=True, exclude_none=True)
        if plan.writes:
            result = await self._write(fn, shown, plan.writes, safety, at)
        else:
            message = f"{fn.name}: {plan.note} (held by the daemon)"
            result = CommandResult(
                function=fn.name, status="ok", message=message, payload=shown, at=at
            )
        if result.ok and plan.held and not policy:
            try:
                self.store.update(**plan.held)
            except OSError as err:
                result = result.model_copy(update={
                    "status": "failed" if not plan.writes else "partial",
                    "message": f"{fn.name}: could not save the setting ({err})",
                })  # fmt: skip
        if result.status != "rejected":
            self._notify(result)
        return result

    async def _read(self, registers: Sequence[int]) -> dict[int, int]:
        values: dict[int, int] = {}
        for base, count in sorted({_block_of(r) for r in registers}):
            words = await self.connection.read_holding(base, count)
            values.update({base + i: v for i, v in enumerate(words)})
        return values

    async def _write(
        self,
        fn: EvcFunction,
        payload: dict[str, Any],
        writes: Sequence[Write],
        safety: bool,
        at: datetime,
    ) -> CommandResult:
        def result(status: Any, message: str, changes: Sequence[RegisterChange] = (),
                   errors: Sequence[Mapping[str, Any]] = ()) -> CommandResult:  # fmt: skip
            return CommandResult(function=fn.name, status=status, message=message,
                                 payload=payload, registers=tuple(changes),
                                 errors=tuple(dict(e) for e in errors), at=at)  # fmt: skip

        bad = [w for w in writes if w.register not in WRITABLE or not _check_value(w)]
        if bad:
            errors = [{"field": "register", "value": f"HR{w.register} := {w.value}",
                       "allowed": "the charger's control registers"} for w in bad]  # fmt: skip
            return result("rejected", f"{fn.name}: a write the allow-list refuses", (), errors)
        registers = [w.register for w in writes]
        async with self.lock:
            try:
                old = await self._read(registers)
            except CommunicationError as err:
                return result("failed", f"{fn.name}: reading the charger failed ({err}); "
                                        "nothing written")  # fmt: skip
            todo = [(w, "" if w.always or old.get(w.register) != w.value else "already set")
                    for w in writes]  # fmt: skip
            to_send = [w for w, skip in todo if not skip]
            if not safety:
                try:
                    self.ledger.check(len(to_send))
                except WriteBudgetExceeded as err:
                    budget = {"field": "budget", "value": len(to_send),
                              "allowed": self.ledger.remaining_today()}  # fmt: skip
                    return result("rejected", f"{fn.name}: {err}; nothing written", (), [budget])
            echoes, notes, failure = await self._send(to_send, fn.verify)
            readback: dict[int, int] | None = None
            read_error = ""
            try:
                readback = await self._read(registers) if (echoes or failure) else old
            except CommunicationError as err:
                read_error = f"read-back failed ({type(err).__name__})"
        clock_ok = self._clock_ok(writes, readback, at) if fn.verify is Verify.CLOCK else None
        changes = []
        for w, skip in todo:
            rb = readback.get(w.register) if readback is not None else None
            verified = None if rb is None else clock_ok if clock_ok is not None else rb == w.value
            note = skip or notes.get(w.register, "")
            if not skip and w.register not in echoes and not note:
                note = "not attempted (an earlier write failed)"
            changes.append(RegisterChange(register=w.register, old=old.get(w.register),
                                          new=w.value, written=w.register in echoes,
                                          echo=echoes.get(w.register), readback=rb,
                                          verified=verified, note=note))  # fmt: skip
        status, message = judge(fn.name, changes, failure, read_error, fn.verify)
        return result(status, message, changes)

    async def _send(
        self, writes: Sequence[Write], verify: Verify
    ) -> tuple[dict[int, int], dict[int, str], str]:
        """Send ``writes`` in order (the clock as one request); stop at the first problem."""
        echoes: dict[int, int] = {}
        notes: dict[int, str] = {}
        batches: list[list[Write]] = (
            [list(writes)] if verify is Verify.CLOCK and writes else [[w] for w in writes]
        )
        try:
            for batch in batches:
                first = batch[0]
                for w in batch:
                    self.ledger.record(w.register)
                try:
                    if len(batch) == 1:
                        echo = await self.connection.write_register(first.register, first.value)
                    else:
                        await self.connection.write_registers(
                            first.register, [w.value for w in batch]
                        )
                        echo = first.value
                except DeviceErrorResponse as err:
                    for w in batch:
                        notes[w.register] = f"refused by the charger ({err})"
                    return echoes, notes, f"HR{first.register} := {first.value} refused"
                except CommunicationError as err:
                    for w in batch:
                        notes[w.register] = f"no answer ({type(err).__name__}: {err})"
                    return (
                        echoes,
                        notes,
                        (
                            f"HR{first.register} := {first.value} not confirmed "
                            f"({type(err).__name__})"
                        ),
                    )
                if len(batch) > 1:
                    echoes.update({w.register: w.value for w in batch})
                    continue
                echoes[first.register] = echo
                if echo != first.value:
                    notes[first.register] = f"echo mismatch: the charger holds {echo}"
                    return echoes, notes, f"HR{first.register} := {first.value} echoed {echo}"
            return echoes, notes, ""
        finally:
            with contextlib.suppress(OSError):
                self.ledger.flush()

    def _clock_ok(
        self, writes: Sequence[Write], readback: Mapping[int, int] | None, sent_at: datetime
    ) -> bool | None:
        if readback is None:
            return None
        try:
            want = _clock_value([w.value for w in writes])
            got = _clock_value([readback[r] for r in CLOCK])
        except (KeyError, ValueError, TypeError):
            return False
        elapsed = self.clock.now() - sent_at
        return -_CLOCK_SLACK <= got - want <= elapsed + _CLOCK_SLACK

    def _notify(self, res: CommandResult) -> None:
        for listener in list(self._listeners):
            try:
                listener(res)
            except Exception:  # a listener must not break control
                log.exception("charger control listener failed", function=res.function)
