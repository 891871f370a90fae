"""One full refresh of the default plant, and the CPU time to turn it into a snapshot.

The default simulated plant (Gen3 hybrid, two packs) answers every request after a fixed delay,
like a real dongle (~0.25 s per 60-register read; a smaller delay keeps the run short). A full
refresh reads every block of the read plan through the connection queue with the default pacing.
The lower bound is requests x the simulator's response time: the dongle's own time, which no
client can avoid.

Then the CPU time to turn one refresh into a validated model, ours and the peer's on the same
frames (the response frames of that refresh, as bytes): ours decodes each frame (CRC checked),
offers it to the register cache (page gate) and builds the snapshot (``SnapshotAssembler.build``:
decode, value gates, derived values); givenergy-modbus 2.13.0 decodes each frame
(``ClientIncomingMessage.decode_bytes``, CRC checked), updates its ``Plant`` with it and builds
its models (``plant.inverter``, ``plant.batteries``). Both are warm (the peer's plant has seen
the frames three times: its splice guard holds a pack's first page back). ``build`` alone is
shown too: the figure the build goal is about.

Then the same ``build`` for a full three-phase refresh, the largest map (issue 12): the captured
GIV-3HY-11 plant (``tests/fixtures/captures/three_phase_hv_a``: the inverter's IR1000-1413 and
HR1000-1124, a BCU, six modules, the BAMS, two meters) served by our simulator with no delay,
detected and refreshed through the connection, then ``SnapshotAssembler.build`` of it (decode,
value gates, derived values) timed on its own, median of N. Goal: under 2 ms.

Run: ``.venv/bin/python -m bench.bench_refresh [--delay S] [--pacing S] [--refreshes N]``
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from bench.common import Row, quiet_logs
from givtcp_async.assemble import SnapshotAssembler
from givtcp_async.cache import RegisterCache
from givtcp_async.connection import ConnectionSettings, DongleConnection
from givtcp_async.protocol.capture import load_capture
from givtcp_async.protocol.frames import ReadResponse, decode_frame
from givtcp_async.reader import PlantLayout, PlantReader
from givtcp_async.registers.plan import LV_PACKS
from givtcp_async.simulator.plant import Plant, PlantConfig
from givtcp_async.simulator.server import DongleSimulator
from givtcp_async.simulator.store import RegisterStore

LONDON = ZoneInfo("Europe/London")
THREE_PHASE = (
    Path(__file__).resolve().parents[1]
    / "tests/fixtures/captures/three_phase_hv_a/giv3hy11_da011_detect_10min.jsonl"
)


async def run(delay: float, pacing: float, refreshes: int, builds: int) -> list[Row]:
    plant = Plant(PlantConfig(speed=0, start=datetime(2026, 6, 21, 13, 0, tzinfo=LONDON)))
    sim = plant.simulator(plant.simulator_config(response_delay=delay, heartbeat_interval=3600))
    await sim.start()
    try:
        settings = ConnectionSettings("127.0.0.1", sim.port, pacing=pacing)
        async with DongleConnection(settings) as conn:
            await conn.wait_connected(5)
            cache = RegisterCache()
            reader = PlantReader(conn, cache, probe_meters=False)
            layout = await reader.detect()
            blocks = layout.plan.blocks
            walls = []
            for _ in range(refreshes):
                mark = sim.mark()
                t0 = time.perf_counter()
                report = await reader.refresh(blocks)
                walls.append(time.perf_counter() - t0)
                assert report.ok, report
                assert len(sim.requests_seen(mark)) == len(blocks)
            frames = [e.frame.encode() for e in sim.events
                      if e.seq >= mark and e.kind == "response"
                      and isinstance(e.frame, ReadResponse)]  # fmt: skip
        assembler = SnapshotAssembler(layout.model, layout.serial, layout.fields, LONDON)
        now = datetime.now(LONDON)
        assembler.build(cache, devices=layout.devices, now=now)  # warm the gates
        cpu = []
        for _ in range(builds):
            t0 = time.process_time()
            snap = assembler.build(cache, devices=layout.devices, now=now)
            cpu.append(time.process_time() - t0)
        ours, peer = decode_and_model(frames, layout, builds)
    finally:
        await sim.close()
    bound = len(blocks) * delay
    wall = statistics.median(walls)
    values = len(snap.values) + sum(len(b.values) for b in snap.batteries)
    print(
        f"full refresh of the default plant: {len(blocks)} requests "
        f"({', '.join(f'{b.bank.value}{b.base}@0x{b.device_address:02x}' for b in blocks)})"
    )
    print(f"  pacing {pacing * 1000:.0f} ms, simulator response {delay * 1000:.0f} ms per request")
    print(
        f"  wall time (median of {refreshes}): {wall * 1000:.1f} ms; lower bound "
        f"{bound * 1000:.1f} ms; ratio {wall / bound:.2f}"
    )
    print(
        f"decode one refresh into a snapshot ({values} values): "
        f"{statistics.median(cpu) * 1000:.2f} ms CPU (median of {builds})"
    )
    build = statistics.median(cpu) * 1000
    print(
        f"decode + model of one refresh ({len(frames)} frames): ours {ours:.2f} ms CPU, "
        f"givenergy-modbus 2.13.0 {peer:.2f} ms; {peer / ours:.1f} x"
    )
    return [
        Row(
            f"full refresh of the default plant ({len(blocks)} requests, "
            f"{delay * 1000:.0f} ms response, {pacing * 1000:.0f} ms pacing)",
            f"{wall * 1000:.0f} ms",
            f"lower bound {bound * 1000:.0f} ms ({len(blocks)} x {delay * 1000:.0f} ms); "
            f"ratio {wall / bound:.2f}",
            metric="refresh.wall_vs_bound",
            number=wall / bound,
        ),
        Row(
            f"decode + model of one refresh of the default plant ({len(frames)} frames, "
            f"{values} values)",
            f"{ours:.2f} ms CPU",
            f"peer {peer:.2f} ms; {peer / ours:.1f} x faster",
            metric="refresh.model_vs_peer",
            number=peer / ours,
            higher_is_better=True,
        ),
        Row(
            "  SnapshotAssembler.build of it (decode, gates, derived values)",
            f"{build:.2f} ms CPU",
            "goal <= 0.5 ms",
            metric="refresh.build_ms",
            number=build,
        ),
    ]


async def three_phase_build(builds: int) -> Row:
    """CPU time of ``build`` for one full refresh of the captured three-phase plant."""
    store = RegisterStore.from_capture(load_capture(THREE_PHASE))
    async with DongleSimulator(store) as sim:
        settings = ConnectionSettings("127.0.0.1", sim.port, pacing=0.0, read_timeout=0.5)
        async with DongleConnection(settings) as conn:
            await conn.wait_connected(5)
            cache = RegisterCache()
            reader = PlantReader(conn, cache, probe_timeout=0.3)
            layout = await reader.detect()
            report = await reader.refresh(layout.plan.blocks)
            assert report.ok, report
    assembler = SnapshotAssembler(layout.model, layout.serial, layout.fields, LONDON)
    now = datetime.now(LONDON)
    for _ in range(4):  # warm the gates (a zero total is confirmed on the third reading)
        snap = assembler.build(cache, devices=layout.devices, now=now)
    cpu = []
    for _ in range(builds):
        t0 = time.process_time()
        snap = assembler.build(cache, devices=layout.devices, now=now)
        cpu.append(time.process_time() - t0)
    values = len(snap.values) + sum(len(d.values) for d in (*snap.batteries, *snap.meters))
    build = statistics.median(cpu) * 1000
    print(
        f"build of one full three-phase refresh ({len(layout.plan.blocks)} blocks, {values} "
        f"values, {len(snap.batteries) + len(snap.meters)} devices): {build:.2f} ms CPU "
        f"(median of {builds})"
    )
    return Row(
        f"  SnapshotAssembler.build of a full three-phase refresh (GIV-3HY-11 capture, "
        f"{values} values)",
        f"{build:.2f} ms CPU",
        "goal < 2 ms",
        metric="refresh.build_three_phase_ms",
        number=build,
    )


async def run_with_three_phase(
    delay: float, pacing: float, refreshes: int, builds: int
) -> list[Row]:
    """:func:`run`, then the three-phase build row."""
    return [*await run(delay, pacing, refreshes, builds), await three_phase_build(builds)]


def decode_and_model(frames: list[bytes], layout: PlantLayout, runs: int) -> tuple[float, float]:
    """Median CPU ms of ours and of the peer turning ``frames`` into a validated model."""
    from givenergy_modbus.model.plant import Plant as PeerPlant
    from givenergy_modbus.pdu import ClientIncomingMessage

    cache = RegisterCache()
    assembler = SnapshotAssembler(layout.model, layout.serial, layout.fields, LONDON)
    now = datetime.now(LONDON)
    peer_plant = PeerPlant()

    def ours() -> object:
        for raw in frames:
            frame = decode_frame(raw)
            assert isinstance(frame, ReadResponse)
            cache.offer(frame)
        return assembler.build(cache, devices=layout.devices, now=now)

    def peer() -> object:
        for raw in frames:
            peer_plant.update(ClientIncomingMessage.decode_bytes(raw))
        return peer_plant.inverter, peer_plant.batteries

    for _ in range(3):  # warm: the gates' memory, the peer's splice guard
        ours()
        peer()
    batteries = peer_plant.batteries
    packs = [a for a in layout.batteries if a in LV_PACKS]  # the LV BCU is no pack
    assert len(batteries) == len(packs), "the peer did not build every pack"
    times: dict[str, list[float]] = {"ours": [], "peer": []}
    for _ in range(runs):
        for name, work in (("ours", ours), ("peer", peer)):
            t0 = time.process_time()
            work()
            times[name].append(time.process_time() - t0)
    return (statistics.median(times["ours"]) * 1000, statistics.median(times["peer"]) * 1000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delay", type=float, default=0.25, help="simulator response time (s)")
    parser.add_argument("--pacing", type=float, default=0.25, help="gap between frames (s)")
    parser.add_argument("--refreshes", type=int, default=3)
    parser.add_argument("--builds", type=int, default=200)
    args = parser.parse_args()
    quiet_logs(logging.WARNING)
    asyncio.run(run_with_three_phase(args.delay, args.pacing, args.refreshes, args.builds))


if __name__ == "__main__":
    main()
