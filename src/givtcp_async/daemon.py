"""The daemon: one event loop, one task group, every inverter and every sink.

Each configured inverter gets an :class:`InverterCoordinator` and each EV charger an
:class:`~givtcp_async.evc.coordinator.EvcCoordinator`; each enabled output (MQTT, REST,
InfluxDB) is a :class:`Service` that only reads the coordinators' snapshots and submits commands
to them, seeing each as an :class:`~givtcp_async.ports.InverterView`. This is the one module
that imports the sinks: it builds their services from the settings, the views and the
:class:`~givtcp_async.ports.Links` between them. Stopping (SIGTERM/SIGINT or
:meth:`Daemon.stop`) cancels the group: every task cleans up (overrides restored, "offline"
published, sockets closed) within ``shutdown_timeout``.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import signal
from collections.abc import Sequence
from datetime import time
from typing import TYPE_CHECKING, Protocol
from zoneinfo import ZoneInfo

import structlog

from givtcp_async.config import ChargerConfig, Settings
from givtcp_async.control.clock import Clock
from givtcp_async.coordinator import CoordinatorOptions, InverterCoordinator
from givtcp_async.ports import ChargerView, InverterView, Links
from givtcp_async.systemd import SystemdNotifier
from givtcp_async.tariffs import TariffSettings

if TYPE_CHECKING:  # imported only when a charger is configured (pymodbus and all)
    from givtcp_async.evc.coordinator import EvcCoordinator, EvcSettings

log = structlog.get_logger(__name__)


RESTART_DELAY = 1.0  # seconds between a rebootAddon answer and the stop


class Service(Protocol):
    """An output of the daemon: runs until cancelled, then cleans up promptly."""

    name: str

    async def run(self) -> None: ...


class _Shutdown(Exception):
    """Raised inside the task group to cancel every other task."""


def output_modules(settings: Settings) -> list[str]:
    """The sink modules of the outputs ``settings`` enables: only these are imported (InfluxDB's
    client library alone is ~14 MiB)."""
    mqtt = settings.mqtt
    wanted = [
        ("broker", mqtt.enabled and mqtt.internal_broker),
        ("mqtt", mqtt.enabled),
        ("influx", settings.influx.enabled),
        ("rest", settings.rest.enabled),
    ]
    return [f"givtcp_async.sinks.{name}" for name, on in wanted if on]


def import_outputs(settings: Settings) -> None:
    """Import the enabled outputs' modules (the daemon does it in a thread; see ``run``); aiohttp
    (REST, InfluxDB) without CA certificates in its unused default contexts, and only its server
    half when nothing but REST needs it, and without the system's MIME table (sinks.tls)."""
    with contextlib.ExitStack() as stack:
        if settings.rest.enabled or settings.influx.enabled:
            tls = importlib.import_module("givtcp_async.sinks.tls")
            stack.enter_context(tls.builtin_mime_types())
            tls.import_aiohttp(client=settings.influx.enabled)
        for module in output_modules(settings):
            importlib.import_module(module)


def default_services(
    settings: Settings,
    views: Sequence[InverterView],
    links: Links,
    chargers: Sequence[ChargerView] = (),
) -> list[Service]:
    """The outputs the configuration enables, in start order (each output module's factory is
    called here, so the order is explicit: the broker before MQTT, which waits for it)."""
    import_outputs(settings)
    sink = {m.rsplit(".", 1)[1]: importlib.import_module(m) for m in output_modules(settings)}
    candidates: list[Service | None] = []
    if "broker" in sink:
        candidates.append(
            sink["broker"].broker_service(
                settings.mqtt, views, links, state_dir=settings.control.state_dir
            )
        )
    if "mqtt" in sink:
        mqtt = sink["mqtt"]
        candidates.append(
            mqtt.mqtt_service(
                settings.mqtt,
                views,
                links,
                dashboard_url=mqtt.configuration_url(settings),
                chargers=chargers,
            )
        )
    if "influx" in sink:
        candidates.append(
            sink["influx"].influx_service(settings.influx, views, links, chargers=chargers)
        )
    if "rest" in sink:
        candidates.append(sink["rest"].rest_service(settings.rest, views, links, chargers=chargers))
    return [s for s in candidates if s is not None]  # fmt: skip


def coordinator_options(settings: Settings) -> CoordinatorOptions:
    """What every coordinator reads of the settings besides its own inverter's section."""
    return CoordinatorOptions(
        state_dir=settings.control.state_dir,
        timezone=settings.data.timezone,
        stale_after=settings.data.stale_after,
        offline_after=settings.mqtt.offline_after,
        print_raw=settings.data.print_raw,
        layout=settings.data.layout,
        tariff=tariff_settings(settings),
        write_budget_per_day=settings.control.write_budget_per_day or None,
        min_write_interval=settings.control.min_write_interval or None,
        dead_man_minutes=settings.control.dead_man_minutes or None,
    )


def charger_settings(cfg: ChargerConfig, settings: Settings) -> EvcSettings:
    """One ``[[chargers]]`` entry as the charger coordinator's settings."""
    from givtcp_async.evc.connection import EvcLinkSettings
    from givtcp_async.evc.coordinator import EvcSettings

    link = EvcLinkSettings(cfg.host, cfg.port, timeout=cfg.timeout,
                           connect_timeout=max(cfg.timeout, 5.0))  # fmt: skip
    return EvcSettings(
        link,
        name=cfg.name,
        serial=cfg.serial,
        poll_interval=cfg.poll_interval,
        lockout_after=cfg.lockout_after,
        lockout_pause=cfg.lockout_pause,
        offline_after=settings.mqtt.offline_after,
        stale_after=settings.data.stale_after,
    )


