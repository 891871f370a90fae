"""The MQTT service: state, availability, commands and Home Assistant discovery over one client.

Topics (``<root>`` is ``mqtt.topic``, GivEnergy by default):

* ``<root>/<serial>/<group>/.../<Field>``: every snapshot value, retained (``mqtt.retain``);
  after a full publish only changed values (``mqtt.changes_only``). ``<root>/<serial>/runAll``:
  the whole snapshot as one JSON document.
* ``<root>/bridge/status``: ``online`` while the daemon is connected; the broker publishes the
  retained last will ``offline`` if the daemon dies, and the daemon publishes it on shutdown.
* ``<root>/<serial>/Stats/status``: ``online`` while the inverter answers, ``offline`` once no
  poll has succeeded for ``mqtt.offline_after`` seconds and on shutdown (retained).
* Commands: ``<root>/<serial>/control/<function>`` and GivTCP's ``<root>/control/<serial>/
  <function>``; the payload is JSON or a plain value as in the control catalogue. The result
  goes, not retained, to ``<root>/<serial>/control/<function>/result``. Retained and empty
  command messages are never executed (a broker replaying an old command, or someone clearing
  one, must not act); they and unknown serials get a ``rejected`` result saying why.
* EV chargers alike: ``<root>/<charger serial>/Charger/<Field>``, ``.../Stats/status``, commands
  on ``<root>/control/<charger serial>/<function>`` or ``<root>/<charger serial>/control/
  <function>`` (the charger's functions, :mod:`givtcp_async.evc.controls`), results as above.
* Discovery (:mod:`givtcp_async.sinks.discovery`) under ``mqtt.discovery_prefix``, announced
  after every (re)connection, when an inverter's layout changes, and a moment after Home
  Assistant's ``<prefix>/status`` says ``online``.

aiomqtt 2.x does not reconnect by itself: :meth:`MqttService.run` loops over connections with
capped, jittered back-off, and every connection starts with a full publish.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import math
import os
import random
import socket
import ssl
from collections.abc import Callable, Coroutine, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

import aiomqtt
import structlog

from givtcp_async.backoff import Backoff
from givtcp_async.config import MqttConfig, Settings
from givtcp_async.control.result import CommandResult, rejected
from givtcp_async.ports import ChargerHealth, ChargerView, Health, InverterView, Links
from givtcp_async.sinks import discovery
from givtcp_async.sinks.discovery import (
    OFFLINE,
    ONLINE,
    STATUS_PATH,
    DiscoveryConfig,
    bridge_topic,
    ha_status_topic,
    result_topic,
    status_topic,
)
from givtcp_async.sinks.retained_configs import RetainedConfigs
from givtcp_async.sinks.state_topics import Message, StateTopics
from givtcp_async.snapshot import Snapshot

if TYPE_CHECKING:
    from givtcp_async.evc.snapshot import EvcSnapshot

log = structlog.get_logger(__name__)

MAX_PENDING_COMMANDS: Final = 32
MAX_PAYLOAD: Final = 64 * 1024  # no command needs more; a bigger one is not parsed
# Messages received but not yet read, payloads and all; beyond it only their topics are kept
# (each is answered "rejected"), up to MAX_REFUSED_QUEUED, beyond which they are dropped.
MAX_QUEUED: Final = 64
MAX_REFUSED_QUEUED: Final = 10_000
MAX_LEFTOVERS: Final = 4096  # retained discovery configs remembered at once (to hand over)
MAX_CONFIG: Final = 1024 * 1024  # a retained discovery config read; a larger one is not parsed
SYNC_TIMEOUT: Final = 10.0  # waiting for the retained discovery configs before announcing
PUBLISH_BATCH: Final = 100
GOODBYE_TIMEOUT: Final = 1.5
KEEPALIVE: Final = 30
CONTROL: Final = "control"


def is_online(health: Health | ChargerHealth, now: datetime, offline_after: float) -> bool:
    """The inverter answered within ``offline_after`` seconds (a dropped link alone is not
    enough to call it offline: the coordinator reconnects within seconds)."""
    last = health.last_good_poll
    if isinstance(health, Health) and health.problem is not None:  # another unit answers there
        return False
    return last is not None and (now - last).total_seconds() <= offline_after


def tls_context(cfg: MqttConfig) -> ssl.SSLContext | None:
    """The TLS context ``mqtt.tls`` describes (None: plain TCP)."""
    tls = cfg.tls
    if not tls.enabled:
        return None
    ctx = ssl.create_default_context(cafile=str(tls.ca_file) if tls.ca_file else None)
    if tls.certfile is not None:
        ctx.load_cert_chain(str(tls.certfile), str(tls.keyfile) if tls.keyfile else None)
    if tls.insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def client_options(cfg: MqttConfig) -> dict[str, Any]:
    """Keyword arguments for :class:`aiomqtt.Client` (connection, credentials, TLS, last will)."""
    assert cfg.host is not None
    return {
        "hostname": cfg.host,
        "port": cfg.port,
        "username": cfg.username,
        "password": cfg.password.get_secret_value() if cfg.password else None,
        "identifier": cfg.effective_client_id(),
        "will": aiomqtt.Will(bridge_topic(cfg.topic), OFFLINE, qos=1, retain=True),
        "clean_session": True,
        "keepalive": KEEPALIVE,
        "timeout": 10.0,
        "tls_context": tls_context(cfg),
        "tls_insecure": cfg.tls.insecure if cfg.tls.enabled else None,
        "logger": logging.getLogger("givtcp_async.sinks.mqtt.client"),
        # Results and state go out at once instead of waiting behind a delayed ACK (~40 ms).
        "socket_options": [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
    }


def parse_command_topic(root: str, topic: str) -> tuple[str, str] | None:
    """``(serial, function)`` of a control topic in either form, else None."""
    if not topic.startswith(root + "/"):
        return None
    parts = topic[len(root) + 1 :].split("/")
    if len(parts) != 3 or not all(parts):
        return None
    if parts[0] == CONTROL:
        return parts[1], parts[2]
    if parts[1] == CONTROL:
        return parts[0], parts[2]
    return None


def configuration_url(settings: Settings) -> str | None:
    """The REST dashboard's address for HA's "Visit" link, when the REST API runs."""
    rest = settings.rest
    if not rest.enabled:
        return None
    host = rest.host
    if host in ("0.0.0.0", "::", ""):
        host = socket.gethostname()
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{rest.port}/"


class _Refused(aiomqtt.Message):
    """A received message kept without its payload: too large, or too many waiting."""

    def __init__(self, message: aiomqtt.Message, reason: str, size: int) -> None:
        super().__init__(message.topic, b"", message.qos, message.retain, message.mid, None)
        self.reason = reason  # "size" or "queue"
        self.size = size


def _payload_size(payload: Any) -> int:
    return len(payload) if isinstance(payload, bytes | bytearray | str) else 0


def incoming_queue(
    stats: MqttStats, tap: Callable[[aiomqtt.Message], bool] | None = None
) -> type[asyncio.Queue[aiomqtt.Message]]:
    """aiomqtt's incoming queue, bounded: a payload over :data:`MAX_PAYLOAD`, or any beyond
    :data:`MAX_QUEUED` waiting, is dropped as it arrives (its topic kept, to answer it), and
    past :data:`MAX_REFUSED_QUEUED` the message is dropped whole (counted, logged). ``tap``
    takes a message as it arrives instead, when it returns True (never queued)."""

    class Incoming(asyncio.Queue[aiomqtt.Message]):
        def put_nowait(self, item: aiomqtt.Message) -> None:
            if tap is not None and tap(item):
                return
            size = _payload_size(item.payload)
            waiting = self.qsize()
            if size > MAX_PAYLOAD or waiting >= MAX_QUEUED:
                if waiting >= MAX_REFUSED_QUEUED:
                    stats.messages_dropped += 1
                    if stats.messages_dropped % 1000 == 1:
                        log.error("MQTT messages dropped unread: too many waiting",
                                  dropped=stats.messages_dropped)  # fmt: skip
                    return
                item = _Refused(item, "size" if size > MAX_PAYLOAD else "queue", size)
            super().put_nowait(item)

    return Incoming


@dataclass(eq=False)
class _Inverter:
    """What the service tracks for one inverter (or EV charger)."""

    view: InverterView | ChargerView
    topics: StateTopics
    discovery: DiscoveryConfig
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    announced: tuple[Any, ...] | None = None
    status: str | None = None
    first_seen: datetime | None = None  # when the service first had a serial for it
    time_configs: set[str] = field(default_factory=set)  # its announced time entities' topics

    @property
    def serial(self) -> str | None:
        return self.view.serial

    def forget(self) -> None:
        """A new connection: everything is published again."""
        self.topics.reset()
        self.announced = None
        self.status = None
        self.time_configs = set()


class _SessionTasks:
    """The tasks of one connection: :meth:`run` returns or raises when one of them fails (or
    when cancelled) and always leaves every one of them finished."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()
        self._failed: asyncio.Future[BaseException] = asyncio.get_running_loop().create_future()

    def spawn(self, coro: Coroutine[Any, Any, None], name: str, *, lasting: bool = True) -> None:
        """Start a task; a ``lasting`` one ending at all ends the connection, any one failing
        does."""
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(lambda t: self._done(t, lasting))

    def _done(self, task: asyncio.Task[None], lasting: bool) -> None:
        self._tasks.discard(task)
        if task.cancelled() or self._failed.done():
            return
        error = task.exception()
        if error is None and lasting:
            error = RuntimeError(f"{task.get_name()} ended")
        if error is not None:
            self._failed.set_result(error)

    async def run(self) -> None:
        try:
            error = await self._failed
        finally:
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.wait(tasks)
        raise error


