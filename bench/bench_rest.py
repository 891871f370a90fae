"""REST command latency: from the HTTP request to the write frame at the simulator, and back.

The daemon runs with its REST service (as in the REST tests: frozen simulated plant, connection
pacing 0) and an aiohttp client POSTs ``setChargeTarget`` with alternating values, so every
command writes. For each, the latency runs from just before the request to the write request
arriving at the simulator (its event log, same clock), and to the HTTP response (sent once the
write was echoed and read back). The controller reads the register fresh before writing
(skip-if-equal), so one read round trip is part of the latency. Commands are timed on an idle
daemon: after each, the bench waits for the refresh that follows a write.

Run: ``.venv/bin/python -m bench.bench_rest [--commands N]``
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import tempfile
from pathlib import Path

from bench.common import Row, latency_rows, quiet_logs
from givtcp_async.protocol.frames import WriteRequest
from givtcp_async.simulator.server import SimEvent
from tests.rest_support import rest_rig, settled

WARMUP = 3


def is_write(event: SimEvent) -> bool:
    return event.kind == "request" and isinstance(event.frame, WriteRequest)


async def measure(commands: int) -> list[Row]:
    """Time ``commands`` REST commands (after warm-up); print and return the figures."""
    to_write: list[float] = []
    to_response: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        async with rest_rig(Path(tmp)) as r:
            rig = r.rig
            await settled(rig)  # the meter scan after the first poll is over
            loop = asyncio.get_running_loop()
            for i in range(WARMUP + commands):
                value = 50 + i % 2
                mark = rig.sim.mark()
                t0 = loop.time()
                status, body = await r.post("setChargeTarget", {"chargeToPercent": str(value)})
                t1 = loop.time()
                if status != 200 or body.get("status") != "ok":
                    raise RuntimeError(f"command failed: {status} {body}")
                event = await rig.sim.wait_for(is_write, after=mark)
                if i >= WARMUP:
                    to_write.append((event.time - t0) * 1000)
                    to_response.append((t1 - t0) * 1000)
                # Let the refresh that follows every write finish (a poll in flight would
                # delay the next command by up to one read).
                async for fresh in rig.coordinator.updates():
                    if fresh.value("Target_SOC") == value:
                        break
    return latency_rows(
        "REST command setChargeTarget",
        [("POST -> write at simulator", to_write), ("POST -> response received", to_response)],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commands", type=int, default=50, help="commands timed (50)")
    args = parser.parse_args()
    quiet_logs(logging.CRITICAL)
    asyncio.run(measure(args.commands))


if __name__ == "__main__":
    main()
