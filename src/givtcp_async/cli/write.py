"""``givtcp-async write``: run one control command and print its result."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from givtcp_async.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    add_command,
    add_config_options,
    config_errors_exit,
    fail,
    load_settings,
    require_state_dir,
)
from givtcp_async.errors import GivTcpError, IdentityError, StateError

if TYPE_CHECKING:
    from givtcp_async.config import Settings


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``write`` command."""
    wr = add_command(
        subparsers,
        "write",
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
    wr.set_defaults(handler=handle)


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
    from givtcp_async.quality.identity import check_serial
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
            serial = ascii_from_registers(page.values[13:18])
            check_serial(serial, inverter.serial, f"{inverter.host}:{inverter.port}")
            model = detect_model(dict(enumerate(page.values)))
        except IdentityError as err:
            return fail(f"failed: {err}")
        except GivTcpError as err:
            return fail(f"failed: cannot reach or identify the inverter: {err}")
        try:
            ledger = WriteLedger(
                state_file(state_dir, serial, "writes"),
                daily_budget=control.write_budget_per_day or None,
                min_interval=control.min_write_interval or None,
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
        except StateError as err:  # a state file that cannot be read: a pending restore?
            return fail(f"failed: {err}")
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


def handle(args: argparse.Namespace) -> int:
    if args.list:
        return _cmd_write_list()
    if not args.function:
        return fail("write: FUNCTION is required (or --list)", EXIT_USAGE)
    from givtcp_async.logging_setup import configure_logging

    with config_errors_exit():
        settings = load_settings(args)
        configure_logging(settings)  # logs go to stderr; stdout carries only result JSON
        require_state_dir(Path(args.state_dir) if args.state_dir else settings.control.state_dir)
    return asyncio.run(_write(args, settings))
