"""Test rigs for control: a simulated inverter over TCP on 127.0.0.1 plus a Controller.

Kinds: ``gen3`` is the simulated plant (Gen3 hybrid, ten slots, frozen clock); the others are
register files seeded from real captures, with pages added where a model answers them but the
capture did not read them.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo

from givtcp_async.connection import ConnectionSettings, DongleConnection, Priority
from givtcp_async.control.accounting import WriteLedger
from givtcp_async.control.catalogue import CATALOGUE, ControlFunction
from givtcp_async.control.clock import ManualClock
from givtcp_async.control.executor import Controller, ControlMemory
from givtcp_async.control.overrides import OverrideManager
from givtcp_async.control.persist import state_file
from givtcp_async.control.service import ControlService
from givtcp_async.protocol.capture import load_capture
from givtcp_async.protocol.frames import FunctionCode, WriteRequest
from givtcp_async.registers.models import Model, detect_model
from givtcp_async.simulator.plant import Plant, build_default_plant
from givtcp_async.simulator.server import DongleSimulator
from givtcp_async.simulator.store import RegisterStore
from tests.conftest import CAPTURES

HR: Final = int(FunctionCode.READ_HOLDING)
INVERTER: Final = 0x11
START: Final = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
TZ: Final = ZoneInfo("Europe/London")

GEN1_CAPTURE: Final = CAPTURES / "hybrid_2_bat_a" / "hybrid_gen1_arm449_0x11_poll_10min.jsonl"
_CAPTURES: Final = {
    "gen1": GEN1_CAPTURE,
    "gen2": CAPTURES / "hybrid_gen2_1_bat_a" / "hybrid_gen2_arm920_60s.jsonl",
    "ac": CAPTURES / "ems_2_inv_3_bat_a" / "ac_arm282_1x_givbat512gen3_30min.jsonl",
    "aio": CAPTURES / "aio_a" / "aio_arm612_5min.jsonl",
    "three": CAPTURES / "three_phase_hv_a" / "giv3hy11_da011_detect_10min.jsonl",
    "ems": CAPTURES / "ems_2_inv_3_bat_a" / "ems_arm1036_30min.jsonl",
    "gateway": CAPTURES / "gateway_2aio_a" / "gateway_gaaa0014_10min_daylight.jsonl",
}
KINDS: Final = ("gen3", "gen1", "gen2", "ac", "aio", "three", "ems", "gateway")


def _capture_store(path: Path) -> RegisterStore:
    return RegisterStore.from_capture(load_capture(path))


def build_store(kind: str) -> tuple[RegisterStore, Plant | None]:
    """The register file of ``kind`` (and the plant behind it for ``gen3``)."""
    if kind == "gen3":
        plant = build_default_plant(speed=0, start=START)
        return plant.store, plant
    store = _capture_store(_CAPTURES[kind])
    inv = store.device(INVERTER)
    assert inv is not None
    gen1 = _capture_store(GEN1_CAPTURE).device(INVERTER)
    assert gen1 is not None
    bank = gen1.banks[HR]

    def copy_page(base: int) -> None:
        if base not in inv.pages.get(HR, set()):
            inv.add_page(
                FunctionCode.READ_HOLDING, base, [bank.get(base + i, 0) for i in range(60)]
            )

    if kind == "ac":  # answers HR 0-300 (SPEC §3.2); the capture read only 0, 180, 300
        copy_page(60)
        copy_page(120)
        inv.add_page(FunctionCode.READ_HOLDING, 240, [0] * 60)
    elif kind == "aio":  # the capture did not read HR120
        copy_page(120)
    elif kind == "three":  # slots 3-10 live in the HR240 page
        inv.add_page(FunctionCode.READ_HOLDING, 240, [0] * 60)
    return store, None


@functools.cache
def model_of(kind: str) -> Model:
    store, _ = build_store(kind)
    inv = store.device(INVERTER)
    assert inv is not None
    return detect_model(inv.banks[HR])


@dataclass
class Rig:
    kind: str
    store: RegisterStore
    sim: DongleSimulator
    conn: DongleConnection
    model: Model
    controller: Controller
    manager: OverrideManager
    control: ControlService  # every command goes in here, as in the daemon
    clock: ManualClock
    state_dir: Path
    plant: Plant | None

    def hr(self, register: int) -> int:
        return self.store.holding(register)

    def set_hr(self, register: int, value: int) -> None:
        inv = self.store.device(INVERTER)
        assert inv is not None
        inv.set(HR, register, value)

    def snapshot(self) -> dict[tuple[int, int, int], int]:
        return self.store.snapshot()

    def writes_seen(self, after: int = 0) -> list[tuple[int, int]]:
        return [
            (r.register, r.value)
            for r in self.sim.requests_seen(after)
            if isinstance(r, WriteRequest)
        ]

    def new_controller(
        self, *, deadman: int | None = None
    ) -> tuple[ControlService, OverrideManager]:
        """A fresh Controller + OverrideManager (behind a ControlService) on the same connection
        and state files."""
        controller, manager = _controller(
            self.conn, self.model, self.state_dir, self.clock, deadman=deadman
        )
        return ControlService(controller, manager), manager


def _controller(
    conn: DongleConnection,
    model: Model,
    state_dir: Path,
    clock: ManualClock,
    *,
    budget: int | None = None,
    deadman: int | None = None,
) -> tuple[Controller, OverrideManager]:
    key = "inverter"
    controller = Controller(
        conn,
        model,
        ledger=WriteLedger(
            state_file(state_dir, key, "writes"), daily_budget=budget, clock=clock, tz=TZ
        ),
        memory=ControlMemory(state_file(state_dir, key, "control")),
        clock=clock,
        tz=TZ,
    )
    manager = OverrideManager(
        controller, state_file(state_dir, key, "overrides"), deadman_minutes=deadman
    )
    return controller, manager


def fast_settings(port: int) -> ConnectionSettings:
    return ConnectionSettings(
        host="127.0.0.1",
        port=port,
        pacing=0.0,
        read_timeout=0.5,
        write_timeout=0.5,
        read_retries=0,
        write_retries=0,
        retry_delay=0.01,
        backoff_initial=0.05,
        backoff_max=0.2,
    )


@asynccontextmanager
async def rig(
    kind: str,
    state_dir: Path,
    *,
    clock: ManualClock | None = None,
    budget: int | None = None,
    deadman: int | None = None,
    store: RegisterStore | None = None,
) -> AsyncIterator[Rig]:
    plant: Plant | None = None
    if store is None:
        store, plant = build_store(kind)
    clock = clock or ManualClock(START)
    sim = plant.simulator() if plant is not None else DongleSimulator(store)
    async with sim, DongleConnection(fast_settings(sim.port)) as conn:
        await conn.wait_connected(5)
        page = await conn.read(
            INVERTER, FunctionCode.READ_HOLDING, 0, 60, priority=Priority.COMMAND
        )
        model = detect_model(dict(enumerate(page.values)))
        controller, manager = _controller(
            conn, model, state_dir, clock, budget=budget, deadman=deadman
        )
        await manager.start()
        control = ControlService(controller, manager)
        the_rig = Rig(
            kind, store, sim, conn, model, controller, manager, control, clock, state_dir, plant
        )
        try:
            yield the_rig
        finally:
            await manager.stop(restore=False)


def preferred_kind(fn: ControlFunction) -> str | None:
    """The first rig kind the function is available on."""
    return next((k for k in KINDS if fn.available(model_of(k))), None)


def example_dict(fn: ControlFunction) -> dict[str, Any]:
    ex = fn.example
    if ex is None:
        return {}
    if isinstance(ex, Mapping):
        return dict(ex)
    field = fn.payload.scalar_field
    return {field: ex} if field else {}


def all_functions() -> list[ControlFunction]:
    return list(CATALOGUE)
