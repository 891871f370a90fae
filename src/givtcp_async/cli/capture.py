"""``givtcp-async capture``: work with wire captures (``decode``, ``record``)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from givtcp_async.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    Exit,
    add_command,
    add_config_options,
    config_errors_exit,
    fail,
    load_settings,
)
from givtcp_async.errors import GivTcpError

if TYPE_CHECKING:
    from givtcp_async.config import Settings


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``capture`` command."""
    cap = add_command(subparsers, "capture")
    cap_sub = cap.add_subparsers(dest="capture_command", required=True, metavar="SUBCOMMAND")
    dec = cap_sub.add_parser(
        "decode",
        help="print one JSON object per frame of a capture file",
        description="Decode a capture (.jsonl as in shared/captures, or '<ts> <rx|tx> <hex>' "
        "lines) into one JSON object per frame. FILE '-' reads standard input.",
    )
    dec.add_argument("file", metavar="FILE")
    dec.add_argument("--direction", choices=["rx", "tx"], help="only frames in this direction")
    dec.set_defaults(handler=handle)
    rec = cap_sub.add_parser(
        "record",
        help="record one full read of the inverter as a capture, serials anonymised",
        description="Connect to the dongle (the first configured inverter, --host/--port), read "
        "the plant once as `read` does, and write the conversation as a .jsonl capture (one "
        "frame a line: ts, dir, count, hex). Every serial in it (dongle, inverter, batteries, "
        "meters) is replaced by a stand-in of the same shape, the same one everywhere, and the "
        "frames keep valid CRCs, so the file can be shared: `capture decode` reads it and "
        "`simulate --capture` serves it. Exit 0 when written, 1 when the inverter cannot be "
        "read, 2 for bad usage.",
    )
    rec.add_argument(
        "-o", "--output", metavar="FILE", default="-", help="capture file to write (- stdout)"
    )
    rec.add_argument("--no-meters", action="store_true", help="do not probe meters 0x01-0x08")
    rec.add_argument(
        "--timeout", type=float, default=10.0, metavar="S", help="connect timeout (10)"
    )
    add_config_options(rec)
    rec.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    if args.capture_command == "record":
        return _record(args)
    return _decode(args)


def _record(args: argparse.Namespace) -> int:
    with config_errors_exit():
        settings = load_settings(args)
    lines, summary = asyncio.run(_recorded(args, settings))
    text = "".join(line + "\n" for line in lines)
    try:
        if args.output == "-":
            with contextlib.suppress(BrokenPipeError):
                sys.stdout.write(text)
                sys.stdout.flush()
        else:
            Path(args.output).write_text(text, encoding="utf-8")
    except OSError as err:
        return fail(f"cannot write {args.output}: {err.strerror}", EXIT_FAILED)
    print(f"givtcp-async: {summary}", file=sys.stderr)
    return EXIT_OK


async def _recorded(args: argparse.Namespace, settings: Settings) -> tuple[list[str], str]:
    """The anonymised capture lines of one full read, and a one-line summary."""
    from givtcp_async.cli.read import read_plant
    from givtcp_async.recording import (
        Anonymiser,
        RecordingProxy,
        capture_lines,
        recorded_frames,
    )

    inverter = settings.inverters[0]
    proxy = RecordingProxy(inverter.host, inverter.port, connect_timeout=args.timeout)
    try:
        await proxy.start()
    except (OSError, TimeoutError) as err:
        reason = f"cannot connect to {inverter.host}:{inverter.port}: " + (
            "timed out" if isinstance(err, TimeoutError) else err.strerror or str(err)
        )
        raise Exit(fail(f"cannot read the inverter: {reason}")) from None
    try:
        via_proxy = replace(inverter.connection_settings(), host="127.0.0.1", port=proxy.port)
        await read_plant(
            via_proxy,
            timeout=args.timeout,
            probe_meters=not args.no_meters,
            num_batteries=inverter.num_batteries,
            expected_serial=inverter.serial,
        )
    except GivTcpError as err:
        raise Exit(fail(f"cannot read the inverter: {err}")) from None
    finally:
        await proxy.close()
    frames = recorded_frames(proxy.chunks)
    anonymiser = Anonymiser()
    anonymiser.learn(frames)
    lines = list(capture_lines(frames, anonymiser))
    for line in lines:
        if anonymiser.leftovers(bytes.fromhex(json.loads(line)["hex"])):
            raise Exit(fail("a serial could not be replaced; nothing written"))
    note = " (traffic beyond the size limit left out)" if proxy.truncated else ""
    summary = (
        f"recorded {len(frames)} frames in {len(lines)} lines, "
        f"{anonymiser.serials} serial(s) replaced by stand-ins{note}"
    )
    return lines, summary


def _decode(args: argparse.Namespace) -> int:
    from givtcp_async.protocol.capture import decode_records, read_capture

    path = Path(args.file)
    try:
        fh = sys.stdin if args.file == "-" else path.open(encoding="utf-8")
    except OSError as err:
        return fail(f"cannot open {args.file}: {err.strerror}", EXIT_USAGE)
    with contextlib.ExitStack() as stack:
        if fh is not sys.stdin:
            stack.enter_context(fh)
        try:
            for item in decode_records(read_capture(fh)):
                if args.direction and item["direction"] != args.direction:
                    continue
                print(json.dumps(item, separators=(",", ":")))
        except GivTcpError as err:
            return fail(str(err), EXIT_USAGE)
        except BrokenPipeError:
            return EXIT_OK
    return EXIT_OK
