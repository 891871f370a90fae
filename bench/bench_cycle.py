"""CPU time of one poll cycle, stage by stage: read, decode, gates, derived values, MQTT, InfluxDB.

The default simulated plant (Gen3 hybrid, two packs) runs in a ``givtcp-async simulate``
subprocess (so its CPU is not ours) at 60 simulated seconds per real second; cycles start 0.25 s
apart, so each sees the plant 15 s after the last, as the daemon's default poll interval does.
Every cycle is timed with ``process_time`` stage by stage:

1. read: the live blocks (and, every 8th cycle, the settings blocks first, as a 15 s poll with
   the 120 s settings refresh does) through ``DongleConnection`` (pacing 0: the gaps between
   frames cost no CPU), frame decoding with the CRC, and the register cache's page gates;
2. the snapshot: ``SnapshotAssembler.build`` with ``timings``, which adds up its stages
   (register decode with the freshness check, the value gates, the derived values, assembling
   the snapshot objects). A second assembler builds without ``timings`` from the same cache: its
   CPU is shown for comparison, and its snapshot must equal the timed one (the bench stops
   otherwise);
3. MQTT: the state messages of the values that changed (``changes_only``, after a first full
   publish) built by ``StateTopics`` and published with ``publish_all`` to a real mosquitto,
   as the MQTT service does;
4. InfluxDB: the daemon's ``InfluxService`` turning the snapshot into points and writing them to
   a real VictoriaMetrics (InfluxDB v2 write API) until acknowledged; building the points alone
   (``snapshot_points``) is timed separately as well.

Run: ``.venv/bin/python -m bench.bench_cycle [--cycles N]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, Final, cast
from zoneinfo import ZoneInfo

import aiomqtt

from bench.common import Row, Timer, percentile, quiet_logs
from givtcp_async import __version__
from givtcp_async.assemble import SnapshotAssembler
from givtcp_async.cache import RegisterCache
from givtcp_async.config import InfluxConfig
from givtcp_async.connection import ConnectionSettings, DongleConnection
from givtcp_async.reader import PlantLayout, PlantReader
from givtcp_async.registers.plan import Cadence
from givtcp_async.sinks.influx import InfluxService, snapshot_points
from givtcp_async.sinks.mqtt import publish_all
from givtcp_async.sinks.state_topics import StateTopics
from givtcp_async.snapshot import Snapshot
from tests.servers import Mosquitto, VictoriaMetrics

if TYPE_CHECKING:
    from givtcp_async.ports import InverterView

ROOT: Final = "GivEnergy"
LONDON: Final = ZoneInfo("Europe/London")
SPEED: Final = 60.0  # simulated seconds per real second
GAP: Final = 0.25  # real seconds between cycle starts: 15 s of plant time
POLL_INTERVAL: Final = 15.0  # the daemon's default, what GAP stands for
SETTINGS_EVERY: Final = 8  # 120 s settings interval / 15 s poll interval
WARMUP: Final = 2
CYCLE_CLOCK: list[float] = [0.0]  # the assemblers' monotonic time, set at each cycle
NODELAY: Final = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]  # as the MQTT service sets

STAGES: Final = (
    ("read", "read: requests, frames + CRC, page gates, cache"),
    ("decode", "register decode (with freshness check)"),
    ("gates", "value gates"),
    ("derived", "derived values"),
    ("assemble", "snapshot objects, lifted pack totals"),
    ("mqtt build", "MQTT: state messages of changed values"),
    ("mqtt publish", "MQTT: publish to mosquitto"),
    ("influx points", "InfluxDB: building the points"),
    ("influx write", "InfluxDB: buffer, write, acknowledgement"),
)


class Feed:
    """Stands in for a coordinator towards :class:`InfluxService`: ``updates()`` yields the
    snapshots handed to :meth:`push` (the service needs nothing else of an inverter's view but
    its name)."""

    name = "bench"

    def __init__(self) -> None:
        self.config = SimpleNamespace(host="bench")
        self._queue: asyncio.Queue[Snapshot] = asyncio.Queue()

    def push(self, snap: Snapshot) -> None:
        self._queue.put_nowait(snap)

    async def updates(self) -> AsyncIterator[Snapshot]:
        while True:
            yield await self._queue.get()


@contextlib.asynccontextmanager
async def simulator_process(speed: float, start: str) -> AsyncIterator[int]:
    """``givtcp-async simulate`` in a subprocess on a free 127.0.0.1 port; yields the port."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "givtcp_async", "simulate", "--host", "127.0.0.1", "--port", "0",
        "--speed", str(speed), "--start", start, "--heartbeat", "3600",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(30):
            line = await proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the simulator exited with {await proc.wait()}")
        yield int(json.loads(line)["listening"].rsplit(":", 1)[1])
    finally:
        if proc.returncode is None:
            proc.terminate()
            await proc.wait()


