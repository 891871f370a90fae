"""The ``givtcp-async`` command line.

Exit codes: 0 success, 1 the operation failed (device, network, command result), 2 bad usage or
bad input (argparse's own convention), 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import signal
import sys
from collections.abc import Coroutine, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from givtcp_async.errors import ConfigError, GivTcpError

if TYPE_CHECKING:
    from givtcp_async.config import Settings

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def _fail(message: str, code: int = EXIT_FAILED) -> int:
    print(f"givtcp-async: {message}", file=sys.stderr)
    return code


class _Exit(Exception):
    """Ends a command with exit status ``code`` (its reasons are already on stderr)."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


@contextlib.contextmanager
def _config_errors_exit() -> Iterator[None]:
    """A configuration error inside ends the command: one line per problem, exit 2."""
    try:
        yield
    except ConfigError as err:
        for line in str(err).splitlines():
            print(f"givtcp-async: {line}", file=sys.stderr)
        raise _Exit(EXIT_USAGE) from None


# --- capture decode --------------------------------------------------------------------------


def _cmd_capture_decode(args: argparse.Namespace) -> int:
    from givtcp_async.protocol.capture import decode_records, read_capture

    path = Path(args.file)
    try:
        fh = sys.stdin if args.file == "-" else path.open(encoding="utf-8")
    except OSError as err:
        return _fail(f"cannot open {args.file}: {err.strerror}", EXIT_USAGE)
    with contextlib.ExitStack() as stack:
        if fh is not sys.stdin:
            stack.enter_context(fh)
        try:
            for item in decode_records(read_capture(fh)):
                if args.direction and item["direction"] != args.direction:
                    continue
                print(json.dumps(item, separators=(",", ":")))
        except GivTcpError as err:
            return _fail(str(err), EXIT_USAGE)
        except BrokenPipeError:
            return EXIT_OK
    return EXIT_OK


# --- simulate --------------------------------------------------------------------------------


_PLANT_OPTIONS = (
    ("speed", "--speed"),
    ("start", "--start"),
    ("batteries", "--batteries"),
    ("seed", "--seed"),
)


async def _simulate(args: argparse.Namespace) -> int:
    from dataclasses import replace
    from datetime import datetime

    from givtcp_async.protocol.capture import load_capture
    from givtcp_async.simulator.faults import FaultInjector, parse_fault_option
    from givtcp_async.simulator.plant import MAX_BATTERIES, Plant, build_default_plant
    from givtcp_async.simulator.server import DongleSimulator, SimulatorConfig
    from givtcp_async.simulator.store import RegisterStore

    faults = FaultInjector()
    for option in args.fault:
        try:
            kind, probability = parse_fault_option(option)
        except ValueError as err:
            return _fail(f"--fault: {err}", EXIT_USAGE)
        faults.set_probability(kind, probability)
    config = SimulatorConfig(
        host=args.host,
        port=args.port,
        heartbeat_interval=args.heartbeat,
        response_delay=args.response_delay,
    )
    plant: Plant | None = None
    if args.capture is None:
        speed = 1.0 if args.speed is None else args.speed
        if not (math.isfinite(speed) and speed >= 0):
            return _fail(f"--speed: must be a number >= 0, got {args.speed}", EXIT_USAGE)
        batteries = 2 if args.batteries is None else args.batteries
        if not 1 <= batteries <= MAX_BATTERIES:
            return _fail(f"--batteries: must be 1..{MAX_BATTERIES}, got {batteries}", EXIT_USAGE)
        try:
            start = None if args.start is None else datetime.fromisoformat(args.start)
        except ValueError:
            return _fail(f"--start: not an ISO 8601 date/time: {args.start!r}", EXIT_USAGE)
        plant = build_default_plant(
            speed=speed, start=start, seed=args.seed or 0, batteries=batteries
        )
        store = plant.store
        config = replace(config, adapter_serial=plant.dongle_serial.encode("ascii"))
    else:
        given = [flag for dest, flag in _PLANT_OPTIONS if getattr(args, dest) is not None]
        if given:
            return _fail(
                f"{', '.join(given)}: only for the built-in plant, not --capture", EXIT_USAGE
            )
        try:
            store = RegisterStore.from_capture(load_capture(Path(args.capture)))
        except OSError as err:
            return _fail(f"cannot read {args.capture}: {err.strerror}", EXIT_USAGE)
        except GivTcpError as err:
            return _fail(f"{args.capture}: {err}", EXIT_USAGE)
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
        return _fail(f"cannot listen on {args.host}:{args.port}: {err.strerror}")
    return EXIT_OK


