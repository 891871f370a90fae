"""The chaos soak, CI variant: one simulated day (see tests/soak.py; ``bench/soak.py`` runs a
month)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.servers import Mosquitto, VictoriaMetrics
from tests.soak import SoakConfig, run_soak


@pytest.mark.timeout(600)
async def test_a_simulated_day_of_faults_publishes_no_wrong_value(
    tmp_path: Path, mosquitto: Mosquitto, victoria: VictoriaMetrics
) -> None:
    report = await run_soak(tmp_path, SoakConfig(days=1.0, seed=7), mosquitto, victoria)
    print(report.table())
    assert report.problems == []
    # The run exercised what it claims to: faults of every kind, reconnections, both
    # transports, an outage and a restart, stale values, and many comparisons.
    assert report.values_checked > 20_000
    assert report.stale > 0
    assert report.fresh > 0.8 * report.values_checked
    assert set(report.faults) >= {"bad_crc", "garbage", "zero_page", "garbage_page"}
    assert report.reconnect_times
    assert report.broker_restarts == 1
    assert report.influx_outages == 1
    assert report.influx_samples_checked > 0
    assert report.mqtt_messages_checked > 0
    assert report.ok_writes_verified > 0
    transports = {key.split("/")[0] for key in report.commands}
    assert transports == {"mqtt", "rest"}
    # Flat: after warm-up nothing accumulates.
    first, last = report.samples[0], report.samples[-1]
    assert last[2] <= first[2] + 3, report.samples  # tasks
    assert last[3] <= first[3] + 2, report.samples  # sockets
    assert last[1] - first[1] < 40, report.samples  # MiB
