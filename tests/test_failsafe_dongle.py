"""A hostile dongle (issue 15, point 15): a stream of junk without frame markers costs bounded
CPU. The fake dongle is a real TCP server on 127.0.0.1, in its own process, writing junk as fast
as it can to whoever connects."""

from __future__ import annotations

import asyncio
import sys
import time

from givtcp_async.connection import ConnectionSettings, DongleConnection

JUNK_DONGLE = """
import socket, sys
server = socket.socket()
server.bind(("127.0.0.1", 0))
server.listen()
print(server.getsockname()[1], flush=True)
junk = bytes(range(256)) * 256  # 64 KiB without 59 59 00 01
while True:
    client, _ = server.accept()
    try:
        while True:
            client.sendall(junk)
    except OSError:
        client.close()  # dropped: wait for the next connection
"""


async def test_a_dongle_streaming_junk_is_dropped_and_costs_bounded_cpu() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", JUNK_DONGLE, stdout=asyncio.subprocess.PIPE
    )
    try:
        assert proc.stdout is not None
        port = int(await proc.stdout.readline())
        settings = ConnectionSettings(
            host="127.0.0.1", port=port, backoff_initial=0.5, backoff_jitter=0.0
        )
        downs: list[bool] = []
        second_drop = asyncio.Event()

        def on_state(up: bool) -> None:
            if not up:
                downs.append(up)
                if len(downs) == 2:
                    second_drop.set()

        async with DongleConnection(settings, on_state=on_state) as conn:
            await conn.wait_connected(5)
            cpu = time.process_time()
            wall = time.monotonic()
            async with asyncio.timeout(10):
                await second_drop.wait()
            # A fixed stretch of wall time to measure the CPU over, not a synchronisation.
            await asyncio.sleep(max(0.0, 2.0 - (time.monotonic() - wall)))
            used = time.process_time() - cpu
            elapsed = time.monotonic() - wall
        # Reading junk flat out takes a whole core; dropped after 64 KiB and re-made with
        # back-off it takes milliseconds per connection.
        assert used < 0.2 * elapsed, (used, elapsed)
        assert conn.stats.junk_drops >= 2
        assert conn.stats.responses == 0
    finally:
        proc.kill()
        await proc.wait()