def _cmd_simulate(args: argparse.Namespace) -> int:
    return asyncio.run(_simulate(args))


# --- configuration ---------------------------------------------------------------------------

# option dest -> (flag, settings key it overrides)
_CONFIG_OVERRIDES = {
    "cfg_host": ("--host", "inverters.0.host"),
    "cfg_port": ("--port", "inverters.0.port"),
    "cfg_mqtt_host": ("--mqtt-host", "mqtt.host"),
    "cfg_log_level": ("--log-level", "logging.level"),
}


def add_config_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--config FILE`` and the common setting overrides to a subcommand's parser."""
    group = parser.add_argument_group("configuration")
    group.add_argument(
        "--config",
        metavar="FILE",
        type=Path,
        help="TOML configuration file (default: $GIVTCP_CONFIG, ./givtcp-async.toml, "
        "/etc/givtcp-async/config.toml)",
    )
    group.add_argument(
        "--host", dest="cfg_host", metavar="HOST", help="inverter address (inverters[0].host)"
    )
    group.add_argument(
        "--port", dest="cfg_port", type=int, metavar="PORT", help="dongle port (inverters[0].port)"
    )
    group.add_argument("--mqtt-host", dest="cfg_mqtt_host", metavar="HOST", help="MQTT broker")
    group.add_argument(
        "--log-level", dest="cfg_log_level", metavar="LEVEL", help="DEBUG, INFO, WARNING, ERROR"
    )