class _WillHolders:
    """One extra connection per inverter status topic, holding that topic's last will
    (``offline``): a connection has one will, and Home Assistant's entities follow their own
    inverter's ``Stats/status`` alone (as GivTCP's do). Each lives as long as the session; one
    that drops ends the session."""

    def __init__(self, options: Mapping[str, Any], tasks: _SessionTasks | None) -> None:
        self._options = options
        self._tasks = tasks
        self._clients: dict[str, aiomqtt.Client] = {}
        self._connecting = asyncio.Lock()

    async def hold(self, topic: str) -> None:
        """Connect the holder of ``topic``'s will, unless it is connected already."""
        async with self._connecting:  # a second caller waits until the will is held
            if topic not in self._clients and self._tasks is not None:
                await self._connect(topic, self._tasks)

    async def _connect(self, topic: str, tasks: _SessionTasks) -> None:
        client = aiomqtt.Client(
            **{
                **self._options,
                "identifier": f"{self._options['identifier']}-{len(self._clients) + 1}",
                "will": aiomqtt.Will(topic, OFFLINE, qos=1, retain=True),
            }
        )
        self._clients[topic] = client
        entering = asyncio.ensure_future(client.__aenter__())
        try:
            await asyncio.shield(entering)
        except BaseException:
            del self._clients[topic]
            await _finish_connecting(client, entering)
            raise
        tasks.spawn(self._watch(client), f"mqtt-will-{len(self._clients)}")

    @staticmethod
    async def _watch(client: aiomqtt.Client) -> None:
        async for _ in client.messages:  # subscribes to nothing: returns or raises on a drop
            pass

    async def close(self) -> None:
        """Disconnect every holder with a goodbye: the broker drops their wills."""
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await _disconnect(client)

    def abandon(self) -> None:
        """Close every holder without a goodbye, so that the broker publishes each will."""
        for client in self._clients.values():
            _abandon(client)
        self._clients.clear()


