"""Shared fixtures: the reference captures and vectors (tests/fixtures), and real servers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import Mosquitto, VictoriaMetrics

# The project's own copy of the reference captures and vectors (tests/fixtures/README.md).
FIXTURES = Path(__file__).resolve().parent / "fixtures"
CAPTURES = FIXTURES / "captures"
VECTORS = FIXTURES / "vectors.json"


def all_captures() -> list[Path]:
    return sorted(CAPTURES.glob("*/*.jsonl"))


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    broker = Mosquitto(tmp_path)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def victoria(tmp_path: Path) -> Iterator[VictoriaMetrics]:
    server = VictoriaMetrics(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()
