"""Time a request spends in our code, over and above the dongle's own response time.

A simulated dongle answers every read after a fixed delay; DongleConnection (pacing 0) does
N sequential reads over TCP on 127.0.0.1. For each read, the simulator's own time is from
receiving the request to sending the answer (its event log); the rest of the caller's round
trip is overhead: queueing, encoding, both TCP hops, stream decoding, matching, wake-ups.

Run: ``.venv/bin/python -m bench.bench_connection [--reads N] [--delay SECONDS]``
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics

from bench.common import Row, percentile, quiet_logs
from givtcp_async.connection import ConnectionSettings, DongleConnection
from givtcp_async.protocol.frames import FunctionCode
from givtcp_async.simulator.server import DongleSimulator, SimulatorConfig
from givtcp_async.simulator.store import RegisterStore

BLOCKS = [
    (FunctionCode.READ_INPUT, 0),
    (FunctionCode.READ_INPUT, 180),
    (FunctionCode.READ_HOLDING, 0),
    (FunctionCode.READ_HOLDING, 60),
    (FunctionCode.READ_HOLDING, 120),
]


def make_store() -> RegisterStore:
    store = RegisterStore()
    dev = store.add_device(0x11, b"SA1234G567")
    for function, base in BLOCKS:
        dev.add_page(function, base, [(base + i) * 3 & 0xFFFF for i in range(60)])
    return store


async def run(reads: int, delay: float, warmup: int) -> list[Row]:
    loop = asyncio.get_running_loop()
    config = SimulatorConfig(response_delay=delay, heartbeat_interval=3600)
    async with DongleSimulator(make_store(), config) as sim:
        settings = ConnectionSettings(
            "127.0.0.1", sim.port, pacing=0.0, read_timeout=max(2.0, delay * 10)
        )
        async with DongleConnection(settings) as conn:
            await conn.wait_connected(5)
            totals: list[float] = []
            dongle: list[float] = []
            for i in range(warmup + reads):
                function, base = BLOCKS[i % len(BLOCKS)]
                mark = sim.mark()
                start = loop.time()
                await conn.read(0x11, function, base, 60)
                end = loop.time()
                req = await sim.wait_for(lambda e: e.kind == "request", after=mark)
                resp = await sim.wait_for(lambda e: e.kind == "response", after=mark)
                if i >= warmup:
                    totals.append(end - start)
                    dongle.append(resp.time - req.time)
            if conn.stats.timeouts or conn.stats.retries:
                raise SystemExit(f"reads timed out, figures are meaningless: {conn.stats}")
    overhead = [(t - d) * 1000 for t, d in zip(totals, dongle, strict=True)]
    mean_total = statistics.fmean(totals)
    mean_dongle = statistics.fmean(dongle)
    print(f"{reads} sequential 60-register reads, simulator response delay {delay * 1000:.0f} ms")
    print(
        f"round trip seen by the caller  mean {mean_total * 1000:7.3f} ms   "
        f"p50 {percentile(totals, 0.5) * 1000:7.3f}   p95 {percentile(totals, 0.95) * 1000:7.3f}"
    )
    print(f"simulator's own response time  mean {mean_dongle * 1000:7.3f} ms")
    print(
        f"overhead in our code           mean {statistics.fmean(overhead):7.3f} ms   "
        f"p50 {percentile(overhead, 0.5):7.3f}   p95 {percentile(overhead, 0.95):7.3f}   "
        f"max {max(overhead):7.3f}"
    )
    print(
        f"ratio round trip / dongle time {mean_total / mean_dongle:7.3f}   "
        f"(overhead = {statistics.fmean(overhead) / (mean_dongle * 1000) * 100:.1f} % "
        "of the dongle's time)"
    )
    return [
        Row(
            f"connection: time in our code per read ({delay * 1000:.0f} ms simulated response)",
            f"p50 {percentile(overhead, 0.5):.2f} ms, p95 {percentile(overhead, 0.95):.2f} ms",
            f"round trip {mean_total / mean_dongle:.3f} x simulator time",
        )
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reads", type=int, default=200)
    parser.add_argument("--delay", type=float, default=0.020, help="simulator response delay")
    parser.add_argument("--warmup", type=int, default=10)
    args = parser.parse_args()
    quiet_logs(logging.WARNING)
    asyncio.run(run(args.reads, args.delay, args.warmup))


if __name__ == "__main__":
    main()
