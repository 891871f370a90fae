"""``givtcp-async capture``: work with wire captures (``decode``)."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path

from givtcp_async.cli.common import EXIT_OK, EXIT_USAGE, add_command, fail
from givtcp_async.errors import GivTcpError


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


def handle(args: argparse.Namespace) -> int:
    return _decode(args)


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
