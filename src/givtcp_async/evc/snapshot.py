"""The charger's validated snapshots, built from its registers through the same gates.

Every decoded value passes a :class:`~givtcp_async.quality.gates.ValueGate` (bounds, a lifetime
meter that never goes backwards); a poll that failed republishes the last good values, stale,
until ``stale_after``. The tree is GivTCP's EVC tree, ``{"Charger": {...}}``, plus ``Stats``.

Beyond plain decoding (GivTCP's rules):

* a session's start and end times (hour, minute, second registers) become timestamps: the
  latest such time of day not after now, in the daemon's timezone; the clock (HR97-102) is
  read as local time too;
* a session energy that reads 0 while not charging keeps the last session's figure.
"""

from __future__ import annotations

import re
import time as _time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta, tzinfo
from typing import Any, Final

import structlog

from givtcp_async.quality.gates import GateSettings, Reading, ValueGate
from givtcp_async.registers.decode import decoder_of
from givtcp_async.registers.evc import ALL_SPECS, CHARGING, DERIVED, EVC_FIELDS, HELD
from givtcp_async.registers.schema import Derived, Field
from givtcp_async.snapshot import _fill, _flatten, _jsonable

log = structlog.get_logger(__name__)

Spec = Field | Derived
_SPECS: dict[str, Spec] = {s.name: s for s in ALL_SPECS}
_FUTURE_SLACK = timedelta(minutes=2)  # the charger's clock may run a little ahead of ours
SERIAL_RE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{3,30}$")
_SERIAL_FIELD: Final = next(f for f in EVC_FIELDS if f.name == "Serial_Number")


def serial_of(registers: Mapping[int, int]) -> str | None:
    """The charger serial in HR38-68 when it looks like one (printable, 4-31 characters)."""
    text = decoder_of(_SERIAL_FIELD)(registers.get)
    return text if isinstance(text, str) and SERIAL_RE.match(text) else None


@dataclass(frozen=True, slots=True)
class EvcSnapshot:
    """Everything known about one charger after one poll."""

    serial: str
    taken_at: datetime  # timezone-aware
    values: Mapping[str, Reading]
    stats: Mapping[str, Any] = field(default_factory=dict)
    specs: Mapping[str, Spec] = field(default_factory=lambda: _SPECS)

    def value(self, name: str) -> Any:
        """The published value of a field (None when unavailable)."""
        reading = self.values.get(name)
        return None if reading is None else reading.value

    def fresh(self, name: str) -> Any:
        """The value only when this poll read it (None when stale or unavailable)."""
        reading = self.values.get(name)
        return None if reading is None or reading.stale else reading.value

    def stale(self) -> list[str]:
        return sorted(n for n, r in self.values.items() if r.stale and r.value is not None)

    def runall(self, *, units: bool = False) -> dict[str, Any]:
        """GivTCP's EVC tree (``/getEVCCache``): ``{"Charger": {...}, "Stats": {...}}``."""
        tree: dict[str, Any] = {}
        _fill(tree, self.values, self.specs, units)
        if self.stats:
            tree["Stats"] = {k: _jsonable(v) for k, v in self.stats.items()}
        return tree

    def flat(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        _flatten(self.runall(), "", out)
        return out


def latest_occurrence(t: time, now: datetime) -> datetime:
    """The latest moment at time of day ``t`` not after ``now`` (aware, ``now``'s zone)."""
    tz = now.tzinfo
    candidate = datetime.combine(now.date(), t, tzinfo=tz)
    if candidate > now + _FUTURE_SLACK:
        candidate = datetime.combine(now.date() - timedelta(days=1), t, tzinfo=tz)
    return candidate


@dataclass
class EvcAssembler:
    """Builds successive snapshots of one charger; owns the gates' memory."""

    tz: tzinfo
    gate_settings: GateSettings = field(default_factory=GateSettings)
    clock: Callable[[], float] = _time.monotonic
    _gate: ValueGate = field(init=False)
    _last_session: float | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self._gate = ValueGate(None, self.gate_settings, self.clock)

    @property
    def rejections(self) -> dict[str, int]:
        return {f"{n}:{r.value}": c for (n, r), c in self._gate.rejections.items()}

    def forget(self) -> None:
        """A different charger answers: drop every last good value."""
        self._gate.forget()
        self._last_session = None

    def decode(self, registers: Mapping[int, int], now: datetime) -> dict[str, Any]:
        """The decoded (not yet judged) value of every field, by name."""
        out: dict[str, Any] = {}
        for spec in EVC_FIELDS:
            value = decoder_of(spec)(registers.get)
            if isinstance(value, datetime) and value.tzinfo is None:
                value = value.replace(tzinfo=self.tz)
            elif isinstance(value, time):
                value = latest_occurrence(value, now)
            out[spec.name] = value
        energy = out.get("Charge_Session_Energy")
        if energy == 0 and out.get("Charging_State") != CHARGING and self._last_session:
            out["Charge_Session_Energy"] = self._last_session
        elif isinstance(energy, int | float):
            self._last_session = float(energy)
        return out

    def build(
        self,
        registers: Mapping[int, int] | None,
        *,
        serial: str,
        held: Mapping[str, Any],
        now: datetime,
        stats: Mapping[str, Any] | None = None,
    ) -> EvcSnapshot:
        """A snapshot from this poll's registers (None: the poll failed, values go stale)."""
        local = now.astimezone(self.tz)
        readings: dict[str, Reading] = {}
        decoded = self.decode(registers, local) if registers is not None else None
        for spec in EVC_FIELDS:
            readings[spec.name] = (
                self._gate.unrefreshed(spec)
                if decoded is None
                else self._gate.check(spec, decoded[spec.name], local_time=local)
            )
        for derived in DERIVED:
            inputs = [readings.get(n) for n in derived.inputs]
            if any(r is None or r.stale or r.value is None for r in inputs):
                readings[derived.name] = self._gate.unrefreshed(derived)
                continue
            values = {n: r.value for n, r in zip(derived.inputs, inputs, strict=True) if r}
            readings[derived.name] = self._gate.check(
                derived, derived.compute(values, None), local_time=local
            )
        for setting in HELD:
            readings[setting.name] = self._gate.check(setting, setting.compute(held, None))
        return EvcSnapshot(serial, local, readings, dict(stats or {}))
