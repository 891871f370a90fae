"""What every command shares: exit codes, the configuration flags and their errors, and the
daemon runner.

Exit codes: 0 success, 1 the operation failed (device, network, command result), 2 bad usage or
bad input (argparse's own convention), 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from givtcp_async.errors import ConfigError, GivTcpError

if TYPE_CHECKING:
    from givtcp_async.config import Settings

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
EXIT_RESTART = -1  # internal: a daemon asked to be started again (rebootAddon); never exits

# Every command, in the order ``--help`` lists them: name -> one-line help. The command's module
# is ``givtcp_async.cli.<name>``, imported only when the command is chosen.
COMMANDS: Final = {
    "capture": "work with wire captures",
    "simulate": "run a simulated dongle (the inverter side of the protocol)",
    "config": "inspect the configuration",
    "run": "run the daemon: poll the inverters, serve MQTT, REST and InfluxDB",
    "read": "read the inverter once and print the runAll JSON",
    "write": "run one control command and print its result as JSON",
    "discover": "find GivEnergy dongles on the network and print them as JSON",
    "demo": "the simulated inverter and the daemon in one process, dashboard on 6345",
}


def add_command(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser], name: str, **kwargs: Any
) -> argparse.ArgumentParser:
    """The parser of command ``name``, with its one-line help from :data:`COMMANDS`."""
    return subparsers.add_parser(name, help=COMMANDS[name], **kwargs)


def fail(message: str, code: int = EXIT_FAILED) -> int:
    print(f"givtcp-async: {message}", file=sys.stderr)
    return code


class Exit(Exception):
    """Ends a command with exit status ``code`` (its reasons are already on stderr)."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


@contextlib.contextmanager
def config_errors_exit() -> Iterator[None]:
    """A configuration error inside ends the command: one line per problem, exit 2."""
    try:
        yield
    except ConfigError as err:
        for line in str(err).splitlines():
            print(f"givtcp-async: {line}", file=sys.stderr)
        raise Exit(EXIT_USAGE) from None


# --- configuration ---------------------------------------------------------------------------

# option dest -> (flag, settings key it overrides)
CONFIG_OVERRIDES = {
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
        for dest, (_, key) in CONFIG_OVERRIDES.items()
        if getattr(args, dest, None) is not None
    }


def load_settings(args: argparse.Namespace) -> Settings:
    """Load the configuration named by the ``--config`` flag, with the flag overrides applied."""
    from givtcp_async.config import load_config

    return load_config(
        getattr(args, "config", None),
        overrides=config_overrides(args),
        override_labels={key: flag for flag, key in CONFIG_OVERRIDES.values()},
    )


def require_state_dir(state_dir: Path) -> None:
    """A state directory that cannot be written is a configuration error (exit 2, one line):
    no write could be counted and no timed override's restore saved."""
    from givtcp_async.control.persist import check_state_dir
    from givtcp_async.errors import StateError

    try:
        check_state_dir(state_dir)
    except StateError as err:
        raise ConfigError(str(err)) from None


# --- the daemon ------------------------------------------------------------------------------


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for sub in exc.exceptions for leaf in _leaves(sub)]
    return [exc]


def run_daemon(main: Coroutine[Any, Any, int]) -> int:
    """Run a daemon coroutine; a failure of the daemon or a service is one line per cause and
    exit 1 (e.g. ``cannot listen on 127.0.0.1:6345: address already in use``). A coroutine that
    returns :data:`EXIT_RESTART` (rebootAddon) is followed by the same command line again, in
    this process (``exec``: the same PID, so systemd and Docker see no exit)."""
    try:
        code = asyncio.run(main)
        if code == EXIT_RESTART:
            sys.stdout.flush()
            sys.stderr.flush()
            os.execv(sys.executable, sys.orig_argv)
        return code
    except (GivTcpError, OSError, BaseExceptionGroup) as err:
        for leaf in _leaves(err):
            if isinstance(leaf, KeyboardInterrupt):
                raise leaf from None
            text = str(leaf) or type(leaf).__name__
            if not isinstance(leaf, GivTcpError | OSError):
                text = f"{type(leaf).__name__}: {text}"
            print(f"givtcp-async: failed: {text}", file=sys.stderr)
        return EXIT_FAILED
