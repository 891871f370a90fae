"""Write accounting: every register write counted, persisted across restarts, with a daily budget.

The counter lives in a small JSON file (``<serial>.writes.json`` in the state directory)::

    {"version": 1, "total": 42, "days": {"2025-06-01": 7}, "registers": {"110": 3},
     "updated": "2025-06-01T12:00:00+01:00"}

``days`` is keyed by the local date of the daemon's timezone and keeps the last 400 days. A write
is counted when it is sent, whether or not the inverter confirms it (an unanswered write may still
have reached the EEPROM).
"""

from __future__ import annotations

from datetime import tzinfo
from pathlib import Path
from typing import Any, Final

from givtcp_async.control.clock import Clock, SystemClock
from givtcp_async.control.persist import read_json, write_json
from givtcp_async.errors import WriteBudgetExceeded

VERSION: Final = 1
KEEP_DAYS: Final = 400


class WriteLedger:
    """Counts writes per day and per register; optional daily budget."""

    def __init__(
        self,
        path: Path | None = None,
        *,
        daily_budget: int | None = None,
        clock: Clock | None = None,
        tz: tzinfo | None = None,
    ) -> None:
        if daily_budget is not None and daily_budget < 0:
            raise ValueError("daily_budget must be >= 0")
        self.path = path
        self.daily_budget = daily_budget
        self._clock = clock or SystemClock()
        self._tz = tz
        self.total = 0
        self.days: dict[str, int] = {}
        self.registers: dict[int, int] = {}
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

    def _today(self) -> str:
        now = self._clock.now()
        return (now.astimezone(self._tz) if self._tz else now.astimezone()).date().isoformat()

    @property
    def today(self) -> int:
        """Writes counted today (local date)."""
        return self.days.get(self._today(), 0)

    def remaining_today(self) -> int | None:
        """Writes left in today's budget; None without a budget."""
        if self.daily_budget is None:
            return None
        return max(0, self.daily_budget - self.today)

    def check(self, planned: int) -> None:
        """Raise :class:`WriteBudgetExceeded` if ``planned`` more writes would exceed the budget."""
        remaining = self.remaining_today()
        if remaining is not None and planned > remaining:
            raise WriteBudgetExceeded(
                f"daily write budget exceeded: {planned} write(s) needed, {self.today} of "
                f"{self.daily_budget} already used today ({remaining} left)"
            )

    def record(self, register: int, count: int = 1) -> None:
        """Count ``count`` writes of ``register`` (call :meth:`flush` to persist)."""
        day = self._today()
        self.total += count
        self.days[day] = self.days.get(day, 0) + count
        self.registers[register] = self.registers.get(register, 0) + count
        self._dirty = True

    def flush(self) -> None:
        """Persist the counters atomically if anything changed."""
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
            "updated": self._clock.now().isoformat(),
        }

    def summary(self) -> dict[str, Any]:
        """What a status page or the Stats/Write_Count entity shows."""
        return {
            "total": self.total,
            "today": self.today,
            "daily_budget": self.daily_budget,
            "remaining_today": self.remaining_today(),
        }
