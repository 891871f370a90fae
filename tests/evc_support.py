"""Helpers for tests that drive the charger coordinator against the simulated charger over real
Modbus TCP on 127.0.0.1, and read its registers back with pymodbus's own client."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from pymodbus.client import AsyncModbusTcpClient

from givtcp_async.evc.connection import EvcLinkSettings
from givtcp_async.evc.coordinator import EvcCoordinator, EvcSettings, GridSource
from givtcp_async.evc.simulator import ChargerSimulator
from givtcp_async.evc.snapshot import EvcSnapshot


def fast_settings(port: int, timeout: float = 0.5, **overrides: Any) -> EvcSettings:
    """Test timings: 0.1 s polls, short timeouts and back-off, a short lock-out."""
    link = EvcLinkSettings(
        "127.0.0.1", port, timeout=timeout, connect_timeout=1.0, backoff_initial=0.05,
        backoff_max=0.2,
    )  # fmt: skip
    base: dict[str, Any] = {"link": link, "poll_interval": 0.1, "lockout_after": 3,
                            "lockout_pause": 0.6, "offline_after": 1.0}  # fmt: skip
    return EvcSettings(**{**base, **overrides})


@contextlib.asynccontextmanager
async def polling(
    tmp_path: Path,
    port: int,
    *,
    grid: GridSource | None = None,
    grid_refresh: Callable[[], None] | None = None,
    write_budget: int | None = None,
    **overrides: Any,
) -> AsyncIterator[EvcCoordinator]:
    """A coordinator polling the charger at 127.0.0.1:``port``; stopped on exit."""
    coord = EvcCoordinator(
        fast_settings(port, **overrides),
        state_dir=tmp_path / "state",
        grid=grid,
        grid_refresh=grid_refresh,
        write_budget=write_budget,
    )
    task = asyncio.create_task(coord.run(), name="test-evc")
    try:
        yield coord
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@contextlib.asynccontextmanager
async def running_charger(
    tmp_path: Path, sim: ChargerSimulator | None = None, **options: Any
) -> AsyncIterator[tuple[ChargerSimulator, EvcCoordinator]]:
    """A started simulator and a coordinator polling it (``options``: :func:`polling`'s)."""
    sim = sim or ChargerSimulator()
    if not sim.running:
        await sim.start()
    try:
        async with polling(tmp_path, sim.port, **options) as coord:
            yield sim, coord
    finally:
        await sim.close()


async def until(
    coord: EvcCoordinator, pred: Callable[[EvcSnapshot], bool], timeout: float = 10.0
) -> EvcSnapshot:
    """The first snapshot (current or later) for which ``pred`` holds."""
    async with asyncio.timeout(timeout):
        async for snap in coord.updates():
            if pred(snap):
                return snap
    raise AssertionError("no such snapshot")


async def read_hr(port: int, base: int, count: int) -> list[int]:
    """HR(base..) read with pymodbus's client: independent of the project's code."""
    client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=2, retries=0)
    try:
        assert await client.connect()
        resp = await client.read_holding_registers(base, count=count, device_id=1)
        assert not resp.isError(), resp
        return list(resp.registers)
    finally:
        client.close()