@dataclass
class MqttStats:
    """What the service counts (``messages``: state and discovery messages published)."""

    connections: int = 0
    connection_failures: int = 0
    messages: int = 0
    announcements: int = 0
    commands: int = 0
    commands_rejected: int = 0
    results_undelivered: int = 0
    messages_dropped: int = 0  # past every bound: dropped unread, unanswered


class MqttService:
    """Publishes every inverter's state and serves commands over one aiomqtt client."""

    name = "mqtt"

    def __init__(
        self,
        cfg: MqttConfig,
        views: Sequence[InverterView],
        links: Links | None = None,
        *,
        dashboard_url: str | None = None,
        backoff: Backoff | None = None,
        ha_birth_delay: tuple[float, float] = (1.0, 5.0),
        health_interval: float = 2.0,
        chargers: Sequence[ChargerView] = (),
    ) -> None:
        """``dashboard_url``: the REST dashboard, linked from every HA device (None: no link);
        ``chargers``: EV chargers, published and commanded like the inverters."""
        self.cfg = cfg
        self.links = links or Links()
        self.root = self.cfg.topic
        self.backoff = backoff or Backoff(initial=1.0, maximum=60.0)
        self.ha_birth_delay = ha_birth_delay
        self.health_interval = health_interval
        devices: list[InverterView | ChargerView] = [*views, *chargers]
        self.inverters = [
            _Inverter(
                view,
                StateTopics(
                    self.root,
                    retain=self.cfg.retain,
                    changes_only=self.cfg.changes_only,
                    exclude=(STATUS_PATH,),
                ),
                DiscoveryConfig(
                    root=self.root,
                    prefix=self.cfg.discovery_prefix,
                    device_prefix=view.name,
                    time_entities=self.cfg.time_entities,
                    time_step=self.cfg.time_step,
                    all_entities=self.cfg.all_entities,
                    configuration_url=dashboard_url,
                    format=self.cfg.discovery_format,
                ),
            )
            for view in devices
        ]
        self.stats = MqttStats()
        self._options = client_options(self.cfg)  # a bad TLS file fails here, at start
        self._options["queue_type"] = incoming_queue(self.stats, self._tap)
        # The most publishes that can wait at once (for the socket at QoS 0, for the broker's
        # acknowledgement at QoS 1): a batch of a full publish and a status per inverter, the
        # bridge status and every command's result. aiomqtt warns of "pending publish calls"
        # beyond its threshold (10 by default, which every full publish exceeds).
        self.max_pending = len(self.inverters) * (PUBLISH_BATCH + 1) + 1 + MAX_PENDING_COMMANDS
        self.connected = asyncio.Event()  # set while a connection is up (tests, health)
        # Set once stopped: offline published and the client disconnected (the internal broker
        # waits for it, so that both reach the broker before it stops).
        self.stopped = asyncio.Event()
        self.links.mqtt_stopped.append(self.stopped)
        self.links.metrics_sources.append(self)
        self._client: aiomqtt.Client | None = None
        self._commands: set[asyncio.Task[None]] = set()
        self._busy_refusals = 0  # commands refused in a row for too many waiting
        self._sessions = asyncio.Condition()
        self._announcing = asyncio.Lock()
        self._publishing = asyncio.Lock()  # one inverter's state at a time
        self._leftovers: set[str] = set()  # retained time configs, cleared unless announced
        self._retained = self._new_retained()
        # Answered by the broker once it has sent every retained config subscribed to.
        self._sync_topic = f"{self.root}/bridge/sync/{os.urandom(4).hex()}"
        self._synced = asyncio.Event()
        self._holders = _WillHolders(self._options, None)

    def metrics(self) -> dict[str, float]:
        """Counters for /metrics (``mqtt_`` prefixed), and whether a connection is up."""
        out: dict[str, float] = {"mqtt_connected": float(self.connected.is_set())}
        for key, value in asdict(self.stats).items():
            out[f"mqtt_{key}"] = value
        return out

    async def wait_connected(self, times: int = 1) -> None:
        """Return once ``times`` connections in all have been set up (subscribed, serving)."""
        async with self._sessions:
            await self._sessions.wait_for(lambda: self.stats.connections >= times)

    # --- lifecycle -------------------------------------------------------------------------

    async def run(self) -> None:
        """Connect, serve, reconnect on loss; on cancellation publish offline and stop."""
        try:
            await self.links.wait_broker_ready()
            while True:
                await self._connection()
                _checkpoint()  # a stop that arrived with a connection error is not lost
                delay = self.backoff.next_delay()
                log.info("MQTT reconnecting", retry_in=round(delay, 2))
                await asyncio.sleep(delay)
        finally:
            self.stopped.set()
            await self._cancel_commands()

    async def _connection(self) -> None:
        """One connection, until it fails (returns) or the service is cancelled (raises)."""
        client = aiomqtt.Client(**self._options)
        client.pending_calls_threshold = self.max_pending
        try:
            await client.__aenter__()
        except aiomqtt.MqttError as err:
            self.stats.connection_failures += 1
            level = log.warning if self.backoff.failures == 0 else log.debug
            level("MQTT connection failed", host=self.cfg.host, port=self.cfg.port,
                  error=str(err))  # fmt: skip
            return
        except asyncio.CancelledError:
            _abandon(client)
            raise
        log.info("MQTT connected", host=self.cfg.host, port=self.cfg.port,
                 client_id=self.cfg.effective_client_id())  # fmt: skip
        try:
            try:
                await self._session(client)
            except* aiomqtt.MqttError as group:
                log.warning("MQTT connection lost", error=str(group.exceptions[0]))
            except* Exception as group:  # a bug must not take the daemon down: log, reconnect
                log.error("MQTT session failed", exc_info=group.exceptions[0])
            _checkpoint()  # a stop may arrive together with an error, or be swallowed (3.11)
        except asyncio.CancelledError:
            self._client = None
            for task in self._commands:  # the inverters are stopping too: no command can finish
                task.cancel()
            await self._goodbye(client)
            await self._holders.close()  # offline said already: no will on top
            raise
        finally:
            self._client = None
            self.connected.clear()
            # Dropped without a goodbye: the broker says each inverter offline (their wills).
            self._holders.abandon()
            await _disconnect(client)

    async def _session(self, client: aiomqtt.Client) -> None:
        for inv in self.inverters:
            inv.forget()
        await client.publish(bridge_topic(self.root), ONLINE, qos=1, retain=True)
        subscriptions = [
            (f"{self.root}/+/{CONTROL}/+", 1),
            (f"{self.root}/{CONTROL}/+/+", 1),
            (ha_status_topic(self.cfg.discovery_prefix), 1),
        ]
        self._retained = self._new_retained()
        self._synced.clear()
        if self.cfg.discovery:
            if self.cfg.discovery_format == "entity" and self.cfg.time_entities != "time":
                prefix = self.cfg.discovery_prefix
                subscriptions.append((discovery.leftover_time_configs(prefix), 1))
            subscriptions += [(f, 1) for f in self._retained.filters()]
        subscriptions.append((self._sync_topic, 1))
        await client.subscribe(subscriptions)
        await client.publish(self._sync_topic, "sync", qos=1)
        self._client = client
        self.connected.set()
        self.backoff.reset()
        async with self._sessions:
            self.stats.connections += 1
            self._sessions.notify_all()
        # Plain tasks rather than a TaskGroup: on Python 3.11 a TaskGroup whose child fails
        # leaves a cancellation request on this task, which would read as a stop.
        tasks = _SessionTasks()
        self._holders = _WillHolders(self._options, tasks)
        tasks.spawn(self._listen(client, tasks), "mqtt-listen")
        tasks.spawn(self._watch_health(client), "mqtt-health")
        for inv in self.inverters:
            tasks.spawn(self._follow(client, inv), f"mqtt-{inv.view.name}")
        await tasks.run()

    async def _goodbye(self, client: aiomqtt.Client) -> None:
        """Clean shutdown: every inverter and the bridge go offline (retained)."""
        try:
            async with asyncio.timeout(GOODBYE_TIMEOUT):
                for inv in self.inverters:
                    if inv.serial is not None:
                        await client.publish(
                            status_topic(self.root, inv.serial), OFFLINE, qos=1, retain=True
                        )
                await client.publish(bridge_topic(self.root), OFFLINE, qos=1, retain=True)
        except (aiomqtt.MqttError, TimeoutError) as err:
            log.warning("could not publish offline on shutdown", error=str(err))
        else:
            log.info("MQTT offline published")

    async def _cancel_commands(self) -> None:
        tasks = list(self._commands)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=1.0)

    # --- state -----------------------------------------------------------------------------

    async def _follow(self, client: aiomqtt.Client, inv: _Inverter) -> None:
        async for snap in inv.view.updates():
            await self._publish_snapshot(client, inv, snap)
            _checkpoint()

    async def _publish_snapshot(
        self,
        client: aiomqtt.Client,
        inv: _Inverter,
        snap: Snapshot | EvcSnapshot,
        *,
        full: bool = False,
    ) -> None:
        async with inv.lock:
            if full:
                inv.topics.reset()
            if snap.serial:  # its will held before anything of it is announced
                await self._holders.hold(status_topic(self.root, snap.serial))
            if self.cfg.discovery:
                sig = _signature(snap, inv.discovery)
                if full or inv.announced != sig or self._handover(snap):
                    # One device's announcement at a time, built as it is sent: its payloads
                    # never pile up in memory together with another inverter's.
                    async with self._announcing:
                        await self._wait_synced()
                        await self._announce(client, inv, snap)
                        inv.announced = sig
                    inv.topics.reset()  # state after config, for non-retained state
                    self.stats.announcements += 1
                    log.info("discovery announced", serial=snap.serial)
            # One inverter's state at a time: the inverters a daemon polls together would
            # otherwise each hold their tree, messages and publishes in flight at once (issue
            # #16); made only once its turn comes.
            async with self._publishing:
                await self._publish(client, inv.topics.each_message(snap))
            await self._update_status(client, inv)

    def _new_retained(self) -> RetainedConfigs:
        fmt = self.cfg.discovery_format
        return RetainedConfigs(self.cfg.discovery_prefix, fmt, MAX_LEFTOVERS)

    def _handover(self, snap: Snapshot | EvcSnapshot) -> bool:
        """Whether configs of the other discovery format wait for ``snap``'s inverter."""
        return isinstance(snap, Snapshot) and bool(self._retained.others(snap.serial))

    async def _wait_synced(self) -> None:
        try:
            async with asyncio.timeout(SYNC_TIMEOUT):
                await self._synced.wait()
        except TimeoutError:
            self._synced.set()  # once per connection
            log.warning("the broker did not answer the retained discovery configs; announcing")

    async def _announce(
        self, client: aiomqtt.Client, inv: _Inverter, snap: Snapshot | EvcSnapshot
    ) -> None:
        """Publish the device's discovery, taking over its configs of the other format: Home
        Assistant lets go of each (``migrate_discovery``, keeping its entity), the new configs
        take the entities over, then the old ones are cleared. In the device format, the time
        entities' payload is cleared too where the device is announced without it."""
        own = isinstance(snap, Snapshot)
        handed = self._retained.others(snap.serial) if own else []
        if handed:
            log.info("handing discovery over from the other format", serial=snap.serial,
                     configs=len(handed), format=inv.discovery.format)  # fmt: skip
        self._retained.marking(handed)  # their echo is ours, not a marker left behind
        await self._publish(client, (Message(t, discovery.MIGRATE, True) for t in handed))
        noted: set[str] = set()
        previous = self._retained.components()
        await self._publish(client, _noting(_announcement(snap, inv.discovery, previous), noted))
        retired = self._retained.retired(snap.serial, noted) if own else []
        await self._publish(client, (Message(t, "", True) for t in (*handed, *retired)))
        self._retained.handed_over(handed)
        inv.time_configs = {t for t in noted if "/time/" in t}
        await self._clear_leftovers(client)

    def _tap(self, message: aiomqtt.Message) -> bool:
        """Takes the sync answer and the retained discovery configs as they arrive (hundreds
        may come at once; they are noted, never queued)."""
        topic = message.topic.value
        if topic == self._sync_topic:
            self._synced.set()
            return True
        prefix = self.cfg.discovery_prefix
        if not self.cfg.discovery or not topic.startswith(f"{prefix}/"):
            return False
        if self.cfg.discovery_format == "entity" and topic.startswith(f"{prefix}/time/"):
            return False  # the time leftovers: handled as read
        raw = message.payload
        payload = raw if isinstance(raw, bytes | str) else b""
        too_large = len(payload) > MAX_CONFIG
        return self._retained.seen(topic, None if too_large else payload)

    async def _publish(self, client: aiomqtt.Client, messages: Iterable[Message]) -> None:
        self.stats.messages += await publish_all(client, messages)

    async def publish_state_now(self) -> None:
        """Republish everything (discovery and full state) on the current connection."""
        client = self._client
        if client is None:
            return
        for inv in self.inverters:
            snap = inv.view.snapshot
            if snap is not None:
                await self._publish_snapshot(client, inv, snap, full=True)

    # --- availability ------------------------------------------------------------------------

    async def _watch_health(self, client: aiomqtt.Client) -> None:
        while True:
            for inv in self.inverters:
                await self._update_status(client, inv)
            _checkpoint()
            await asyncio.sleep(self.health_interval)

    async def _update_status(self, client: aiomqtt.Client, inv: _Inverter) -> None:
        serial = inv.serial
        if serial is None:
            return
        view = inv.view
        now = view.now()
        health = view.health()
        if health.last_good_poll is None:
            # Not polled yet (the daemon is starting): nothing is claimed until the first poll
            # says online or offline_after passes without one. Publishing offline first made
            # every start flap offline -> online a few seconds later.
            inv.first_seen = inv.first_seen or now
            if (now - inv.first_seen).total_seconds() <= view.offline_after:
                return
        status = ONLINE if is_online(health, now, view.offline_after) else OFFLINE
        if status != inv.status:
            changed, inv.status = inv.status is not None, status  # before the await: no repeats
            if changed:
                log.info("inverter availability", serial=serial, status=status)
            topic = status_topic(self.root, serial)
            if status == ONLINE:
                await self._holders.hold(topic)  # its last will before it says online
            await client.publish(topic, status, qos=1, retain=True)

    # --- incoming ----------------------------------------------------------------------------

    async def _listen(self, client: aiomqtt.Client, tasks: _SessionTasks) -> None:
        ha_status = ha_status_topic(self.cfg.discovery_prefix)
        async for message in client.messages:
            topic = message.topic.value
            if topic == ha_status:
                if message.payload in (b"online", "online") and not message.retain:
                    delay = random.uniform(*self.ha_birth_delay)
                    log.info("Home Assistant started; announcing again", delay=round(delay, 2))
                    tasks.spawn(self._after_ha_birth(delay), "mqtt-ha-birth", lasting=False)
                continue
            if topic.startswith(f"{self.cfg.discovery_prefix}/time/"):
                if message.payload and len(self._leftovers) < MAX_LEFTOVERS:
                    self._leftovers.add(topic)  # cleared once its inverter's serial is known
                    await self._clear_leftovers(client)
                continue
            parsed = parse_command_topic(self.root, topic)
            if parsed is None:  # e.g. an empty level: nothing to answer to
                log.warning("MQTT message on a control topic ignored", topic=topic)
                continue
            if isinstance(message, _Refused):
                self._on_command(parsed[0], parsed[1], b"", retained=message.retain,
                                 refused=(message.reason, message.size))  # fmt: skip
                continue
            self._on_command(parsed[0], parsed[1], _payload_bytes(message.payload),
                             retained=message.retain)  # fmt: skip

    async def _clear_leftovers(self, client: aiomqtt.Client) -> None:
        """Remove the retained time-entity configs seen for the inverters served that their
        latest announcement does not hold (left from another ``time_entities``)."""
        # Only inverters announced already: a slot's own time entity is never removed.
        announced = [i for i in self.inverters if i.announced is not None]
        serials = [s for i in announced if (s := i.serial)]
        current = set().union(*(i.time_configs for i in announced))
        for topic in sorted(self._leftovers):
            if topic in current:
                self._leftovers.discard(topic)  # announced now: not a leftover
            elif discovery.is_leftover(self.cfg.discovery_prefix, topic, serials, current):
                self._leftovers.discard(topic)
                log.info("removing a time entity left from another time_entities", topic=topic)
                await client.publish(topic, "", qos=1, retain=True)

    async def _after_ha_birth(self, delay: float) -> None:
        await asyncio.sleep(delay)
        if self.cfg.discovery:
            await self.publish_state_now()

    def _on_command(
        self,
        serial: str,
        function: str,
        payload: bytes,
        *,
        retained: bool,
        refused: tuple[str, int] | None = None,
    ) -> None:
        """``refused``: (``size`` or ``queue``, bytes) when the payload was dropped unread."""
        self.stats.commands += 1
        target = serial.upper()
        inv = next((i for i in self.inverters if (i.serial or "").upper() == target), None)
        # Refused before parsing: (message, field, value received, what is allowed).
        refusal: tuple[str, str, object, str] | None = None
        size = refused[1] if refused is not None else len(payload)
        if refused is not None and refused[0] == "queue":
            refusal = (
                f"too many messages waiting ({MAX_QUEUED}); try again later",
                "queue", f"{size} bytes", f"at most {MAX_QUEUED} messages waiting",
            )  # fmt: skip
        elif retained:
            refusal = (
                "retained command message ignored: a command is executed only when it is "
                "published, never replayed by the broker (publish it without the retain flag)",
                "retain", True, "a message published without the retain flag",
            )  # fmt: skip
        elif size > MAX_PAYLOAD:
            refusal = (
                f"payload of {size} bytes is too large (at most {MAX_PAYLOAD})",
                "payload", f"{size} bytes", f"at most {MAX_PAYLOAD} bytes",
            )  # fmt: skip
        elif not payload.strip():
            refusal = (
                "empty payload ignored (clearing a retained message is not a command)",
                "payload", "", "a JSON object or a plain value",
            )  # fmt: skip
        elif inv is None:
            served = ", ".join(i.serial for i in self.inverters if i.serial) or "none detected yet"
            refusal = (
                f"inverter {serial} is not served by this daemon (serving: {served})",
                "serial", serial, served,
            )  # fmt: skip
        elif len(self._commands) >= MAX_PENDING_COMMANDS:
            refusal = (
                f"too many commands waiting ({MAX_PENDING_COMMANDS}); try again later",
                "queue", len(self._commands), f"at most {MAX_PENDING_COMMANDS} commands waiting",
            )  # fmt: skip
        if refusal is not None or inv is None:
            reason, name, value, allowed = refusal or ("rejected", "serial", serial, "unknown")
            self.stats.commands_rejected += 1
            self._busy_refusals = self._busy_refusals + 1 if name == "queue" else 0
            if self._busy_refusals % 100 <= 1:  # a flood is logged once per hundred
                log.warning("MQTT command rejected", serial=serial, function=function,
                            reason=reason, in_a_row=self._busy_refusals or None)  # fmt: skip
            error = {"field": name, "value": value, "allowed": allowed, "message": reason}
            result = rejected(function, reason, [error], at=datetime.now().astimezone())
            self._spawn(self._deliver(serial, function, result))
            return
        log.info("MQTT command", serial=inv.serial, function=function)
        self._spawn(self._execute(inv, serial, function, payload))

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.create_task(coro, name="mqtt-command")
        self._commands.add(task)
        task.add_done_callback(self._commands.discard)

    async def _execute(self, inv: _Inverter, serial: str, function: str, payload: bytes) -> None:
        before = inv.view.snapshot
        try:
            result = await inv.view.execute(function, payload)
        except Exception as err:  # a bug must not swallow the command: log it and answer
            log.exception("MQTT command failed", serial=serial, function=function)
            result = CommandResult(
                function=function,
                status="failed",
                message=f"{function}: internal error ({type(err).__name__}); see the daemon log",
                at=datetime.now().astimezone(),
            )
        log.info("MQTT command done", serial=serial, function=function, status=result.status,
                 message=result.message)  # fmt: skip
        client, snap = self._client, inv.view.snapshot
        if client is not None and snap is not None and snap is not before:
            # The coordinator published what the command changed: its topics go out first.
            with contextlib.suppress(aiomqtt.MqttError):
                await self._publish_snapshot(client, inv, snap)
        await self._deliver(serial, function, result)

    async def _deliver(self, serial: str, function: str, result: CommandResult) -> None:
        body = {"serial": serial, **result.to_json()}
        client = self._client
        if client is None:
            self.stats.results_undelivered += 1
            log.warning("MQTT command result not delivered (not connected)", serial=serial,
                        function=function, status=result.status)  # fmt: skip
            return
        try:
            await client.publish(
                result_topic(self.root, serial, function),
                json.dumps(body, separators=(",", ":"), default=str),
                qos=1,
                retain=False,
            )
        except (aiomqtt.MqttError, ValueError) as err:  # ValueError: a topic over 65535 bytes
            self.stats.results_undelivered += 1
            log.warning("MQTT command result not delivered", serial=serial, function=function,
                        status=result.status, error=str(err))  # fmt: skip


