"""The outputs need only :class:`InverterView` and :class:`Links`: a stub view serves REST, and the
coordinator fits the view (checked by mypy through :func:`_fits`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import aiohttp

from givtcp_async.config import RestConfig
from givtcp_async.control.catalogue import CATALOGUE, Catalogue
from givtcp_async.control.payloads import RawPayload
from givtcp_async.control.result import CommandResult
from givtcp_async.coordinator import InverterCoordinator
from givtcp_async.ports import Health, InverterView, Links
from givtcp_async.registers.models import Model
from givtcp_async.sinks.rest import rest_service
from givtcp_async.snapshot import Snapshot
from tests.servers import free_port


def _fits(coordinator: InverterCoordinator) -> InverterView:
    return coordinator  # mypy fails here if the coordinator stops fitting the view


class StubView:
    """An inverter that is configured but has never answered."""

    name = "Stub"
    serial: str | None = None
    model: Model | None = None
    snapshot: Snapshot | None = None
    offline_after = 300.0

    def __init__(self) -> None:
        self.commands: list[tuple[str, RawPayload]] = []

    async def updates(self) -> AsyncIterator[Snapshot]:
        await asyncio.Event().wait()
        yield  # type: ignore[misc]  # never reached: no snapshot ever comes

    def health(self) -> Health:
        return Health(False, False, False, None, 0, 0, 0, 1)

    def now(self) -> datetime:
        return datetime(2026, 6, 21, 12, 0, tzinfo=UTC)

    def catalogue(self) -> Catalogue:
        return CATALOGUE

    async def link_up(self, timeout: float) -> bool:
        return False

    async def execute(self, function: str, payload: RawPayload = None) -> CommandResult:
        self.commands.append((function, payload))
        raise AssertionError("a command reached an inverter whose link is down")

    def metrics(self) -> dict[str, Any]:
        return {"polls": 0}


async def test_rest_serves_a_stub_view_without_a_coordinator() -> None:
    view = StubView()
    _view: InverterView = view
    config = RestConfig(host="127.0.0.1", port=free_port())
    service = rest_service(config, [view], Links())
    assert service is not None
    runner = asyncio.create_task(service.run())
    try:
        async with asyncio.timeout(10):
            await service.listening.wait()
        async with aiohttp.ClientSession(base_url=f"http://127.0.0.1:{config.port}") as http:
            async with http.get("/runAll") as resp:
                assert resp.status == 503
                assert (await resp.json())["error"] == "no data yet"
            async with http.get("/health") as resp:
                assert resp.status == 503
                [inverter] = (await resp.json())["inverters"]
                assert (inverter["name"], inverter["online"]) == ("Stub", False)
            async with http.post("/setChargeTarget", data="80") as resp:
                assert resp.status == 503
                body = await resp.json()
                assert "not connected" in body["message"]
                assert body["at"] == "2026-06-21T12:00:00Z"
            async with http.get("/metrics") as resp:
                assert 'givtcp_polls_total{serial="Stub"} 0' in await resp.text()
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
    assert view.commands == []
