"""``givtcp-async simulate``: serve the dongle protocol from a simulated plant or a capture."""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import signal
from pathlib import Path

from givtcp_async.cli.common import EXIT_OK, EXIT_USAGE, add_command, fail
from givtcp_async.errors import GivTcpError


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``simulate`` command."""
    sim = add_command(
        subparsers,
        "simulate",
        description="Serve the GivEnergy dongle protocol on TCP: a simulated Gen3 hybrid plant "
        "with LV batteries on a simulated clock, or the registers of a capture (--capture). "
        "With --evc, a simulated GivEnergy EV charger instead: Modbus TCP (port 502 unless "
        "--port), with a car plugged in and charging (--no-car: none).",
    )
    sim.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    sim.add_argument("--port", type=int, help="TCP port (8899; 502 with --evc; 0 = a free one)")
    sim.add_argument("--evc", action="store_true", help="simulate an EV charger instead")
    sim.add_argument("--no-car", action="store_true", help="--evc: start with no car plugged in")
    sim.add_argument(
        "--capture", metavar="FILE", help="answer from a capture's registers instead of the plant"
    )
    sim.add_argument(
        "--speed",
        type=float,
        metavar="X",
        help="simulated seconds per real second (1; 3600 = an hour a second; 0 = frozen)",
    )
    sim.add_argument(
        "--start",
        metavar="ISO",
        help="simulated start, e.g. 2024-06-21T12:00 (Europe/London unless it has an offset; now)",
    )
    sim.add_argument(
        "--plant",
        choices=("single-phase", "three-phase", "ems", "gateway"),
        help="the plant to simulate: the Gen3 hybrid (single-phase, the default), a three-phase "
        "hybrid, an EMS or a Gateway (each from a real plant's registers, moving)",
    )
    sim.add_argument("--batteries", type=int, metavar="N", help="LV battery packs, 1-6 (2)")
    sim.add_argument("--seed", type=int, metavar="N", help="weather and house-load noise seed (0)")
    sim.add_argument(
        "--heartbeat",
        type=float,
        default=180.0,
        metavar="SECONDS",
        help="heartbeat interval (180)",
    )
    sim.add_argument(
        "--response-delay",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="time taken to answer each request (0)",
    )
    sim.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="KIND=P",
        help="inject fault KIND with probability P per request (repeatable); kinds: delay, "
        "drop, bad_crc, truncate, splice, zero_page, ones_page, garbage_page, garbage, disconnect, "
        "refuse",
    )
    sim.set_defaults(handler=handle)


_PLANT_OPTIONS = (
    ("plant", "--plant"),
    ("speed", "--speed"),
    ("start", "--start"),
    ("batteries", "--batteries"),
    ("seed", "--seed"),
)


_NOT_FOR_EVC = (
    ("capture", "--capture"),
    ("plant", "--plant"),
    ("start", "--start"),
    ("batteries", "--batteries"),
    ("seed", "--seed"),
)


async def _simulate_evc(args: argparse.Namespace) -> int:
    from givtcp_async.evc.simulator import ChargerSimulator

    given = [flag for dest, flag in _NOT_FOR_EVC if getattr(args, dest) is not None]
    if args.fault or args.response_delay:
        given.append("--fault/--response-delay")
    if given:
        return fail(f"{', '.join(given)}: not for --evc", EXIT_USAGE)
    speed = 1.0 if args.speed is None else args.speed
    if not (math.isfinite(speed) and speed >= 0):
        return fail(f"--speed: must be a number >= 0, got {args.speed}", EXIT_USAGE)
    port = 502 if args.port is None else args.port
    charger = ChargerSimulator(host=args.host, port=port, speed=speed)
    if not args.no_car:
        charger.plug_in()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await charger.start()
    except (OSError, RuntimeError) as err:
        return fail(f"cannot listen on {args.host}:{port}: {err}")
    try:
        print(json.dumps({"listening": charger.address, "evc": charger.serial}), flush=True)
        await stop.wait()
    finally:
        await charger.close()
    return EXIT_OK


async def _simulate(args: argparse.Namespace) -> int:
    from dataclasses import replace
    from datetime import datetime

    from givtcp_async.protocol.capture import load_capture
    from givtcp_async.simulator.families import FamilyPlant, build_family_plant
    from givtcp_async.simulator.faults import FaultInjector, parse_fault_option
    from givtcp_async.simulator.plant import MAX_BATTERIES, Plant, build_default_plant
    from givtcp_async.simulator.server import DongleSimulator, SimulatorConfig
    from givtcp_async.simulator.store import RegisterStore

    faults = FaultInjector()
    for option in args.fault:
        try:
            kind, probability = parse_fault_option(option)
        except ValueError as err:
            return fail(f"--fault: {err}", EXIT_USAGE)
        faults.set_probability(kind, probability)
    if args.no_car:
        return fail("--no-car: only with --evc", EXIT_USAGE)
    config = SimulatorConfig(
        host=args.host,
        port=8899 if args.port is None else args.port,
        heartbeat_interval=args.heartbeat,
        response_delay=args.response_delay,
    )
    plant: Plant | FamilyPlant | None = None
    if args.capture is None:
        speed = 1.0 if args.speed is None else args.speed
        if not (math.isfinite(speed) and speed >= 0):
            return fail(f"--speed: must be a number >= 0, got {args.speed}", EXIT_USAGE)
        batteries = 2 if args.batteries is None else args.batteries
        if not 1 <= batteries <= MAX_BATTERIES:
            return fail(f"--batteries: must be 1..{MAX_BATTERIES}, got {batteries}", EXIT_USAGE)
        try:
            start = None if args.start is None else datetime.fromisoformat(args.start)
        except ValueError:
            return fail(f"--start: not an ISO 8601 date/time: {args.start!r}", EXIT_USAGE)
        if args.plant in (None, "single-phase"):
            plant = build_default_plant(
                speed=speed, start=start, seed=args.seed or 0, batteries=batteries
            )
        elif args.batteries is not None:
            return fail("--batteries: only for the single-phase plant", EXIT_USAGE)
        else:
            plant = build_family_plant(args.plant, speed=speed, start=start, seed=args.seed or 0)
        store = plant.store
        config = replace(config, adapter_serial=plant.dongle_serial.encode("ascii"))
    else:
        given = [flag for dest, flag in _PLANT_OPTIONS if getattr(args, dest) is not None]
        if given:
            return fail(
                f"{', '.join(given)}: only for the built-in plant, not --capture", EXIT_USAGE
            )
        try:
            store = RegisterStore.from_capture(load_capture(Path(args.capture)))
        except OSError as err:
            return fail(f"cannot read {args.capture}: {err.strerror}", EXIT_USAGE)
        except GivTcpError as err:
            return fail(f"{args.capture}: {err}", EXIT_USAGE)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with DongleSimulator(store, config, faults=faults) as sim:
            runner: asyncio.Task[None] | None = None
            if plant is not None:
                plant.attach(sim)
                runner = asyncio.create_task(plant.run(), name="plant")
            print(json.dumps({"listening": f"{config.host}:{sim.port}"}), flush=True)
            await stop.wait()
            if runner is not None:
                runner.cancel()
    except OSError as err:
        return fail(f"cannot listen on {args.host}:{args.port}: {err.strerror}")
    return EXIT_OK


def handle(args: argparse.Namespace) -> int:
    return asyncio.run(_simulate_evc(args) if args.evc else _simulate(args))
