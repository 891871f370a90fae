"""Resident memory and CPU share of the real daemon: bare, with MQTT and REST, with everything.

Simulated plants (the default Gen3 hybrid with two packs, each its own seed and serial, on the
real clock) are served by simulators in this process, and ``givtcp-async run`` runs as a
subprocess (so its memory and CPU are its own) with a configuration file pointing one
``[[inverters]]`` entry at each, every poll setting at its default (``poll_interval`` 15 s,
``settings_interval`` 120 s, pacing 0.25 s). The daemon runs as its production install would:
only its runtime dependencies importable (:mod:`bench.production`; the development environment's
test tools are hidden, e.g. ``rich``, which structlog would load just because it is there).

The outputs: none (the bare poll loop); MQTT (with Home Assistant discovery, to a mosquitto) and
REST on 127.0.0.1; and every output, InfluxDB to a VictoriaMetrics too, with 1 and with 20
(``--inverters 1 20``) inverters. The peer, givenergy-modbus 2.13.0, runs its own bare poll loop
in a subprocess the same way (``detect()``, ``load_config()``, then ``refresh()`` every 15 s and
``load_config()`` every 120 s). Once every inverter answered, the bench lets the process settle
(first polls, meter scan, discovery announcement), then measures over a window: ``VmRSS`` from
``/proc/<pid>/status`` every second (the last sample is reported, with the largest and the peak
``VmHWM``), and the CPU share from ``utime + stime`` of ``/proc/<pid>/stat`` (all threads) over
the window, as % of one core. The bare and MQTT + REST runs use a window of at most 20 s (their
memory figure needs no more).

``--without-stdlib-bytecode`` also runs MQTT + REST with the standard library's bytecode out of
reach, as in the python slim image the Dockerfile starts from (it deletes every ``.pyc``, and
the daemon's user cannot write them): ``PYTHONPYCACHEPREFIX`` points at a tree holding only the
installed packages' bytecode, with ``PYTHONDONTWRITEBYTECODE``. It prints that RSS beside the
one with bytecode, and the time to import the daemon's modules each way (median of 5).

Run: ``.venv/bin/python -m bench.bench_memory [--inverters 1 20] [--settle S] [--window S]
[--without-stdlib-bytecode]``
"""

from __future__ import annotations

import argparse
import asyncio
import compileall
import contextlib
import logging
import os
import signal
import site
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp

import givtcp_async
from bench.common import Row, quiet_logs
from bench.production import CLI, ROOT, launcher, passed_on
from givtcp_async.simulator.plant import Plant, PlantConfig
from givtcp_async.simulator.server import DongleSimulator
from tests.servers import Mosquitto, VictoriaMetrics, free_port

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
POLL_INTERVAL = 15.0  # the default, which the daemon runs with here
MIB = 1024 * 1024

# The peer's bare poll loop at the daemon's default intervals.
PEER_LOOP = """
import asyncio, sys, time
from givenergy_modbus.client.client import Client

async def main(port):
    client = Client("127.0.0.1", port)
    await client.connect()
    await client.detect()
    await client.load_config()
    print("ready", flush=True)
    settings_due = time.monotonic() + 120
    while True:
        started = time.monotonic()
        try:
            if started >= settings_due:
                await client.load_config()
                settings_due = started + 120
            await client.refresh()
        except Exception as err:
            print("poll failed", repr(err), file=sys.stderr, flush=True)
        await asyncio.sleep(max(0.0, started + 15 - time.monotonic()))

asyncio.run(main(int(sys.argv[1])))
"""


@dataclass(frozen=True, slots=True)
class Setup:
    """What runs: ``outputs`` of the daemon ("bare", "mqtt+rest", "all") or the "peer"."""

    outputs: str
    inverters: int
    stdlib_bytecode: bool = True

    @property
    def label(self) -> str:
        what = {"bare": "bare poll loop", "mqtt+rest": "MQTT + discovery, REST",
                "all": "MQTT + discovery, REST, InfluxDB",
                "peer": "givenergy-modbus 2.13.0 bare poll loop"}[self.outputs]  # fmt: skip
        if not self.stdlib_bytecode:
            what += ", standard library without bytecode"
        return f"{self.inverters} inverter{'s' if self.inverters > 1 else ''}, {what}"


