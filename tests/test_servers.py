"""The real test servers start, answer and restart on the same port."""

from __future__ import annotations

import socket
import urllib.request

from tests.servers import Mosquitto, VictoriaMetrics


def test_mosquitto_restarts_on_same_port(mosquitto: Mosquitto) -> None:
    port = mosquitto.port
    with socket.create_connection(("127.0.0.1", port), timeout=1):
        pass
    mosquitto.restart()
    assert mosquitto.port == port
    with socket.create_connection(("127.0.0.1", port), timeout=1):
        pass


def test_victoria_metrics_is_healthy(victoria: VictoriaMetrics) -> None:
    with urllib.request.urlopen(f"{victoria.url}/health", timeout=2) as resp:
        assert resp.status == 200
