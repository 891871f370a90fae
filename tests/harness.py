"""Running the real daemon against simulated plants over TCP on 127.0.0.1, for end-to-end tests.

    async with running_daemon(tmp_path, mqtt=...) as rig:
        snap = await rig.first_snapshot()
        rig.plant.truth() ...

Everything is real: the simulator speaks the wire protocol, the daemon connects to it exactly as
it would to a dongle. Only the clock can be the plant's simulated one.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from givtcp_async.config import Settings
from givtcp_async.control.clock import Clock
from givtcp_async.coordinator import InverterCoordinator
from givtcp_async.daemon import Daemon, Service
from givtcp_async.simulator.plant import Plant, PlantClock, PlantConfig
from givtcp_async.simulator.server import DongleSimulator
from givtcp_async.snapshot import Snapshot

# Fast, test-friendly connection and poll settings for every simulated inverter.
FAST_INVERTER: Mapping[str, Any] = {
    "pacing": 0.0,
    "read_timeout": 0.5,
    "write_timeout": 0.5,
    "retry_delay": 0.05,
    "connect_timeout": 1.0,
    "backoff_max": 1.0,
    "poll_interval": 5.0,
    "settings_interval": 30.0,
}


@dataclass
class Rig:
    daemon: Daemon
    plants: list[Plant]
    simulators: list[DongleSimulator]
    settings: Settings
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)

    @property
    def plant(self) -> Plant:
        return self.plants[0]

    @property
    def sim(self) -> DongleSimulator:
        return self.simulators[0]

    @property
    def coordinator(self) -> InverterCoordinator:
        return self.daemon.coordinators[0]

    async def first_snapshot(self, index: int = 0, timeout: float = 20.0) -> Snapshot:
        """The first snapshot the given inverter's coordinator publishes."""
        coord = self.daemon.coordinators[index]
        async with asyncio.timeout(timeout):
            async for snap in coord.updates():
                return snap
        raise AssertionError("no snapshot")

    async def next_snapshot(self, index: int = 0, timeout: float = 20.0) -> Snapshot:
        """A snapshot published after this call."""
        coord = self.daemon.coordinators[index]
        seen = coord.snapshot
        async with asyncio.timeout(timeout):
            async for snap in coord.updates():
                if snap is not seen:
                    return snap
        raise AssertionError("no snapshot")


def settings_for(
    simulators: Sequence[DongleSimulator],
    state_dir: Path,
    *,
    inverter: Mapping[str, Any] | None = None,
    **sections: Any,
) -> Settings:
    """Settings pointing one inverter entry at each simulator, with fast test timings."""
    return Settings.model_validate(
        settings_dict(simulators, state_dir, inverter=inverter, **sections)
    )


def settings_dict(
    simulators: Sequence[DongleSimulator],
    state_dir: Path,
    *,
    inverter: Mapping[str, Any] | None = None,
    **sections: Any,
) -> dict[str, Any]:
    """What :func:`settings_for` validates (plain data: it can go to another process)."""
    inverters = [
        {"host": "127.0.0.1", "port": sim.port, **FAST_INVERTER, **(inverter or {})}
        for sim in simulators
    ]
    # Tests send the same command again within seconds: no minimum interval unless one asks.
    control = {"state_dir": str(state_dir), "min_write_interval": 0, **sections.pop("control", {})}
    # REST is on by default in the daemon: tests that do not ask for it must not take port 6345.
    sections.setdefault("rest", {"enabled": False})
    return {"inverters": inverters, "control": control, **sections}


@contextlib.asynccontextmanager
async def running_daemon(
    tmp_path: Path,
    *,
    plants: int = 1,
    plant_config: PlantConfig | None = None,
    inverter: Mapping[str, Any] | None = None,
    services: Sequence[Service] | None = None,
    clock: Clock | None = None,
    use_plant_clock: bool = False,
    **sections: Any,
) -> AsyncIterator[Rig]:
    """Start ``plants`` simulated plants and a daemon serving them; stop all on exit.

    ``sections`` are settings sections (``mqtt={...}``, ``rest={...}``, ``data={...}``).
    ``services=None`` builds the services the settings enable (the daemon's default).
    """
    cfg = plant_config or PlantConfig(speed=1.0)
    built = [
        Plant(PlantConfig(**{**_fields(cfg), "seed": cfg.seed + i, "serial": None}))
        if i
        else Plant(cfg)
        for i in range(plants)
    ]
    sims = [p.simulator() for p in built]
    for sim in sims:
        await sim.start()
    settings = settings_for(sims, tmp_path / "state", inverter=inverter, **sections)
    if use_plant_clock:
        clock = PlantClock(built[0])
    daemon = Daemon(settings, clock=clock, services=services)
    for coord in daemon.coordinators:
        coord.reader.probe_timeout = 0.2
    runner = asyncio.create_task(daemon.run(), name="test-daemon")
    rig = Rig(daemon, built, sims, settings)
    try:
        async with asyncio.timeout(10):
            await daemon.started.wait()
        yield rig
    finally:
        daemon.stop()
        with contextlib.suppress(asyncio.CancelledError):
            await runner
        for sim in sims:
            await sim.close()


def _fields(cfg: PlantConfig) -> dict[str, Any]:
    from dataclasses import asdict

    return asdict(cfg)