@dataclass(frozen=True, slots=True)
class Sample:
    setup: Setup
    rss: int  # bytes, last sample of the window
    rss_max: int
    hwm: int  # VmHWM at the end: the peak since start, start-up included
    cpu: float  # seconds of CPU (user + system) over the window
    window: float  # seconds
    requests: int  # read and write requests the simulators answered during the window

    @property
    def inverters(self) -> int:
        return self.setup.inverters

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
    outputs: str = "all",
) -> str:
    lines = ["[mqtt]"]
    if outputs == "bare":
        lines += ["enabled = false"]
    else:
        lines += ['host = "127.0.0.1"', f"port = {mqtt}", f'client_id = "bench-memory-{n}"']
    lines += ["", "[rest]"]
    lines += [f'host = "127.0.0.1"\nport = {rest}' if outputs != "bare" else "enabled = false"]
    lines += ["", "[influx]"]
    if outputs == "all":
        lines += [f'url = "{influx}"', 'bucket = "bench"', 'org = "bench"']
    else:
        lines += ["enabled = false"]
    lines += ["", "[control]", f'state_dir = "{state_dir}"', ""]
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


async def wait_polled(sims: Sequence[DongleSimulator], proc: asyncio.subprocess.Process,
                      timeout: float) -> None:  # fmt: skip
    """Return once every simulator has answered a request of the process."""
    deadline = time.monotonic() + timeout
    while not all(sim.requests_seen() for sim in sims):
        if proc.returncode is not None:
            raise RuntimeError(f"the process exited with {proc.returncode}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"not every simulated inverter was polled within {timeout} s")
        await asyncio.sleep(0.2)


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
    setup: Setup,
    workdir: Path,
    broker: Mosquitto,
    victoria: VictoriaMetrics,
    settle: float,
    window: float,
) -> Sample:
    n = setup.inverters
    run_dir = workdir / f"{setup.outputs}-{n}{'' if setup.stdlib_bytecode else '-no-stdlib-pyc'}"
    run_dir.mkdir()
    async with simulated_plants(n) as sims:
        rest = free_port()
        if setup.outputs == "peer":
            peer = launcher("givenergy-modbus", "exec(sys.argv.pop(1))")
            argv = [*peer, PEER_LOOP, str(sims[0].port)]
        else:
            config = run_dir / "config.toml"
            text = config_text(sims, run_dir / "state", broker.port, rest, victoria.url, n,
                               setup.outputs)  # fmt: skip
            config.write_text(text)
            argv = [*launcher("givtcp-async", CLI), "run", "--config", str(config)]
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(run_dir),
               "LANG": "C.UTF-8", **passed_on()}  # fmt: skip
        if not setup.stdlib_bytecode:
            env.update(without_stdlib_bytecode(workdir))
        with (run_dir / "process.log").open("wb") as log:
            proc = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log, env=env,
                cwd=ROOT,
            )  # fmt: skip
        try:
            if setup.outputs in ("mqtt+rest", "all"):
                await wait_healthy(rest, proc, timeout=60)
            await wait_polled(sims, proc, timeout=60)
            await asyncio.sleep(settle)
            marks = [sim.mark() for sim in sims]
            cpu0, t0 = proc_cpu(proc.pid), time.monotonic()
            rss_max = 0
            while (left := t0 + window - time.monotonic()) > 0:
                await asyncio.sleep(min(1.0, left))
                if proc.returncode is not None:
                    raise RuntimeError(f"the process exited with {proc.returncode}")
                rss_max = max(rss_max, proc_status(proc.pid)["VmRSS"])
            cpu1, t1 = proc_cpu(proc.pid), time.monotonic()
            status = proc_status(proc.pid)
            requests = sum(len(sim.requests_seen(m)) for sim, m in zip(sims, marks, strict=True))
            idle = [i for i, (sim, m) in enumerate(zip(sims, marks, strict=True))
                    if not sim.requests_seen(m)]  # fmt: skip
            if idle and window >= POLL_INTERVAL:
                raise RuntimeError(f"inverters {idle} were not polled during the window")
        except BaseException:
            print((run_dir / "process.log").read_text()[-3000:], file=sys.stderr)
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
    return Sample(setup, status["VmRSS"], rss_max, status["VmHWM"], cpu1 - cpu0, t1 - t0,
                  requests)  # fmt: skip


