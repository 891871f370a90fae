"""The face the outputs see: what a sink may know of an inverter, and what crosses services.

Sinks (MQTT, REST, InfluxDB, metrics) import this module, never the coordinator or the daemon.
:class:`InverterView` is everything they read of an inverter and the one way to command it (the
:class:`~givtcp_async.coordinator.InverterCoordinator` fits it; a test may hand a stub);
:class:`Links` is everything one service needs of another. The daemon builds both and gives
them to the sinks' factories, ``factory(settings_section, views, links)``.

May import: snapshot, control (results, catalogue) and registers; never the coordinator, which
imports this module to fit the view.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from givtcp_async.control.catalogue import Catalogue
    from givtcp_async.control.payloads import RawPayload
    from givtcp_async.control.result import CommandResult
    from givtcp_async.evc.snapshot import EvcSnapshot
    from givtcp_async.registers.models import Model
    from givtcp_async.snapshot import Snapshot

__all__ = ["ChargerHealth", "ChargerView", "Health", "InverterView", "Links", "MetricsSource"]


@dataclass(frozen=True, slots=True)
class Health:
    """How the link to one inverter is doing."""

    connected: bool
    detected: bool
    online: bool  # answering: a good poll within ``offline_after``
    last_good_poll: datetime | None
    consecutive_failures: int
    polls: int
    failed_polls: int
    backoff_factor: int
    # Why the inverter is refused (a serial mismatch): no writes, no publication meanwhile.
    problem: str | None = None


class InverterView(Protocol):
    """One inverter as the outputs see it: its latest snapshot, its health, its commands."""

    @property
    def name(self) -> str:
        """The configured name (stands for the serial until detection)."""
        ...

    @property
    def serial(self) -> str | None:
        """The inverter's serial once detected (or as configured)."""
        ...

    @property
    def model(self) -> Model | None:
        """The detected model (None until detection)."""
        ...

    @property
    def snapshot(self) -> Snapshot | None:
        """The latest snapshot (None before the first poll)."""
        ...

    @property
    def offline_after(self) -> float:
        """Seconds without a good poll after which the inverter counts as offline."""
        ...

    def updates(self) -> AsyncIterator[Snapshot]:
        """Every new snapshot; a slow consumer skips to the latest one."""
        ...

    def health(self) -> Health:
        """How the link to the inverter is doing now."""
        ...

    def now(self) -> datetime:
        """Now, in the configured timezone (the inverter's local time)."""
        ...

    def catalogue(self) -> Catalogue:
        """The control functions this inverter serves."""
        ...

    async def link_up(self, timeout: float) -> bool:
        """Whether the dongle link is up, waiting up to ``timeout`` seconds for it."""
        ...

    async def execute(self, function: str, payload: RawPayload = None) -> CommandResult:
        """Run one control command; never raises for a command that cannot be carried out."""
        ...

    def metrics(self) -> dict[str, Any]:
        """Counters for /metrics: connection, cache, gates, polls and writes."""
        ...


@dataclass(frozen=True, slots=True)
class ChargerHealth:
    """How the link to one EV charger is doing."""

    connected: bool
    online: bool  # answering: a good poll within ``offline_after``
    last_good_poll: datetime | None
    consecutive_failures: int
    polls: int
    failed_polls: int
    paused_for: float  # seconds left of a port lock-out pause


class ChargerView(Protocol):
    """One EV charger as the outputs see it (:class:`~givtcp_async.evc.coordinator.
    EvcCoordinator` fits it): its latest snapshot, its health, its commands."""

    @property
    def name(self) -> str:
        """The configured Home Assistant prefix (GivTCP)."""
        ...

    @property
    def serial(self) -> str | None:
        """The charger's serial once read (or as configured)."""
        ...

    @property
    def address(self) -> str:
        """``host:port``."""
        ...

    @property
    def snapshot(self) -> EvcSnapshot | None: ...

    @property
    def offline_after(self) -> float: ...

    def updates(self) -> AsyncIterator[EvcSnapshot]: ...

    def health(self) -> ChargerHealth: ...

    def now(self) -> datetime: ...

    async def execute(self, function: str, payload: RawPayload = None) -> CommandResult:
        """Run one charger command; never raises for a command that cannot be carried out."""
        ...

    def metrics(self) -> dict[str, Any]: ...


@runtime_checkable
class MetricsSource(Protocol):
    """A service with counters for /metrics (keys as in ``sinks.metrics._SERVICES``)."""

    def metrics(self) -> Mapping[str, float]: ...


@dataclass(eq=False)
class Links:
    """What crosses the services of one daemon; each service adds its own part when built.

    ``broker_ready``: set while the internal broker listens (MQTT waits for it before its first
    connection); ``mqtt_stopped``: set once an MQTT service has published offline and
    disconnected (the internal broker waits for it before stopping); ``metrics_sources``: the
    services whose counters /metrics shows.
    """

    broker_ready: list[asyncio.Event] = field(default_factory=list)
    mqtt_stopped: list[asyncio.Event] = field(default_factory=list)
    metrics_sources: list[MetricsSource] = field(default_factory=list)

    async def wait_broker_ready(self) -> None:
        """Return once every internal broker listens (at once when there is none)."""
        for ready in self.broker_ready:
            await ready.wait()

    async def wait_mqtt_stopped(self, timeout: float) -> None:
        """Return once every MQTT service has said goodbye, or after ``timeout`` seconds."""
        waits = [stopped.wait() for stopped in self.mqtt_stopped]
        if waits:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await asyncio.gather(*waits)