def _signature(snap: Snapshot | EvcSnapshot, cfg: DiscoveryConfig) -> tuple[Any, ...]:
    """What the device's discovery announcement depends on (a charger's discovery module is
    imported only when a charger's snapshot comes: a daemon without one never loads it)."""
    if isinstance(snap, Snapshot):
        return discovery.signature(snap, cfg)
    from givtcp_async.sinks import evc_discovery

    return evc_discovery.signature(snap)


def _announcement(
    snap: Snapshot | EvcSnapshot,
    cfg: DiscoveryConfig,
    previous: Mapping[str, Mapping[str, str]],
) -> Iterable[Message]:
    """The device's retained discovery messages (a charger's: one per entity)."""
    if isinstance(snap, Snapshot):
        return discovery.announcement(snap, cfg, previous)
    from givtcp_async.sinks import evc_discovery

    return evc_discovery.messages(snap, cfg)


def _noting(messages: Iterable[Message], into: set[str]) -> Iterator[Message]:
    """``messages`` as they are, the topics of those with a payload added to ``into``."""
    for message in messages:
        if message.payload:
            into.add(message.topic)
        yield message


async def publish_all(client: aiomqtt.Client, messages: Iterable[Message]) -> int:
    """Publish at QoS 0 in order, up to :data:`PUBLISH_BATCH` at a time (a third less CPU than
    one by one: paho writes a batch in one go); ``messages`` is read one batch at a time.
    Returns how many were published; raises the first error."""
    # No per-message timeout: aiomqtt would wrap each wait in asyncio.wait_for, which on Python
    # 3.11 can swallow a cancellation; a dead link ends the session (and these waits) instead.
    count = 0
    source = iter(messages)
    while batch := list(itertools.islice(source, PUBLISH_BATCH)):
        count += len(batch)
        outcomes = await asyncio.gather(
            *(
                client.publish(m.topic, m.payload, qos=0, retain=m.retain, timeout=math.inf)
                for m in batch
            ),
            return_exceptions=True,
        )
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
    return count


