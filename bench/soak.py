"""The long chaos soak (issue #8 §1), run by hand: a simulated month or more.

    .venv/bin/python -m bench.soak [--days 30] [--seed 1]

The same soak as ``tests/test_soak.py`` (see ``tests/soak.py``) with a broker restart and an
InfluxDB outage every five simulated days. Starts its own mosquitto and VictoriaMetrics on
127.0.0.1. The daemon runs in a process of its own (``tests/soak_host.py``): the RSS, tasks and
sockets of the table are the daemon's alone. Prints progress per simulated day, then the table;
exits 1 on any problem.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import tempfile
from pathlib import Path

import structlog

from tests.servers import Mosquitto, VictoriaMetrics
from tests.soak import SoakConfig, SoakReport, run_soak


async def soak(days: float, seed: int) -> SoakReport:
    with tempfile.TemporaryDirectory(prefix="givtcp-soak-") as tmp:
        work = Path(tmp)
        broker, vm = Mosquitto(work), VictoriaMetrics(work)
        broker.start()
        vm.start()
        try:
            every = max(1, round(days / 5))
            cfg = SoakConfig(
                days=days,
                seed=seed,
                broker_restarts=every,
                influx_outages=every,
                sample_every=144,
                influx_check_every=144,
                progress=lambda text: print(text, flush=True),
            )
            return await run_soak(work, cfg, broker, vm)
        finally:
            broker.stop()
            vm.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=float, default=30.0, help="simulated days (30)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (1)")
    args = parser.parse_args()
    # The daemon's own log lines would drown the table: errors only.
    logging.basicConfig(level=logging.ERROR)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    report = asyncio.run(soak(args.days, args.seed))
    print(report.table())
    for problem in report.problems:
        print("PROBLEM", problem)
    sys.exit(1 if report.problems else 0)


if __name__ == "__main__":
    main()
