"""A simulated GivEnergy EV charger: a real Modbus TCP server (pymodbus) with a car to charge.

The charger answers unit 1 on its port with holding registers HR0-114 laid out as
:mod:`givtcp_async.registers.evc` reads them. Every request first brings the model up to the
simulated "now" (``speed`` simulated seconds per real second) and renders it into the registers,
so the answer is always current; writes go through the model, which refuses what a charger would
(an exception response, nothing changed):

* HR91 (current limit, A x 10) only within the EVSE minimum and maximum; HR93 (Plug and Go)
  0 or 1; HR95 (0 Ready, 1 Start, 2 Stop); HR97-102 (the clock) only as a real date and time;
  every other register is read-only.

The car: :meth:`ChargerSimulator.plug_in` connects one; with Plug and Go enabled (HR93 = 0) a
session starts at once, otherwise it waits for Start. While charging, the current is the limit in
effect (HR36: the HR91 setting within the EVSE maximum), capped by what the car takes; power is
current x voltage per phase, the session energy and the lifetime meter rise with it, the car's
state of charge too, and at its target the session ends ("End of Charging"). Stop ends the
session as well; unplugging clears it. :meth:`reboot` drops every connection, forgets the
session and answers again after a pause; :meth:`close` makes it unreachable.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from givtcp_async.registers.evc import (
    CHARGE_CONTROL,
    CLOCK,
    CURRENT_LIMIT,
    PLUG_AND_GO,
    STATES,
    UNIT,
)

REGISTERS: Final = 115  # HR0-114
_WRITE_FUNCTIONS: Final = frozenset({6, 16})
_STATE = {name: code for code, name in STATES.items()}
DEFAULT_SERIAL: Final = "GEV2321A0001"


@dataclass
class Car:
    """The car being charged."""

    capacity_kwh: float = 60.0
    soc: float = 40.0  # %
    target_soc: float = 100.0  # the car stops taking current here
    max_current: float = 32.0  # A per phase its on-board charger takes


@dataclass
class _Session:
    started: datetime  # charger wall clock
    charging: bool = True
    energy_wh: float = 0.0
    seconds: float = 0.0
    ended: datetime | None = None


@dataclass
class ChargerSimulator:
    """See the module docstring. ``start()`` it, ``close()`` it."""

    host: str = "127.0.0.1"
    port: int = 0  # 0: a free port, kept across reboots
    serial: str = DEFAULT_SERIAL
    speed: float = 1.0
    phases: int = 1
    voltage: float = 230.0
    evse_min: int = 6
    evse_max: int = 32
    meter_wh: float = 1_234_500.0
    monotonic: Callable[[], float] = time.monotonic
    car: Car | None = None
    limit_setting: int = 320  # HR91, A x 10
    plug_and_go: int = 0  # HR93
    control: int = 0  # HR95
    error_code: int = 0
    clock_offset: timedelta = timedelta(0)
    writes: list[tuple[int, tuple[int, ...]]] = field(default_factory=list)
    requests: int = 0
    _session: _Session | None = None
    _last_end: datetime | None = None
    _t: float = field(init=False, default=0.0)
    _server: ModbusTcpServer | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self._t = self.monotonic()

    # --- the model -------------------------------------------------------------------------

    def wall_now(self) -> datetime:
        """The charger's own clock: local wall time plus what setSystemTime moved it by."""
        return datetime.now().replace(microsecond=0) + self.clock_offset  # noqa: DTZ005 - local

    @property
    def limit_amps(self) -> float:
        """The limit in effect (HR36)."""
        return min(self.limit_setting / 10, float(self.evse_max))

    @property
    def charging(self) -> bool:
        return self._session is not None and self._session.charging and self.car is not None

    @property
    def current(self) -> float:
        """Amps per phase the car draws now."""
        if not self.charging or self.car is None:
            return 0.0
        return round(min(self.limit_amps, self.car.max_current), 1)

    @property
    def power_w(self) -> float:
        """Watts delivered to the car now (what a house meter sees the charger draw)."""
        return self.current * self.voltage * self.phases

    @property
    def state(self) -> str:
        if self.car is None:
            return "Idle"
        if self.charging:
            return "Charging"
        if self._session is not None and self._session.ended is not None:
            return "End of Charging"
        return "Connected"

    def sync(self) -> None:
        """Bring the model up to now: energy flows while charging; a full car ends its session."""
        now = self.monotonic()
        dt = max(0.0, now - self._t) * self.speed
        self._t = now
        session, car = self._session, self.car
        if not self.charging or session is None or car is None or dt <= 0:
            return
        power = self.power_w
        room_wh = max(0.0, (car.target_soc - car.soc) / 100 * car.capacity_kwh * 1000)
        wh = min(power * dt / 3600, room_wh)
        session.energy_wh += wh
        session.seconds += dt if power > 0 else 0
        self.meter_wh += wh
        car.soc = min(100.0, car.soc + wh / (car.capacity_kwh * 1000) * 100)
        if wh >= room_wh:
            self._end_session()

    def plug_in(self, car: Car | None = None) -> Car:
        """Connect a car; with Plug and Go on, charging starts at once."""
        self.sync()
        self.car = car or Car()
        self._session = None
        if self.plug_and_go == 0:
            self._start_session()
        return self.car

    def unplug(self) -> None:
        self.sync()
        if self.charging:
            self._end_session()
        self.car = None
        self._session = None

    def _start_session(self) -> None:
        if self.car is None:
            return
        if self.car.soc >= self.car.target_soc:
            self._session = _Session(self.wall_now(), charging=False, ended=self.wall_now())
            return
        if self._session is None or self._session.ended is not None:
            self._session = _Session(self.wall_now())
        self._session.charging = True

    def _end_session(self) -> None:
        if self._session is not None:
            self._session.charging = False
            self._session.ended = self._last_end = self.wall_now()

    def _command(self, value: int) -> None:
        self.control = value
        if value == 1:
            self._start_session()
        elif value == 2 and self.charging:
            self._end_session()

    # --- registers -------------------------------------------------------------------------

    def render(self) -> list[int]:
        """HR0-114 as the charger answers now."""
        self.sync()
        regs = [0] * REGISTERS
        amps10 = round(self.current * 10)
        regs[0] = _STATE[self.state]
        regs[2] = 0 if self.car is None else 1
        regs[4] = self.error_code
        for phase in range(self.phases):
            regs[6 + 2 * phase] = amps10
            watts = round(self.current * self.voltage)
            regs[16 + 4 * phase], regs[17 + 4 * phase] = _split(watts)
            regs[109 + 2 * phase] = round(self.voltage * 10)
        regs[12], regs[13] = _split(round(self.power_w))
        regs[28], regs[29] = _split(round(self.meter_wh / 100))
        regs[32], regs[34] = self.evse_max * 10, self.evse_min * 10
        regs[36] = round(self.limit_amps * 10)
        for i, ch in enumerate(self.serial[:31]):
            regs[38 + i] = ord(ch)
        session = self._session
        if session is not None:
            regs[72] = round(session.energy_wh / 100)
            regs[74:77] = [session.started.hour, session.started.minute, session.started.second]
            regs[78], regs[79] = _split(int(session.seconds))
        if self._last_end is not None:
            regs[82:85] = [self._last_end.hour, self._last_end.minute, self._last_end.second]
        regs[CURRENT_LIMIT] = self.limit_setting
        regs[PLUG_AND_GO] = self.plug_and_go
        regs[CHARGE_CONTROL] = self.control
        now = self.wall_now()
        regs[CLOCK[0] : CLOCK[-1] + 1] = [now.year, now.month, now.day, now.hour, now.minute,
                                          now.second]  # fmt: skip
        return regs

    def write(self, address: int, values: list[int]) -> ExcCodes | None:
        """Apply a write as the charger would; an exception code when it refuses (no change)."""
        self.sync()
        span = range(address, address + len(values))
        if set(span) <= set(CLOCK) and len(values) == len(CLOCK) and address == CLOCK[0]:
            try:
                year, month, day, hour, minute, second = values
                wanted = datetime(year, month, day, hour, minute, second)  # noqa: DTZ001
            except (ValueError, TypeError):
                return ExcCodes.ILLEGAL_VALUE
            if not 2000 <= wanted.year <= 2099:
                return ExcCodes.ILLEGAL_VALUE
            self.clock_offset += wanted - self.wall_now()
        elif len(values) != 1:
            return ExcCodes.ILLEGAL_ADDRESS
        elif address == CURRENT_LIMIT:
            if not self.evse_min * 10 <= values[0] <= self.evse_max * 10:
                return ExcCodes.ILLEGAL_VALUE
            self.limit_setting = values[0]
        elif address == PLUG_AND_GO:
            if values[0] not in (0, 1):
                return ExcCodes.ILLEGAL_VALUE
            self.plug_and_go = values[0]
        elif address == CHARGE_CONTROL:
            if values[0] not in (0, 1, 2):
                return ExcCodes.ILLEGAL_VALUE
            self._command(values[0])
        else:
            return ExcCodes.ILLEGAL_ADDRESS
        self.writes.append((address, tuple(values)))
        return None

    async def _action(
        self,
        function: int,
        start: int,
        address: int,
        count: int,
        registers: list[int],
        values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        if values is not None and function in _WRITE_FUNCTIONS:
            refused = self.write(address, [int(v) for v in values])
            if refused is not None:
                return refused
        else:
            self.requests += 1
        registers[start : start + REGISTERS] = self.render()
        return None

    # --- the server ------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen on ``host:port`` (a free port when 0; the same one after a reboot)."""
        device = SimDevice(
            id=UNIT,
            simdata=[SimData(0, count=REGISTERS, values=0, datatype=DataType.REGISTERS)],
            action=self._action,
        )
        server = ModbusTcpServer(device, address=(self.host, self.port))
        await server.serve_forever(background=True)
        transport: Any = server.transport
        self.port = int(transport.sockets[0].getsockname()[1])
        self._server = server

    @property
    def running(self) -> bool:
        return self._server is not None

    async def close(self) -> None:
        """Stop answering: every connection is dropped and new ones are refused."""
        server, self._server = self._server, None
        if server is not None:
            with contextlib.suppress(Exception):
                await server.shutdown()  # type: ignore[no-untyped-call]

    async def reboot(self, downtime: float = 0.5) -> None:
        """Drop every connection, forget the session (the car stays) and come back."""
        await self.close()
        self.sync()
        self._session = None
        self.control = 0
        await asyncio.sleep(downtime)
        if self.car is not None and self.plug_and_go == 0:
            self._start_session()
        await self.start()

    async def __aenter__(self) -> ChargerSimulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


def _split(value: int) -> tuple[int, int]:
    value = max(0, value) & 0xFFFFFFFF
    return value >> 16, value & 0xFFFF
