"""``givtcp-async discover``: find GivEnergy dongles on the network."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import sys

from givtcp_async.cli.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, add_command, fail


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``discover`` command."""
    from givtcp_async.discover import DEFAULT_CONCURRENCY, DEFAULT_PORT, DEFAULT_TIMEOUT

    disc = add_command(
        subparsers,
        "discover",
        description="Scan this host's IPv4 networks (or the given CIDRs and addresses) for "
        "GivEnergy dongles. An address counts only when it answers a real protocol read "
        "(holding registers 0-59 of the inverter) with a valid frame: other devices with the "
        "port open are not reported. Then the same addresses are probed for GivEnergy EV "
        "chargers on --evc-port (Modbus TCP, identified by their registers, not by an open "
        "port). Progress goes to stderr, a JSON list of the dongles found (address, port, "
        "serial, model, firmware, dongle serial), then of the chargers (kind charger, address, "
        "port, serial, state, evse_max_current, model) to stdout. Exit 0 when at least one "
        "device was found, 1 when none, 2 for bad usage.",
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
        "--evc-port", type=int, default=502, metavar="PORT",
        help="EV charger Modbus TCP port (502)",
    )  # fmt: skip
    disc.add_argument("--no-evc", action="store_true", help="do not look for EV chargers")
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
    disc.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    import time

    from givtcp_async import discover
    from givtcp_async.evc.discover import Charger, probe_charger

    if not 1 <= args.port <= 65535:
        return fail(f"--port: must be 1..65535, got {args.port}", EXIT_USAGE)
    if not 1 <= args.evc_port <= 65535:
        return fail(f"--evc-port: must be 1..65535, got {args.evc_port}", EXIT_USAGE)
    if not (math.isfinite(args.timeout) and 0 < args.timeout <= 60):
        return fail(f"--timeout: must be > 0 and at most 60, got {args.timeout}", EXIT_USAGE)
    if not 1 <= args.concurrency <= 1024:
        return fail(f"--concurrency: must be 1..1024, got {args.concurrency}", EXIT_USAGE)
    if args.targets:
        try:
            networks = discover.parse_targets(args.targets)
        except ValueError as err:
            return fail(str(err), EXIT_USAGE)
    else:
        networks, notes = discover.local_networks()
        for note in notes:
            print(f"givtcp-async: note: {note}", file=sys.stderr)
        if not networks:
            return fail(
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
    chargers: list[Charger] = []
    if not args.no_evc:
        print(f"givtcp-async: looking for EV chargers on port {args.evc_port}", file=sys.stderr)
        progress = discover.Progress(len(targets), write, tty=sys.stderr.isatty())
        chargers = asyncio.run(
            discover.scan_with(
                probe_charger,
                targets,
                args.evc_port,
                timeout=args.timeout,
                concurrency=args.concurrency,
                on_result=progress,
            )
        )
        progress.finish()
    devices = [d.to_json() for d in found] + [c.to_json() for c in chargers]
    with contextlib.suppress(BrokenPipeError):
        print(json.dumps(devices, indent=2), flush=True)
    elapsed = time.monotonic() - started
    print(f"givtcp-async: {len(found)} dongle(s) found and {len(chargers)} charger(s) in "
          f"{elapsed:.1f} s", file=sys.stderr)  # fmt: skip
    if chargers:
        print(
            f'givtcp-async: note: set [[chargers]] host = "{chargers[0].address}" (or '
            f"EVC_ENABLE=true, EVC_IP_ADDRESS={chargers[0].address}) for `run`",
            file=sys.stderr,
        )
    if not found:
        return EXIT_OK if chargers else EXIT_FAILED
    first = found[0]
    port = "" if first.port == discover.DEFAULT_PORT else f" --port {first.port}"
    print(
        f"givtcp-async: note: try `givtcp-async read --host {first.address}{port}`, then set "
        f"GIVTCP_INVERTERS__0__HOST={first.address} (or [[inverters]] host) for `run`",
        file=sys.stderr,
    )
    return EXIT_OK
