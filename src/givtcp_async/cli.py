"""The ``givtcp-async`` command line.

Exit codes: 0 success, 1 the operation failed (device, network, command result), 2 bad usage or
bad input (argparse's own convention), 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import Sequence
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


async def _simulate(args: argparse.Namespace) -> int:
    from givtcp_async.protocol.capture import load_capture
    from givtcp_async.simulator.faults import FaultInjector, parse_fault_option
    from givtcp_async.simulator.server import DongleSimulator, SimulatorConfig
    from givtcp_async.simulator.store import RegisterStore

    faults = FaultInjector()
    for option in args.fault:
        try:
            kind, probability = parse_fault_option(option)
        except ValueError as err:
            return _fail(f"--fault: {err}", EXIT_USAGE)
        faults.set_probability(kind, probability)
    if args.capture is None:
        return _fail("--capture FILE is required (no built-in plant yet)", EXIT_USAGE)
    try:
        store = RegisterStore.from_capture(load_capture(Path(args.capture)))
    except OSError as err:
        return _fail(f"cannot read {args.capture}: {err.strerror}", EXIT_USAGE)
    except GivTcpError as err:
        return _fail(f"{args.capture}: {err}", EXIT_USAGE)
    config = SimulatorConfig(
        host=args.host,
        port=args.port,
        heartbeat_interval=args.heartbeat,
        response_delay=args.response_delay,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with DongleSimulator(store, config, faults=faults) as sim:
            print(json.dumps({"listening": f"{config.host}:{sim.port}"}), flush=True)
            await stop.wait()
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

    try:
        settings = load_settings(args)
        source = find_config_file(args.config)
    except ConfigError as err:
        for line in str(err).splitlines():
            print(f"givtcp-async: {line}", file=sys.stderr)
        return EXIT_USAGE
    print(f"givtcp-async: note: configuration file: {source or 'none'}", file=sys.stderr)
    unused = unused_legacy_variables()
    if unused:
        print(
            f"givtcp-async: note: GivTCP variables not used by givtcp-async: {', '.join(unused)}",
            file=sys.stderr,
        )
    print(json.dumps(masked(settings), indent=2))
    return EXIT_OK


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
        description="Serve the GivEnergy dongle protocol on TCP, answering from a capture.",
    )
    sim.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    sim.add_argument("--port", type=int, default=8899, help="TCP port (8899)")
    sim.add_argument("--capture", metavar="FILE", help="seed the registers from a capture")
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args))
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
