"""``givtcp-async config check``: validate the configuration and print the effective settings."""

from __future__ import annotations

import argparse
import json
import sys

from givtcp_async.cli.common import (
    EXIT_OK,
    add_command,
    add_config_options,
    config_errors_exit,
    load_settings,
)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``config`` command."""
    cfg = add_command(subparsers, "config")
    cfg_sub = cfg.add_subparsers(dest="config_command", required=True, metavar="SUBCOMMAND")
    chk = cfg_sub.add_parser(
        "check",
        help="validate the configuration and print the effective settings",
        description="Validate the configuration (file, GIVTCP_* and GivTCP environment "
        "variables, flags) and print the effective settings as JSON with secrets masked. "
        "Exit 2 with one line per bad key if it is invalid.",
    )
    add_config_options(chk)
    chk.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from givtcp_async.config import find_config_file, masked, unused_legacy_variables

    with config_errors_exit():
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
