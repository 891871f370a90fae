"""Whose inverter this is (issue 15, points 1, 5 and 16): pinned serials, serials that are not
GivEnergy's, pages nobody of ours asked for, and pages of all ones. The dongle side is faked for
real: the simulator at the inverter's address starts answering as another unit, broadcasts pages
to every client, or answers with all-0xFFFF pages."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from structlog.testing import capture_logs

from givtcp_async.assemble import SnapshotAssembler
from givtcp_async.cache import RegisterCache
from givtcp_async.connection import DongleConnection, Priority
from givtcp_async.coordinator import InverterCoordinator
from givtcp_async.daemon import Daemon
from givtcp_async.errors import IdentityError
from givtcp_async.protocol.frames import FunctionCode, ReadResponse, WriteRequest
from givtcp_async.quality.pages import PageVerdict, is_valid_serial
from givtcp_async.reader import PlantReader
from givtcp_async.simulator.plant import Plant, PlantConfig
from givtcp_async.simulator.server import DongleSimulator
from givtcp_async.simulator.store import RegisterStore
from tests.control_support import build_store, fast_settings
from tests.harness import FAST_INVERTER, running_daemon, settings_for
from tests.rest_support import NOON
from tests.servers import free_port
from tests.test_cli import clean_env, cli

HR = FunctionCode.READ_HOLDING
INVERTER = 0x11
OTHER = "SA1111A111"


def words(text: str) -> list[int]:
    raw = text.encode().ljust(10, b"\x00")
    return [int.from_bytes(raw[i : i + 2], "big") for i in range(0, 10, 2)]


def become(store: RegisterStore, serial: str) -> None:
    """The unit behind the simulated dongle turns into the one with ``serial`` (HR13-17 and the
    serial in every answer's header)."""
    for dev in store.devices.values():
        dev.serial = serial.encode().ljust(10, b"\x00")
    inv = store.device(INVERTER)
    assert inv is not None
    for i, word in enumerate(words(serial)):
        inv.set(HR, 13 + i, word)


async def refused(coord: InverterCoordinator) -> str:
    async with asyncio.timeout(15):
        return await coord.wait_problem()


async def one_poll(coord: InverterCoordinator) -> None:
    """Poll now and return once that poll is done."""
    coord.request_refresh()
    async with asyncio.timeout(15):
        await coord.wait_idle()


async def barrier(coord: InverterCoordinator) -> None:
    """Return once every frame the dongle sent before now has been handled: a read of our own
    is answered after them (TCP keeps the order)."""
    await coord.conn.read(INVERTER, HR, 0, 1, priority=Priority.COMMAND)


FROZEN = PlantConfig(speed=0, start=NOON.replace(tzinfo=None))


# --- 1: a pinned serial refuses another unit ---------------------------------------------------


async def test_a_pinned_serial_refuses_another_inverter_everywhere(tmp_path: Path) -> None:
    port = free_port()
    with capture_logs() as logs:
        async with running_daemon(
            tmp_path, plant_config=FROZEN, inverter={"serial": "SA9999Z999"},
            rest={"port": port},
        ) as rig:  # fmt: skip
            coord = rig.coordinator
            await refused(coord)
            async with aiohttp.ClientSession() as http:
                base = f"http://127.0.0.1:{port}"
                async with http.post(f"{base}/setChargeTarget", data="80") as resp:
                    status, body = resp.status, await resp.json()
                assert status == 409, body
                assert "SA9999Z999" in body["message"]
                assert rig.plant.serial in body["message"]
                async with http.get(f"{base}/health") as resp:
                    health = await resp.json()
                    assert resp.status == 503
                problem = health["inverters"][0]["problem"]
                assert "SA9999Z999" in problem
                assert rig.plant.serial in problem
                async with http.get(f"{base}/metrics") as resp:
                    assert "givtcp_inverter_identity_mismatch{serial=" in await resp.text()
                    assert 'identity_mismatch{serial="SA9999Z999"} 1' in await resp.text()
            assert coord.snapshot is None  # nothing published
            assert not [r for r in rig.sim.requests_seen() if isinstance(r, WriteRequest)]
    errors = [e for e in logs if e["log_level"] == "error" and e["event"] == "inverter refused"]
    assert len(errors) == 1
    assert "SA9999Z999" in errors[0]["problem"]


async def test_another_unit_answering_mid_run_stops_writes_and_publication(
    tmp_path: Path,
) -> None:
    async with running_daemon(tmp_path, plant_config=FROZEN) as rig:
        coord = rig.coordinator
        first = await rig.first_snapshot()
        ours = first.serial
        become(rig.plant.store, OTHER)  # a DHCP swap: another inverter at the same address
        await one_poll(coord)
        assert OTHER in await refused(coord)
        published = coord.snapshot
        result = await coord.execute("setChargeTarget", "80")
        assert result.status == "rejected"
        assert OTHER in result.message
        assert ours in result.message
        assert result.errors[0]["field"] == "serial"
        assert not coord.health().online
        assert OTHER in (coord.health().problem or "")
        assert coord.metrics()["identity_mismatch"] == 1
        await one_poll(coord)
        assert coord.snapshot is published  # polled, but nothing of the other unit published
        assert coord.cache.rejections[PageVerdict.IDENTITY] > 0
        become(rig.plant.store, ours)  # the right one is back
        coord.request_refresh()
        snap = await rig.next_snapshot()
        assert snap.value("Invertor_Serial_Number") == ours
        assert coord.problem() is None
        assert not [r for r in rig.sim.requests_seen() if isinstance(r, WriteRequest)]


async def test_write_and_read_exit_non_zero_on_a_serial_mismatch(tmp_path: Path) -> None:
    store, _ = build_store("gen1")
    async with DongleSimulator(store) as sim:
        config = tmp_path / "c.toml"
        config.write_text(
            f'[[inverters]]\nhost = "127.0.0.1"\nport = {sim.port}\nserial = "SA9999Z999"\n'
            f'[control]\nstate_dir = "{tmp_path / "state"}"\n'
        )
        for args in (["write", "setChargeTarget", "80"], ["read", "--no-meters"]):
            code, out, err = await cli(*args, "--config", str(config), cwd=tmp_path,
                                       env=clean_env())  # fmt: skip
            assert code == 1, (args, err)
            assert out == ""
            lines = [line for line in err.splitlines() if line.startswith("givtcp-async:")]
            assert len(lines) == 1, err
            assert "serial mismatch" in lines[0], lines
            assert "SA9999Z999" in lines[0], lines
        assert not [r for r in sim.requests_seen() if isinstance(r, WriteRequest)]


# --- 5: a serial that is not GivEnergy's never becomes a topic ------------------------------


async def test_a_serial_that_is_not_givenergys_is_refused_at_detection(tmp_path: Path) -> None:
    plant = Plant(FROZEN)
    become(plant.store, "A/+#B/../")
    async with plant.simulator() as sim:
        daemon = Daemon(settings_for([sim], tmp_path / "state", inverter=FAST_INVERTER))
        runner = asyncio.create_task(daemon.run())
        try:
            coord = daemon.coordinators[0]
            assert "'A/+#B/../', which is not a GivEnergy serial" in await refused(coord)
            assert coord.layout is None
            assert coord.snapshot is None
        finally:
            daemon.stop()
            await runner


async def test_a_battery_module_serial_that_is_not_givenergys_is_not_published() -> None:
    store, _ = build_store("aio")
    module = store.device(0x51)
    assert module is not None
    for i, word in enumerate(words("HX/+#B/../")):
        module.set(FunctionCode.READ_INPUT, 114 + i, word)
    async with DongleSimulator(store) as sim, DongleConnection(fast_settings(sim.port)) as conn:
        await conn.wait_connected(5)
        cache = RegisterCache()
        reader = PlantReader(conn, cache, probe_timeout=0.3, probe_meters=False)
        layout = await reader.detect()
        await reader.refresh(layout.plan.blocks)
    from datetime import datetime
    from zoneinfo import ZoneInfo

    tz = ZoneInfo("Europe/London")
    snap = SnapshotAssembler(layout.model, layout.serial, layout.fields, tz).build(
        cache, devices=layout.devices, now=datetime.now(tz)
    )
    serials = [b.serial for b in snap.batteries if b.serial]
    assert serials
    assert all(is_valid_serial(s) for s in serials), serials
    assert "HX/+#B/../" not in str(snap.runall())


def test_a_pinned_serial_in_the_configuration_must_be_givenergys() -> None:
    from givtcp_async.config import InverterConfig

    assert InverterConfig(host="h", serial="sa2347g000").serial == "SA2347G000"
    for bad in ("A/+#B/../x", "SA2347G00", "ABCDEFGHIJ"):
        with pytest.raises(ValueError, match="not a GivEnergy serial"):
            InverterConfig(host="h", serial=bad)


# --- 16: pages nobody of ours asked for, and pages of all ones ---------------------------------


async def test_unsolicited_pages_are_accepted_only_from_this_inverter(tmp_path: Path) -> None:
    async with running_daemon(tmp_path, plant_config=FROZEN) as rig:
        coord = rig.coordinator
        snap = await rig.first_snapshot()
        serial = snap.serial.encode()
        await coord.wait_idle()  # no poll of ours until the next interval
        page0 = coord.cache.page(INVERTER, "HR", 0)
        page60 = coord.cache.page(INVERTER, "HR", 60)
        assert page0 is not None
        assert page60 is not None
        reserve = page60.values[110 - 60]
        zero_reserve = list(page60.values)
        zero_reserve[110 - 60] = 0
        other_serial = list(page0.values)
        other_serial[13:18] = words(OTHER)
        injected: list[ReadResponse] = [
            ReadResponse(INVERTER, HR, OTHER.encode(), 60, tuple(zero_reserve)),  # another unit
            ReadResponse(INVERTER, HR, serial, 0, tuple(other_serial)),  # HR13-17 say another
            ReadResponse(INVERTER, HR, serial, 110, (0, 0, 0, 0, 0)),  # a page we never read
        ]
        for frame in injected:
            rig.sim.broadcast(frame)
        await barrier(coord)
        assert coord.cache.get(INVERTER, "HR", 110) == reserve
        assert coord.cache.page(INVERTER, "HR", 0) == page0
        assert coord.cache.rejections[PageVerdict.IDENTITY] == len(injected)
        assert coord.problem() is None  # fan-out never counts as another unit answering us
        # Genuine fan-out (this inverter, a page our polls read) is still free data.
        rig.sim.broadcast(ReadResponse(INVERTER, HR, serial, 60, tuple(zero_reserve)))
        await barrier(coord)
        assert coord.cache.get(INVERTER, "HR", 110) == 0


async def test_an_all_ones_page_never_publishes_65535(tmp_path: Path) -> None:
    async with running_daemon(tmp_path, plant_config=FROZEN) as rig:
        coord = rig.coordinator
        await rig.first_snapshot()
        rig.sim.faults.add("ones_page", count=50)  # every read of the next poll
        coord.request_refresh()
        snap = await rig.next_snapshot()
        assert coord.cache.rejections[PageVerdict.ALL_ONES] > 0
        enums = {n: r.value for n, r in snap.values.items() if _is_enum(snap.specs[n])}
        assert enums
        assert 65535 not in enums.values(), enums
        assert "65535" not in str(snap.runall())


def _is_enum(spec: Any) -> bool:
    return getattr(spec, "options", None) is not None


def test_an_enum_register_of_all_ones_decodes_to_nothing() -> None:
    from givtcp_async.registers.catalog import fields_for
    from givtcp_async.registers.decode import decode_field
    from tests.control_support import model_of

    enums = [f for f in fields_for(model_of("gen3")) if f.options is not None]
    assert enums
    for field in enums:
        assert decode_field(field, lambda _r: 0xFFFF) is None, field.name


def test_identity_error_is_a_detection_error() -> None:
    from givtcp_async.errors import DetectionError

    assert issubclass(IdentityError, DetectionError)
