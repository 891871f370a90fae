"""Value-level data-quality gates (issue #3 §4, SPEC §6.2–6.4).

Every decoded or derived value passes :meth:`ValueGate.check` before it can reach a snapshot:

* outside its declared bounds (SOC over 100, cell voltage out of range, power beyond the
  inverter's rating, ...) it is rejected;
* a lifetime total never goes backwards (a 16-bit counter that wraps is unwrapped) and never
  jumps further than the plant could have produced in the elapsed time;
* a daily total only drops (resets) within a window around local midnight;
* a suspicious value (a zero total, a jump) is held until consecutive readings confirm it.

A rejected value keeps its last good value, marked stale; after ``stale_after`` seconds it becomes
unavailable (``None``). It is never replaced by 0. Every rejection is counted with its reason.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from datetime import time as dtime
from enum import StrEnum
from typing import Any

from givtcp_async.registers.models import Model
from givtcp_async.registers.schema import Derived, Enc, Field, Kind


class Reason(StrEnum):
    OUT_OF_BOUNDS = "out_of_bounds"
    WENT_BACKWARDS = "went_backwards"
    RESET_OUTSIDE_MIDNIGHT = "reset_outside_midnight"
    JUMP = "jump"
    ZERO_TOTAL = "zero_total"
    SOC_GLITCH = "soc_glitch"
    MISSING = "missing"


@dataclass(frozen=True, slots=True)
class Reading:
    """A value as published: ``value`` None means unavailable; ``stale`` means last good."""

    value: Any
    unit: str | None = None
    stale: bool = False


@dataclass(slots=True)
class _Held:
    """What few values ever need (lifetime counters, suspicious values): made when first
    needed, so that every other value keeps only its reading and time (one per value per
    inverter)."""

    offset: float = 0  # added to a wrapped 16-bit counter
    candidate: Any = None  # a suspicious value waiting for confirmation
    confirmations: int = 0
    reset_day: date | None = None  # the day whose midnight reset of a daily total was taken


def gate_slots() -> dict[str, int]:
    """A slot for each value's name, in the order first judged: gates of devices of one kind
    and model share one (``ValueGate(slots=...)``), so that each keeps only two lists."""
    return {}


@dataclass(frozen=True, slots=True)
class GateSettings:
    stale_after: float = 600.0  # seconds a last-good value may be republished as stale
    midnight_before: dtime = dtime(23, 45)  # daily resets accepted from here ...
    midnight_after: dtime = dtime(0, 45)  # ... until here, local time
    max_power_kw: float = 30.0  # fastest a counter can rise (energy per hour)
    jump_slack_kwh: float = 1.0
    confirm_jump: int = 2  # readings that must agree before a suspicious value is accepted
    confirm_zero_total: int = 3
    backwards_tolerance: float = 0.11  # kWh: a smaller dip keeps the last value, silently


Spec = Field | Derived

# Which judgement a numeric value gets after its bounds (worked out once per spec).
_PLAIN, _TOTAL, _TODAY, _SOC = range(4)
_NUMBER = (int, float)
_NO_SLOT = sys.maxsize  # past the end of every list


@dataclass(frozen=True, slots=True)
class Rule:
    """How the gates judge one spec for one model, worked out once: the hot path looks at no
    enum and calls no bounds function."""

    spec: Spec
    name: str
    unit: str | None
    bounds: tuple[float, float] | None
    kind: int
    wrap: float | None  # a 16-bit lifetime counter's wrap (after scaling)


def make_rule(spec: Spec, model: Model | None) -> Rule:
    """The rule of ``spec`` for ``model`` (bounds that depend on the model are resolved)."""
    b = spec.bounds
    bounds = b(model) if callable(b) else b
    if spec.kind is Kind.TOTAL:
        kind = _TOTAL
    elif spec.kind is Kind.TODAY:
        kind = _TODAY
    elif spec.ha is not None and spec.ha.device_class == "battery":
        kind = _SOC
    else:
        kind = _PLAIN
    wrap = (
        _round_like(65536 * spec.scale, spec.scale)
        if isinstance(spec, Field) and spec.enc is Enc.U16
        else None
    )
    return Rule(spec, spec.name, spec.unit, bounds, kind, wrap)


def _in_window(t: dtime, before: dtime, after: dtime) -> bool:
    return t >= before or t <= after


def _day_starting(t: datetime, before: dtime) -> date:
    """The day whose midnight ``t`` (within the midnight window) belongs to."""
    return t.date() + timedelta(days=1) if t.time() >= before else t.date()


def _equal(a: Any, b: Any) -> bool:
    return a is b or (type(a) is type(b) and a == b)


@dataclass
class ValueGate:
    """Keeps the last good value of every field of one device and judges new readings.

    Every judgement takes the time of the build it belongs to (``now``, monotonic): the clock
    is read once per snapshot, not once per value. What is kept per value: its last good value
    as its fresh reading and the time it was last confirmed, in two lists indexed by the
    value's slot (``slots``, which gates of devices of one kind and model share), and what
    holding and unwrapping need for the few values that need it.
    """

    model: Model | None
    settings: GateSettings = field(default_factory=GateSettings)
    clock: Callable[[], float] = time.monotonic
    rejections: Counter[tuple[str, Reason]] = field(default_factory=Counter)
    slots: dict[str, int] = field(default_factory=gate_slots)
    # The last good value (as published, after unwrapping) as its fresh reading, handed out
    # again while unchanged, and the monotonic time it was last confirmed; by slot.
    _readings: list[Reading | None] = field(default_factory=list)
    _at: list[float] = field(default_factory=list)
    _held: dict[int, _Held] = field(default_factory=dict)
    _rules: dict[str, Rule] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._grow()

    def _grow(self) -> None:
        more = len(self.slots) - len(self._readings)
        if more > 0:
            self._readings += [None] * more
            self._at += [0.0] * more

    def forget(self) -> None:
        """Drop every last-good value (a different device now answers at this address)."""
        self._readings = [None] * len(self.slots)
        self._at = [0.0] * len(self.slots)
        self._held.clear()

    def rule(self, spec: Spec) -> Rule:
        """The rule this gate judges ``spec`` by (made once per spec)."""
        rule = self._rules.get(spec.name)
        if rule is None or rule.spec is not spec:
            rule = self._rules[spec.name] = make_rule(spec, self.model)
        return rule

    def _slot(self, name: str) -> int:
        i = self.slots.get(name)
        if i is None:
            i = self.slots[name] = len(self.slots)
        if i >= len(self._readings):
            self._grow()
        return i

    def last(self, name: str) -> Any:
        """The last good value of ``name`` (None before the first)."""
        i = self.slots.get(name)
        if i is None or i >= len(self._readings):
            return None
        reading = self._readings[i]
        return None if reading is None else reading.value

    def _value(self, i: int) -> Any:
        reading = self._readings[i]
        return None if reading is None else reading.value

    def _hold_of(self, i: int) -> _Held:
        held = self._held.get(i)
        if held is None:
            held = self._held[i] = _Held()
        return held

    def unrefreshed(self, spec: Spec | Rule, now: float | None = None) -> Reading:
        """The reading of a value whose page was not refreshed: its last good value, stale."""
        rule = spec if isinstance(spec, Rule) else self.rule(spec)
        return self._last_good(self._slot(rule.name), rule, self.clock() if now is None else now)

    def _reject(self, reason: Reason, i: int, rule: Rule, now: float) -> Reading:
        self.rejections[(rule.name, reason)] += 1
        return self._last_good(i, rule, now)

    def _last_good(self, i: int, rule: Rule, now: float) -> Reading:
        value = self._value(i)
        if value is None or now - self._at[i] > self.settings.stale_after:
            return Reading(None, rule.unit, stale=True)
        return Reading(value, rule.unit, stale=True)

    def _accept(self, i: int, value: Any, rule: Rule, now: float) -> Reading:
        self._at[i] = now
        held = self._held.get(i)
        if held is not None:
            held.candidate = None
            held.confirmations = 0
        reading = self._readings[i]
        if reading is None or not _equal(reading.value, value):
            reading = self._readings[i] = Reading(value, rule.unit)
        return reading

    def _hold(
        self,
        reason: Reason,
        i: int,
        value: Any,
        rule: Rule,
        now: float,
        needed: int,
        agrees: Callable[[Any, Any], bool],
    ) -> Reading:
        """Hold a suspicious value until ``needed`` consecutive readings agree with it."""
        held = self._hold_of(i)
        if held.candidate is not None and agrees(held.candidate, value):
            held.confirmations += 1
        else:
            held.candidate = value
            held.confirmations = 1
        if held.confirmations >= needed:
            return self._accept(i, value, rule, now)
        return self._reject(reason, i, rule, now)

    def check(
        self,
        spec: Spec,
        value: Any,
        *,
        local_time: datetime | None = None,
        inverter_time: datetime | None = None,
        now: float | None = None,
    ) -> Reading:
        """Judge a new reading of ``spec``; returns what may be published."""
        return self.judge(
            self.rule(spec),
            value,
            self.clock() if now is None else now,
            local_time,
            inverter_time,
        )

    def judge(
        self,
        rule: Rule,
        value: Any,
        now: float,
        local_time: datetime | None = None,
        inverter_time: datetime | None = None,
    ) -> Reading:
        """:meth:`check` by a rule made by :meth:`rule`, at monotonic time ``now``."""
        i = self.slots.get(rule.name, _NO_SLOT)
        try:
            reading = self._readings[i]
        except IndexError:  # no slot yet, or one this gate's lists do not reach yet
            i = self._slot(rule.name)
            reading = None
        cls = value.__class__
        if cls is int or cls is float or (cls is not bool and isinstance(value, _NUMBER)):
            bounds = rule.bounds
            if bounds is not None and not bounds[0] <= value <= bounds[1]:
                return self._reject(Reason.OUT_OF_BOUNDS, i, rule, now)
            kind = rule.kind
            if kind == _TOTAL:
                return self._check_total(rule, value, i, now)
            if kind == _TODAY:
                return self._check_today(rule, value, i, now, local_time, inverter_time)
            if kind == _SOC:
                return self._check_soc(rule, value, i, now)
        elif value is None:
            return self._reject(Reason.MISSING, i, rule, now)
        # Accepted as it is (the common case, written out: this runs for every value).
        self._at[i] = now
        if self._held:
            held = self._held.get(i)
            if held is not None and held.candidate is not None:
                held.candidate = None
                held.confirmations = 0
        if reading is not None:
            last = reading.value
            if last is value or (last.__class__ is cls and last == value):
                return reading
        reading = self._readings[i] = Reading(value, rule.unit)
        return reading

    def _max_rise(self, i: int, now: float) -> float:
        hours = max(0.0, now - self._at[i]) / 3600.0
        return self.settings.max_power_kw * hours + self.settings.jump_slack_kwh

    def _check_total(self, rule: Rule, raw: float, i: int, now: float) -> Reading:
        s = self.settings
        wrap = rule.wrap
        held = self._held.get(i)
        value = raw + held.offset if held is not None else raw
        last_value = self._value(i)
        if last_value is None:
            if raw == 0:
                return self._hold(
                    Reason.ZERO_TOTAL,
                    i,
                    value,
                    rule,
                    now,
                    s.confirm_zero_total,
                    lambda a, b: a == b,
                )
            return self._accept(i, value, rule, now)
        last = float(last_value)
        if value < last:
            if wrap is not None and last - value > wrap / 2:
                # A 16-bit counter rolled over (e.g. battery totals at 6553.5 kWh).
                self._hold_of(i).offset += wrap
                value += wrap
            elif last - value <= s.backwards_tolerance:
                return self._accept(i, last_value, rule, now)
            else:
                return self._reject(Reason.WENT_BACKWARDS, i, rule, now)
        if value - last > self._max_rise(i, now):
            return self._hold(Reason.JUMP, i, value, rule, now, s.confirm_jump, lambda a, b: b >= a)
        return self._accept(i, _round_like(value, raw), rule, now)

    def _check_today(
        self,
        rule: Rule,
        value: float,
        i: int,
        now: float,
        local_time: datetime | None,
        inverter_time: datetime | None,
    ) -> Reading:
        s = self.settings
        last_value = self._value(i)
        if last_value is None:
            return self._accept(i, value, rule, now)
        last = float(last_value)
        if value < last:
            starting = [
                _day_starting(t, s.midnight_before)
                for t in (local_time, inverter_time)
                if t is not None and _in_window(t.time(), s.midnight_before, s.midnight_after)
            ]
            if not starting:
                if last - value <= s.backwards_tolerance:
                    return self._accept(i, last_value, rule, now)
                return self._reject(Reason.RESET_OUTSIDE_MIDNIGHT, i, rule, now)
            if value > self._max_rise(i, now):
                return self._reject(Reason.JUMP, i, rule, now)
            # A small total (0.1 kWh) falling to about nothing is the day's reset, not a dip:
            # taken once per midnight, so a dip of a larger total is still absorbed.
            day = max(starting)
            if last - value <= s.backwards_tolerance and not (
                day != (held.reset_day if (held := self._held.get(i)) is not None else None)
                and value <= s.backwards_tolerance
            ):
                return self._accept(i, last_value, rule, now)
            self._hold_of(i).reset_day = day
            return self._accept(i, value, rule, now)
        if value - last > self._max_rise(i, now):
            return self._hold(Reason.JUMP, i, value, rule, now, s.confirm_jump, lambda a, b: b >= a)
        return self._accept(i, value, rule, now)

    def _check_soc(self, rule: Rule, value: float, i: int, now: float) -> Reading:
        # A momentary 0 % is a well-known glitch (SPEC §6.2): believe it only when it persists.
        last = self._value(i)
        if value == 0 and last is not None and float(last) > 2:
            return self._hold(
                Reason.SOC_GLITCH,
                i,
                value,
                rule,
                now,
                self.settings.confirm_zero_total,
                lambda a, b: a == b,
            )
        return self._accept(i, value, rule, now)


def _round_like(value: float, raw: float) -> float:
    """Keep the raw reading's type and precision after adding an offset (no 0.30000000000000004)."""
    if isinstance(raw, int) and float(value).is_integer():
        return int(value)
    text = repr(raw)
    decimals = len(text.split(".")[1]) if "." in text else 0
    return round(value, decimals)
