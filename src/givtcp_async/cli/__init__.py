"""The ``givtcp-async`` command line.

One module per command (``cli/<name>.py``, each with ``register(subparsers)`` and
``handle(args) -> int``), listed in :data:`~givtcp_async.cli.common.COMMANDS`; :func:`main`
imports only the module of the command chosen. ``cli/common.py`` holds the exit codes, the
configuration flags and the daemon runner.

Exit codes: 0 success, 1 the operation failed (device, network, command result), 2 bad usage or
bad input (argparse's own convention), 130 interrupted.

May import: anything in the package (it is the top floor); nothing imports it but ``__main__``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Collection, Sequence

from givtcp_async.cli.common import COMMANDS, EXIT_INTERRUPTED, Exit

__all__ = ["build_parser", "main"]


def build_parser(load: Collection[str] = COMMANDS) -> argparse.ArgumentParser:
    """The parser: the commands named in ``load`` in full (their modules imported), the others
    by name and help only."""
    parser = argparse.ArgumentParser(
        prog="givtcp-async",
        description="Local bridge for GivEnergy inverters: MQTT, Home Assistant, REST, InfluxDB.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, text in COMMANDS.items():
        if name in load:
            importlib.import_module(f"givtcp_async.cli.{name}").register(sub)
        else:
            sub.add_parser(name, help=text)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_in = list(sys.argv[1:] if argv is None else argv)
    # The command is the first word (the top level has no options but -h).
    chosen = next((a for a in args_in if not a.startswith("-")), None)
    parser = build_parser([chosen] if chosen in COMMANDS else [])
    args = parser.parse_args(args_in)  # exits here for --help and bad usage
    from givtcp_async.config import LoggingConfig
    from givtcp_async.logging_setup import configure_logging

    # Logs always go to stderr: stdout carries only a command's JSON output. Commands that load
    # the configuration reconfigure logging from it.
    configure_logging(LoggingConfig())
    try:
        return int(args.handler(args))
    except Exit as done:
        return done.code
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
