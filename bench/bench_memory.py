"""Resident memory and CPU share of the real daemon, with one inverter and with twenty.

For each count, simulated plants (the default Gen3 hybrid with two packs, each its own seed and
serial, on the real clock) are served by simulators in this process, and ``givtcp-async run``
runs as a subprocess (so its memory and CPU are its own) with a configuration file pointing one
``[[inverters]]`` entry at each, every poll setting at its default (``poll_interval`` 15 s,
``settings_interval`` 120 s, pacing 0.25 s), with every output on: MQTT with Home Assistant
discovery to a mosquitto, REST on 127.0.0.1, InfluxDB to a VictoriaMetrics. Once every inverter
answered, the bench lets the daemon settle (first polls, meter scan, discovery announcement),
then measures over a window: ``VmRSS`` from ``/proc/<pid>/status`` every second (the last
sample is reported, with the largest and the peak ``VmHWM``), and the CPU share from
``utime + stime`` of ``/proc/<pid>/stat`` (all threads) over the window, as % of one core.

Run: ``.venv/bin/python -m bench.bench_memory [--inverters 1 20] [--settle S] [--window S]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from bench.common import Row, quiet_logs
from givtcp_async.simulator.plant import Plant, PlantConfig
from givtcp_async.simulator.server import DongleSimulator
from tests.servers import Mosquitto, VictoriaMetrics, free_port

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
POLL_INTERVAL = 15.0  # the default, which the daemon runs with here
MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Sample:
    inverters: int
    rss: int  # bytes, last sample of the window
    rss_max: int
    hwm: int  # VmHWM at the end: the peak since start, start-up included
    cpu: float  # seconds of CPU (user + system) over the window
    window: float  # seconds
    requests: int  # read and write requests the simulators answered during the window

    @property
    def polls(self) -> float:
        """Polls of all inverters the window held, at the default 15 s interval."""
        return self.inverters * self.window / POLL_INTERVAL

    @property
    def share(self) -> float:
        """CPU as % of one core."""
        return self.cpu / self.window * 100


def proc_status(pid: int) -> dict[str, int]:
    """The ``kB`` fields of /proc/<pid>/status (VmRSS, VmHWM, ...) in bytes."""
    out: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        parts = value.split()
        if len(parts) == 2 and parts[1] == "kB":
            out[name] = int(parts[0]) * 1024
    return out


def proc_cpu(pid: int) -> float:
    """Seconds of CPU the process has used so far (user + system, every thread)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat.rpartition(")")[2].split()  # the name in parentheses may contain spaces
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5)
    return (utime + stime) / CLOCK_TICKS


def config_text(
    simulators: Sequence[DongleSimulator],
    state_dir: Path,
    mqtt: int,
    rest: int,
    influx: str,
    n: int,
) -> str:
    lines = [
        "[mqtt]",
        'host = "127.0.0.1"',
        f"port = {mqtt}",
        f'client_id = "bench-memory-{n}"',
        "",
        "[rest]",
        'host = "127.0.0.1"',
        f"port = {rest}",
        "",
        "[influx]",
        f'url = "{influx}"',
        'bucket = "bench"',
        'org = "bench"',
        "",
        "[control]",
        f'state_dir = "{state_dir}"',
        "",
    ]
    for sim in simulators:
        lines += ["[[inverters]]", 'host = "127.0.0.1"', f"port = {sim.port}", ""]
    return "\n".join(lines)


@contextlib.asynccontextmanager
async def simulated_plants(n: int) -> AsyncIterator[list[DongleSimulator]]:
    """``n`` default plants on the real clock, each served on its own 127.0.0.1 port."""
    sims = [Plant(PlantConfig(seed=i)).simulator() for i in range(n)]
    try:
        for sim in sims:
            await sim.start()
        yield sims
    finally:
        for sim in sims:
            await sim.close()


async def wait_healthy(port: int, proc: asyncio.subprocess.Process, timeout: float) -> None:
    """Return once the daemon's /health says 200 (an inverter answered)."""
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
        while time.monotonic() < deadline:
            if proc.returncode is not None:
                raise RuntimeError(f"the daemon exited with {proc.returncode}")
            with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
                async with session.get(f"http://127.0.0.1:{port}/health") as resp:
                    if resp.status == 200:
                        return
            await asyncio.sleep(0.2)
    raise RuntimeError(f"the daemon was not healthy after {timeout} s")


