"""Two small pieces every coordinator's loop needs: the latest value with a stream of updates,
and a sleep that a request can cut short. Depends on asyncio alone."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable
from datetime import datetime
from typing import Generic, Protocol, TypeVar

_T = TypeVar("_T")


class Latest(Generic[_T]):
    """The latest value published; :meth:`updates` follows it, a slow reader skipping ahead."""

    def __init__(self) -> None:
        self.value: _T | None = None
        self._version = 0
        self._changed = asyncio.Event()  # replaced by a fresh one at every put

    def put(self, value: _T) -> None:
        """Publish ``value`` at once, without yielding (a command's read-back is published
        before the command is answered)."""
        self.value = value
        self._version += 1
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def set(self, value: _T) -> None:
        self.put(value)

    async def updates(self) -> AsyncIterator[_T]:
        """The current value (once there is one) and every later one."""
        seen = 0
        while True:
            while self._version <= seen:
                await self._changed.wait()
            seen = self._version
            value = self.value
            if value is not None:
                yield value


class _Sleeps(Protocol):
    def sleep_until(self, when: datetime) -> Awaitable[None]: ...


async def sleep_or_wake(
    clock: _Sleeps, until: datetime, wake: asyncio.Event, idle: asyncio.Event | None = None
) -> None:
    """Sleep until ``until`` on ``clock``, or until ``wake`` is set (then cleared); at once when
    it already is. ``idle`` is set while sleeping."""
    if wake.is_set():
        wake.clear()
        return
    sleeper = asyncio.ensure_future(clock.sleep_until(until))
    waker = asyncio.ensure_future(wake.wait())
    if idle is not None:
        idle.set()
    try:
        await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if idle is not None:
            idle.clear()
        for task in (sleeper, waker):
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(sleeper, waker, return_exceptions=True)
        wake.clear()