def config_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The settings overrides given by :func:`add_config_options` flags, as dotted keys."""
    return {
        key: getattr(args, dest)
        for dest, (_, key) in _CONFIG_OVERRIDES.items()
        if getattr(args, dest, None) is not None
    }


def load_settings(args: argparse.Namespace) -> Settings:
    """Load the configuration named by the ``--config`` flag, with the flag overrides applied."""
    from givtcp_async.config import load_config

    return load_config(
        getattr(args, "config", None),
        overrides=config_overrides(args),
        override_labels={key: flag for flag, key in _CONFIG_OVERRIDES.values()},
    )


def _cmd_config_check(args: argparse.Namespace) -> int:
    from givtcp_async.config import find_config_file, masked, unused_legacy_variables

    with _config_errors_exit():
        settings = load_settings(args)
        source = find_config_file(args.config)
    print(f"givtcp-async: note: configuration file: {source or 'none'}", file=sys.stderr)
    unused = unused_legacy_variables()
    if unused:
        print(
            f"givtcp-async: note: GivTCP variables not used by givtcp-async: {', '.join(unused)}",
            file=sys.stderr,
        )
    print(json.dumps(masked(settings), indent=2))
    return EXIT_OK


# --- run -------------------------------------------------------------------------------------


def _cmd_run(args: argparse.Namespace) -> int:
    from givtcp_async.daemon import Daemon
    from givtcp_async.logging_setup import configure_logging

    with _config_errors_exit():
        settings = load_settings(args)
        configure_logging(settings)  # logging.file may not open

    async def serve() -> int:
        await Daemon(settings).serve_until_signalled()
        return EXIT_OK

    return _run_daemon(serve())


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for sub in exc.exceptions for leaf in _leaves(sub)]
    return [exc]


def _run_daemon(main: Coroutine[Any, Any, int]) -> int:
    """Run a daemon coroutine; a failure of the daemon or a service is one line per cause and
    exit 1 (e.g. ``cannot listen on 127.0.0.1:6345: address already in use``)."""
    try:
        return asyncio.run(main)
    except (GivTcpError, OSError, BaseExceptionGroup) as err:
        for leaf in _leaves(err):
            if isinstance(leaf, KeyboardInterrupt):
                raise leaf from None
            text = str(leaf) or type(leaf).__name__
            if not isinstance(leaf, GivTcpError | OSError):
                text = f"{type(leaf).__name__}: {text}"
            print(f"givtcp-async: failed: {text}", file=sys.stderr)
        return EXIT_FAILED


# --- read ------------------------------------------------------------------------------------


async def _read(args: argparse.Namespace, settings: Settings) -> int:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from givtcp_async.assemble import SnapshotAssembler
    from givtcp_async.cache import RegisterCache
    from givtcp_async.connection import DongleConnection
    from givtcp_async.quality.gates import GateSettings
    from givtcp_async.reader import PlantReader

    inverter = settings.inverters[0]
    tz = ZoneInfo(settings.data.timezone)
    cache = RegisterCache()
    async with DongleConnection(inverter.connection_settings()) as conn:
        try:
            await conn.wait_connected(args.timeout)
            reader = PlantReader(conn, cache, probe_meters=not args.no_meters)
            layout = await reader.detect(num_batteries=inverter.num_batteries)
            report = await reader.refresh(layout.plan.blocks)
        except GivTcpError as err:
            return _fail(f"cannot read the inverter: {err}")
    if report.failed:
        names = ", ".join(f"{b.bank.value}({b.base},{b.count})@0x{b.device_address:02x}"
                          for b, _ in report.failed)  # fmt: skip
        print(f"givtcp-async: note: blocks not read: {names}", file=sys.stderr)
    assembler = SnapshotAssembler(
        layout.model,
        layout.serial,
        layout.fields,
        tz,
        gate_settings=GateSettings(stale_after=settings.data.stale_after),
        print_raw=args.raw or settings.data.print_raw,
    )
    snapshot = assembler.build(cache, devices=layout.devices, now=datetime.now(tz))
    with contextlib.suppress(BrokenPipeError):
        print(
            json.dumps(
                snapshot.runall(units=args.units), indent=None if args.compact else 2, default=str
            )
        )
    return EXIT_OK if snapshot.values else EXIT_FAILED


def _cmd_read(args: argparse.Namespace) -> int:
    with _config_errors_exit():
        settings = load_settings(args)
    return asyncio.run(_read(args, settings))


# --- write -----------------------------------------------------------------------------------

_STATUS_EXIT = {
    "ok": EXIT_OK,
    "failed": EXIT_FAILED,
    "partial": EXIT_FAILED,
    "rejected": EXIT_USAGE,
}


def _print_result(result: Any) -> None:
    with contextlib.suppress(BrokenPipeError):
        print(json.dumps(result.to_json(), separators=(",", ":")), flush=True)


def _result_exit(result: Any) -> int:
    code = _STATUS_EXIT[result.status]
    if result.status != "ok":
        print(f"givtcp-async: {result.status}: {result.message}", file=sys.stderr)
    return code


def _cmd_write_list() -> int:
    from givtcp_async.control.catalogue import CATALOGUE

    with contextlib.suppress(BrokenPipeError):
        for fn in CATALOGUE:
            item = fn.describe()
            item.pop("schema")
            print(json.dumps(item, separators=(",", ":")))
        for name, router in CATALOGUE.routers.items():
            print(json.dumps({"name": name, "routes_to": f"{router.target}<slot>"}))
    return EXIT_OK


async def _write(args: argparse.Namespace, settings: Settings) -> int:
    from zoneinfo import ZoneInfo

    from givtcp_async.connection import ConnectionSettings, DongleConnection, Priority
    from givtcp_async.control.accounting import WriteLedger
    from givtcp_async.control.executor import Controller, ControlMemory
    from givtcp_async.control.overrides import OverrideManager
    from givtcp_async.control.persist import state_file
    from givtcp_async.control.result import rejected
    from givtcp_async.control.service import ControlService
    from givtcp_async.protocol.frames import FunctionCode
    from givtcp_async.quality.pages import ascii_from_registers
    from givtcp_async.registers.models import detect_model

    inverter = settings.inverters[0]
    control = settings.control
    state_dir = Path(args.state_dir) if args.state_dir else control.state_dir
    tz = ZoneInfo(settings.data.timezone)
    conn_settings = ConnectionSettings(host=str(inverter.host), port=int(inverter.port))
    async with DongleConnection(conn_settings) as conn:
        try:
            await conn.wait_connected(args.timeout)
            page = await conn.read(
                0x11, FunctionCode.READ_HOLDING, 0, 60, priority=Priority.COMMAND
            )
            holding = dict(enumerate(page.values))
            model = detect_model(holding)
        except GivTcpError as err:
            return _fail(f"failed: cannot reach or identify the inverter: {err}")
        serial = ascii_from_registers(page.values[13:18]) or f"{inverter.host}"
        ledger = WriteLedger(
            state_file(state_dir, serial, "writes"),
            daily_budget=control.write_budget_per_day or None,
            tz=tz,
        )
        controller = Controller(
            conn,
            model,
            ledger=ledger,
            memory=ControlMemory(state_file(state_dir, serial, "control")),
            tz=tz,
        )
        manager = OverrideManager(
            controller,
            state_file(state_dir, serial, "overrides"),
            deadman_minutes=control.dead_man_minutes or None,
        )
        for restored in await manager.start():
            print(f"givtcp-async: note: pending {restored.function} restore: "
                  f"{restored.status}", file=sys.stderr)  # fmt: skip
        try:
            fn = controller.catalogue.get(args.function)
        except GivTcpError:
            fn = None
        result = await ControlService(controller, manager).execute(args.function, args.payload)
        _print_result(result)
        code = _result_exit(result)
        running = fn is not None and fn.override and fn.name in manager.active()
        if not running or fn is None:
            await manager.stop(restore=False)
            return code
        if args.detach:
            await manager.stop(restore=False)
            print(
                f"givtcp-async: note: {fn.name} left running; its restore is pending in "
                f"{state_dir} (the daemon or the next `write` restores it when due; "
                f"`write {fn.name} Cancel` restores now)",
                file=sys.stderr,
            )
            return code
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        print(
            f"givtcp-async: note: {fn.name} running for {manager.remaining_minutes(fn.name)} "
            "min; interrupt to restore now",
            file=sys.stderr,
        )
        done = manager.completion(fn.name)
        stopper: asyncio.Future[Any] = asyncio.ensure_future(stop.wait())
        waiting: set[asyncio.Future[Any]] = {done, stopper}
        await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        if done.done() and not done.cancelled() and done.exception() is None:
            final = done.result()
        else:
            done.cancel()
            results = await manager.stop(restore=True)
            final = results[0] if results else rejected(fn.name, "nothing to restore")
        await manager.stop(restore=True)
        _print_result(final)
        return max(code, _result_exit(final))


def _cmd_write(args: argparse.Namespace) -> int:
    if args.list:
        return _cmd_write_list()
    if not args.function:
        return _fail("write: FUNCTION is required (or --list)", EXIT_USAGE)
    from givtcp_async.logging_setup import configure_logging

    with _config_errors_exit():
        settings = load_settings(args)
        configure_logging(settings)  # logs go to stderr; stdout carries only result JSON
    return asyncio.run(_write(args, settings))


# --- discover --------------------------------------------------------------------------------


def _cmd_discover(args: argparse.Namespace) -> int:
    import time

    from givtcp_async import discover

    if not 1 <= args.port <= 65535:
        return _fail(f"--port: must be 1..65535, got {args.port}", EXIT_USAGE)
    if not (math.isfinite(args.timeout) and 0 < args.timeout <= 60):
        return _fail(f"--timeout: must be > 0 and at most 60, got {args.timeout}", EXIT_USAGE)
    if not 1 <= args.concurrency <= 1024:
        return _fail(f"--concurrency: must be 1..1024, got {args.concurrency}", EXIT_USAGE)
    if args.targets:
        try:
            networks = discover.parse_targets(args.targets)
        except ValueError as err:
            return _fail(str(err), EXIT_USAGE)
    else:
        networks, notes = discover.local_networks()
        for note in notes:
            print(f"givtcp-async: note: {note}", file=sys.stderr)
        if not networks:
            return _fail(
                "no local IPv4 network found; give one, e.g. `discover 192.168.1.0/24`",
                EXIT_USAGE,
            )
    targets = discover.targets_of(networks)
    print(
        f"givtcp-async: scanning {len(targets)} address(es) in "
        f"{', '.join(map(str, networks))} on port {args.port}",
        file=sys.stderr,
    )

    def write(text: str) -> None:
        sys.stderr.write(text)
        sys.stderr.flush()

    progress = discover.Progress(len(targets), write, tty=sys.stderr.isatty())
    started = time.monotonic()
    found = asyncio.run(
        discover.scan(
            targets,
            args.port,
            timeout=args.timeout,
            concurrency=args.concurrency,
            on_result=progress,
        )
    )
    progress.finish()
    with contextlib.suppress(BrokenPipeError):
        print(json.dumps([d.to_json() for d in found], indent=2), flush=True)
    elapsed = time.monotonic() - started
    print(f"givtcp-async: {len(found)} dongle(s) found in {elapsed:.1f} s", file=sys.stderr)
    if not found:
        return EXIT_FAILED
    first = found[0]
    port = "" if first.port == discover.DEFAULT_PORT else f" --port {first.port}"
    print(
        f"givtcp-async: note: try `givtcp-async read --host {first.address}{port}`, then set "
        f"GIVTCP_INVERTERS__0__HOST={first.address} (or [[inverters]] host) for `run`",
        file=sys.stderr,
    )
    return EXIT_OK


# --- demo ------------------------------------------------------------------------------------


DEMO_POLL_SECONDS = 5.0
DEMO_MAX_SPEED = 720.0


async def _demo(args: argparse.Namespace, base: Settings) -> int:
    import tempfile

    from givtcp_async.config import InverterConfig
    from givtcp_async.daemon import Daemon
    from givtcp_async.simulator.plant import PlantClock, build_default_plant

    plant = build_default_plant(speed=args.speed, seed=args.seed, batteries=args.batteries)
    sim = plant.simulator()
    try:
        await sim.start()
    except OSError as err:
        return _fail(f"cannot start the simulated dongle: {err.strerror}")
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
            settings = base.model_copy(
                update={
                    "inverters": [inverter],
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
    finally:
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner
        await sim.close()
    return EXIT_OK


def _cmd_demo(args: argparse.Namespace) -> int:
    from givtcp_async.logging_setup import configure_logging

    if not (math.isfinite(args.speed) and 1 <= args.speed <= DEMO_MAX_SPEED):
        return _fail(f"--speed: must be 1..{DEMO_MAX_SPEED:g}, got {args.speed}", EXIT_USAGE)
    if not 1 <= args.batteries <= 6:
        return _fail(f"--batteries: must be 1..6, got {args.batteries}", EXIT_USAGE)
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

    with _config_errors_exit():
        settings = load_config(args.config, overrides=overrides, override_labels=labels)
        configure_logging(settings)  # logging.file may not open
    return _run_daemon(_demo(args, settings))


# --- parser ----------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="givtcp-async",
        description="Local bridge for GivEnergy inverters: MQTT, Home Assistant, REST, InfluxDB.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    cap = sub.add_parser("capture", help="work with wire captures")
    cap_sub = cap.add_subparsers(dest="capture_command", required=True, metavar="SUBCOMMAND")
    dec = cap_sub.add_parser(
        "decode",
        help="print one JSON object per frame of a capture file",
        description="Decode a capture (.jsonl as in shared/captures, or '<ts> <rx|tx> <hex>' "
        "lines) into one JSON object per frame. FILE '-' reads standard input.",
    )
    dec.add_argument("file", metavar="FILE")
    dec.add_argument("--direction", choices=["rx", "tx"], help="only frames in this direction")
    dec.set_defaults(handler=_cmd_capture_decode)

    sim = sub.add_parser(
        "simulate",
        help="run a simulated dongle (the inverter side of the protocol)",
        description="Serve the GivEnergy dongle protocol on TCP: a simulated Gen3 hybrid plant "
        "with LV batteries on a simulated clock, or the registers of a capture (--capture).",
    )
    sim.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    sim.add_argument("--port", type=int, default=8899, help="TCP port (8899)")
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
        "drop, bad_crc, truncate, splice, zero_page, garbage_page, garbage, disconnect, refuse",
    )
    sim.set_defaults(handler=_cmd_simulate)

    cfg = sub.add_parser("config", help="inspect the configuration")
    cfg_sub = cfg.add_subparsers(dest="config_command", required=True, metavar="SUBCOMMAND")
    chk = cfg_sub.add_parser(
        "check",
        help="validate the configuration and print the effective settings",
        description="Validate the configuration (file, GIVTCP_* and GivTCP environment "
        "variables, flags) and print the effective settings as JSON with secrets masked. "
        "Exit 2 with one line per bad key if it is invalid.",
    )
    add_config_options(chk)
    chk.set_defaults(handler=_cmd_config_check)

    run = sub.add_parser(
        "run",
        help="run the daemon: poll the inverters, serve MQTT, REST and InfluxDB",
        description="Run the daemon until SIGTERM or SIGINT. Configuration comes from the TOML "
        "file, GIVTCP_* variables and GivTCP's own variables (see `config check`).",
    )
    add_config_options(run)
    run.set_defaults(handler=_cmd_run)

    rd = sub.add_parser(
        "read",
        help="read the inverter once and print the runAll JSON",
        description="Connect, detect the model and batteries, read every block once and print "
        "GivTCP's runAll tree as JSON. Exit 1 when the inverter cannot be read.",
    )
    rd.add_argument("--raw", action="store_true", help="include the raw register values")
    rd.add_argument("--units", action="store_true", help="leaves as {value, unit}")
    rd.add_argument("--compact", action="store_true", help="one line of JSON")
    rd.add_argument("--no-meters", action="store_true", help="do not probe meters 0x01-0x08")
    rd.add_argument("--timeout", type=float, default=10.0, metavar="S", help="connect timeout (10)")
    add_config_options(rd)
    rd.set_defaults(handler=_cmd_read)

    wr = sub.add_parser(
        "write",
        help="run one control command and print its result as JSON",
        description="Run one control command (GivTCP's names and payloads, e.g. "
        '`write setChargeTarget 80` or `write setChargeSlot1 \'{"start":"0100","finish":'
        '"0400"}\'`) against the inverter and print the result JSON. Exit 0 ok, 1 failed or '
        "partial, 2 rejected or bad usage. Timed overrides (forceCharge ...) wait and restore "
        "at the end unless --detach.",
    )
    wr.add_argument("function", nargs="?", metavar="FUNCTION", help="control function name")
    wr.add_argument("payload", nargs="?", metavar="PAYLOAD", help="JSON object or plain value")
    wr.add_argument("--list", action="store_true", help="list every control function and exit")
    wr.add_argument(
        "--state-dir", metavar="DIR", help="write counter and override state (control.state_dir)"
    )
    wr.add_argument(
        "--detach",
        action="store_true",
        help="timed overrides: return at once and leave the restore pending in the state dir",
    )
    wr.add_argument("--timeout", type=float, default=10.0, metavar="S", help="connect timeout (10)")
    add_config_options(wr)
    wr.set_defaults(handler=_cmd_write)

    from givtcp_async.discover import DEFAULT_CONCURRENCY, DEFAULT_PORT, DEFAULT_TIMEOUT

    disc = sub.add_parser(
        "discover",
        help="find GivEnergy dongles on the network and print them as JSON",
        description="Scan this host's IPv4 networks (or the given CIDRs and addresses) for "
        "GivEnergy dongles. An address counts only when it answers a real protocol read "
        "(holding registers 0-59 of the inverter) with a valid frame: other devices with the "
        "port open are not reported. Progress goes to stderr, a JSON list of the dongles "
        "found (address, port, serial, model, firmware, dongle serial) to stdout. Exit 0 when "
        "at least one was found, 1 when none, 2 for bad usage.",
    )
    disc.add_argument(
        "targets",
        nargs="*",
        metavar="CIDR",
        help="networks or addresses to scan, e.g. 192.168.1.0/24 (default: this host's "
        "networks, each at most a /22, else the /24 around this host)",
    )
    disc.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"dongle TCP port ({DEFAULT_PORT})"
    )
    disc.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        metavar="S",
        help=f"seconds to connect, and again to answer, per address ({DEFAULT_TIMEOUT:g})",
    )
    disc.add_argument(
        "--concurrency",
        type=int,
        default=DEFAULT_CONCURRENCY,
        metavar="N",
        help=f"addresses probed at once ({DEFAULT_CONCURRENCY})",
    )
    disc.set_defaults(handler=_cmd_discover)

    demo = sub.add_parser(
        "demo",
        help="the simulated inverter and the daemon in one process, dashboard on 6345",
        description="Start the simulated plant (a Gen3 hybrid with LV batteries, as `simulate` "
        "serves) and the daemon polling it, in one process: REST and the dashboard on "
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
    demo.add_argument("--batteries", type=int, default=2, metavar="N", help="LV packs, 1-6 (2)")
    demo.add_argument("--seed", type=int, default=0, metavar="N", help="weather and load seed (0)")
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
    demo.set_defaults(handler=_cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from givtcp_async.config import LoggingConfig
    from givtcp_async.logging_setup import configure_logging

    parser = build_parser()
    args = parser.parse_args(argv)
    # Logs always go to stderr: stdout carries only a command's JSON output. Commands that load
    # the configuration reconfigure logging from it.
    configure_logging(LoggingConfig())
    try:
        return int(args.handler(args))
    except _Exit as done:
        return done.code
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
