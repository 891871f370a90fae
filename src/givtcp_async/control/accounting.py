"""Write accounting: every register write counted durably before it is sent, a daily budget and
a per-register minimum interval, neither of which ever holds up a restore.

The counter lives in a small JSON file (``<serial>.writes.json`` in the state directory)::

    {"version": 1, "total": 42, "days": {"2025-06-01": 7}, "registers": {"110": 3},
     "last": {"110": "2025-06-01T11:58:00+01:00"}, "updated": "2025-06-01T12:00:00+01:00"}

``days`` is keyed by the local date of the daemon's timezone and keeps the last 400 days. A write
is counted, and the count saved (fsync'd, atomically), *before* it is sent: a crash at any moment
leaves recorded >= sent, and a write whose count cannot be saved is not sent. Restores of timed
overrides are counted too, but never refused: not by the budget (an override starts only when
its restore fits, and the restore's writes stay reserved until it has run), not by the interval,
and not when their count cannot be saved (that is logged).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any, Final

from givtcp_async.control.clock import Clock, SystemClock
from givtcp_async.control.persist import read_json, write_json
from givtcp_async.errors import StateError, WriteBudgetExceeded, WriteTooSoon

VERSION: Final = 1
KEEP_DAYS: Final = 400


class WriteLedger:
    """Counts writes per day and per register; optional daily budget and minimum interval."""

    def __init__(
        self,
        path: Path | None = None,
        *,
        daily_budget: int | None = None,
        min_interval: float | None = None,
        clock: Clock | None = None,
        tz: tzinfo | None = None,
    ) -> None:
        if daily_budget is not None and daily_budget < 0:
            raise ValueError("daily_budget must be >= 0")
        self.path = path
        self.daily_budget = daily_budget
        self.min_interval = timedelta(seconds=min_interval) if min_interval else None
        self._clock = clock or SystemClock()
        self._tz = tz
        self.total = 0
        self.days: dict[str, int] = {}
        self.registers: dict[int, int] = {}
        self.last: dict[int, datetime] = {}  # when each register was last written
        self._reserved: dict[str, int] = {}  # restore writes owed, per pending override
        self.refused_budget = 0
        self.refused_interval = 0
        self.state_errors = 0  # counts that could not be saved
        self._dirty = False
        self._load()

    def _load(self) -> None:
        if self.path is None:
            return
        data = read_json(self.path)
        if not isinstance(data, dict):
            return
        self.total = int(data.get("total", 0))
        self.days = {str(k): int(v) for k, v in dict(data.get("days", {})).items()}
        self.registers = {int(k): int(v) for k, v in dict(data.get("registers", {})).items()}
        self.last = {
            int(k): datetime.fromisoformat(str(v)) for k, v in dict(data.get("last", {})).items()
        }

    def _today(self) -> str:
        now = self._clock.now()
        return (now.astimezone(self._tz) if self._tz else now.astimezone()).date().isoformat()

    @property
    def today(self) -> int:
        """Writes counted today (local date)."""
        return self.days.get(self._today(), 0)

    @property
    def reserved(self) -> int:
        """Writes kept back for the restores of running overrides."""
        return sum(self._reserved.values())

    def reserve(self, key: str, writes: int) -> None:
        """Keep ``writes`` of every day's budget for the restore of override ``key``."""
        self._reserved[key] = max(0, writes)

    def release(self, key: str) -> None:
        self._reserved.pop(key, None)

    def remaining_today(self) -> int | None:
        """Writes left in today's budget after the reservations; None without a budget."""
        if self.daily_budget is None:
            return None
        return max(0, self.daily_budget - self.today - self.reserved)

    def check(self, planned: int, *, registers: Iterable[int] = (), restores: int = 0) -> None:
        """Refuse ``planned`` writes (of ``registers``) that a restore does not make: raise
        :class:`WriteTooSoon` when one of the registers was written less than the minimum
        interval ago, :class:`WriteBudgetExceeded` when they, plus ``restores`` writes to
        reserve for undoing them, do not fit today's budget."""
        now = self._clock.now()
        if self.min_interval is not None:
            for register in registers:
                last = self.last.get(register)
                if last is not None and now - last < self.min_interval:
                    self.refused_interval += 1
                    ago = max(0, int((now - last).total_seconds()))
                    raise WriteTooSoon(
                        f"HR{register} was written {ago} s ago; each register at most once "
                        f"every {self.min_interval.total_seconds():g} s "
                        "(control.min_write_interval)"
                    )
        remaining = self.remaining_today()
        if remaining is not None and planned + restores > remaining:
            self.refused_budget += 1
            need = f"{planned} write(s) needed"
            if restores:
                need += f" and {restores} kept for the restore"
            held = f" and {self.reserved} kept for pending restores" if self.reserved else ""
            raise WriteBudgetExceeded(
                f"daily write budget exceeded: {need}, {self.today} of {self.daily_budget} "
                f"already used today{held} ({remaining} left)"
            )

    def record(self, register: int, *, durable: bool = True) -> None:
        """Count one write of ``register`` and save the count, before the write is sent.

        When the count cannot be saved: with ``durable`` (every write but a restore's) it is
        taken back and :class:`StateError` raised, so the write must not be sent; a restore's
        stays counted in memory and is saved with the next write that can be.
        """
        day = self._today()
        before = (self.total, self.days.get(day), self.registers.get(register),
                  self.last.get(register))  # fmt: skip
        self.total += 1
        self.days[day] = self.days.get(day, 0) + 1
        self.registers[register] = self.registers.get(register, 0) + 1
        self.last[register] = self._clock.now()
        self._dirty = True
        try:
            self.flush()
        except StateError:
            self.state_errors += 1
            if not durable:
                return
            self.total, count, regs, last = before
            _put(self.days, day, count)
            _put(self.registers, register, regs)
            _put(self.last, register, last)
            raise

    def flush(self) -> None:
        """Save the counters atomically and durably if anything changed (:class:`StateError`
        when that fails)."""
        if not self._dirty or self.path is None:
            self._dirty = False
            return
        for day in sorted(self.days)[:-KEEP_DAYS]:
            del self.days[day]
        write_json(self.path, self.as_dict())
        self._dirty = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "version": VERSION,
            "total": self.total,
            "days": dict(sorted(self.days.items())),
            "registers": {str(k): v for k, v in sorted(self.registers.items())},
            "last": {str(k): v.isoformat() for k, v in sorted(self.last.items())},
            "updated": self._clock.now().isoformat(),
        }

    def summary(self) -> dict[str, Any]:
        """What a status page or the Stats/Write_Count entity shows."""
        return {
            "total": self.total,
            "today": self.today,
            "daily_budget": self.daily_budget,
            "reserved": self.reserved,
            "remaining_today": self.remaining_today(),
        }


def _put(mapping: dict[Any, Any], key: Any, value: Any) -> None:
    if value is None:
        mapping.pop(key, None)
    else:
        mapping[key] = value
