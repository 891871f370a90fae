"""`givtcp-async run` as a real process: systemd readiness and watchdog, SIGTERM within 5 s."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from pathlib import Path

from givtcp_async.simulator.plant import Plant, PlantConfig


def _recv(sock: socket.socket, timeout: float) -> str:
    sock.settimeout(timeout)
    return sock.recv(4096).decode()


async def test_run_notifies_systemd_feeds_the_watchdog_and_stops_on_sigterm(
    tmp_path: Path,
) -> None:
    plant = Plant(PlantConfig(speed=0))
    async with plant.simulator() as sim:
        notify_path = tmp_path / "notify.sock"
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        notify.bind(str(notify_path))
        env = {
            **os.environ,
            "NOTIFY_SOCKET": str(notify_path),
            "WATCHDOG_USEC": "400000",  # the daemon must ping every 0.2 s
            "GIVTCP_INVERTERS__0__HOST": "127.0.0.1",
            "GIVTCP_INVERTERS__0__PORT": str(sim.port),
            "GIVTCP_CONTROL__STATE_DIR": str(tmp_path / "state"),
            "GIVTCP_REST__ENABLED": "false",
            "GIVTCP_LOGGING__LEVEL": "WARNING",
        }
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "givtcp_async", "run", env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            loop = asyncio.get_running_loop()
            messages: list[str] = []
            while not any(m.startswith("READY=1") for m in messages):
                messages.append(await loop.run_in_executor(None, _recv, notify, 20.0))
            # The watchdog is only fed while the inverter answers: wait for the first ping.
            while "WATCHDOG=1" not in messages:
                messages.append(await loop.run_in_executor(None, _recv, notify, 20.0))
            assert sim.client_count == 1
            proc.send_signal(signal.SIGTERM)
            started = time.monotonic()
            async with asyncio.timeout(5):
                code = await proc.wait()
            assert time.monotonic() - started < 5
            assert code == 0
            while "STOPPING=1" not in messages:
                messages.append(await loop.run_in_executor(None, _recv, notify, 2.0))
            await sim.wait_for(lambda e: e.kind == "disconnect", timeout=5)
            assert sim.client_count == 0
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            notify.close()
