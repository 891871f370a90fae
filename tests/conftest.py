"""Shared fixtures: the reference data folder, real servers, and the simulated dongle."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import Mosquitto, VictoriaMetrics


def _shared_dir() -> Path:
    candidates = [
        os.environ.get("GIVTCP_SHARED"),
        str(Path(__file__).resolve().parents[2] / "shared"),
        "/work/shared",
    ]
    for c in candidates:
        if c and (Path(c) / "protocol" / "vectors.json").exists():
            return Path(c)
    raise RuntimeError("reference data not found: set GIVTCP_SHARED to the shared/ folder")


SHARED = _shared_dir()
CAPTURES = SHARED / "captures"
VECTORS = SHARED / "protocol" / "vectors.json"


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
