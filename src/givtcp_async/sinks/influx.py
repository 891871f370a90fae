"""InfluxDB v2 output: every snapshot becomes a few points, written in order, never lost to a
short outage.

Layout (the default):

* one point per group per poll, measurement named after the group: ``power`` (runAll
  ``Power/Power``), ``flows`` (``Power/Flows``), ``energy_today`` (``Energy/Today``),
  ``energy_total`` (``Energy/Total``), ``battery_stack`` (``Battery_Details/Battery_Stack_1``),
  ``inverter`` (the temperatures of ``Invertor_Details``); one ``battery`` point per pack (tag
  ``battery_serial``; ``battery_address`` for the LV BCU and the BAMS, which have none) and one
  ``meter`` point per meter (tag ``meter_address``); an EMS adds
  ``plant_meters`` (``Power/Meters``), and an EMS or a Gateway one ``member`` point per managed
  inverter or All-in-One (``Inverters/<slot>``, tag ``member``: ``Inverter_1``, ``AIO_2``);
* tags ``serial`` (the inverter's) and ``model`` on every point;
* fields: GivTCP's field names in lower case (``pv_power``, ``solar_to_house``,
  ``import_energy_today_kwh``), only values that are numeric, available and fresh (a value
  republished as stale is not written again) and that are measurements or counters (no
  settings, identity or status codes); always written as floats, so a field's type never
  changes from one point to the next (InfluxDB refuses a write that would change it);
* the timestamp is the snapshot's, in milliseconds;
* each EV charger: one ``evc`` point per poll (its ``Charger`` values: currents, powers,
  voltages, the lifetime meter and the session energy), tagged ``serial`` (the charger's).

With ``influx.legacy_measurement`` the points look like GivTCP's instead: measurement = the
inverter serial, one tag ``tagKey=GivReal``, the fields of the four power and energy groups in
one point.

Delivery: points wait in a bounded in-memory buffer until InfluxDB acknowledges them, and go out
oldest first in batches. While InfluxDB is unreachable or failing, the writer retries with
capped exponential back-off; nothing is lost while the outage is shorter than
``buffer_max_age`` and fewer than ``buffer_max_points`` points are waiting. Beyond either bound
the oldest points are dropped and counted (0 switches that bound off; see :class:`PointBuffer`
for the batch in flight). A batch InfluxDB refuses as malformed (422, or 400 unless it is about
the org, bucket or credentials) is dropped and counted as rejected rather than retried forever.
The coordinators are never waited on: snapshots are read from their latest-only stream and the
buffer absorbs a slow or absent database.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import math
import re
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import aiohttp
import structlog

from givtcp_async.backoff import Backoff
from givtcp_async.config import InfluxConfig
from givtcp_async.ports import ChargerView, InverterView, Links
from givtcp_async.registers.schema import Kind
from givtcp_async.sinks.lazy_package import import_with_lazy_packages
from givtcp_async.sinks.tls import client_context
from givtcp_async.snapshot import Snapshot, Spec

if TYPE_CHECKING:
    from givtcp_async.evc.snapshot import EvcSnapshot
    from givtcp_async.quality.gates import Reading

log = structlog.get_logger(__name__)

__all__ = [
    "LEGACY_GROUPS",
    "MEASUREMENTS",
    "InfluxService",
    "PointBuffer",
    "influx_service",
    "snapshot_points",
]

#: runAll group (path) -> measurement name, for inverter-level values.
MEASUREMENTS: Final[Mapping[tuple[str, ...], str]] = {
    ("Power", "Power"): "power",
    ("Power", "Flows"): "flows",
    ("Energy", "Today"): "energy_today",
    ("Energy", "Total"): "energy_total",
    ("Energy", "Rates"): "rates",
    ("Battery_Details", "Battery_Stack_1"): "battery_stack",
    ("Invertor_Details",): "inverter",
    ("Power", "Meters"): "plant_meters",
}
#: The group of an EMS's managed inverters and a Gateway's All-in-Ones: one point per member.
MEMBERS: Final = "Inverters"
MEMBER_MEASUREMENT: Final = "member"
BATTERY_MEASUREMENT: Final = "battery"
METER_MEASUREMENT: Final = "meter"
CHARGER_MEASUREMENT: Final = "evc"
#: The groups GivTCP wrote, all into one point (``legacy_measurement``).
LEGACY_GROUPS: Final = frozenset(
    {("Power", "Power"), ("Power", "Flows"), ("Energy", "Today"), ("Energy", "Total")}
)
LEGACY_TAG: Final = ("tagKey", "GivReal")
#: What is worth a time series: no settings, identity or status codes.
WRITTEN_KINDS: Final = frozenset({Kind.MEASUREMENT, Kind.TOTAL, Kind.TODAY})
#: Statuses that mean "this batch is malformed": retrying it can never succeed. (A 400 about
#: the org, bucket or token is a configuration problem instead: see :func:`_permanent`.)
REJECTED_STATUSES: Final = frozenset({400, 422})
_CONFIG_WORDS: Final = re.compile(r"\b(org|orgid|organi[sz]ation|bucket|token|auth\w*)\b", re.I)
DEFAULT_BATCH: Final = 1000


# --- snapshot -> line protocol --------------------------------------------------------------


def _escape_key(text: str) -> str:
    return text.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ")


def _escape_measurement(text: str) -> str:
    return text.replace("\\", "\\\\").replace(",", "\\,").replace(" ", "\\ ")


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _fields(
    values: Mapping[str, Reading], specs: Mapping[str, Spec], keep: Callable[[Spec], bool]
) -> dict[str, float]:
    out: dict[str, float] = {}
    for name, reading in values.items():
        if reading.stale or reading.value is None:
            continue
        spec = specs.get(name)
        if spec is None or spec.kind not in WRITTEN_KINDS or not keep(spec):
            continue
        number = _number(reading.value)
        if number is not None:
            out[name.lower()] = number
    return out


def _in_group(path: tuple[str, ...]) -> Callable[[Spec], bool]:
    return lambda spec: spec.path == path


def _line(measurement: str, tags: Mapping[str, str], fields: Mapping[str, float], ms: int) -> str:
    tag_text = "".join(
        f",{_escape_key(k)}={_escape_key(v)}" for k, v in sorted(tags.items()) if v != ""
    )
    field_text = ",".join(f"{_escape_key(k)}={v!r}" for k, v in sorted(fields.items()))
    return f"{_escape_measurement(measurement)}{tag_text} {field_text} {ms}"


def snapshot_points(snap: Snapshot, *, legacy: bool = False) -> list[str]:
    """The line-protocol points of one snapshot (millisecond timestamps); see the module doc."""
    ms = round(snap.taken_at.timestamp() * 1000)
    if legacy:
        fields = _fields(snap.values, snap.specs, lambda spec: spec.path in LEGACY_GROUPS)
        return [_line(snap.serial, dict([LEGACY_TAG]), fields, ms)] if fields else []
    base = {"serial": snap.serial, "model": snap.model.name}
    lines: list[str] = []
    for path, measurement in MEASUREMENTS.items():
        fields = _fields(snap.values, snap.specs, _in_group(path))
        if fields:
            lines.append(_line(measurement, base, fields, ms))
    members = sorted({s.path for s in snap.specs.values() if s.path[:1] == (MEMBERS,)})
    for path in members:
        fields = _fields(snap.values, snap.specs, _in_group(path))
        if fields:
            lines.append(_line(MEMBER_MEASUREMENT, {**base, "member": path[-1]}, fields, ms))
    for pack in snap.batteries:
        fields = _fields(pack.values, pack.specs, lambda spec: True)
        if fields:
            # A device without a serial of its own (the LV BCU, the BAMS): by its address.
            who = ("battery_serial", pack.serial) if pack.serial else (
                "battery_address", f"0x{pack.address:02x}")  # fmt: skip
            tags = {**base, who[0]: who[1]}
            lines.append(_line(BATTERY_MEASUREMENT, tags, fields, ms))
    for meter in snap.meters:
        fields = _fields(meter.values, meter.specs, lambda spec: True)
        if fields:
            tags = {**base, "meter_address": str(meter.address)}
            lines.append(_line(METER_MEASUREMENT, tags, fields, ms))
    return lines


def charger_points(snap: EvcSnapshot) -> list[str]:
    """The line-protocol point of one charger snapshot (measurement ``evc``)."""
    fields = _fields(snap.values, snap.specs, lambda spec: True)
    if not fields:
        return []
    ms = round(snap.taken_at.timestamp() * 1000)
    return [_line(CHARGER_MEASUREMENT, {"serial": snap.serial}, fields, ms)]


# --- the buffer ------------------------------------------------------------------------------


@dataclass(slots=True)
class _Entry:
    born: float  # monotonic time it was buffered
    line: str


class PointBuffer:
    """Points not yet acknowledged, oldest first, bounded by count and by age.

    :meth:`take` moves the oldest points into the batch being written; then exactly one of
    :meth:`acknowledge` (it arrived), :meth:`retry` (it did not: back in front) or
    :meth:`reject` (refused for good) settles it. ``max_points`` bounds every unacknowledged
    point, the batch in flight included; beyond it the oldest are dropped. Points of the batch
    in flight cannot be called back, so they are only marked: if the write then fails they are
    discarded, and if it succeeds they arrived after all and are not counted as dropped.
    ``max_age`` drops waiting points buffered longer ago than that (a batch put back by
    :meth:`retry` is checked again). A bound of 0 is switched off.

    Invariant: ``added == written + dropped + rejected + len(buffer)``.
    """

    def __init__(
        self,
        max_points: int,
        max_age: float,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_points = max_points
        self.max_age = max_age
        self._clock = clock
        self._waiting: deque[_Entry] = deque()
        self._flight: list[_Entry] = []
        self._doomed = 0  # the oldest points in flight that the count bound dropped
        self.added = 0
        self.written = 0
        self.dropped_full = 0
        self.dropped_age = 0
        self.rejected = 0

    def __len__(self) -> int:
        """Points not yet acknowledged, dropped or rejected (waiting plus in flight)."""
        return len(self._waiting) + len(self._flight) - self._doomed

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    @property
    def in_flight(self) -> int:
        return len(self._flight)

    @property
    def dropped(self) -> int:
        return self.dropped_full + self.dropped_age

    @property
    def marked(self) -> int:
        """Points of the batch in flight that the count bound dropped: counted in
        :attr:`dropped_full`, but counted as written instead if the write then succeeds."""
        return self._doomed

    def oldest_age(self) -> float:
        """Seconds the oldest unacknowledged point has waited (0 when none)."""
        live = self._flight[self._doomed :]
        first = live[0] if live else self._waiting[0] if self._waiting else None
        return 0.0 if first is None else max(0.0, self._clock() - first.born)

    def add(self, lines: Iterable[str]) -> None:
        now = self._clock()
        for line in lines:
            self._waiting.append(_Entry(now, line))
            self.added += 1
        self.enforce()

    def enforce(self) -> None:
        """Drop the oldest points that are too old or too many."""
        if self.max_age > 0:
            limit = self._clock() - self.max_age
            while self._waiting and self._waiting[0].born < limit:
                self._waiting.popleft()
                self.dropped_age += 1
        if self.max_points > 0:
            while len(self) > self.max_points:
                if self._doomed < len(self._flight):
                    self._doomed += 1
                else:
                    self._waiting.popleft()
                self.dropped_full += 1

    def take(self, limit: int) -> list[str]:
        """Move up to ``limit`` of the oldest waiting points into flight; their lines."""
        if self._flight:
            raise RuntimeError("a batch is already in flight")
        self.enforce()
        while self._waiting and len(self._flight) < limit:
            self._flight.append(self._waiting.popleft())
        return [e.line for e in self._flight]

    def acknowledge(self) -> int:
        """The batch in flight arrived (all of it, marked points included); its size."""
        n = len(self._flight)
        self.written += n
        self.dropped_full -= self._doomed
        self._flight.clear()
        self._doomed = 0
        return n

    def reject(self) -> int:
        """The batch in flight was refused for good; the points newly lost."""
        n = len(self._flight) - self._doomed
        self.rejected += n
        self._flight.clear()
        self._doomed = 0
        return n

    def retry(self) -> None:
        """The batch in flight did not arrive: back in front (less the marked points)."""
        self._waiting.extendleft(reversed(self._flight[self._doomed :]))
        self._flight.clear()
        self._doomed = 0
        self.enforce()


# --- the service -----------------------------------------------------------------------------

# influxdb-client's packages that import every API model and service: stand-ins instead
# (sinks/lazy_package.py), since the output only writes (~6 MiB less).
_LAZY_PACKAGES: Final = (
    "influxdb_client",
    "influxdb_client.domain",
    "influxdb_client.service",
    "influxdb_client.client",
    "influxdb_client.client.write",
)


@functools.cache
def _client_parts() -> tuple[Any, Any, Any]:
    """influxdb-client's client configuration, async REST client and write service, imported
    without what the output never uses (whichever of its names is needed first)."""
    with _no_windows_time_zones():
        base = import_with_lazy_packages("influxdb_client.client._base", _LAZY_PACKAGES)
        rest = import_with_lazy_packages("influxdb_client._async.api_client", _LAZY_PACKAGES)
        service = import_with_lazy_packages("influxdb_client.service.write_service", _LAZY_PACKAGES)
    return base._BaseClient, rest.ApiClientAsync, service.WriteService


class InfluxWriter:
    """Writes line protocol to one InfluxDB v2 with influxdb-client's async REST client and
    write service. Not ``InfluxDBClientAsync``: its module imports the batching write API and
    with it reactivex (80 modules, ~1.7 MiB), which writing lines never uses. Must be made in a
    running event loop; :meth:`write` raises influxdb-client's ``ApiException`` for a refusal."""

    def __init__(self, url: str, token: str, org: str, timeout_ms: int, ssl: Any = None) -> None:
        base_class, api_class, service_class = _client_parts()
        base = base_class(url=url, token=token, org=org, timeout=timeout_ms,
                          http_client_logger="aiohttp.client", ssl_context=ssl)  # fmt: skip
        self._api = api_class(configuration=base.conf, header_name=base.auth_header_name,
                              header_value=base.auth_header_value, ssl_context=ssl)  # fmt: skip
        self._service = service_class(self._api)

    async def write(self, bucket: str, org: str, lines: Sequence[str]) -> None:
        """One batch, timestamps in milliseconds."""
        await self._service.post_write_async(
            org=org, bucket=bucket, body="\n".join(lines).encode(), precision="ms",
            async_req=False, _return_http_data_only=False,
            content_type="text/plain; charset=utf-8",
        )  # fmt: skip

    async def close(self) -> None:
        await self._api.close()