def _checkpoint() -> None:
    """Raise if this task was asked to stop and an await swallowed the request (Python 3.11's
    ``asyncio.wait_for``, used inside aiomqtt, can return a result instead of cancelling)."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def _payload_bytes(payload: Any) -> bytes:
    if isinstance(payload, bytes | bytearray):
        return bytes(payload)
    if payload is None:
        return b""
    return str(payload).encode()


async def _finish_connecting(client: aiomqtt.Client, entering: asyncio.Future[Any]) -> None:
    """Close a client whose connect was interrupted, once that connect is over: paho connects in
    an executor thread, which would otherwise attach its socket to a loop that is stopping."""
    with contextlib.suppress(BaseException):
        async with asyncio.timeout(2.0):  # on loopback or a LAN a connect takes milliseconds
            await asyncio.shield(entering)
    if entering.done() and not entering.cancelled() and entering.exception() is None:
        await _disconnect(client)
    else:
        _abandon(client)


async def _disconnect(client: aiomqtt.Client) -> None:
    """Say goodbye to the broker (within a second) and close the socket whatever happens."""
    with contextlib.suppress(aiomqtt.MqttError, TimeoutError):
        async with asyncio.timeout(1.0):
            await client.__aexit__(None, None, None)
    _abandon(client)


def _abandon(client: aiomqtt.Client) -> None:
    """Close the client's socket whatever state it is in (no leaked connection)."""
    # aiomqtt 2.x has no public way to drop a half-open link; paho's own close unregisters the
    # event loop's callbacks before closing the socket.
    paho = client._client
    with contextlib.suppress(Exception):
        paho._sock_close()


def mqtt_service(
    cfg: MqttConfig,
    views: Sequence[InverterView],
    links: Links,
    *,
    dashboard_url: str | None = None,
    chargers: Sequence[ChargerView] = (),
) -> MqttService | None:
    """The daemon's factory: the MQTT service when ``mqtt.enabled``."""
    if not cfg.enabled:
        return None
    return MqttService(cfg, views, links, dashboard_url=dashboard_url, chargers=chargers)
