"""Write the register images the family simulators start from (src/givtcp_async/simulator/images).

Each image is the last value of every register a real capture holds (tests/fixtures/captures),
page by page; the simulator then moves the live values. Run from the repository root:
``python scripts/sim_images.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

from givtcp_async.protocol.capture import load_capture
from givtcp_async.simulator.store import PAGE, RegisterStore

ROOT = Path(__file__).resolve().parent.parent
CAPTURES = ROOT / "tests" / "fixtures" / "captures"
OUT = ROOT / "src" / "givtcp_async" / "simulator" / "images"
SOURCES = {
    "three_phase": "three_phase_hv_a/giv3hy11_da011_detect_10min.jsonl",
    "ems": "ems_2_inv_3_bat_a/ems_arm1036_30min.jsonl",
    "gateway": "gateway_2aio_a/gateway_gaaa0014_10min_daylight.jsonl",
}


def image(store: RegisterStore, source: str) -> dict[str, object]:
    devices = []
    for address, dev in sorted(store.devices.items()):
        banks: dict[str, dict[str, list[int]]] = {}
        for function, bases in sorted(dev.pages.items()):
            bank = dev.banks.get(function, {})
            banks[str(function)] = {
                str(base): [bank.get(r, 0) for r in range(base, base + PAGE)]
                for base in sorted(bases)
            }
        devices.append({"address": address, "serial": dev.serial.decode("latin1"), "banks": banks})
    return {"source": source, "devices": devices}


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for name, rel in SOURCES.items():
        store = RegisterStore.from_capture(load_capture(CAPTURES / rel))
        text = json.dumps(image(store, rel), separators=(",", ":"))
        (OUT / f"{name}.json").write_text(text + "\n")
        print(f"{name}: {len(text)} bytes from {rel}")


if __name__ == "__main__":
    main()