# dateutil (the client's date parser) tries its Windows time zones at import: the module imports
# ctypes (~0.4 MiB) before it fails for want of the Windows registry, and dateutil goes on without
# them (``tzwin = None``).
_WINDOWS_TIME_ZONES: Final = "dateutil.tz.win"


@contextlib.contextmanager
def _no_windows_time_zones() -> Iterator[None]:
    """Off Windows, dateutil's Windows time zones fail to import as they always do there, but
    before they import ctypes; on Windows, or with dateutil's ``tz`` imported already, nothing
    changes."""
    if (
        sys.platform == "win32"
        or "dateutil.tz" in sys.modules
        or _WINDOWS_TIME_ZONES in sys.modules
    ):
        yield
        return
    sys.modules[_WINDOWS_TIME_ZONES] = None  # type: ignore[assignment]  # how a missing one fails
    try:
        yield
    finally:
        if sys.modules.get(_WINDOWS_TIME_ZONES, ...) is None:
            del sys.modules[_WINDOWS_TIME_ZONES]


def _write_errors() -> tuple[type[BaseException], ...]:
    _client_parts()  # influxdb-client the light way, whichever of its names is needed first
    from influxdb_client.client.exceptions import InfluxDBError

    return (InfluxDBError, aiohttp.ClientError, OSError, TimeoutError, ValueError)


