"""The data-quality gates on the new families' values (issue 12 item 8), end to end: the captured
three-phase plant served by our simulator over TCP, its registers then turned bad at the source.

Values: an impossible reading (bounds), a lifetime total going backwards, a daily total dropping
outside the midnight window are refused, counted, and never published; the midnight reset is
taken. Pages: all 0xFFFF, and one kind of device's page at another kind's address (a battery
module's cells at the stack controller's address, the controller's page at a module's) are
refused by the page gate and counted; what was published stays the last good value.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from givtcp_async.assemble import SnapshotAssembler
from givtcp_async.cache import RegisterCache
from givtcp_async.connection import DongleConnection
from givtcp_async.control.clock import ManualClock
from givtcp_async.daemon import Daemon
from givtcp_async.protocol.frames import FunctionCode, ReadRequest
from givtcp_async.quality.pages import PageVerdict
from givtcp_async.reader import PlantLayout, PlantReader
from givtcp_async.registers.plan import (
    BAMS,
    BCUS,
    BMUS,
    LV_BCU,
    LV_PACKS,
    METERS,
    Cadence,
    battery_blocks,
    meter_blocks,
    page_cadence,
)
from givtcp_async.simulator.server import DongleSimulator
from givtcp_async.simulator.store import RegisterStore
from givtcp_async.snapshot import Snapshot
from tests.control_support import fast_settings
from tests.harness import FAST_INVERTER, settings_for
from tests.oracle_support import TZ, capture_store, unique_serials
from tests.test_families_oracle import THREE_PHASE

IR = int(FunctionCode.READ_INPUT)
INVERTER = 0x11
AFTERNOON = datetime(2026, 7, 9, 13, 0, tzinfo=TZ)  # the capture's day; its clock says 21:20


@dataclass
class Rig:
    store: RegisterStore
    reader: PlantReader
    cache: RegisterCache
    layout: PlantLayout
    assembler: SnapshotAssembler

    async def poll(self, now: datetime) -> Snapshot:
        await self.reader.refresh(self.layout.plan.blocks)
        return self.assembler.build(self.cache, devices=self.layout.devices, now=now)

    def set_inverter(self, register: int, *words: int) -> None:
        inv = self.store.device(INVERTER)
        assert inv is not None
        for i, word in enumerate(words):
            inv.set(IR, register + i, word)

    def page(self, address: int, base: int) -> list[int]:
        dev = self.store.device(address)
        assert dev is not None
        return [dev.get(IR, base + i) for i in range(60)]

    def put_page(self, address: int, base: int, words: list[int]) -> None:
        dev = self.store.device(address)
        assert dev is not None
        for i, word in enumerate(words):
            dev.set(IR, base + i, word)


@contextlib.asynccontextmanager
async def three_phase(meters: bool = False) -> AsyncIterator[Rig]:
    store = unique_serials(capture_store(THREE_PHASE))
    async with DongleSimulator(store) as sim, DongleConnection(fast_settings(sim.port)) as conn:
        await conn.wait_connected(5)
        cache = RegisterCache()
        reader = PlantReader(conn, cache, probe_timeout=0.3, probe_meters=meters)
        layout = await reader.detect()
        assembler = SnapshotAssembler(layout.model, layout.serial, layout.fields, TZ)
        yield Rig(store, reader, cache, layout, assembler)


def u32(value: int) -> tuple[int, int]:
    return value >> 16, value & 0xFFFF


def reading(snap: Snapshot, name: str) -> Any:
    return snap.values[name]


async def test_impossible_three_phase_values_are_refused_and_counted() -> None:
    async with three_phase() as rig:
        good = await rig.poll(AFTERNOON)
        assert good.value("SOC") == 92
        assert good.value("Grid_Phase1_Voltage") == 401.7
        rig.set_inverter(1132, 150)  # SOC 150 %
        rig.set_inverter(1061, 9000)  # 900 V line to line
        rig.set_inverter(1128, 0x7FFF)  # inverter at 3276.7 °C
        bad = await rig.poll(AFTERNOON + timedelta(seconds=10))
        for name, last in (("SOC", 92), ("Grid_Phase1_Voltage", 401.7),
                           ("Inverter_Temperature", 44.8)):  # fmt: skip
            got = reading(bad, name)
            assert got.value == last, name  # the last good value, never the bad one
            assert got.stale, name
            assert rig.assembler.rejections[f"{name}:out_of_bounds"] == 1, name
        flat = bad.flat()
        assert flat["Power/Power/SOC"] == 92
        rig.set_inverter(1132, 91)  # good again: published, fresh
        again = await rig.poll(AFTERNOON + timedelta(seconds=20))
        assert reading(again, "SOC").value == 91
        assert not reading(again, "SOC").stale


async def test_impossible_codes_and_meter_product_words_are_refused() -> None:
    """The backup nominal codes (HR1106/1107) and the meters' product registers (IR95-103) go
    through the gates like the live values: an unknown code or an impossible word is refused,
    the last good value republished stale."""
    async with three_phase(meters=True) as rig:
        good = await rig.poll(AFTERNOON)
        assert good.value("V_Backup_Nominal") == "230 V"
        assert good.value("F_Backup_Nominal") == "50 Hz"
        (meter,) = (m for m in good.meters if m.address == 0x01)
        assert meter.values["Meter_Product_Serial"].value == 3521 << 16 | 18413
        assert meter.values["Meter_Factory_Code"].value == "EST"
        assert meter.values["Meter_Baud_Rate"].value == 9600
        inv = rig.store.device(INVERTER)
        assert inv is not None
        inv.set(int(FunctionCode.READ_HOLDING), 1106, 7)  # no such voltage option
        dev = rig.store.device(0x01)
        assert dev is not None
        dev.set(IR, 103, 0)  # baud rate 0
        dev.set(IR, 102, 0)  # Modbus id 0
        await rig.reader.refresh(rig.layout.plan.by_cadence(Cadence.SLOW))  # settings due
        bad = await rig.poll(AFTERNOON + timedelta(seconds=10))
        assert reading(bad, "V_Backup_Nominal").value == "230 V"
        assert reading(bad, "V_Backup_Nominal").stale
        (meter,) = (m for m in bad.meters if m.address == 0x01)
        for name, last in (("Meter_Baud_Rate", 9600), ("Meter_Modbus_ID", 1)):
            assert meter.values[name].value == last, name
            assert meter.values[name].stale, name
        for name in ("V_Backup_Nominal", "Meter_Baud_Rate", "Meter_Modbus_ID"):
            assert rig.assembler.rejections[f"{name}:out_of_bounds"] == 1, name


async def test_three_phase_totals_never_go_backwards_and_today_resets_only_at_midnight() -> None:
    async with three_phase() as rig:
        good = await rig.poll(AFTERNOON)
        assert good.value("Import_Energy_Total_kWh") == 18249.6
        assert good.value("Import_Energy_Today_kWh") == 19.8
        rig.set_inverter(1382, *u32(182_000))  # the lifetime import falls by 49.6 kWh
        rig.set_inverter(1380, *u32(0))  # today's import back to 0 at 13:00
        bad = await rig.poll(AFTERNOON + timedelta(seconds=10))
        assert bad.value("Import_Energy_Total_kWh") == 18249.6
        assert bad.value("Import_Energy_Today_kWh") == 19.8
        rejected = rig.assembler.rejections
        assert rejected["Import_Energy_Total_kWh:went_backwards"] == 1
        assert rejected["Import_Energy_Today_kWh:reset_outside_midnight"] == 1
        # Just after local midnight the daily total's reset is real and is taken.
        midnight = (AFTERNOON + timedelta(days=1)).replace(hour=0, minute=5)
        reset = await rig.poll(midnight)
        assert reset.value("Import_Energy_Today_kWh") == 0
        assert not reading(reset, "Import_Energy_Today_kWh").stale
        assert reset.value("Import_Energy_Total_kWh") == 18249.6  # still never backwards


async def test_a_page_of_all_ones_is_refused_and_counted() -> None:
    async with three_phase() as rig:
        await rig.poll(AFTERNOON)
        rig.put_page(INVERTER, 1120, [0xFFFF] * 60)  # the battery page: nothing was read
        snap = await rig.poll(AFTERNOON + timedelta(seconds=10))
        assert rig.cache.rejections[PageVerdict.ALL_ONES] == 1
        assert snap.value("SOC") == 92
        assert snap.value("Battery_Discharge_Power") == 1704.8


async def test_a_module_page_at_the_stack_address_and_back_is_refused() -> None:
    async with three_phase() as rig:
        good = await rig.poll(AFTERNOON)
        stack = next(b for b in good.batteries if b.address == 0x70)
        assert stack.values["Stack_Voltage"].value == 471.8
        module_page, stack_page = rig.page(0x50, 60), rig.page(0x70, 60)
        rig.put_page(0x70, 60, module_page)  # a module's cells where the stack's page belongs
        rig.put_page(0x51, 60, stack_page)  # the stack's page at a module's address
        snap = await rig.poll(AFTERNOON + timedelta(seconds=10))
        assert rig.cache.rejections[PageVerdict.WRONG_DEVICE] == 2
        stack = next(b for b in snap.batteries if b.address == 0x70)
        assert stack.values["Stack_Voltage"].value == 471.8  # not module_page[13] / 10
        module = next(b for b in snap.batteries if b.address == 0x51)
        assert module.values["Battery_Cell_1_Voltage"].value == good_cell(good, 0x51)


def good_cell(snap: Snapshot, address: int) -> Any:
    return (
        next(b for b in snap.batteries if b.address == address)
        .values["Battery_Cell_1_Voltage"]
        .value
    )


async def test_the_lv_bcu_page_read_at_the_settings_cadence_is_as_fresh_as_a_settings_page() -> (
    None
):
    """The Gen2's LV BCU (0x31) is read every settings interval, not every poll: its values stay
    fresh for as long as the settings do (HR age), while a live page (IR age) would be stale."""
    from tests.test_families_oracle import CASES

    store = unique_serials(capture_store(CASES["gen2"].path))
    now = [1000.0]
    async with DongleSimulator(store) as sim, DongleConnection(fast_settings(sim.port)) as conn:
        await conn.wait_connected(5)
        cache = RegisterCache(clock=lambda: now[0])
        reader = PlantReader(conn, cache, probe_timeout=0.3, probe_meters=False)
        layout = await reader.detect()
        assert LV_BCU in layout.batteries
        assert [b.cadence for b in layout.plan.for_device(LV_BCU)] == [Cadence.SLOW]
        assembler = SnapshotAssembler(layout.model, layout.serial, layout.fields, TZ,
                                      fresh_age={"IR": 90.0, "HR": 400.0},
                                      clock=lambda: now[0])  # fmt: skip
        await reader.refresh(layout.plan.blocks)

        def bcu_and_pack(snap: Snapshot) -> tuple[bool, bool]:
            bcu = next(b for b in snap.batteries if b.address == LV_BCU)
            pack = next(b for b in snap.batteries if b.address == 0x32)
            return (bcu.values["LV_BCU_Charge_Current_Request"].stale,
                    pack.values["Battery_SOC"].stale)  # fmt: skip

        first = assembler.build(cache, devices=layout.devices, now=AFTERNOON)
        assert bcu_and_pack(first) == (False, False)
        assert (
            next(b for b in first.batteries if b.address == LV_BCU)
            .values["LV_BCU_Charge_Current_Request"]
            .value
            == 83
        )
        now[0] += 200.0  # past the live pages' age, within the settings'
        assert bcu_and_pack(assembler.build(cache, devices=layout.devices, now=AFTERNOON)) == (
            False,
            True,
        )
        now[0] += 300.0  # past the settings' age too
        assert bcu_and_pack(assembler.build(cache, devices=layout.devices, now=AFTERNOON)) == (
            True,
            True,
        )


async def test_the_daemon_publishes_the_hv_bams_counts_and_keeps_them_fresh_as_settings(
    tmp_path: Path,
) -> None:
    """The real daemon against the captured three-phase plant (an HV stack with a BAMS at 0xA0;
    the HV Gen3 capture has none): the BAMS's BCU, module and cell counts are in the first
    snapshot, stay fresh past the live pages' age although not read again (its page is read at
    the settings cadence and judged by the settings' age), and the page is read again with the
    settings."""
    store = unique_serials(capture_store(THREE_PHASE))
    clock = ManualClock(datetime(2026, 6, 21, 12, 0, tzinfo=UTC))
    # Live pages are too old after 5 x 10 = 50 s, settings after 2 x 120 + 5 x 4 = 260 s.
    timings = {**FAST_INVERTER, "poll_interval": 5.0, "settings_interval": 120.0}
    async with DongleSimulator(store) as sim:
        daemon = Daemon(
            settings_for([sim], tmp_path / "state", inverter=timings), clock=clock, services=[]
        )
        for coord in daemon.coordinators:
            coord.reader.probe_timeout = 0.2
        runner = asyncio.create_task(daemon.run())
        coord = daemon.coordinators[0]

        async def after(seconds: float) -> Snapshot:
            """The snapshot of the poll that ``seconds`` more of the daemon's clock bring."""
            seen = coord.snapshot
            await clock.advance(seconds=seconds)
            async with asyncio.timeout(20):
                async for snap in coord.updates():
                    if snap is not seen:
                        return snap
            raise AssertionError("no snapshot")

        def bams_reads() -> int:
            return sum(
                1
                for r in sim.requests_seen()
                if isinstance(r, ReadRequest) and r.device_address == BAMS
            )

        def counts(snap: Snapshot) -> dict[str, tuple[Any, bool]]:
            bams = next(b for b in snap.batteries if b.address == BAMS)
            return {n: (bams.values[n].value, bams.values[n].stale)
                    for n in ("BCU_Count", "Module_Count", "Cell_Count")}  # fmt: skip

        fresh = {"BCU_Count": (1, False), "Module_Count": (6, False), "Cell_Count": (144, False)}
        try:
            first = await after(0)
            assert counts(first) == fresh
            reads = bams_reads()
            snap = await after(60)  # past the live pages' age: the stack's page is read again
            assert counts(snap) == fresh
            assert bams_reads() == reads  # ... the BAMS's is not, and is still fresh
            snap = await after(65)  # the settings are due (120 s): the BAMS page with them
            assert counts(snap) == fresh
            assert bams_reads() == reads + 1
        finally:
            daemon.stop()
            with contextlib.suppress(asyncio.CancelledError):
                await runner


def test_every_battery_and_meter_page_is_judged_by_the_cadence_it_is_read_at() -> None:
    """The freshness rule follows the read plan: no page is read at one cadence and judged by
    another's age, and no plan reads a page only once (it would soon be too old to publish)."""
    blocks = battery_blocks([*LV_PACKS, LV_BCU, *BMUS, *BCUS, BAMS]) + meter_blocks(METERS)
    for block in blocks:
        assert block.cadence is not Cadence.STATIC, block
        assert page_cadence(block.device_address, block.bank.value, block.base) is block.cadence
    assert page_cadence(BAMS, "IR", 60) is Cadence.SLOW
    assert page_cadence(LV_BCU, "IR", 60) is Cadence.SLOW
    assert page_cadence(INVERTER, "HR", 300) is Cadence.SLOW
    assert page_cadence(INVERTER, "IR", 180) is Cadence.FAST
    assert page_cadence(0x70, "IR", 120) is Cadence.FAST
