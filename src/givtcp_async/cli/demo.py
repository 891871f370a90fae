"""``givtcp-async demo``: the simulated plant and the daemon in one process."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from givtcp_async.cli.common import (
    EXIT_OK,
    EXIT_RESTART,
    EXIT_USAGE,
    add_command,
    config_errors_exit,
    fail,
    run_daemon,
)

if TYPE_CHECKING:
    from givtcp_async.config import Settings


DEMO_POLL_SECONDS = 5.0
DEMO_MAX_SPEED = 720.0
PLANTS = ("single-phase", "three-phase", "ems", "gateway")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``demo`` command."""
    demo = add_command(
        subparsers,
        "demo",
        description="Start a simulated plant (by default a Gen3 hybrid with LV batteries, as "
        "`simulate` serves; --plant for a three-phase hybrid, an EMS or a Gateway) and the "
        "daemon polling it, in one process: REST and the dashboard on "
        "http://127.0.0.1:6345/ (rest.host/rest.port, --port), MQTT when a broker is "
        "configured (--mqtt-host, mqtt.host) or the internal one is on (--internal-broker), "
        "InfluxDB when configured. The configuration is read as for `run`, but its inverters "
        "are replaced by the simulator and control state goes to a temporary directory. Prints "
        "one JSON line (dashboard URL, simulator address, serial, services); runs until Ctrl-C "
        "or SIGTERM. Exit 0 after a clean stop, 1 when something cannot start, 2 for bad usage.",
    )
    demo.add_argument(
        "--port",
        dest="rest_port",
        type=int,
        metavar="PORT",
        help="REST and dashboard port (rest.port, default 6345)",
    )
    demo.add_argument(
        "--speed",
        type=float,
        default=1.0,
        metavar="X",
        help=f"simulated seconds per real second, 1-{DEMO_MAX_SPEED:g} (1); polls stay "
        f"{DEMO_POLL_SECONDS:g} s apart in real time",
    )
    demo.add_argument(
        "--plant",
        choices=PLANTS,
        default="single-phase",
        help="which plant to simulate: a Gen3 hybrid with LV packs and an EM115 meter "
        "(single-phase, the default), or a three-phase hybrid, an EMS with two inverters or a "
        "Gateway with two All-in-Ones, each from a real plant's registers, moving in real time "
        "and obeying its controls",
    )
    demo.add_argument(
        "--batteries", type=int, default=2, metavar="N", help="LV packs, 1-6 (2; single-phase)"
    )
    demo.add_argument("--seed", type=int, default=0, metavar="N", help="weather and load seed (0)")
    demo.add_argument(
        "--evc",
        action="store_true",
        help="also a simulated EV charger (a car charging, its draw part of the house load), "
        "polled and served beside the inverter; the JSON line adds its address",
    )
    demo_cfg = demo.add_argument_group("configuration")
    demo_cfg.add_argument(
        "--config", metavar="FILE", type=Path, help="TOML configuration file (as for run)"
    )
    demo_cfg.add_argument("--mqtt-host", dest="cfg_mqtt_host", metavar="HOST", help="MQTT broker")
    demo_cfg.add_argument(
        "--internal-broker",
        action="store_true",
        help="start the built-in mosquitto broker on 127.0.0.1 (mqtt.internal_broker)",
    )
    demo_cfg.add_argument(
        "--log-level", dest="cfg_log_level", metavar="LEVEL", help="DEBUG, INFO, WARNING, ERROR"
    )
    demo.set_defaults(handler=handle)


