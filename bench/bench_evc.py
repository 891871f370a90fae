"""One poll of an EV charger, against the simulated charger over Modbus TCP on 127.0.0.1.

A poll is what :meth:`EvcCoordinator.poll_once` does: two holding-register reads (HR0-59,
HR60-114) over the charger's serialised pymodbus connection, decoding every field, the value
gates, the derived and held values, and publishing the snapshot. Its wall time is compared, in
the same run, with pymodbus's own client doing just the two reads (the peer: what any pymodbus
program pays for the same data). The CPU time of building the snapshot from registers already
read is shown on its own. The simulator runs in this process (a car charging, model frozen), so
the wall times include its answering.

Run: ``.venv/bin/python -m bench.bench_evc [--polls N]``
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import time
from datetime import UTC, datetime

from pymodbus.client import AsyncModbusTcpClient

from bench.common import Row, Timer, percentile, quiet_logs
from givtcp_async.evc.connection import EvcLinkSettings
from givtcp_async.evc.coordinator import EvcCoordinator, EvcSettings
from givtcp_async.evc.simulator import Car, ChargerSimulator
from givtcp_async.evc.state import EvcState
from givtcp_async.registers.evc import BLOCKS


async def _raw_reads(port: int, polls: int) -> list[float]:
    client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=2, retries=0)
    await client.connect()
    times: list[float] = []
    try:
        for i in range(polls + 10):
            start = time.perf_counter()
            for base, count in BLOCKS:
                resp = await client.read_holding_registers(base, count=count, device_id=1)
                assert not resp.isError()
            if i >= 10:
                times.append(time.perf_counter() - start)
    finally:
        client.close()
    return times


async def measure(polls: int = 200) -> list[Row]:
    sim = ChargerSimulator(speed=0.0)
    sim.plug_in(Car())
    async with sim:
        coord = EvcCoordinator(EvcSettings(EvcLinkSettings("127.0.0.1", sim.port)))
        ours: list[float] = []
        values = 0
        try:
            for i in range(polls + 10):
                start = time.perf_counter()
                snap = await coord.poll_once()
                if i >= 10:
                    ours.append(time.perf_counter() - start)
                if snap is None or snap.stale():
                    raise RuntimeError("a poll of the simulated charger failed")
                values = len(snap.values)
        finally:
            await coord.conn.close()
        peer = await _raw_reads(sim.port, polls)
        registers = dict(enumerate(sim.render()))
    held = EvcState().held_values()
    now = datetime.now(UTC)
    builds = 2000
    with Timer() as cpu:
        for _ in range(builds):
            coord.assembler.build(registers, serial=sim.serial, held=held, now=now)
    build_us = cpu.cpu / builds * 1000
    p50, p95 = percentile(ours, 0.5) * 1000, percentile(ours, 0.95) * 1000
    r50 = percentile(peer, 0.5) * 1000
    ratio = statistics.median(ours) / statistics.median(peer)
    print(f"{polls} polls of the simulated charger (2 reads, {values} values each)")
    print(f"one poll through EvcCoordinator.poll_once  p50 {p50:.2f} ms  p95 {p95:.2f} ms")
    print(f"the same two reads with pymodbus's client  p50 {r50:.2f} ms  "
          f"p95 {percentile(peer, 0.95) * 1000:.2f} ms")  # fmt: skip
    print(f"ratio (median) ours / pymodbus alone        {ratio:.2f}")
    print(f"snapshot build from registers (decode, gates, derived): {build_us:.0f} µs CPU")
    return [
        Row(
            f"EV charger: one poll (2 Modbus TCP reads, {values} values)",
            f"p50 {p50:.2f} ms, p95 {p95:.2f} ms",
            f"pymodbus reads alone p50 {r50:.2f} ms; ratio {ratio:.2f}",
        ),
        Row("  of which the snapshot build (decode, gates)", f"{build_us:.0f} µs CPU"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--polls", type=int, default=200)
    args = parser.parse_args()
    quiet_logs(logging.WARNING)
    asyncio.run(measure(args.polls))


if __name__ == "__main__":
    main()