def stats_of(now: datetime) -> dict[str, Any]:
    """What the coordinator puts under Stats (the bench's poll always succeeds)."""
    return {
        "Last_Updated_Time": now,
        "status": "online",
        "Time_Since_Last_Update": 0.0,
        "GivTCP_Version": f"givtcp-async {__version__}",
        "Write_Count": 0,
        "Timeout_Error": 0,
    }


@dataclass
class Rig:
    """Everything one cycle uses, connected: the reader, both assemblers, MQTT and InfluxDB."""

    reader: PlantReader
    cache: RegisterCache
    layout: PlantLayout
    timed: SnapshotAssembler
    real: SnapshotAssembler
    topics: StateTopics
    client: aiomqtt.Client
    feed: Feed
    influx: InfluxService

    async def cycle(self, i: int) -> tuple[dict[str, float], float, int, int]:
        """Cycle ``i``: CPU ms per stage, CPU ms of the real build, MQTT messages, points."""
        cpu: dict[str, list[float]] = {key: [] for key, _ in STAGES}
        plan = self.layout.plan
        blocks = list(plan.by_cadence(Cadence.FAST))
        if i % SETTINGS_EVERY == 0:
            blocks = list(plan.by_cadence(Cadence.SLOW)) + blocks
        with Timer() as read:
            report = await self.reader.refresh(blocks)
        if not report.ok:
            raise RuntimeError(f"a refresh failed: {report}")
        cpu["read"].append(read.cpu)
        now = datetime.now(LONDON)
        CYCLE_CLOCK[0] = time.monotonic()
        stats = stats_of(now)
        devices = self.layout.devices
        # Alternate which build goes first, so that neither always finds the CPU caches warm.
        timings: dict[str, float] = {}
        for timed_first in (i % 2, 1 - i % 2):
            if timed_first:
                snap = self.timed.build(
                    self.cache, devices=devices, now=now, stats=stats, timings=timings
                )
            else:
                with Timer() as real:
                    ref = self.real.build(self.cache, devices=devices, now=now, stats=stats)
        if (snap.values, snap.batteries, snap.meters) != (ref.values, ref.batteries, ref.meters):
            raise RuntimeError("the timed build differs from SnapshotAssembler.build")
        for stage, seconds in timings.items():
            cpu[stage].append(seconds * 1000)
        with Timer() as build:
            state = self.topics.messages(snap)
        with Timer() as publish:
            await publish_all(self.client, state)
        cpu["mqtt build"].append(build.cpu)
        cpu["mqtt publish"].append(publish.cpu)
        with Timer() as points:
            lines = snapshot_points(snap)
        buffer = self.influx.buffer
        target = buffer.written + len(lines)
        with Timer() as write:
            self.feed.push(snap)
            await self.influx.wait_for(lambda: buffer.written >= target)
        cpu["influx points"].append(points.cpu)
        cpu["influx write"].append(write.cpu - points.cpu)
        return {k: sum(v) for k, v in cpu.items()}, real.cpu, len(state), len(lines)


