"""Clocks for control: the real one, and a manual one that tests (and simulations) advance.

Everything in :mod:`givtcp_async.control` that depends on the time of day (slot windows of timed
overrides, ``syncDateTime``, the daily write budget) asks a :class:`Clock`, never ``datetime``.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol, runtime_checkable

# A real clock re-checks at least this often while sleeping, so that a wall-clock jump (NTP,
# suspend/resume) delays a timed restore by no more than this.
_MAX_REAL_SLEEP = 30.0


@runtime_checkable
class Clock(Protocol):
    """Wall-clock time and sleeping until a wall-clock instant."""

    def now(self) -> datetime:
        """The current time, timezone-aware."""
        ...

    async def sleep_until(self, when: datetime) -> None:
        """Return once :meth:`now` has reached ``when`` (at once if it already has)."""
        ...


class SystemClock:
    """The host's clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep_until(self, when: datetime) -> None:
        while (remaining := (when - self.now()).total_seconds()) > 0:  # noqa: ASYNC110
            await asyncio.sleep(min(remaining, _MAX_REAL_SLEEP))


@dataclass(order=True, slots=True)
class _Sleeper:
    when: datetime
    seq: int
    future: asyncio.Future[None] = field(compare=False)


class ManualClock:
    """A clock that only moves when told to; sleepers wake in deadline order as it passes them.

    ``await clock.advance(minutes=30)`` moves time forward and lets every task whose deadline was
    passed run until it next waits, so a test sees the effects without real sleeping.
    """

    def __init__(self, start: datetime | None = None) -> None:
        start = start or datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
        if start.tzinfo is None:
            raise ValueError("ManualClock needs a timezone-aware start time")
        self._now = start
        self._sleepers: list[_Sleeper] = []
        self._seq = itertools.count()

    def now(self) -> datetime:
        return self._now

    async def sleep_until(self, when: datetime) -> None:
        if when <= self._now:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, _Sleeper(when, next(self._seq), fut))
        await fut

    @property
    def sleepers(self) -> int:
        """Tasks currently sleeping on this clock."""
        return sum(1 for s in self._sleepers if not s.future.done())

    def next_deadline(self) -> datetime | None:
        live = [s.when for s in self._sleepers if not s.future.done()]
        return min(live) if live else None

    async def advance(self, delta: timedelta | None = None, **kwargs: float) -> None:
        """Move forward by ``delta`` (or ``timedelta(**kwargs)``), waking sleepers on the way."""
        step = delta if delta is not None else timedelta(**kwargs)
        await self.set(self._now + step)

    async def set(self, when: datetime) -> None:
        """Jump to ``when`` (never backwards), waking each passed sleeper in turn."""
        if when < self._now:
            raise ValueError("a ManualClock does not go backwards")
        while self._sleepers and self._sleepers[0].when <= when:
            sleeper = heapq.heappop(self._sleepers)
            if sleeper.future.done():
                continue
            self._now = max(self._now, sleeper.when)
            sleeper.future.set_result(None)
            await _settle()
        self._now = when
        await _settle()


async def _settle(rounds: int = 5) -> None:
    """Give woken tasks a few turns of the event loop to reach their next await."""
    for _ in range(rounds):
        await asyncio.sleep(0)
