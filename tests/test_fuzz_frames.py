"""Mutation fuzzing of the decoder and stream splitter (1M inputs: bench/fuzz_frames)."""

from __future__ import annotations

import json
import random

from givtcp_async.testing.fuzz import fuzz, generated_frames, mutate
from tests.conftest import all_captures


def corpus() -> list[bytes]:
    frames = [
        bytes.fromhex(json.loads(line)["hex"])
        for path in all_captures()
        for line in path.read_text().splitlines()
    ]
    return frames + generated_frames(random.Random(7), 200)


def test_mutated_frames_never_break_the_decoder_contract() -> None:
    report = fuzz(corpus(), 30_000, seed=20261123)
    assert report.failures == []
    assert report.decoded > 1000  # the mutations keep many inputs valid: the check has teeth
    assert sum(report.rejected.values()) > 10_000
    assert report.rejected["CrcMismatch"] > 0
    assert report.rejected["MalformedFrame"] > 0


def test_mutations_change_their_input() -> None:
    rng = random.Random(3)
    seeds = corpus()
    changed = sum(mutate(rng, s, seeds) != s for s in seeds[:500])
    assert changed > 450
