"""The charger beside a simulated plant: the import cap watches the inverter's grid current (the
car's draw is part of the plant's load) and steers the charger; a charger in trouble never
touches the inverter's polling."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime
from pathlib import Path

from givtcp_async.evc.coordinator import EvcCoordinator
from givtcp_async.evc.simulator import Car, ChargerSimulator
from givtcp_async.simulator.plant import PlantConfig
from givtcp_async.snapshot import Snapshot
from tests.evc_support import polling, read_hr, running_charger, until
from tests.harness import Rig, running_daemon

# A January night with an empty battery: the grid carries the house (about 1 A) and the car.
NIGHT = PlantConfig(
    start=datetime(2025, 1, 15, 2, 0),  # noqa: DTZ001 - the plant's local wall time
    speed=1.0,
    soc=4.0,
    pv_peak_w=0.0,
)


async def _grid_after(rig: Rig, coord: EvcCoordinator) -> float:
    """The grid current of the first inverter snapshot taken after the policy's last change."""
    acted = coord.acted_at
    assert acted is not None
    async with asyncio.timeout(10):
        async for snap in rig.coordinator.updates():
            if snap.taken_at > acted:
                return float(snap.value("Grid_Current"))
    raise AssertionError("no inverter snapshot")


async def _refreshed(rig: Rig) -> Snapshot:
    """A new inverter snapshot, asked for now."""
    seen = rig.coordinator.snapshot
    rig.coordinator.request_refresh(settings=False)
    async with asyncio.timeout(10):
        async for snap in rig.coordinator.updates():
            if snap is not seen:
                return snap
    raise AssertionError("no inverter snapshot")


async def test_import_cap_lowers_stops_and_restarts_the_charger(tmp_path: Path) -> None:
    sim = ChargerSimulator()
    sim.plug_in(Car())
    async with running_daemon(tmp_path, plant_config=NIGHT) as rig:
        rig.plant.external_load = lambda: sim.power_w
        inverter = rig.coordinator
        first = await rig.first_snapshot()
        assert first.value("Grid_Current") > 30  # 32 A for the car plus the house
        async with running_charger(
            tmp_path, sim, grid=lambda: inverter.snapshot,
            grid_refresh=lambda: inverter.request_refresh(settings=False),
        ) as (sim, coord):  # fmt: skip
            await until(coord, lambda s: s.value("Charging_State") == "Charging")

            # 30 A cap: above 95 % of it, the limit drops by the excess over 90 % (27 A).
            assert (await coord.execute("setImportCap", "30")).ok
            await until(coord, lambda s: s.value("Charge_Limit") == 27.0)
            assert await read_hr(sim.port, 91, 1) == [270]
            assert 24.0 <= await _grid_after(rig, coord) <= 0.95 * 30

            # 6 A cap: even the minimum current does not fit: the session is stopped.
            assert (await coord.execute("setImportCap", "6")).ok
            await until(coord, lambda s: s.value("Charging_State") != "Charging")
            assert await read_hr(sim.port, 95, 1) == [2]
            assert await _grid_after(rig, coord) < 2  # the house alone
            assert coord.controller is not None
            assert coord.controller.store.state.stopped_by == "import_cap"

            # 20 A cap: room for the car again (hysteresis: 6 A fits under 80 %): restarted at
            # what fits under 90 % of the cap, below the 32 A asked for before the cap acted.
            assert (await coord.execute("setImportCap", "20")).ok
            await until(coord, lambda s: s.value("Charging_State") == "Charging")
            assert await read_hr(sim.port, 0, 1) == [4]
            (limit,) = await read_hr(sim.port, 91, 1)
            assert 150 <= limit <= 170
            assert await _grid_after(rig, coord) <= 0.95 * 20

            # Off: the current is left where it is.
            writes = len(sim.writes)
            assert (await coord.execute("setImportCap", "0")).ok
            later = await _refreshed(rig)
            await until(coord, lambda s: s.value("Import_Cap") == 0 and s.taken_at > later.taken_at)
            assert len(sim.writes) == writes


async def test_charger_trouble_never_delays_the_inverter(tmp_path: Path) -> None:
    # A "charger" that accepts connections and never answers: every request times out.
    requests: asyncio.Queue[bytes] = asyncio.Queue()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(256):
                requests.put_nowait(data)
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server, running_daemon(tmp_path, plant_config=NIGHT) as rig:
        inverter = rig.coordinator
        await rig.first_snapshot()
        await _refreshed(rig)  # past the first meter scan
        async with polling(tmp_path, port, timeout=1.5, grid=lambda: inverter.snapshot) as coord:
            await requests.get()  # the charger's first read is outstanding (1.5 s timeout) ...
            for _ in range(3):  # ... while the inverter polls on
                snap = await _refreshed(rig)
                assert not snap.stale()
            assert coord.conn.stats.timeouts == 0  # the charger's read is still unanswered
            health = inverter.health()
            assert health.online
            assert health.consecutive_failures == 0
            assert coord.snapshot is None  # nothing known about the charger: nothing published
            await requests.get()  # it timed out; the coordinator tried again
            assert coord.conn.stats.timeouts == 1
            result = await coord.execute("setCurrentLimit", "10")
            assert result.status == "failed"
