"""Start-up: ``givtcp-async read`` as a whole process, and ``run`` until /runAll first answers.

A simulated default plant (Gen3 hybrid, DTC 2001, two packs, no meters) is served in this process
with a 0.25 s response time, a real dongle's; the command runs as a subprocess with the default
pacing (0.25 s), timed from its start to its exit (``read``) or to the first ``GET /runAll`` that
answers 200 with the inverter's values (``run``, REST only). The simulator counts the requests.

``read`` runs twice with one state directory: the first run scans the meter addresses (absent
ones time out) and remembers what it found; the second answers from that memory, as every later
run does until the memory is a day old. ``run`` too starts twice with one state directory: the
restart takes the battery packs and meters found by the first start from memory (the packs are
probed again right after the first poll). Our figures are medians of ``--repeats`` runs. The
peer, givenergy-modbus 2.13.0, does the same work in the same run: connect, ``detect()``,
``load_config()`` and ``refresh()``, then print its plant's inverter values, as a whole process.
Both run as their production installs would (:mod:`bench.production`).

Run: ``.venv/bin/python -m bench.bench_startup [--delay S] [--repeats N]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from bench.common import Row, quiet_logs
from bench.production import CLI, ROOT, launcher, passed_on
from givtcp_async.simulator.plant import Plant, PlantConfig
from givtcp_async.simulator.server import DongleSimulator
from tests.servers import free_port

# The peer's whole read, as a user would script it (its own CLI needs extras it does not ship).
PEER_READ = """
import asyncio, json, sys
from givenergy_modbus.client.client import Client

async def main(port):
    client = Client("127.0.0.1", port)
    await client.connect()
    try:
        await client.detect()
        await client.load_config()
        plant = await client.refresh()
        inverter = plant.inverter
        print(json.dumps(inverter.model_dump(mode="json"), default=str)[:200])
    finally:
        await client.close()

asyncio.run(main(int(sys.argv[1])))
"""


@dataclass(frozen=True, slots=True)
class Timed:
    seconds: float
    requests: int
    exit_code: int


@contextlib.asynccontextmanager
async def dongle(delay: float) -> AsyncIterator[DongleSimulator]:
    plant = Plant(PlantConfig(speed=0))
    sim = plant.simulator(plant.simulator_config(response_delay=delay, heartbeat_interval=3600))
    await sim.start()
    try:
        yield sim
    finally:
        await sim.close()


def _env(home: Path) -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home),
            "LANG": "C.UTF-8", **passed_on()}  # fmt: skip


async def timed_process(sim: DongleSimulator, argv: Sequence[str], home: Path) -> Timed:
    """Run ``argv`` to its end; wall time from spawn to exit, requests the simulator saw."""
    mark = sim.mark()
    t0 = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE, env=_env(home), cwd=ROOT,
    )  # fmt: skip
    _, err = await proc.communicate()
    seconds = time.perf_counter() - t0
    if proc.returncode:
        print(err.decode(errors="replace")[-2000:], file=sys.stderr)
    return Timed(seconds, len(sim.requests_seen(mark)), proc.returncode or 0)


async def first_runall(sim: DongleSimulator, work: Path, state: Path) -> Timed:
    """``givtcp-async run`` (REST only) from spawn to the first /runAll with values."""
    rest = free_port()
    config = work / "run.toml"
    config.write_text(
        "[mqtt]\nenabled = false\n\n[influx]\nenabled = false\n\n"
        f'[rest]\nhost = "127.0.0.1"\nport = {rest}\n\n'
        f'[control]\nstate_dir = "{state}"\n\n'
        f'[[inverters]]\nhost = "127.0.0.1"\nport = {sim.port}\n'
    )
    mark = sim.mark()
    t0 = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        *launcher("givtcp-async", CLI), "run", "--config", str(config),
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL, env=_env(work), cwd=ROOT,
    )  # fmt: skip
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
            while time.perf_counter() - t0 < 60:
                if proc.returncode is not None:
                    raise RuntimeError(f"the daemon exited with {proc.returncode}")
                with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
                    async with session.get(f"http://127.0.0.1:{rest}/runAll") as resp:
                        if resp.status == 200 and "Power" in await resp.json():
                            return Timed(time.perf_counter() - t0, len(sim.requests_seen(mark)), 0)
                await asyncio.sleep(0.02)
        raise RuntimeError("/runAll did not answer within 60 s")
    finally:
        proc.terminate()
        await proc.wait()


def _median(runs: Sequence[Timed]) -> Timed:
    return sorted(runs, key=lambda t: t.seconds)[len(runs) // 2]


async def measure(delay: float, repeats: int = 3) -> list[Row]:
    """Each of our figures is the median of ``repeats`` runs (each cold one with a fresh state
    directory); the peer's is one run."""
    runs: dict[str, list[Timed]] = {"cold": [], "warm": [], "run cold": [], "run warm": []}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        async with dongle(delay) as sim:
            for i in range(repeats):
                state = work / f"state-{i}"
                read = [*launcher("givtcp-async", CLI), "read", "--host", "127.0.0.1",
                        "--port", str(sim.port), "--state-dir", str(state)]  # fmt: skip
                runs["cold"].append(await timed_process(sim, read, work))
                runs["warm"].append(await timed_process(sim, read, work))
                run_state = work / f"run-state-{i}"
                runs["run cold"].append(await first_runall(sim, work, run_state))
                runs["run warm"].append(await first_runall(sim, work, run_state))
            peer_argv = [*launcher("givenergy-modbus", "exec(sys.argv.pop(1))"), PEER_READ,
                         str(sim.port)]  # fmt: skip
            peer = await timed_process(sim, peer_argv, work)
    cold, warm = _median(runs["cold"]), _median(runs["warm"])
    run_cold, run_warm = _median(runs["run cold"]), _median(runs["run warm"])
    for label, t in (
        ("read, first run (meter scan)", cold),
        ("read, meters remembered", warm),
        ("givenergy-modbus 2.13.0 read", peer),
        ("run to first /runAll, first start", run_cold),
        ("run to first /runAll, restart", run_warm),
    ):
        status = "" if not t.exit_code else f" (exit {t.exit_code})"
        print(f"{label:36s} {t.seconds:6.2f} s  {t.requests:3d} requests{status}")  # fmt: skip
    if any(t.exit_code for t in (*runs["cold"], *runs["warm"])):
        raise RuntimeError("givtcp-async read failed")
    ms = f"{delay * 1000:.0f} ms dongle"
    peer_note = f"peer {peer.seconds:.1f} s, {peer.requests} requests"
    if peer.exit_code:
        peer_note = f"peer failed (exit {peer.exit_code}) after {peer.seconds:.1f} s"
    return [
        Row(f"read, whole process, meters remembered ({ms})",
            f"{warm.seconds:.2f} s, {warm.requests} requests",
            f"{peer_note}; {peer.seconds / warm.seconds:.1f} x faster",
            metric="startup.read_s", number=warm.seconds),
        Row(f"read, whole process, first run with meter scan ({ms})",
            f"{cold.seconds:.2f} s, {cold.requests} requests"),
        Row(f"run: start to first answered /runAll, restart ({ms})",
            f"{run_warm.seconds:.2f} s, {run_warm.requests} requests",
            f"first start {run_cold.seconds:.2f} s, {run_cold.requests} requests",
            metric="startup.run_s", number=run_warm.seconds),
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delay", type=float, default=0.25, help="dongle response time (0.25 s)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each of ours (3)")
    args = parser.parse_args()
    quiet_logs(logging.CRITICAL)
    asyncio.run(measure(args.delay, args.repeats))


if __name__ == "__main__":
    main()
