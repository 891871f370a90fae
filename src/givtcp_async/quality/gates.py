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
class _Track:
    value: Any = None  # last good (as published, after unwrapping)
    at: float = 0.0  # monotonic time it was last confirmed
    offset: float = 0  # added to a wrapped 16-bit counter
    candidate: Any = None  # a suspicious value waiting for confirmation
    confirmations: int = 0
    reset_day: date | None = None  # the day whose midnight reset of a daily total was taken


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


def _in_window(t: dtime, before: dtime, after: dtime) -> bool:
    return t >= before or t <= after


def _day_starting(t: datetime, before: dtime) -> date:
    """The day whose midnight ``t`` (within the midnight window) belongs to."""
    return t.date() + timedelta(days=1) if t.time() >= before else t.date()


@dataclass
class ValueGate:
    """Keeps the last good value of every field of one device and judges new readings."""

    model: Model | None
    settings: GateSettings = field(default_factory=GateSettings)
    clock: Callable[[], float] = time.monotonic
    rejections: Counter[tuple[str, Reason]] = field(default_factory=Counter)
    _tracks: dict[str, _Track] = field(default_factory=dict)

    def forget(self) -> None:
        """Drop every last-good value (a different device now answers at this address)."""
        self._tracks.clear()

    def unrefreshed(self, spec: Spec) -> Reading:
        """The reading of a value whose page was not refreshed: its last good value, stale."""
        return self._last_good(self._tracks.setdefault(spec.name, _Track()), spec)

    def _bounds(self, spec: Spec) -> tuple[float, float] | None:
        b = spec.bounds
        if b is None:
            return None
        return b(self.model) if callable(b) else b

    def _reject(self, name: str, reason: Reason, track: _Track, spec: Spec) -> Reading:
        self.rejections[(name, reason)] += 1
        return self._last_good(track, spec)

    def _last_good(self, track: _Track, spec: Spec) -> Reading:
        if track.value is None or self.clock() - track.at > self.settings.stale_after:
            return Reading(None, spec.unit, stale=True)
        return Reading(track.value, spec.unit, stale=True)

    def _accept(self, track: _Track, value: Any, spec: Spec) -> Reading:
        track.value = value
        track.at = self.clock()
        track.candidate = None
        track.confirmations = 0
        return Reading(value, spec.unit)

    def _hold(
        self,
        name: str,
        reason: Reason,
        track: _Track,
        value: Any,
        spec: Spec,
        needed: int,
        agrees: Callable[[Any, Any], bool],
    ) -> Reading:
        """Hold a suspicious value until ``needed`` consecutive readings agree with it."""
        if track.candidate is not None and agrees(track.candidate, value):
            track.confirmations += 1
        else:
            track.candidate = value
            track.confirmations = 1
        if track.confirmations >= needed:
            return self._accept(track, value, spec)
        return self._reject(name, reason, track, spec)

    def check(
        self,
        spec: Spec,
        value: Any,
        *,
        local_time: datetime | None = None,
        inverter_time: datetime | None = None,
    ) -> Reading:
        """Judge a new reading of ``spec``; returns what may be published."""
        name = spec.name
        track = self._tracks.setdefault(name, _Track())
        if value is None:
            return self._reject(name, Reason.MISSING, track, spec)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return self._accept(track, value, spec)
        bounds = self._bounds(spec)
        if bounds is not None and not bounds[0] <= value <= bounds[1]:
            return self._reject(name, Reason.OUT_OF_BOUNDS, track, spec)
        if spec.kind is Kind.TOTAL:
            return self._check_total(name, spec, value, track)
        if spec.kind is Kind.TODAY:
            return self._check_today(name, spec, value, track, local_time, inverter_time)
        if spec.ha is not None and spec.ha.device_class == "battery":
            return self._check_soc(name, spec, value, track)
        return self._accept(track, value, spec)

    def _max_rise(self, track: _Track) -> float:
        hours = max(0.0, self.clock() - track.at) / 3600.0
        return self.settings.max_power_kw * hours + self.settings.jump_slack_kwh

    def _check_total(self, name: str, spec: Spec, raw: float, track: _Track) -> Reading:
        s = self.settings
        wrap = (
            _round_like(65536 * spec.scale, spec.scale)
            if isinstance(spec, Field) and spec.enc is Enc.U16
            else None
        )
        value = raw + track.offset
        if track.value is None:
            if raw == 0:
                return self._hold(
                    name,
                    Reason.ZERO_TOTAL,
                    track,
                    value,
                    spec,
                    s.confirm_zero_total,
                    lambda a, b: a == b,
                )
            return self._accept(track, value, spec)
        last = float(track.value)
        if value < last:
            if wrap is not None and last - value > wrap / 2:
                # A 16-bit counter rolled over (e.g. battery totals at 6553.5 kWh).
                track.offset += wrap
                value += wrap
            elif last - value <= s.backwards_tolerance:
                return self._accept(track, track.value, spec)
            else:
                return self._reject(name, Reason.WENT_BACKWARDS, track, spec)
        if value - last > self._max_rise(track):
            return self._hold(
                name, Reason.JUMP, track, value, spec, s.confirm_jump, lambda a, b: b >= a
            )
        return self._accept(track, _round_like(value, raw), spec)

    def _check_today(
        self,
        name: str,
        spec: Spec,
        value: float,
        track: _Track,
        local_time: datetime | None,
        inverter_time: datetime | None,
    ) -> Reading:
        s = self.settings
        if track.value is None:
            return self._accept(track, value, spec)
        last = float(track.value)
        if value < last:
            starting = [
                _day_starting(t, s.midnight_before)
                for t in (local_time, inverter_time)
                if t is not None and _in_window(t.time(), s.midnight_before, s.midnight_after)
            ]
            if not starting:
                if last - value <= s.backwards_tolerance:
                    return self._accept(track, track.value, spec)
                return self._reject(name, Reason.RESET_OUTSIDE_MIDNIGHT, track, spec)
            if value > self._max_rise(track):
                return self._reject(name, Reason.JUMP, track, spec)
            # A small total (0.1 kWh) falling to about nothing is the day's reset, not a dip:
            # taken once per midnight, so a dip of a larger total is still absorbed.
            day = max(starting)
            if last - value <= s.backwards_tolerance and not (
                day != track.reset_day and value <= s.backwards_tolerance
            ):
                return self._accept(track, track.value, spec)
            track.reset_day = day
            return self._accept(track, value, spec)
        if value - last > self._max_rise(track):
            return self._hold(
                name, Reason.JUMP, track, value, spec, s.confirm_jump, lambda a, b: b >= a
            )
        return self._accept(track, value, spec)

    def _check_soc(self, name: str, spec: Spec, value: float, track: _Track) -> Reading:
        # A momentary 0 % is a well-known glitch (SPEC §6.2): believe it only when it persists.
        if value == 0 and track.value is not None and float(track.value) > 2:
            return self._hold(
                name,
                Reason.SOC_GLITCH,
                track,
                value,
                spec,
                self.settings.confirm_zero_total,
                lambda a, b: a == b,
            )
        return self._accept(track, value, spec)


def _round_like(value: float, raw: float) -> float:
    """Keep the raw reading's type and precision after adding an offset (no 0.30000000000000004)."""
    if isinstance(raw, int) and float(value).is_integer():
        return int(value)
    text = repr(raw)
    decimals = len(text.split(".")[1]) if "." in text else 0
    return round(value, decimals)
