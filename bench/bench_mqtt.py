"""MQTT costs: CPU time per full snapshot publish, and command latency to the inverter.

1. A real snapshot of the simulated plant (Gen3 hybrid, two battery packs) is taken once. Then,
   with nothing else running in the process, the bench measures the CPU time (``process_time``)
   to turn it into its state messages (every topic plus the runAll JSON) and to publish them
   with aiomqtt to a real mosquitto on 127.0.0.1, and the same for the Home Assistant discovery
   announcement. Repeated; best and median are printed.
2. The daemon runs against the simulator and mosquitto. A separate client publishes
   ``setChargeTarget`` commands (alternating values, so every one writes); for each, the latency
   runs from just before the publish to the write request arriving at the simulator (its event
   log, same clock), and to the result message arriving back. The controller reads the register
   fresh before writing (skip-if-equal), so one read round trip is part of the latency.

Run: ``.venv/bin/python -m bench.bench_mqtt [--repeat N] [--commands N]``
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import socket
import statistics
import tempfile
from pathlib import Path

import aiomqtt

from bench.common import Row, Timer, latency_rows, quiet_logs
from givtcp_async.protocol.frames import WriteRequest
from givtcp_async.simulator.plant import PlantConfig
from givtcp_async.simulator.server import SimEvent
from givtcp_async.sinks import discovery
from givtcp_async.sinks.mqtt import publish_all
from givtcp_async.sinks.state_topics import StateTopics
from givtcp_async.snapshot import Snapshot
from tests.harness import running_daemon
from tests.mqtt_support import watching
from tests.servers import Mosquitto

ROOT = "GivEnergy"
# Without it the command publish waits behind the client's own PUBACK for the last result until
# the broker's delayed ACK (~40 ms): Nagle's algorithm, not the daemon.
NODELAY = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]


async def take_snapshot(workdir: Path) -> Snapshot:
    async with running_daemon(workdir / "snap", plant_config=PlantConfig(speed=0)) as rig:
        await rig.first_snapshot()
        return await rig.next_snapshot()  # meters scanned, every block read


async def publish_costs(snap: Snapshot, port: int, repeat: int) -> list[Row]:
    topics = StateTopics(ROOT)
    cfg = discovery.DiscoveryConfig(root=ROOT)
    entity_cfg = discovery.DiscoveryConfig(root=ROOT, format="entity")
    rows: dict[str, list[Timer]] = {
        "state": [], "state (build only)": [], "discovery": [], "discovery, per entity": [],
    }  # fmt: skip
    sizes: dict[str, tuple[int, int]] = {}
    async with aiomqtt.Client("127.0.0.1", port, identifier="bench-publisher") as client:
        for i in range(repeat + 1):  # round 0 warms up caches and the connection
            topics.reset()
            with Timer() as build:
                state = topics.messages(snap)
            with Timer() as whole:
                topics.reset()
                state = topics.messages(snap)
                await publish_all(client, state)  # what the service does
            with Timer() as announce:
                configs = list(discovery.announcement(snap, cfg))
                await publish_all(client, configs)
            with Timer() as per_entity:
                entity_configs = list(discovery.announcement(snap, entity_cfg))
                await publish_all(client, entity_configs)
            if i:
                rows["state"].append(whole)
                rows["state (build only)"].append(build)
                rows["discovery"].append(announce)
                rows["discovery, per entity"].append(per_entity)
            sizes["state"] = sizes["state (build only)"] = (
                len(state),
                sum(len(m.payload) for m in state),
            )
            sizes["discovery"] = (len(configs), sum(len(m.payload) for m in configs))
            sizes["discovery, per entity"] = (
                len(entity_configs),
                sum(len(m.payload) for m in entity_configs),
            )
    summary: list[Row] = []
    for name, timers in rows.items():
        cpu = [t.cpu for t in timers]
        n, size = sizes[name]
        print(
            f"{name:>19}: {n} messages, {size / 1024:.0f} KiB; CPU best {min(cpu):.1f} ms, "
            f"median {statistics.median(cpu):.1f} ms; wall median "
            f"{statistics.median(t.wall for t in timers):.1f} ms"
        )
        if name != "state (build only)":
            what = {
                "state": "full state publish",
                "discovery": "discovery announcement, per device",
                "discovery, per entity": "discovery announcement, per entity",
            }[name]
            summary.append(
                Row(
                    f"MQTT: {what} ({n} messages, {size / 1024:.0f} KiB)",
                    f"{statistics.median(cpu):.1f} ms CPU (best {min(cpu):.1f})",
                )
            )
    return summary


async def command_latency(workdir: Path, broker: Mosquitto, commands: int) -> list[Row]:
    mqtt = {"host": "127.0.0.1", "port": broker.port, "client_id": "bench-daemon"}
    to_write: list[float] = []
    to_result: list[float] = []
    async with (
        running_daemon(workdir / "cmd", plant_config=PlantConfig(speed=0), mqtt=mqtt) as rig,
        watching(broker.port, f"{ROOT}/+/control/+/result", socket_options=NODELAY) as w,
    ):
        snap = await rig.first_snapshot()
        serial = snap.serial
        loop = asyncio.get_running_loop()
        command = f"{ROOT}/{serial}/control/setChargeTarget"

        def is_write(ev: SimEvent) -> bool:
            return ev.kind == "request" and isinstance(ev.frame, WriteRequest)

        await rig.next_snapshot()  # the meter scan after the first poll is over
        for i in range(commands + 3):
            value = 50 + i % 2
            mark, seen = rig.sim.mark(), w.mark()
            t0 = loop.time()
            await w.client.publish(command, str(value))
            event = await rig.sim.wait_for(is_write, after=mark)
            result = await w.wait_topic(f"{command}/result", after=seen)
            t1 = loop.time()
            if i >= 3:  # warm-up
                to_write.append((event.time - t0) * 1000)
                to_result.append((t1 - t0) * 1000)
            assert '"status":"ok"' in result.payload, result.payload
            # Let the refresh that follows every write finish: commands are timed on a daemon
            # that is not busy polling (a poll in flight delays a command by up to one read).
            async for fresh in rig.coordinator.updates():
                if fresh.value("Target_SOC") == value:
                    break
    return latency_rows(
        "MQTT command setChargeTarget",
        [("publish -> write at simulator", to_write), ("publish -> result received", to_result)],
    )


async def main(repeat: int, commands: int) -> list[Row]:
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        broker = Mosquitto(workdir)
        broker.start()
        try:
            snap = await take_snapshot(workdir)
            print(f"snapshot of {snap.serial}: {len(snap.flat())} values")
            rows = await publish_costs(snap, broker.port, repeat)
            rows += await command_latency(workdir, broker, commands)
        finally:
            broker.stop()
    return rows


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20, help="full publishes timed (20)")
    parser.add_argument("--commands", type=int, default=50, help="commands timed (50)")
    args = parser.parse_args()
    quiet_logs(logging.CRITICAL)
    asyncio.run(main(args.repeat, args.commands))


if __name__ == "__main__":
    cli()