def tariff_settings(settings: Settings) -> TariffSettings | None:
    """The tariff the coordinators track (None: ``tariff.enabled`` is off)."""
    t = settings.tariff
    if not t.enabled:
        return None
    return TariffSettings(
        day_rate=t.day_rate,
        night_rate=t.night_rate,
        export_rate=t.export_rate,
        day_start=time.fromisoformat(t.day_start),
        night_start=time.fromisoformat(t.night_start),
        dynamic=t.dynamic,
        currency=t.currency,
    )


class Daemon:
    """Runs the coordinators and services of one configuration."""

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock | None = None,
        services: Sequence[Service] | None = None,
        notifier: SystemdNotifier | None = None,
        shutdown_timeout: float = 4.5,
        defer_services: bool = False,
    ) -> None:
        """``defer_services``: build the default services in :meth:`run`, their modules
        imported in a thread while the inverters connect and detect (a faster first state);
        ``services`` stays empty until :attr:`started` is set."""
        self.settings = settings
        self.clock = clock
        options = coordinator_options(settings)
        self.coordinators = [
            InverterCoordinator(inv, options, clock=clock) for inv in settings.inverters
        ]
        # Chargers steer by the first inverter's grid readings (the import cap, the modes).
        grid = self.coordinators[0]
        self.chargers: list[EvcCoordinator] = []
        if settings.chargers:
            from givtcp_async.evc.coordinator import EvcCoordinator
        self.chargers += [
            EvcCoordinator(
                charger_settings(cfg, settings),
                state_dir=settings.control.state_dir,
                tz=ZoneInfo(settings.data.timezone),
                clock=clock,
                grid=lambda: grid.snapshot,
                grid_refresh=lambda: grid.request_refresh(settings=False),
                write_budget=settings.control.write_budget_per_day or None,
            )
            for cfg in settings.chargers
        ]
        self.links = Links()
        self._deferred = services is None and defer_services
        self.services: list[Service] = (
            list(services) if services is not None
            else [] if self._deferred
            else default_services(settings, self.coordinators, self.links, self.chargers)
        )  # fmt: skip
        self.notifier = notifier or SystemdNotifier()
        self.shutdown_timeout = shutdown_timeout
        self._stop = asyncio.Event()
        self.started = asyncio.Event()
        self.restart_requested = False
        for coord in self.coordinators:
            coord.restart_hook = self.request_restart

    def coordinator(self, serial: str) -> InverterCoordinator | None:
        """The coordinator of the inverter with ``serial`` (once detected)."""
        return next((c for c in self.coordinators if c.serial == serial), None)

    def stop(self) -> None:
        self._stop.set()

    def request_restart(self, delay: float = RESTART_DELAY) -> None:
        """rebootAddon: stop cleanly ``delay`` seconds from now (the command's answer goes out
        first), keeping running timed overrides pending; whoever runs the daemon then starts it
        again (:attr:`restart_requested`)."""
        if self.restart_requested:
            return
        self.restart_requested = True
        for coord in self.coordinators:
            coord.keep_overrides_on_stop = True
        log.warning("restart requested: stopping, then starting again", delay=delay)
        asyncio.get_running_loop().call_later(delay, self.stop)

    def healthy(self) -> bool:
        """The loop is alive and at least one inverter answered recently (or none configured)."""
        return any(c.health().online for c in self.coordinators) or not self.coordinators

    async def _group(self) -> None:
        async with asyncio.TaskGroup() as tg:
            for coord in self.coordinators:
                tg.create_task(coord.run(), name=f"inverter-{coord.config.host}")
            for charger in self.chargers:
                tg.create_task(charger.run(), name=f"charger-{charger.address}")
            if self._deferred:
                # Importing is CPU work, but the link mostly waits for the dongle meanwhile.
                await asyncio.to_thread(import_outputs, self.settings)
                self.services = default_services(
                    self.settings, self.coordinators, self.links, self.chargers
                )
            for service in self.services:
                tg.create_task(service.run(), name=f"service-{service.name}")
            tg.create_task(self.notifier.watchdog(self.healthy), name="watchdog")
            self.notifier.ready(f"{len(self.coordinators)} inverter(s)")
            self.started.set()
            log.info("daemon started", inverters=len(self.coordinators),
                     chargers=len(self.chargers),
                     services=[s.name for s in self.services])  # fmt: skip
            await self._stop.wait()
            raise _Shutdown

    async def run(self) -> None:
        """Run until :meth:`stop`; returns once everything has stopped (bounded in time)."""
        group = asyncio.create_task(self._group(), name="daemon")
        stopper = asyncio.create_task(self._stop.wait())
        try:
            await asyncio.wait({group, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
            self._stop.set()
            self.notifier.stopping()
            done, _ = await asyncio.wait({group}, timeout=self.shutdown_timeout)
            if not done:
                log.warning("shutdown is taking too long; cancelling", budget=self.shutdown_timeout)
                group.cancel()
                await asyncio.wait({group}, timeout=1.0)
        if group.done() and not group.cancelled():
            exc = group.exception()
            if isinstance(exc, BaseExceptionGroup):
                _, rest = exc.split(_Shutdown)
                if rest is not None:
                    raise rest
            elif exc is not None and not isinstance(exc, _Shutdown):
                raise exc
        log.info("daemon stopped")

    async def serve_until_signalled(self) -> None:
        """:meth:`run` with SIGTERM and SIGINT wired to :meth:`stop`."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop)
        try:
            await self.run()
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
