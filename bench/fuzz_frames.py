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
from givtcp_async.testing.fuzz import fuzz, generated_frames


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    corpus = load_frames()[0] + generated_frames(random.Random(args.seed), 500)
    t0 = time.perf_counter()
    report = fuzz(corpus, args.iterations, seed=args.seed)
    elapsed = time.perf_counter() - t0
    print(report.as_text())
    print(f"{args.iterations / elapsed:,.0f} inputs/s over {elapsed:.1f} s (seed {args.seed})")
    for failure in report.failures[:20]:
        print("FAIL", failure)
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())
