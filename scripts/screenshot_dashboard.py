"""Take the README's picture of the dashboard: docs/img/dashboard.png.

Start the demo first (`givtcp-async demo --port 6399 --speed 720`, then wait a minute for the
simulated sun), then: `.venv/bin/python scripts/screenshot_dashboard.py http://127.0.0.1:6399/`.
Uses Debian's chromium through Playwright (both from scripts/test.sh).
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from playwright.async_api import async_playwright

OUT = Path(__file__).resolve().parents[1] / "docs" / "img" / "dashboard.png"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]


async def shoot(url: str, out: Path) -> None:
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 900})
            await page.goto(url)
            await page.wait_for_selector("[data-field]")  # the first snapshot is shown
            await page.wait_for_timeout(3000)  # and the power flow has moved (a picture only)
            await page.screenshot(path=str(out))
        finally:
            await browser.close()


if __name__ == "__main__":
    asyncio.run(shoot(sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:6345/", OUT))
