"""One serialised Modbus TCP link to a charger, over pymodbus's asyncio client.

Requests run one at a time in arrival order (a lock is the queue; at most ``max_waiting`` may
wait, a further one is refused at once as :class:`~givtcp_async.errors.NotConnected`). Every
request has a timeout. The link connects on demand: a failed or lost connection is retried no
sooner than a capped, jittered back-off allows, so a charger that is off is not hammered.
:meth:`EvcConnection.pause` closes the link and refuses to reconnect for a while: GivTCP's
"port lock-out" pause, which the coordinator takes after repeated failed polls.

Nothing here knows about registers' meaning; errors are the project's
(:mod:`givtcp_async.errors`), never pymodbus's.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Final, TypeVar

import structlog
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

from givtcp_async.backoff import Backoff
from givtcp_async.errors import (
    ConnectionClosed,
    DeviceErrorResponse,
    NotConnected,
    RequestTimeout,
)
from givtcp_async.registers.evc import PORT, UNIT

log = structlog.get_logger(__name__)

_T = TypeVar("_T")
_MAX_REGISTERS: Final = 125  # Modbus limit for one read


@dataclass(frozen=True, slots=True)
class EvcLinkSettings:
    """How to reach one charger."""

    host: str
    port: int = PORT
    unit: int = UNIT
    timeout: float = 3.0  # seconds per request
    connect_timeout: float = 5.0
    backoff_initial: float = 1.0
    backoff_max: float = 60.0
    max_waiting: int = 16


@dataclass(slots=True)
class EvcLinkStats:
    requests: int = 0
    responses: int = 0
    timeouts: int = 0
    error_responses: int = 0
    connects: int = 0
    connect_failures: int = 0
    disconnects: int = 0
    writes: int = 0
    pauses: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class EvcConnection:
    """Serialised requests to one charger; see the module docstring."""

    def __init__(
        self, settings: EvcLinkSettings, *, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self.settings = settings
        self.stats = EvcLinkStats()
        self._monotonic = monotonic
        self._client: AsyncModbusTcpClient | None = None
        self._lock = asyncio.Lock()
        self._waiting = 0
        self._backoff = Backoff(settings.backoff_initial, settings.backoff_max)
        self._retry_at = 0.0
        self._paused_until = 0.0
        self._closed = False

    @property
    def connected(self) -> bool:
        return self._client is not None and self._client.connected

    def paused_for(self) -> float:
        """Seconds left of a lock-out pause (0 when none)."""
        return max(0.0, self._paused_until - self._monotonic())

    def pause(self, seconds: float) -> None:
        """Close the link and refuse to reconnect for ``seconds``."""
        self.stats.pauses += 1
        self._paused_until = self._monotonic() + seconds
        self._drop()

    async def close(self) -> None:
        """Close for good: later requests raise ConnectionClosed."""
        self._closed = True
        async with self._lock:
            self._drop()

    # --- requests ------------------------------------------------------------------------------

    async def read_holding(self, base: int, count: int) -> tuple[int, ...]:
        """HR(base .. base+count-1)."""
        if not 1 <= count <= _MAX_REGISTERS:
            raise ValueError(f"count must be 1-{_MAX_REGISTERS}")

        async def call(client: AsyncModbusTcpClient) -> tuple[int, ...]:
            resp = await client.read_holding_registers(
                base, count=count, device_id=self.settings.unit
            )
            self._check(resp, f"read HR{base}+{count}")
            values = tuple(int(v) & 0xFFFF for v in resp.registers)
            if len(values) != count:
                raise DeviceErrorResponse(
                    f"read HR{base}+{count}: {len(values)} registers in the answer",
                    device_address=self.settings.unit,
                    function=3,
                )
            return values

        return await self._request(call)

    async def write_register(self, register: int, value: int) -> int:
        """Write one holding register (function 6); returns the value echoed."""

        async def call(client: AsyncModbusTcpClient) -> int:
            self.stats.writes += 1
            resp = await client.write_register(register, value, device_id=self.settings.unit)
            self._check(resp, f"write HR{register}")
            echoed = resp.registers[0] if resp.registers else None
            return int(echoed) if echoed is not None else value

        return await self._request(call)

    async def write_registers(self, register: int, values: Sequence[int]) -> None:
        """Write consecutive holding registers in one request (function 16)."""

        async def call(client: AsyncModbusTcpClient) -> None:
            self.stats.writes += 1
            resp = await client.write_registers(
                register, list(values), device_id=self.settings.unit
            )
            self._check(resp, f"write HR{register}+{len(values)}")

        await self._request(call)

    # --- internals -----------------------------------------------------------------------------

    def _check(self, resp: Any, what: str) -> None:
        if resp.isError():
            self.stats.error_responses += 1
            code = getattr(resp, "exception_code", None)
            raise DeviceErrorResponse(
                f"{what}: the charger answered with Modbus exception {code}",
                device_address=self.settings.unit,
                function=int(getattr(resp, "function_code", 0)),
            )

    async def _request(self, call: Callable[[AsyncModbusTcpClient], Awaitable[_T]]) -> _T:
        if self._closed:
            raise ConnectionClosed("the charger connection is closed")
        if self._waiting >= self.settings.max_waiting:
            raise NotConnected(f"{self.settings.max_waiting} requests already wait for the charger")
        self._waiting += 1
        try:
            async with self._lock:
                client = await self._ensure()
                self.stats.requests += 1
                try:
                    async with asyncio.timeout(self.settings.timeout + 1.0):
                        result = await call(client)
                except (TimeoutError, ModbusException, OSError) as err:
                    if isinstance(err, TimeoutError) or "no response" in str(err).lower():
                        self.stats.timeouts += 1
                        problem: Exception = RequestTimeout(
                            f"no answer from the charger at {self._where()} "
                            f"within {self.settings.timeout:g} s"
                        )
                    else:
                        problem = NotConnected(f"the charger at {self._where()}: {err}")
                    self._drop()
                    self._retry_at = self._monotonic()  # the link was up: retry at once
                    raise problem from None
                self.stats.responses += 1
                return result
        finally:
            self._waiting -= 1

    async def _ensure(self) -> AsyncModbusTcpClient:
        if self._client is not None and self._client.connected:
            return self._client
        if self._closed:
            raise ConnectionClosed("the charger connection is closed")
        now = self._monotonic()
        if (wait := self._paused_until - now) > 0:
            raise NotConnected(
                f"the charger at {self._where()} is in its port lock-out pause ({wait:.0f} s left)"
            )
        if (wait := self._retry_at - now) > 0:
            raise NotConnected(
                f"the charger at {self._where()} is unreachable; retry in {wait:.1f} s"
            )
        self._drop()
        s = self.settings
        client = AsyncModbusTcpClient(
            s.host, port=s.port, timeout=s.timeout, retries=0, reconnect_delay=0,
            reconnect_delay_max=0, name=f"evc-{s.host}:{s.port}",
        )  # fmt: skip
        try:
            async with asyncio.timeout(s.connect_timeout):
                ok = await client.connect()
        except (TimeoutError, ModbusException, OSError):
            ok = False
        if not ok:
            client.close()
            self.stats.connect_failures += 1
            delay = self._backoff.next_delay()
            self._retry_at = self._monotonic() + delay
            raise NotConnected(
                f"cannot connect to the charger at {self._where()}; retry in {delay:.1f} s"
            )
        self._client = client
        self.stats.connects += 1
        self._backoff.reset()
        log.info("charger connected", host=s.host, port=s.port)
        return client

    def _drop(self) -> None:
        if self._client is not None:
            if self._client.connected:
                self.stats.disconnects += 1
            self._client.close()
            self._client = None

    def _where(self) -> str:
        return f"{self.settings.host}:{self.settings.port}"