def compile_package() -> None:
    """Write the measured package's bytecode first: a module without a current ``.pyc`` is
    compiled in the daemon, whose heap keeps ~2.6 MiB of the compiler's leftovers (the modules
    a setup imports first are otherwise compiled in that setup's daemon, as after a change or in
    a fresh checkout), and the first setups would not measure what an install (whose ``.pyc``
    files pip writes) runs."""
    for path in givtcp_async.__path__:
        compileall.compile_dir(path, quiet=1)


def without_stdlib_bytecode(workdir: Path) -> dict[str, str]:
    """The environment of an interpreter that finds the installed packages' bytecode but not the
    standard library's, and writes none (the slim image's case): the packages are compiled into
    a ``PYTHONPYCACHEPREFIX`` tree of their own, once per ``workdir``."""
    prefix = workdir / "pyc-packages-only"
    env = {"PYTHONPYCACHEPREFIX": str(prefix), "PYTHONDONTWRITEBYTECODE": "1"}
    if not prefix.exists():
        subprocess.run(
            [sys.executable, "-m", "compileall", "-q", "-j", "0", *site.getsitepackages(),
             *givtcp_async.__path__],
            env={**os.environ, "PYTHONPYCACHEPREFIX": str(prefix)}, check=False,
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
    return env


# The daemon's modules with every output, as it imports them at start.
DAEMON_IMPORTS = (
    "import givtcp_async.cli, givtcp_async.daemon, givtcp_async.sinks.tls, "
    "givtcp_async.sinks.mqtt, givtcp_async.sinks.rest, givtcp_async.sinks.influx"
)


def import_seconds(env: dict[str, str], repeats: int = 5) -> float:
    """Median wall time of a production-like interpreter importing the daemon's modules."""
    argv = launcher("givtcp-async", DAEMON_IMPORTS)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run(argv, env={**os.environ, **passed_on(), **env}, cwd=ROOT, check=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


async def measure(
    counts: Sequence[int], settle: float, window: float, stdlib_bytecode_too: bool = False
) -> list[Row]:
    """Measure each setup once; print and return the figures."""
    compile_package()
    short = min(window, 20.0)
    setups = [
        (Setup("peer", 1), short),
        (Setup("bare", 1), short),
        (Setup("mqtt+rest", 1), short),
        *([(Setup("mqtt+rest", 1, stdlib_bytecode=False), short)] if stdlib_bytecode_too else []),
        *((Setup("all", n), window) for n in counts),
    ]
    samples: dict[Setup, Sample] = {}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        broker, victoria = Mosquitto(workdir), VictoriaMetrics(workdir)
        broker.start()
        victoria.start()
        try:
            for setup, seconds in setups:
                s = await measure_daemon(setup, workdir, broker, victoria, settle, seconds)
                samples[setup] = s
                print(
                    f"{setup.label}: RSS {s.rss / MIB:.1f} MiB (largest in the window "
                    f"{s.rss_max / MIB:.1f}, peak since start {s.hwm / MIB:.1f}); CPU "
                    f"{s.cpu:.2f} s over {s.window:.0f} s = {s.share:.2f} % of one core "
                    f"(resolution {100 / CLOCK_TICKS / s.window:.3f} %), "
                    f"{s.cpu * 1000 / s.polls:.1f} ms per inverter per poll; {s.requests} "
                    f"requests answered ({s.requests / s.inverters:.0f} per inverter)"
                )
            if stdlib_bytecode_too:
                imports = (import_seconds({}), import_seconds(without_stdlib_bytecode(workdir)))
                print(f"the daemon's imports: {imports[0]:.2f} s with the standard library's "
                      f"bytecode, {imports[1]:.2f} s without (median of 5)")  # fmt: skip
        finally:
            broker.stop()
            victoria.stop()
    peer, bare = samples[Setup("peer", 1)], samples[Setup("bare", 1)]
    rows = [
        Row("daemon RSS, 1 inverter, bare poll loop (no outputs)", f"{bare.rss / MIB:.1f} MiB",
            f"peer {peer.rss / MIB:.1f} MiB; {bare.rss / peer.rss:.2f} x the peer",
            metric="memory.rss_bare_mib", number=bare.rss / MIB),
        Row("daemon RSS, 1 inverter, MQTT + discovery, REST",
            f"{samples[Setup('mqtt+rest', 1)].rss / MIB:.1f} MiB",
            metric="memory.rss_mqtt_rest_mib", number=samples[Setup("mqtt+rest", 1)].rss / MIB),
    ]  # fmt: skip
    if stdlib_bytecode_too:
        with_, without = samples[Setup("mqtt+rest", 1)], samples[Setup("mqtt+rest", 1, False)]
        rows.append(
            Row("daemon RSS, 1 inverter, MQTT + discovery, REST, standard library without "
                "bytecode (the slim base image without the Dockerfile's compile step)",
                f"{without.rss / MIB:.1f} MiB",
                f"+{(without.rss - with_.rss) / MIB:.1f} MiB; the daemon's imports take "
                f"{imports[1]:.2f} s against {imports[0]:.2f} s with bytecode")
        )  # fmt: skip
    everything = [samples[Setup("all", n)] for n in counts]
    rows += [
        Row(f"daemon RSS, {s.setup.label}", f"{s.rss / MIB:.1f} MiB",
            f"peak since start {s.hwm / MIB:.1f} MiB",
            metric=f"memory.rss_all_{s.inverters}_mib", number=s.rss / MIB)
        for s in everything
    ]  # fmt: skip
    rows += [
        Row(
            f"daemon CPU, {s.inverters} inverter{'s' if s.inverters > 1 else ''} "
            f"(all outputs, polls every 15 s, {s.window:.0f} s window)",
            f"{s.share:.2f} % of one core",
            f"{s.cpu * 1000 / s.polls:.1f} ms per inverter per poll",
        )
        for s in everything
    ]
    if len(everything) >= 2 and everything[-1].inverters > everything[0].inverters:
        first, last = everything[0], everything[-1]
        extra = (last.rss - first.rss) / (last.inverters - first.inverters)
        rows.append(
            Row(
                "daemon RSS per additional inverter (all outputs)",
                f"{extra / MIB:.2f} MiB",
                metric="memory.rss_per_inverter_mib",
                number=extra / MIB,
            )
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--inverters", type=int, nargs="+", default=[1, 20], help="inverter counts (1 20)"
    )
    parser.add_argument("--settle", type=float, default=30.0, help="seconds before measuring (30)")
    parser.add_argument("--window", type=float, default=60.0, help="seconds measured (60)")
    parser.add_argument(
        "--without-stdlib-bytecode", action="store_true",
        help="also MQTT + REST without the standard library's bytecode (the slim image's case)",
    )  # fmt: skip
    args = parser.parse_args()
    quiet_logs(logging.CRITICAL)
    asyncio.run(measure(args.inverters, args.settle, args.window, args.without_stdlib_bytecode))


if __name__ == "__main__":
    main()