async def measure_daemon(
    n: int,
    workdir: Path,
    broker: Mosquitto,
    victoria: VictoriaMetrics,
    settle: float,
    window: float,
) -> Sample:
    run_dir = workdir / f"daemon-{n}"
    run_dir.mkdir()
    async with simulated_plants(n) as sims:
        rest = free_port()
        config = run_dir / "config.toml"
        text = config_text(sims, run_dir / "state", broker.port, rest, victoria.url, n)
        config.write_text(text)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(run_dir),
               "LANG": "C.UTF-8"}  # fmt: skip
        with (run_dir / "daemon.log").open("wb") as log:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "givtcp_async", "run", "--config", str(config),
                stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log, env=env,
            )  # fmt: skip
        try:
            await wait_healthy(rest, proc, timeout=60)
            deadline = time.monotonic() + 60
            while not all(sim.requests_seen() for sim in sims):
                if time.monotonic() > deadline:
                    raise RuntimeError("not every simulated inverter was polled within 60 s")
                await asyncio.sleep(0.2)
            await asyncio.sleep(settle)
            marks = [sim.mark() for sim in sims]
            cpu0, t0 = proc_cpu(proc.pid), time.monotonic()
            rss_max = 0
            while (left := t0 + window - time.monotonic()) > 0:
                await asyncio.sleep(min(1.0, left))
                if proc.returncode is not None:
                    raise RuntimeError(f"the daemon exited with {proc.returncode}")
                rss_max = max(rss_max, proc_status(proc.pid)["VmRSS"])
            cpu1, t1 = proc_cpu(proc.pid), time.monotonic()
            status = proc_status(proc.pid)
            requests = sum(len(sim.requests_seen(m)) for sim, m in zip(sims, marks, strict=True))
            idle = [i for i, (sim, m) in enumerate(zip(sims, marks, strict=True))
                    if not sim.requests_seen(m)]  # fmt: skip
            if idle:
                raise RuntimeError(f"inverters {idle} were not polled during the window")
        except BaseException:
            print((run_dir / "daemon.log").read_text()[-3000:], file=sys.stderr)
            raise
        finally:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    async with asyncio.timeout(15):
                        await proc.wait()
                except TimeoutError:
                    proc.kill()
                    await proc.wait()
    return Sample(n, status["VmRSS"], rss_max, status["VmHWM"], cpu1 - cpu0, t1 - t0, requests)


async def measure(counts: Sequence[int], settle: float, window: float) -> list[Row]:
    """Measure the daemon once per inverter count; print and return the figures."""
    samples: list[Sample] = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        broker, victoria = Mosquitto(workdir), VictoriaMetrics(workdir)
        broker.start()
        victoria.start()
        try:
            for n in counts:
                s = await measure_daemon(n, workdir, broker, victoria, settle, window)
                samples.append(s)
                print(
                    f"daemon with {n} inverter(s): RSS {s.rss / MIB:.1f} MiB (largest in the "
                    f"window {s.rss_max / MIB:.1f}, peak since start {s.hwm / MIB:.1f}); CPU "
                    f"{s.cpu:.2f} s over {s.window:.0f} s = {s.share:.2f} % of one core "
                    f"(resolution {100 / CLOCK_TICKS / s.window:.3f} %), "
                    f"{s.cpu * 1000 / s.polls:.1f} ms per inverter per poll; {s.requests} "
                    f"requests answered ({s.requests / n:.0f} per inverter)"
                )
        finally:
            broker.stop()
            victoria.stop()
    rows = [
        Row(
            f"daemon RSS, {s.inverters} inverter{'s' if s.inverters > 1 else ''} "
            "(MQTT + discovery, REST, InfluxDB on)",
            f"{s.rss / MIB:.1f} MiB",
            f"peak since start {s.hwm / MIB:.1f} MiB",
        )
        for s in samples
    ]
    rows += [
        Row(
            f"daemon CPU, {s.inverters} inverter{'s' if s.inverters > 1 else ''} "
            f"(polls every 15 s, {s.window:.0f} s window)",
            f"{s.share:.2f} % of one core",
            f"{s.cpu * 1000 / s.polls:.1f} ms per inverter per poll",
        )
        for s in samples
    ]
    if len(samples) >= 2 and samples[-1].inverters > samples[0].inverters:
        first, last = samples[0], samples[-1]
        extra = (last.rss - first.rss) / (last.inverters - first.inverters)
        rows.append(Row("daemon RSS per additional inverter", f"{extra / MIB:.2f} MiB"))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--inverters", type=int, nargs="+", default=[1, 20], help="inverter counts (1 20)"
    )
    parser.add_argument("--settle", type=float, default=30.0, help="seconds before measuring (30)")
    parser.add_argument("--window", type=float, default=60.0, help="seconds measured (60)")
    args = parser.parse_args()
    quiet_logs(logging.CRITICAL)
    asyncio.run(measure(args.inverters, args.settle, args.window))


if __name__ == "__main__":
    main()
