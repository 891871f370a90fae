"""The dashboard in headless Chromium (Debian's /usr/bin/chromium, driven by Playwright) against
the daemon and the simulated plant: the power flow shown equals /runAll, updates arrive live,
and the controls change the simulator's registers (with the API token when one is set)."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from playwright.async_api import Browser, Page, async_playwright

from givtcp_async.protocol.frames import WriteRequest
from tests.rest_support import TOKEN, RestRig, rest_rig, settled

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
]


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    path = shutil.which("chromium") or CHROMIUM
    assert shutil.which(path), "chromium is not installed: run scripts/test.sh (apt chromium)"
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=path, args=ARGS, headless=True)
        try:
            yield browser
        finally:
            await browser.close()


def flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in node.items():
        path = f"{prefix}/{key}" if prefix else key
        if isinstance(value, dict):
            out.update(flatten(value, path))
        else:
            out[path] = value
    return out


async def shown(page: Page, selector: str) -> dict[str, str]:
    """The text of every visible element matching ``selector`` that shows a runAll field, by
    path (the page hides what the model does not have)."""
    pairs = await page.eval_on_selector_all(
        selector,
        "els => els.filter(e => !e.closest('[hidden]'))"
        ".map(e => [e.getAttribute('data-path'), e.textContent])",
    )
    out: dict[str, str] = {}
    for path, text in pairs:
        assert out.get(path, text) == text, f"{path} shown twice, differently"
        out[path] = text
    return out


def same(text: str, value: Any) -> bool:
    if isinstance(value, bool):
        return text == str(value).lower()
    if isinstance(value, int | float):
        return float(text) == float(value)
    return text == str(value)


async def click_and_wait(r: RestRig, page: Page, button: str, function: str) -> dict[str, str]:
    """Click a control and return the result entry the page adds for it."""
    before = await page.locator(f".result[data-function='{function}']").count()
    await page.click(button)
    entry = page.locator(f".result[data-function='{function}']")
    await entry.nth(before).wait_for()  # newest first: the new entry is at the top
    first = entry.first
    return {
        "status": await first.get_attribute("data-status") or "",
        "http": await first.get_attribute("data-http") or "",
        "text": await first.inner_text(),
    }


async def test_dashboard_shows_runall_and_its_controls_write_registers(tmp_path: Path) -> None:
    async with rest_rig(tmp_path, token=TOKEN) as r, chromium() as browser:
        await settled(r.rig)
        page = await browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
        await page.goto(r.url(""))
        await page.wait_for_selector("body[data-taken-at]")
        await page.wait_for_selector("#link[data-state=online]")

        # The power flow (and everything else shown) equals /runAll at that moment; the plant
        # is frozen, so every snapshot carries the same values.
        status, runall = await r.get("runAll")
        assert status == 200
        values = flatten(runall)
        flow = await shown(page, "#flow [data-field]")
        assert len(flow) == 11
        for path, text in flow.items():
            assert path in values, path
            assert same(text, values[path]), (path, text, values[path])
        assert sum(float(flow[p]) for p in flow if "/Flows/" in p) > 0, "no power flowing"
        everything = await shown(page, "[data-field]")
        for path, text in everything.items():
            assert same(text, values[path]), (path, text, values[path])
        active = await page.eval_on_selector_all("#flow path.active", "els => els.length")
        assert active >= 1
        slot1 = await page.text_content("[data-slot='charge-1']")
        start = str(values["Timeslots/Charge_start_time_slot_1"])[:5]
        assert slot1 is not None
        assert slot1.startswith(start)

        # Without the token the command is refused and nothing is written.
        mark = r.rig.sim.mark()
        target_before = r.hr(116)
        await page.fill("#charge-target", "37")
        result = await click_and_wait(r, page, "#charge-target-set", "setChargeTarget")
        assert (result["status"], result["http"]) == ("error", "401"), result
        assert r.hr(116) == target_before
        assert r.writes_seen(mark) == []

        # With it, the register changes and the page shows the new value live (no reload).
        await page.fill("#token", TOKEN)
        await page.fill("#charge-target", "37")
        result = await click_and_wait(r, page, "#charge-target-set", "setChargeTarget")
        assert (result["status"], result["http"]) == ("ok", "200"), result
        assert "HR116" in result["text"]
        await r.rig.sim.wait_for(
            lambda e: isinstance(e.frame, WriteRequest) and e.frame.register == 116, after=mark
        )
        assert r.hr(116) == 37
        await page.wait_for_function(
            "document.querySelector('#battery-card [data-field=\"Control/Target_SOC\"]')"
            ".textContent === '37'"
        )

        result = await click_and_wait(r, page, "#eco-disable", "setEcoMode")
        assert result["status"] == "ok", result
        assert r.hr(27) == 0

        await page.fill("#slot1-start", "02:15")
        await page.fill("#slot1-finish", "05:45")
        result = await click_and_wait(r, page, "#slot1-set", "setChargeSlot1")
        assert result["status"] == "ok", result
        assert (r.hr(94), r.hr(95)) == (215, 545)

        await page.select_option("#mode", "Timed Demand")
        result = await click_and_wait(r, page, "#mode-set", "setBatteryMode")
        assert result["status"] == "ok", result
        assert (r.hr(27), r.hr(59)) == (1, 1)

        result = await click_and_wait(r, page, "#force-charge-start", "forceCharge")
        assert result["status"] == "ok", result
        assert r.hr(116) == 100
        result = await click_and_wait(r, page, "#force-charge-cancel", "forceCharge")
        assert result["status"] == "ok", result
        assert r.hr(116) == 37

        # A refused value: the page shows the field and what is allowed; nothing written.
        mark = r.rig.sim.mark()
        await page.fill("#reserve", "2")
        result = await click_and_wait(r, page, "#reserve-set", "setBatteryReserve")
        assert (result["status"], result["http"]) == ("rejected", "422"), result
        assert "reservePercent" in result["text"]
        assert "4-100" in result["text"]
        assert r.writes_seen(mark) == []
        assert [e for e in errors if "401" not in e and "422" not in e] == []
