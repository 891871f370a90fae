"""``givtcp-async read``: read the inverter once and print GivTCP's runAll tree."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from givtcp_async.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    add_command,
    add_config_options,
    config_errors_exit,
    fail,
    load_settings,
)
from givtcp_async.errors import GivTcpError

if TYPE_CHECKING:
    from givtcp_async.cache import RegisterCache
    from givtcp_async.config import Settings
    from givtcp_async.connection import ConnectionSettings
    from givtcp_async.reader import PlantLayout


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``read`` command."""
    rd = add_command(
        subparsers,
        "read",
        description="Connect, detect the model and batteries, read every block once and print "
        "GivTCP's runAll tree as JSON. Exit 1 when the inverter cannot be read.",
    )
    rd.add_argument("--raw", action="store_true", help="include the raw register values")
    rd.add_argument("--units", action="store_true", help="leaves as {value, unit}")
    rd.add_argument("--compact", action="store_true", help="one line of JSON")
    rd.add_argument("--no-meters", action="store_true", help="do not probe meters 0x01-0x08")
    rd.add_argument(
        "--scan-meters",
        action="store_true",
        help="probe meters 0x01-0x08 now, not from the last scan's memory",
    )
    rd.add_argument(
        "--state-dir", metavar="DIR", help="where the meter scan is remembered (control.state_dir)"
    )
    rd.add_argument("--timeout", type=float, default=10.0, metavar="S", help="connect timeout (10)")
    add_config_options(rd)
    rd.set_defaults(handler=handle)


async def read_plant(
    connection: ConnectionSettings,
    *,
    timeout: float,
    probe_meters: bool = True,
    num_batteries: int | None = None,
    expected_serial: str | None = None,
    meter_memory: Path | None = None,
    scan_meters: bool = False,
) -> tuple[PlantLayout, RegisterCache]:
    """One full read of a plant: connect, detect the model, batteries and meters, read every
    block of the plan once (not again those detection has just read; a note on stderr names
    blocks not read). Raises GivTcpError when the inverter cannot be read, or is not
    ``expected_serial`` (when given).

    ``meter_memory`` (a state directory): the meters the last scan found there are taken
    instead of probing them, unless ``scan_meters`` or the scan is a day old; a scan is kept.
    """
    import time

    from givtcp_async import scan_memory
    from givtcp_async.cache import RegisterCache
    from givtcp_async.connection import DongleConnection
    from givtcp_async.reader import PlantReader, with_devices

    cache = RegisterCache()
    async with DongleConnection(connection) as conn:
        await conn.wait_connected(timeout)
        reader = PlantReader(conn, cache, probe_meters=probe_meters)
        layout = await reader.detect(
            num_batteries=num_batteries,
            expected_serial=expected_serial,
            meters=meter_memory is None,
        )
        if meter_memory is not None and probe_meters:
            known = (
                None
                if scan_meters
                else scan_memory.remembered(meter_memory, layout.serial, "meters", time.time())
            )
            if known is None:
                layout = await reader.add_meters(layout)
                scan_memory.remember(
                    meter_memory, layout.serial, "meters", layout.meters, time.time()
                )
            else:
                layout = with_devices(layout, meters=known.found)
        report = await reader.refresh(layout.plan.blocks, reuse_within=60.0)
    if report.failed:
        names = ", ".join(f"{b.bank.value}({b.base},{b.count})@0x{b.device_address:02x}"
                          for b, _ in report.failed)  # fmt: skip
        print(f"givtcp-async: note: blocks not read: {names}", file=sys.stderr)
    return layout, cache


async def _read(args: argparse.Namespace, settings: Settings) -> int:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from givtcp_async.assemble import SnapshotAssembler
    from givtcp_async.quality.gates import GateSettings

    inverter = settings.inverters[0]
    tz = ZoneInfo(settings.data.timezone)
    try:
        layout, cache = await read_plant(
            inverter.connection_settings(),
            timeout=args.timeout,
            probe_meters=not args.no_meters,
            num_batteries=inverter.num_batteries,
            expected_serial=inverter.serial,
            meter_memory=Path(args.state_dir) if args.state_dir else settings.control.state_dir,
            scan_meters=args.scan_meters,
        )
    except GivTcpError as err:
        return fail(f"cannot read the inverter: {err}")
    assembler = SnapshotAssembler(
        layout.model,
        layout.serial,
        layout.fields,
        tz,
        gate_settings=GateSettings(stale_after=settings.data.stale_after),
        print_raw=args.raw or settings.data.print_raw,
        layout=settings.data.layout,
    )
    snapshot = assembler.build(cache, devices=layout.devices, now=datetime.now(tz))
    with contextlib.suppress(BrokenPipeError):
        print(
            json.dumps(
                snapshot.runall(units=args.units), indent=None if args.compact else 2, default=str
            )
        )
    return EXIT_OK if snapshot.values else EXIT_FAILED


def handle(args: argparse.Namespace) -> int:
    with config_errors_exit():
        settings = load_settings(args)
    return asyncio.run(_read(args, settings))
