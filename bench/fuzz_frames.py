"""A million mutated frames through the decoder and the stream splitter (issue #8 §2).

Seeds: every frame of every capture plus generated frames of every kind. Prints the outcome
counts and the rate; exits 1 if any input breaks the contract (see givtcp_async.testing.fuzz).

Run: ``.venv/bin/python -m bench.fuzz_frames [--iterations N] [--seed S]``
"""

from __future__ import annotations

import argparse
import random
import sys
import time

from bench.bench_codec import load_frames
from bench.common import Row
from givtcp_async.testing.fuzz import fuzz, generated_frames


def measure(iterations: int, seed: int = 1) -> tuple[list[Row], int]:
    """Print the outcome; the summary row and the number of contract failures."""
    corpus = load_frames()[0] + generated_frames(random.Random(seed), 500)
    t0 = time.perf_counter()
    report = fuzz(corpus, iterations, seed=seed)
    elapsed = time.perf_counter() - t0
    print(report.as_text())
    print(f"{iterations / elapsed:,.0f} inputs/s over {elapsed:.1f} s (seed {seed})")
    for failure in report.failures[:20]:
        print("FAIL", failure)
    row = Row(
        f"fuzzing: {iterations:,} mutated frames through decoder and stream",
        f"{len(report.failures)} contract failures",
        f"{iterations / elapsed:,.0f} inputs/s",
    )
    return [row], len(report.failures)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    return 1 if measure(args.iterations, args.seed)[1] else 0


if __name__ == "__main__":
    sys.exit(main())
