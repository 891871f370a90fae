"""Finding GivEnergy EV chargers: a Modbus TCP read on port 502 that must look like a charger.

Many devices listen on 502 (solar inverters of other makes, PLCs, meters): an open port, or even a
Modbus answer, proves nothing. An address counts only when both of the charger's register blocks
(HR0-59, HR60-114, unit 1) read and hold what a GivEVC holds: a serial of printable characters
in HR38-68 (one per register), a charging state, cable state and error code from its tables, an
EVSE minimum current no higher than its maximum (at most 80 A) and a real date in its clock.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

from givtcp_async.evc.snapshot import serial_of
from givtcp_async.registers.evc import BLOCKS, CABLE, ERRORS, PORT, STATES, UNIT

DEFAULT_TIMEOUT = 1.5


@dataclass(frozen=True, slots=True)
class Charger:
    """A charger that answered the identification read."""

    address: str
    port: int
    serial: str
    state: str  # "Charging", ...
    evse_max_current: float  # A
    model: str = "GivEVC"

    def to_json(self) -> dict[str, Any]:
        return {"kind": "charger", **asdict(self)}


def identify(address: str, port: int, regs: Mapping[int, int]) -> Charger | None:
    """The charger these registers describe, or None when they are not a GivEVC's."""
    serial = serial_of(regs)
    low, high = regs.get(34, 0), regs.get(32, 0)
    year, month, day = regs.get(97, 0), regs.get(98, 0), regs.get(99, 0)
    if (
        serial is None
        or regs.get(0) not in STATES
        or regs.get(2) not in CABLE
        or regs.get(4) not in ERRORS
        or not 0 < low <= high <= 800
        or not (2000 <= year <= 2099 and 1 <= month <= 12 and 1 <= day <= 31)
    ):
        return None
    return Charger(address, port, serial, STATES[regs[0]], high / 10)


async def probe_charger(
    address: str, port: int = PORT, *, timeout: float = DEFAULT_TIMEOUT
) -> Charger | None:
    """The charger at ``address:port``, or None. ``timeout`` bounds the connection and each read."""
    client = AsyncModbusTcpClient(
        address, port=port, timeout=timeout, retries=0, reconnect_delay=0, name="evc-probe"
    )
    try:
        async with asyncio.timeout(timeout):
            if not await client.connect():
                return None
        regs: dict[int, int] = {}
        for base, count in BLOCKS:
            async with asyncio.timeout(timeout + 0.5):
                resp = await client.read_holding_registers(base, count=count, device_id=UNIT)
            if resp.isError() or len(resp.registers) != count:
                return None
            regs.update({base + i: int(v) for i, v in enumerate(resp.registers)})
        return identify(address, port, regs)
    except (TimeoutError, ModbusException, OSError):
        return None
    finally:
        with contextlib.suppress(Exception):
            client.close()
