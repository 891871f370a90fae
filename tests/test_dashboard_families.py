"""The dashboard of each plant family in headless Chromium, against the real daemon reading the
simulated three-phase, EMS and Gateway plants over TCP: every value it shows equals /runAll, each
family's own cards are there (per-phase grid, managed inverters, All-in-Ones, meters) and the
others' are not, and a value the gates refuse is shown as stale, never as a fresh number."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from playwright.async_api import Page

from givtcp_async.daemon import Daemon
from givtcp_async.quality.gates import Reading
from givtcp_async.registers.models import detect_model
from givtcp_async.registers.schema import Bank, Derived, Field
from givtcp_async.simulator.families import FamilyPlant, build_family_plant
from givtcp_async.simulator.server import DongleSimulator
from givtcp_async.sinks.rest import RestService
from givtcp_async.snapshot import Snapshot
from tests.harness import settings_for
from tests.servers import free_port
from tests.test_rest_browser import chromium, flatten, same

TZ = ZoneInfo("Europe/London")
NOON = datetime(2026, 6, 21, 13, 0, tzinfo=TZ)

# Visible [data-field] elements: [runAll path, text, state].
VISIBLE = """els => els.filter(e => !e.closest('[hidden]')).map(e =>
  [e.getAttribute('data-path'), e.textContent, e.getAttribute('data-state')])"""


@dataclass
class FamilyRig:
    plant: FamilyPlant
    sim: DongleSimulator
    daemon: Daemon
    session: aiohttp.ClientSession
    base: str

    async def runall(self) -> dict[str, Any]:
        async with self.session.get(f"{self.base}/runAll") as resp:
            assert resp.status == 200
            body: dict[str, Any] = await resp.json()
            return body


@contextlib.asynccontextmanager
async def family_rig(
    tmp_path: Path, family: str, *, frozen_registers: dict[int, int] | None = None
) -> AsyncIterator[FamilyRig]:
    """The daemon with REST, reading ``family``'s simulated plant (frozen in time);
    ``frozen_registers``: input registers set before the first poll and kept (the plant stops
    writing its registers)."""
    plant = build_family_plant(family, start=NOON, speed=0)  # frozen: every poll reads the same
    sim = plant.simulator()
    if frozen_registers:
        sim.pre_answer_hooks.remove(plant.sync)
        for register, value in frozen_registers.items():
            plant.set_ir(register, value)
    await sim.start()
    port = free_port()
    settings = settings_for([sim], tmp_path / "state", rest={"port": port})
    daemon = Daemon(settings)
    for coord in daemon.coordinators:
        coord.reader.probe_timeout = 0.2
    runner = asyncio.create_task(daemon.run(), name="test-daemon")
    try:
        async with asyncio.timeout(30):
            await daemon.started.wait()
            coord = daemon.coordinators[0]
            async for _snap in coord.updates():
                break
            rest = next(s for s in daemon.services if s.name == "rest")
            assert isinstance(rest, RestService)
            await rest.listening.wait()
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
            yield FamilyRig(plant, sim, daemon, session, f"http://127.0.0.1:{port}")
    finally:
        daemon.stop()
        with contextlib.suppress(asyncio.CancelledError):
            await runner
        await sim.close()


async def visible(page: Page) -> dict[str, tuple[str, str]]:
    out: dict[str, tuple[str, str]] = {}
    for path, text, state in await page.eval_on_selector_all("[data-field]", VISIBLE):
        assert out.get(path, (text, state)) == (text, state), f"{path} shown twice, differently"
        out[path] = (text, state)
    return out


async def open_page(page: Page, base: str, family: str) -> None:
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.goto(f"{base}/")
    await page.wait_for_selector(f"body[data-family='{family.replace('-', '_')}']")
    await page.wait_for_selector("#link[data-state=online]")
    assert errors == []


def check_equal(shown: dict[str, tuple[str, str]], runall: dict[str, Any]) -> None:
    values = flatten(runall)
    for path, (text, state) in shown.items():
        assert state in ("ok", "missing"), (path, state)
        if state == "ok":
            assert path in values, path
            assert same(text, values[path]), (path, text, values[path])


async def card_shown(page: Page, card: str) -> bool:
    return bool(await page.eval_on_selector(f"#{card}", "e => !e.hidden"))


@pytest.mark.parametrize("family", ["three-phase", "ems", "gateway"])
async def test_each_family_dashboard_shows_its_plant(tmp_path: Path, family: str) -> None:
    async with family_rig(tmp_path, family) as r, chromium() as browser:
        page = await browser.new_page()
        await open_page(page, r.base, family)
        runall = await r.runall()
        serial = r.daemon.coordinators[0].serial
        shown = await visible(page)
        check_equal(shown, runall)
        cards = {
            c: await card_shown(page, c)
            for c in ("phases-card", "members-card", "meters-card", "pv-card", "status-card")
        }
        if family == "three-phase":
            for n in (1, 2, 3):
                for kind in ("Voltage", "Current", "Power"):
                    assert f"Power/Power/Grid_Phase{n}_{kind}" in shown
                    assert f"Power/Power/EPS_Phase{n}_{kind}" in shown
            for path in ("Power/Power/PV_Voltage_String_2", "Power/Power/Battery_Power",
                         "Power/Power/SOC", "Power/Power/Load_Power",
                         "Energy/Today/Load_Energy_Today_kWh", "Energy/Total/PV_Energy_Total_kWh",
                         "Energy/Total/AC_Charge_Energy_Total_kWh",
                         f"{serial}/Inverter_Temperature", f"{serial}/Invertor_Status",
                         f"{serial}/Fault_Text", f"{serial}/Warning_Text"):  # fmt: skip
                assert path in shown, path
            assert cards == {"phases-card": True, "members-card": False, "meters-card": False,
                             "pv-card": True, "status-card": True}  # fmt: skip
        elif family == "ems":
            for n in (1, 2):
                base = f"Inverters/Inverter_{n}/Inverter_{n}_"
                for name in ("Power", "SOC", "Serial_Number", "Status", "Temperature"):
                    assert base + name in shown, base + name
            assert not any(p.startswith(("Inverters/Inverter_3/", "Inverters/Inverter_4/"))
                           for p in shown)  # fmt: skip  # the empty slots
            online = {p for p in shown if p.startswith("Power/Meters/")}
            meters = {f"Power/Meters/Meter_{n}_{k}" for n in (1, 3) for k in ("Power", "Status")}
            assert online == meters  # the Disabled slots are not shown
            for path in ("Power/Power/Grid_Power", "Power/Power/Calculated_Load_Power",
                         "Power/Power/Battery_Power", f"{serial}/Remaining_Battery_Wh",
                         f"{serial}/status"):  # fmt: skip
                assert path in shown, path
            assert cards["members-card"]
            assert cards["meters-card"]
            assert not cards["phases-card"]
            legend = await page.inner_text("#flow-card .legend")
            assert "+ import" in legend, legend  # the EMS's grid sign
        else:
            for n in (1, 2):
                base = f"Inverters/AIO_{n}/AIO_{n}_"
                for name in ("Invertor_Power", "SOC", "Serial_Number"):
                    assert base + name in shown, base + name
            assert not any(p.startswith("Inverters/AIO_3/") for p in shown)
            for path in ("Power/Power/Grid_Power", "Power/Power/Load_Power",
                         "Power/Power/PV_Power", "Power/Power/SOC", "Power/Power/Grid_Voltage",
                         "Energy/Total/Import_Energy_Total_kWh",
                         "Energy/Today/PV_Energy_Today_kWh", f"{serial}/Gateway_Mode",
                         f"{serial}/Gateway_Faults"):  # fmt: skip
                assert path in shown, path
            assert cards["members-card"]
            assert not cards["phases-card"]
            legend = await page.inner_text("#flow-card .legend")
            assert "+ export" in legend, legend
        # Nothing of another family is shown: every visible value is one the model has.
        assert all(state != "absent" for _text, state in shown.values())


async def test_a_refused_value_is_shown_stale_not_fresh(tmp_path: Path) -> None:
    async with family_rig(tmp_path, "three-phase") as r, chromium() as browser:
        page = await browser.new_page()
        await open_page(page, r.base, "three-phase")
        soc = "[data-field='Power/Power/SOC']"
        assert await page.get_attribute(f"#battery-card {soc}", "data-state") == "ok"
        good = await page.text_content(f"#battery-card {soc}")
        # The plant stops moving and its SOC register reads an impossible 250 %.
        r.sim.pre_answer_hooks.remove(r.plant.sync)
        r.plant.set_ir(1132, 250)
        r.daemon.coordinators[0].request_refresh(settings=False)
        await page.wait_for_selector(f"#battery-card {soc}[data-state=stale]")
        assert await page.text_content(f"#battery-card {soc}") == good  # the last good value
        assert await page.get_attribute(f"#battery-card {soc}", "title") is not None
        badge = page.locator("#quality")
        assert await badge.is_visible()
        assert int(await badge.get_attribute("data-stale") or 0) >= 1
        assert "stale" in await badge.inner_text()


async def test_a_value_never_read_valid_is_marked_missing(tmp_path: Path) -> None:
    # From the first poll the SOC reads an impossible 250 %: no last good value to show.
    async with family_rig(tmp_path, "three-phase", frozen_registers={1132: 250}) as r, \
            chromium() as browser:  # fmt: skip
        page = await browser.new_page()
        await open_page(page, r.base, "three-phase")
        soc = "#battery-card [data-field='Power/Power/SOC']"
        assert await page.get_attribute(soc, "data-state") == "missing"
        assert await page.text_content(soc) == "\u2013"
        assert await page.get_attribute(soc, "title") == "no valid reading now"
        assert "SOC" not in (await r.runall())["Power"]["Power"]  # never published wrong
        badge = page.locator("#quality")
        assert int(await badge.get_attribute("data-missing") or 0) >= 1
        assert "Power/Power/SOC" in (await badge.get_attribute("title") or "")
        # The rest of the plant is still shown.
        assert (
            await page.get_attribute("[data-field='Power/Power/Grid_Phase1_Voltage']", "data-state")
            == "ok"
        )


def test_snapshot_quality_names_stale_and_missing_runall_paths() -> None:
    """What the dashboard marks: a stale reading, a field without a valid reading, and a
    derived value worked out from valid readings as nothing (not this plant's: not missing)."""
    model = detect_model({0: 0x4004, 19: 1, 21: 1})
    soc = Field("SOC", ("Power", "Power"), Bank.INPUT, (1132,))
    temp = Field("Inverter_Temperature", ("Invertor_Details",), Bank.INPUT, (1128,))
    volts = Field("BMS_Voltage", ("Power", "Power"), Bank.INPUT, (1131,))
    rate = Derived("Invertor_Max_Bat_Rate", ("Invertor_Details",), ("SOC",), lambda v, m: None)
    lost = Derived("Lost", ("Power", "Power"), ("BMS_Voltage",), lambda v, m: None)
    specs: dict[str, Field | Derived] = {s.name: s for s in (soc, temp, volts, rate, lost)}
    values = {"SOC": Reading(64, stale=True), "Inverter_Temperature": Reading(None),
              "BMS_Voltage": Reading(None), "Invertor_Max_Bat_Rate": Reading(None)}  # fmt: skip
    snap = Snapshot("TC2337G000", model, datetime(2026, 6, 21, tzinfo=TZ), values, specs)
    assert snap.quality() == {
        "stale": ["Power/Power/SOC"],
        "missing": ["Power/Power/BMS_Voltage", "Power/Power/Lost",
                    "TC2337G000/Inverter_Temperature"],
    }  # fmt: skip