def _message(err: BaseException) -> str:
    """What InfluxDB said about a refused request (its JSON ``message``, or the body)."""
    body = getattr(err, "body", None)
    if isinstance(body, bytes | bytearray):
        body = bytes(body).decode("utf-8", errors="replace")
    if not isinstance(body, str):
        return ""
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = None
    text = parsed.get("message") if isinstance(parsed, dict) else None
    return (text if isinstance(text, str) else body).strip()[:300]


def _permanent(err: BaseException) -> bool:
    """InfluxDB refused the batch itself: sending it again can never succeed.

    422, and 400 unless the message is about the org, bucket or credentials (InfluxDB 2 answers
    400 to a write without an org): those are fixed on the server, so the points are kept.
    """
    status = _status(err)
    if status not in REJECTED_STATUSES:
        return False
    return status == 422 or not _CONFIG_WORDS.search(_message(err))


def _status(err: BaseException) -> int | None:
    """The HTTP status InfluxDB answered with (not aiohttp's own 400 for a garbled reply)."""
    _client_parts()
    from influxdb_client.rest import ApiException

    status = getattr(err, "status", None) if isinstance(err, ApiException) else None
    return status if isinstance(status, int) and status > 0 else None


class InfluxService:
    """Writes every inverter's snapshots to InfluxDB v2 (see the module doc)."""

    name = "influx"

    def __init__(
        self,
        config: InfluxConfig,
        views: Sequence[InverterView],
        links: Links | None = None,
        *,
        chargers: Sequence[ChargerView] = (),
        batch_size: int = DEFAULT_BATCH,
        request_timeout: float = 10.0,
        retry: Backoff | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not config.url or not config.bucket:
            raise ValueError("influx.url and influx.bucket are required")
        self.config = config
        self.views = list(views)
        self.chargers = list(chargers)
        self.batch_size = max(1, batch_size)
        self.request_timeout = request_timeout
        self.retry = retry or Backoff(initial=1.0, maximum=60.0)
        self.buffer = PointBuffer(config.buffer_max_points, config.buffer_max_age, clock=clock)
        self.snapshots = 0
        self.writes = 0
        self.failures = 0
        self.up = False
        self.last_write: float | None = None  # Unix time InfluxDB last acknowledged a batch
        self.last_error: str | None = None
        self._changed = asyncio.Event()
        self._failing_since: float | None = None
        self._clock = clock
        if links is not None:
            links.metrics_sources.append(self)

    # --- observation ---------------------------------------------------------------------

    def metrics(self) -> dict[str, float]:
        """Counters for /metrics (``influx_`` prefixed; points are line-protocol lines).

        Every count only ever grows: a point of the batch in flight that the count bound
        dropped counts as dropped once that write has failed (it may still arrive), and
        meanwhile neither as dropped nor as buffered. ``influx_writes`` counts the batches
        InfluxDB acknowledged, ``influx_write_failures`` the attempts that failed and are
        retried; ``influx_last_write`` (Unix time) is there once a batch has been acknowledged.
        """
        buf = self.buffer
        out: dict[str, float] = {
            "influx_up": float(self.up),
            "influx_snapshots": self.snapshots,
            "influx_points_buffered": len(buf),
            "influx_points_written": buf.written,
            "influx_points_dropped": buf.dropped - buf.marked,
            "influx_points_dropped_full": buf.dropped_full - buf.marked,
            "influx_points_dropped_age": buf.dropped_age,
            "influx_points_rejected": buf.rejected,
            "influx_writes": self.writes,
            "influx_write_failures": self.failures,
            "influx_oldest_buffered_seconds": round(buf.oldest_age(), 3),
        }
        if self.last_write is not None:
            out["influx_last_write"] = self.last_write
        return out

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        """Return once ``predicate()`` holds; it is re-checked after every change of state."""
        while not predicate():
            event = self._changed
            await event.wait()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    # --- running -------------------------------------------------------------------------

    async def run(self) -> None:
        secret = self.config.token.get_secret_value() if self.config.token else None
        api = InfluxWriter(
            self.config.url or "",  # set whenever the output runs (the settings check it)
            secret or "",
            self.config.org or "",
            int(self.request_timeout * 1000),
            # The client's own default context, with the CA certificates loaded only if an
            # https:// URL is ever used (~2 MiB otherwise held for nothing).
            client_context(),
        )
        log.info("influx output started", url=self.config.url, bucket=self.config.bucket,
                 layout="givtcp" if self.config.legacy_measurement else "grouped")  # fmt: skip
        try:
            async with asyncio.TaskGroup() as tg:
                for view in self.views:
                    tg.create_task(self._follow(view), name=f"influx-{view.name}")
                for charger in self.chargers:
                    tg.create_task(self._follow_charger(charger),
                                   name=f"influx-charger-{charger.address}")  # fmt: skip
                tg.create_task(self._write_loop(api), name="influx-writer")
        finally:
            await self._last_flush(api)
            await api.close()

    async def _follow(self, view: InverterView) -> None:
        legacy = self.config.legacy_measurement
        async for snap in view.updates():
            self.buffer.add(snapshot_points(snap, legacy=legacy))
            self.snapshots += 1
            self._notify()

    async def _follow_charger(self, charger: ChargerView) -> None:
        async for snap in charger.updates():
            self.buffer.add(charger_points(snap))
            self.snapshots += 1
            self._notify()

    async def _write_loop(self, api: InfluxWriter) -> None:
        while True:
            await self.wait_for(lambda: self.buffer.waiting > 0)
            lines = self.buffer.take(self.batch_size)
            if not lines:
                self._notify()  # everything waiting had expired
                continue
            if not await self._write(api, lines):
                self._notify()
                await asyncio.sleep(self.retry.next_delay())
            else:
                self._notify()

    async def _write(self, api: InfluxWriter, lines: list[str]) -> bool:
        """One batch; True when InfluxDB took it (or refused it for good)."""
        try:
            await api.write(self.config.bucket or "", self.config.org or "", lines)
        except asyncio.CancelledError:
            self.buffer.retry()
            raise
        except _write_errors() as err:
            status = _status(err)
            if _permanent(err):
                n = self.buffer.reject()
                log.error("influx refused a batch as malformed; dropped", status=status,
                          points=n, error=_short(err))  # fmt: skip
                return True
            self.buffer.retry()
            self.failures += 1
            self.up = False
            self.last_error = _short(err)
            if self._failing_since is None:
                self._failing_since = self._clock()
                log.warning("influx write failed; buffering and retrying", status=status,
                            error=self.last_error, buffered=len(self.buffer))  # fmt: skip
            return False
        self.writes += 1
        n = self.buffer.acknowledge()
        self.up = True
        self.last_write = time.time()
        self.retry.reset()
        if self._failing_since is not None:
            log.info("influx reachable again", outage=round(self._clock() - self._failing_since, 1),
                     dropped=self.buffer.dropped, sent=n)  # fmt: skip
            self._failing_since = None
        return True

    async def _last_flush(self, api: InfluxWriter, budget: float = 1.0) -> None:
        """On the way out, one bounded attempt to send what is waiting."""
        if self.up and self.buffer.waiting:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(budget):
                    while self.buffer.waiting:
                        if not await self._write(api, self.buffer.take(self.batch_size)):
                            break
        if len(self.buffer):
            log.warning("influx points not written at shutdown", points=len(self.buffer))


def _short(err: BaseException) -> str:
    status = _status(err)
    if status is not None:
        reason = getattr(err, "reason", "") or ""
        message = _message(err)
        return f"HTTP {status} {reason}".strip() + (f": {message}" if message else "")
    return f"{type(err).__name__}: {err}".strip().rstrip(":")


def influx_service(
    config: InfluxConfig,
    views: Sequence[InverterView],
    links: Links,
    *,
    chargers: Sequence[ChargerView] = (),
) -> InfluxService | None:
    """The daemon's service factory: an :class:`InfluxService` when ``influx`` is enabled."""
    if not config.enabled:
        return None
    return InfluxService(config, views, links, chargers=chargers)
