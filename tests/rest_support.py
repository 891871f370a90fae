"""The REST service running in the real daemon against simulated plants, and an HTTP client.

async with rest_rig(tmp_path) as r:
    status, body = await r.post("setChargeTarget", {"chargeToPercent": "80"})
    r.hr(116) == 80
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from givtcp_async.protocol.frames import WriteRequest
from givtcp_async.simulator.plant import PlantConfig
from givtcp_async.sinks.rest import RestService
from tests.harness import Rig, running_daemon
from tests.servers import free_port

INVERTER: Final = 0x11
HR: Final = 3
TOKEN: Final = "correct-horse-battery-staple"
# Midsummer early afternoon: solar, house, battery and grid all carry power.
NOON: Final = datetime(2026, 6, 21, 13, 0, tzinfo=ZoneInfo("Europe/London"))


@dataclass
class RestRig:
    rig: Rig
    service: RestService
    session: aiohttp.ClientSession
    base: str

    def url(self, path: str) -> str:
        return f"{self.base}/{path.lstrip('/')}"

    def hr(self, register: int, index: int = 0) -> int:
        return self.rig.simulators[index].store.holding(register)

    def registers(self, index: int = 0) -> dict[tuple[int, int, int], int]:
        return self.rig.simulators[index].store.snapshot()

    def writes_seen(self, after: int = 0, index: int = 0) -> list[tuple[int, int]]:
        return [
            (r.register, r.value)
            for r in self.rig.simulators[index].requests_seen(after)
            if isinstance(r, WriteRequest)
        ]

    async def get(self, path: str, **kwargs: Any) -> tuple[int, Any]:
        async with self.session.get(self.url(path), **kwargs) as resp:
            text = await resp.text()
            if resp.content_type == "application/json":
                return resp.status, json.loads(text)
            return resp.status, text

    async def post(
        self,
        path: str,
        payload: Any = None,
        *,
        raw: str | bytes | None = None,
        token: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[int, Any]:
        """POST a payload as JSON (a str payload is sent as it is, like GivTCP's clients)."""
        hdrs = dict(headers or {})
        if token is not None:
            hdrs["Authorization"] = f"Bearer {token}"
        data: str | bytes | None = raw
        if data is None and payload is not None:
            data = payload if isinstance(payload, str) else json.dumps(payload)
            hdrs.setdefault("Content-Type", "application/json")
        async with self.session.post(self.url(path), data=data, headers=hdrs) as resp:
            assert resp.content_type == "application/json", (path, resp.status)
            return resp.status, await resp.json()

    async def metrics(self) -> dict[str, list[tuple[dict[str, str], float]]]:
        """Every sample of /metrics by sample name, parsed by prometheus_client's parser."""
        status, text = await self.get("metrics")
        assert status == 200
        out: dict[str, list[tuple[dict[str, str], float]]] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                out.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
        return out


async def settled(rig: Rig) -> None:
    """Wait until every coordinator has finished its start-up work (the meter scan after the
    first poll, whose probes of absent addresses go unanswered): its second poll is after it."""
    for index, coord in enumerate(rig.daemon.coordinators):
        coord.request_refresh(settings=False)
        await rig.next_snapshot(index)


def service_of(rig: Rig) -> RestService:
    service = next(s for s in rig.daemon.services if s.name == "rest")
    assert isinstance(service, RestService)
    return service


@contextlib.asynccontextmanager
async def rest_rig(
    tmp_path: Path,
    *,
    plants: int = 1,
    token: str | None = None,
    plant_config: PlantConfig | None = None,
    rest_settings: Mapping[str, Any] | None = None,
    **sections: Any,
) -> AsyncIterator[RestRig]:
    """A daemon with REST on a free port, frozen plants, every inverter's first snapshot in;
    ``rest_settings`` adds to the ``[rest]`` section."""
    port = free_port()
    rest: dict[str, Any] = {
        "port": port,
        **({"token": token} if token else {}),
        **(rest_settings or {}),
    }
    port = rest["port"]
    config = plant_config or PlantConfig(speed=0, start=NOON.replace(tzinfo=None))
    async with running_daemon(
        tmp_path, plants=plants, plant_config=config, rest=rest, **sections
    ) as rig:
        for index in range(plants):
            await rig.first_snapshot(index)
        service = service_of(rig)
        await service.listening.wait()
        timeout = aiohttp.ClientTimeout(total=30)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            yield RestRig(rig, service, session, f"http://127.0.0.1:{port}")
