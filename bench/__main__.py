"""Run every benchmark and print one table of the figures (issue #8 §3, issue #16).

Each benchmark prints its own figures as it runs (the same output as running its module on its
own); the summary table comes at the end. ``--quick`` runs shorter versions (fewer repetitions,
fewer fuzz inputs, a 15 s memory window) for a check in a few minutes. Only 127.0.0.1 is used:
simulators, mosquitto, VictoriaMetrics and the daemon.

The key figures are then compared with ``bench/baseline.json``: a figure more than 25 % worse
than its baseline (lower for a ratio or a rate, higher for a time or a size) fails the run, exit
1, naming the figure. ``--update-baseline`` writes this run's figures there instead (the ones of
the benchmarks run; the others are kept); ``--no-baseline`` skips the comparison.

Run: ``.venv/bin/python -m bench [--quick] [--only NAME ...] [--skip NAME ...] [--markdown]``
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import os
import platform
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench import (
    bench_codec,
    bench_connection,
    bench_cycle,
    bench_evc,
    bench_memory,
    bench_mqtt,
    bench_refresh,
    bench_rest,
    bench_startup,
    fuzz_frames,
)
from bench.common import Row, format_table, quiet_logs


@dataclass(frozen=True, slots=True)
class Options:
    quick: bool
    settle: float
    window: float
    inverters: list[int]
    without_stdlib_bytecode: bool = False


@dataclass(frozen=True, slots=True)
class Bench:
    name: str
    what: str
    run: Callable[[Options], list[Row]]


def _fuzz(o: Options) -> list[Row]:
    rows, failures = fuzz_frames.measure(20_000 if o.quick else 1_000_000)
    if failures:
        raise RuntimeError(f"the fuzzer found {failures} contract failures")
    return rows


BENCHES = (
    Bench("codec", "frames per second through the decoder",
          lambda o: bench_codec.measure(0.3 if o.quick else 1.0)),
    Bench("connection", "time a read spends in our code (20 ms simulated response)",
          lambda o: asyncio.run(bench_connection.run(50 if o.quick else 200, 0.020, 10))),
    Bench("refresh", "full refresh of the default plant against the lower bound; "
          "build of a three-phase refresh",
          lambda o: asyncio.run(bench_refresh.run_with_three_phase(
              0.25, 0.25, 1 if o.quick else 3, 50 if o.quick else 200))),
    Bench("cycle", "CPU per poll cycle, stage by stage",
          lambda o: asyncio.run(bench_cycle.measure(16 if o.quick else 48))),
    Bench("mqtt", "MQTT publish CPU and command latency",
          lambda o: asyncio.run(bench_mqtt.main(5 if o.quick else 20, 10 if o.quick else 50))),
    Bench("rest", "REST command latency",
          lambda o: asyncio.run(bench_rest.measure(10 if o.quick else 50))),
    Bench("evc", "one EV charger poll over Modbus TCP against pymodbus alone",
          lambda o: asyncio.run(bench_evc.measure(50 if o.quick else 200))),
    Bench("startup", "read as a whole process, run until /runAll first answers",
          lambda o: asyncio.run(bench_startup.measure(0.25, 1 if o.quick else 3))),
    Bench("memory", "daemon RSS and CPU share: bare, MQTT + REST, everything with 1 and 20",
          lambda o: asyncio.run(bench_memory.measure(o.inverters, o.settle, o.window,
                                                     o.without_stdlib_bytecode))),
    Bench("fuzz", "mutation fuzzing of the decoder", _fuzz),
)  # fmt: skip
NAMES = [b.name for b in BENCHES]
BASELINE = Path(__file__).with_name("baseline.json")
TOLERANCE = 1.25  # a figure more than 25 % worse than its baseline is a regression


def regressions(rows: list[Row], baseline: dict[str, dict[str, object]]) -> list[str]:
    """One line per figure of ``rows`` more than 25 % worse than in ``baseline``."""
    out = []
    for row in rows:
        base = baseline.get(row.metric)
        if not row.metric or row.number is None or base is None:
            continue
        value = base.get("value")
        if not isinstance(value, int | float) or value <= 0:
            continue
        if row.higher_is_better:
            worse = row.number * TOLERANCE < value
        else:
            worse = row.number > value * TOLERANCE
        if worse:
            out.append(
                f"{row.metric} ({row.figure.strip()}): {row.number:.3g}, baseline "
                f"{value:.3g} ({'higher' if row.higher_is_better else 'lower'} is better)"
            )
    return out


def load_baseline() -> dict[str, dict[str, object]]:
    if not BASELINE.exists():
        return {}
    figures = json.loads(BASELINE.read_text()).get("figures", {})
    return figures if isinstance(figures, dict) else {}


def write_baseline(rows: list[Row]) -> None:
    figures = load_baseline()
    for row in rows:
        if row.metric and row.number is not None:
            figures[row.metric] = {"value": round(row.number, 4),
                                   "higher_is_better": row.higher_is_better,
                                   "figure": row.figure.strip()}  # fmt: skip
    doc = {"about": "python -m bench compares its key figures with these (bench/README.md); "
                    "python -m bench --update-baseline rewrites them",
           "python": platform.python_version(), "cpus": os.cpu_count(),
           "figures": dict(sorted(figures.items()))}  # fmt: skip
    BASELINE.write_text(json.dumps(doc, indent=1) + "\n")


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Run every benchmark and print one table of the figures.",
        epilog="benchmarks: " + "; ".join(f"{b.name}: {b.what}" for b in BENCHES),
    )
    parser.add_argument("--quick", action="store_true", help="shorter runs (about 2 minutes)")
    parser.add_argument("--only", nargs="+", choices=NAMES, metavar="NAME", help="run only these")
    parser.add_argument("--skip", nargs="+", choices=NAMES, default=[], metavar="NAME",
                        help="leave these out")  # fmt: skip
    parser.add_argument("--window", type=float, metavar="S",
                        help="memory: seconds measured (60; 15 with --quick)")  # fmt: skip
    parser.add_argument("--settle", type=float, metavar="S",
                        help="memory: seconds before measuring (30; 20 with --quick)")  # fmt: skip
    parser.add_argument("--inverters", type=int, nargs="+", default=[1, 20], metavar="N",
                        help="memory: inverter counts (1 20)")  # fmt: skip
    parser.add_argument("--without-stdlib-bytecode", action="store_true",
                        help="memory: also MQTT + REST without the standard library's bytecode "
                             "(the slim base image's case)")  # fmt: skip
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--update-baseline", action="store_true",
                       help="write this run's key figures to bench/baseline.json")  # fmt: skip
    group.add_argument("--no-baseline", action="store_true",
                       help="do not compare with bench/baseline.json")  # fmt: skip
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    options = Options(
        quick=args.quick,
        settle=args.settle if args.settle is not None else 20.0 if args.quick else 30.0,
        window=args.window if args.window is not None else 15.0 if args.quick else 60.0,
        inverters=args.inverters,
        without_stdlib_bytecode=args.without_stdlib_bytecode,
    )
    chosen = [b for b in BENCHES if (not args.only or b.name in args.only)]
    chosen = [b for b in chosen if b.name not in args.skip]
    quiet_logs(logging.CRITICAL)
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    rows: list[Row] = []
    failed: list[str] = []
    for bench in chosen:
        print(f"\n== {bench.name}: {bench.what}", flush=True)
        gc.collect()
        try:
            rows += bench.run(options)
        except Exception as err:  # noqa: BLE001 (one broken benchmark must not hide the rest)
            traceback.print_exc()
            rows.append(Row(f"{bench.name}: FAILED", f"{type(err).__name__}: {err}"[:120]))
            failed.append(bench.name)
        sys.stdout.flush()
    elapsed = time.perf_counter() - started
    print(
        f"\nPython {platform.python_version()} on {os.cpu_count()} CPUs; load average "
        f"{load_before:.1f} before, {os.getloadavg()[0]:.1f} after; "
        f"{'quick' if args.quick else 'full'} run, {elapsed:.0f} s\n"
    )
    print(format_table(rows, markdown=args.markdown))
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
    worse: list[str] = []
    if args.update_baseline and not failed:
        write_baseline(rows)
        print(f"\nbaseline written: {BASELINE}")
    elif not args.no_baseline:
        worse = regressions(rows, load_baseline())
        for line in worse:
            print(f"regression: {line}", file=sys.stderr)
    return 1 if failed or worse else 0


if __name__ == "__main__":
    sys.exit(main())