async def measure(cycles: int) -> list[Row]:
    """Run ``cycles`` timed poll cycles (after warm-up); print the breakdown; the summary rows."""
    cpu: dict[str, list[float]] = {key: [] for key, _ in STAGES}
    reference: list[float] = []
    messages: list[int] = []
    points: list[int] = []
    with tempfile.TemporaryDirectory() as tmp:
        broker, victoria = Mosquitto(Path(tmp)), VictoriaMetrics(Path(tmp))
        broker.start()
        victoria.start()
        try:
            async with (
                simulator_process(SPEED, "2026-06-21T13:00") as port,
                DongleConnection(ConnectionSettings("127.0.0.1", port, pacing=0.0)) as conn,
                aiomqtt.Client(
                    "127.0.0.1", broker.port, identifier="bench-cycle", socket_options=NODELAY
                ) as client,
            ):
                await conn.wait_connected(10)
                cache = RegisterCache()
                reader = PlantReader(conn, cache, probe_meters=False)
                layout = await reader.detect()

                def assembler() -> SnapshotAssembler:
                    # One monotonic time per cycle for both: a clock value moved on by the
                    # seconds since its page was read must not differ between the two builds.
                    return SnapshotAssembler(layout.model, layout.serial, layout.fields, LONDON,
                                             clock=lambda: CYCLE_CLOCK[0])  # fmt: skip

                feed = Feed()
                config = InfluxConfig(url=victoria.url, bucket="bench", org="bench")
                influx = InfluxService(config, [cast("InverterView", feed)])
                rig = Rig(reader, cache, layout, assembler(), assembler(),
                          StateTopics(ROOT), client, feed, influx)  # fmt: skip
                writer = asyncio.create_task(influx.run(), name="influx")
                loop = asyncio.get_running_loop()
                start = loop.time()
                try:
                    for i in range(WARMUP + cycles):
                        await asyncio.sleep(max(0.0, start + i * GAP - loop.time()))
                        stages, real, n_messages, n_points = await rig.cycle(i)
                        if i < WARMUP:  # the first publish is a full one; connections warm up
                            continue
                        for key, value in stages.items():
                            cpu[key].append(value)
                        reference.append(real)
                        messages.append(n_messages)
                        points.append(n_points)
                finally:
                    writer.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await writer
                if influx.buffer.rejected or influx.failures:
                    raise RuntimeError(f"influx writes failed: {influx.metrics()}")
                slow = len(layout.plan.by_cadence(Cadence.SLOW))
                fast = len(layout.plan.by_cadence(Cadence.FAST))
        finally:
            broker.stop()
            victoria.stop()
    return report_rows(cpu, reference, messages, points, fast, slow, cycles)


def report_rows(
    cpu: dict[str, list[float]],
    reference: list[float],
    messages: list[int],
    points: list[int],
    fast: int,
    slow: int,
    cycles: int,
) -> list[Row]:
    means = {key: statistics.fmean(cpu[key]) for key, _ in STAGES}
    total = sum(means.values())
    print(
        f"{cycles} poll cycles of the default plant, 15 s of plant time apart: {fast} live "
        f"requests each, {slow} settings requests every {SETTINGS_EVERY}th; "
        f"{statistics.fmean(messages):.0f} MQTT messages (changed values and runAll) and "
        f"{statistics.fmean(points):.0f} InfluxDB points per cycle"
    )
    print(f"{'CPU per cycle (ms)':52s} {'mean':>7s} {'median':>7s} {'p95':>7s} {'share':>6s}")
    for key, label in STAGES:
        data = cpu[key]
        print(
            f"  {label:50s} {means[key]:7.2f} {statistics.median(data):7.2f} "
            f"{percentile(data, 0.95):7.2f} {means[key] / total * 100:5.1f}%"
        )
    print(f"  {'total':50s} {total:7.2f}")
    print(
        f"  {'(SnapshotAssembler.build in one piece)':50s} {statistics.fmean(reference):7.2f} "
        f"{statistics.median(reference):7.2f} {percentile(reference, 0.95):7.2f}"
    )
    share = total / (POLL_INTERVAL * 1000) * 100
    print(f"one poll every {POLL_INTERVAL:.0f} s: {share:.3f} % of one core")
    rows = [
        Row(
            "CPU per poll cycle, total (mean; read, snapshot, MQTT, InfluxDB)",
            f"{total:.2f} ms",
            f"{share:.3f} % of a core at one poll per {POLL_INTERVAL:.0f} s",
        )
    ]
    rows += [
        Row(f"  {label}", f"{means[key]:.2f} ms", f"{means[key] / total * 100:.0f} %")
        for key, label in STAGES
    ]
    build = sum(means[k] for k in ("decode", "gates", "derived", "assemble"))
    rows.append(
        Row(
            "  (SnapshotAssembler.build in one piece)",
            f"{statistics.fmean(reference):.2f} ms",
            f"stages above: {build:.2f} ms",
        )
    )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=48, help="cycles timed (48)")
    args = parser.parse_args()
    quiet_logs(logging.CRITICAL)
    asyncio.run(measure(args.cycles))


if __name__ == "__main__":
    main()
