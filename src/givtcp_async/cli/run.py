"""``givtcp-async run``: the daemon, until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse

from givtcp_async.cli.common import (
    EXIT_OK,
    EXIT_RESTART,
    add_command,
    add_config_options,
    config_errors_exit,
    load_settings,
    require_state_dir,
    run_daemon,
)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``run`` command."""
    run = add_command(
        subparsers,
        "run",
        description="Run the daemon until SIGTERM or SIGINT. Configuration comes from the TOML "
        "file, GIVTCP_* variables and GivTCP's own variables (see `config check`).",
    )
    add_config_options(run)
    run.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from givtcp_async.logging_setup import configure_logging

    with config_errors_exit():
        settings = load_settings(args)
        configure_logging(settings)  # logging.file may not open
        require_state_dir(settings.control.state_dir)
    from givtcp_async.daemon import Daemon  # only now: a bad configuration exits sooner

    async def serve() -> int:
        daemon = Daemon(settings, defer_services=True)
        await daemon.serve_until_signalled()
        return EXIT_RESTART if daemon.restart_requested else EXIT_OK

    return run_daemon(serve())