async def _demo(args: argparse.Namespace, base: Settings) -> int:
    import tempfile

    from givtcp_async.config import ChargerConfig, InverterConfig
    from givtcp_async.daemon import Daemon
    from givtcp_async.evc.simulator import ChargerSimulator
    from givtcp_async.simulator.families import FamilyPlant, build_family_plant
    from givtcp_async.simulator.plant import Plant, PlantClock, build_default_plant

    restart = False

    plant: Plant | FamilyPlant
    if args.plant == "single-phase":
        plant = build_default_plant(speed=args.speed, seed=args.seed, batteries=args.batteries)
    else:
        plant = build_family_plant(args.plant, speed=args.speed, seed=args.seed)
    sim = plant.simulator()
    charger: ChargerSimulator | None = None
    try:
        await sim.start()
        if args.evc:
            charger = ChargerSimulator(speed=args.speed)
            charger.plug_in()
            await charger.start()
            plant.external_load = lambda: charger.power_w if charger else 0.0
    except (OSError, RuntimeError) as err:
        await sim.close()
        return fail(f"cannot start the simulators: {err}")
    runner = asyncio.create_task(plant.run(), name="demo-plant")
    try:
        with tempfile.TemporaryDirectory(prefix="givtcp-async-demo-") as state:
            # Polls every DEMO_POLL_SECONDS of real time, whatever the plant's speed.
            poll = DEMO_POLL_SECONDS * max(1.0, args.speed)
            inverter = InverterConfig(
                host="127.0.0.1",
                port=sim.port,
                poll_interval=poll,
                settings_interval=max(poll, 60.0),
            )
            # At --speed X the daemon runs on the plant's clock: the offline and stale limits,
            # in simulated seconds, grow with the poll interval.
            offline = min(86400.0, max(base.mqtt.offline_after, 3 * poll))
            stale = min(86400.0, max(base.data.stale_after, 4 * poll))
            chargers = (
                [ChargerConfig(host="127.0.0.1", port=charger.port, poll_interval=poll)]
                if charger is not None
                else []
            )
            settings = base.model_copy(
                update={
                    "inverters": [inverter],
                    "chargers": chargers,
                    "control": base.control.model_copy(update={"state_dir": Path(state)}),
                    "mqtt": base.mqtt.model_copy(update={"offline_after": offline}),
                    "data": base.data.model_copy(update={"stale_after": stale}),
                }
            )
            clock = PlantClock(plant) if args.speed != 1 else None
            daemon = Daemon(settings, clock=clock)
            rest = settings.rest
            shown = "127.0.0.1" if rest.host in ("0.0.0.0", "::") else rest.host
            info: dict[str, Any] = {
                "dashboard": f"http://{shown}:{rest.port}/" if rest.enabled else None,
                "simulator": f"127.0.0.1:{sim.port}",
                "serial": plant.serial,
                "plant": args.plant,
                **({"evc": charger.address} if charger is not None else {}),
                "mqtt": f"{settings.mqtt.host}:{settings.mqtt.port}"
                if settings.mqtt.enabled
                else None,
                "influx": settings.influx.url if settings.influx.enabled else None,
                "services": [s.name for s in daemon.services],
            }
            print(json.dumps(info), flush=True)
            if rest.enabled:
                print(
                    f"givtcp-async: demo: dashboard at {info['dashboard']} (Ctrl-C stops)",
                    file=sys.stderr,
                )
            await daemon.serve_until_signalled()
            restart = daemon.restart_requested
    finally:
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner
        await sim.close()
        if charger is not None:
            await charger.close()
    return EXIT_RESTART if restart else EXIT_OK


def handle(args: argparse.Namespace) -> int:
    from givtcp_async.logging_setup import configure_logging

    if not (math.isfinite(args.speed) and 1 <= args.speed <= DEMO_MAX_SPEED):
        return fail(f"--speed: must be 1..{DEMO_MAX_SPEED:g}, got {args.speed}", EXIT_USAGE)
    if not 1 <= args.batteries <= 6:
        return fail(f"--batteries: must be 1..6, got {args.batteries}", EXIT_USAGE)
    if args.plant != "single-phase" and args.batteries != 2:
        return fail("--batteries: only for the single-phase plant", EXIT_USAGE)
    overrides: dict[str, Any] = {
        "inverters.0.host": "127.0.0.1",  # replaced by the simulator once it listens
        "rest.enabled": True,
        "rest.port": args.rest_port,
        "mqtt.host": args.cfg_mqtt_host,
        "mqtt.internal_broker": True if args.internal_broker else None,
        "logging.level": args.cfg_log_level,
    }
    labels = {
        "rest.port": "--port",
        "mqtt.host": "--mqtt-host",
        "mqtt.internal_broker": "--internal-broker",
        "logging.level": "--log-level",
    }
    from givtcp_async.config import load_config

    with config_errors_exit():
        settings = load_config(args.config, overrides=overrides, override_labels=labels)
        configure_logging(settings)  # logging.file may not open
    return run_daemon(_demo(args, settings))
