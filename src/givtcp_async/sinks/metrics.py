"""Prometheus text exposition (format 0.0.4) of the snapshots and the daemon's counters.

Written by hand rather than with ``prometheus_client``: everything is computed per scrape from
the coordinators (a collector, no registry state), the format is small and stable, and the daemon
gains no dependency. Families:

* ``givtcp_inverter_value{serial,field,group,unit}``, ``givtcp_battery_value{serial,
  battery_serial,field,unit}``, ``givtcp_meter_value{serial,meter,field,unit}``: every numeric
  (and true/false as 1/0) value of the latest snapshot;
* per inverter: the coordinator's counters (``givtcp_connection_*_total``, ``givtcp_polls_total``,
  ``givtcp_pages_rejected_total{verdict}``, ``givtcp_values_rejected_total``,
  ``givtcp_register_writes_total`` ...), ``givtcp_inverter_online``,
  ``givtcp_last_good_poll_age_seconds`` and ``givtcp_snapshot_timestamp_seconds``;
* the REST service's own: ``givtcp_rest_requests_total{route,method,code}``,
  ``givtcp_rest_commands_total{serial,function,status}``,
  ``givtcp_rest_command_duration_seconds`` (a summary: ``_sum`` and ``_count``),
  ``givtcp_rest_event_clients``;
* the other services' counters (their ``metrics()``, see :data:`_SERVICES`): InfluxDB's
  ``givtcp_influx_*`` and MQTT's ``givtcp_mqtt_*``, when they run;
* per EV charger (issue #17): ``givtcp_evc_value{serial,field,unit}`` (every numeric value of
  its latest snapshot), ``givtcp_evc_snapshot_timestamp_seconds``, ``givtcp_evc_online`` and
  its counters (:data:`_EVC_COUNTERS`: ``givtcp_evc_polls_total``,
  ``givtcp_evc_connection_requests_total``, ``givtcp_evc_register_writes_total`` ...).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from givtcp_async import __version__
from givtcp_async.ports import ChargerView, InverterView, MetricsSource

if TYPE_CHECKING:
    from givtcp_async.quality.gates import Reading
    from givtcp_async.snapshot import Spec

CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"

# coordinator.metrics() key -> (metric name, type, help)
_COUNTERS: Final[dict[str, tuple[str, str, str]]] = {
    "connection_requests": (
        "givtcp_connection_requests_total", "counter", "Requests queued to the dongle."),
    "connection_frames_sent": (
        "givtcp_connection_frames_sent_total", "counter", "Request frames sent (retries too)."),
    "connection_responses": (
        "givtcp_connection_responses_total", "counter", "Responses matched to a request."),
    "connection_timeouts": (
        "givtcp_connection_timeouts_total", "counter", "Requests that got no answer in time."),
    "connection_probe_timeouts": (
        "givtcp_connection_probe_timeouts_total", "counter",
        "Probes of possibly absent devices (meters, packs) that got no answer."),
    "connection_retries": (
        "givtcp_connection_retries_total", "counter", "Requests sent again after a timeout."),
    "connection_error_responses": (
        "givtcp_connection_error_responses_total", "counter",
        "Error responses from the inverter."),
    "connection_crc_failures": (
        "givtcp_connection_crc_failures_total", "counter", "Frames dropped for a bad CRC."),
    "connection_malformed": (
        "givtcp_connection_malformed_total", "counter", "Byte runs that were not valid frames."),
    "connection_unsolicited": (
        "givtcp_connection_unsolicited_total", "counter",
        "Responses to other clients' requests (dongle fan-out)."),
    "connection_heartbeats": (
        "givtcp_connection_heartbeats_total", "counter", "Dongle heartbeats answered."),
    "connection_null_frames": (
        "givtcp_connection_null_frames_total", "counter", "Null and LAN-config frames seen."),
    "connection_connects": (
        "givtcp_connection_connects_total", "counter", "TCP connections established."),
    "connection_reconnects": (
        "givtcp_connection_reconnects_total", "counter", "Connections made again after a loss."),
    "connection_connect_failures": (
        "givtcp_connection_connect_failures_total", "counter", "Connection attempts that failed."),
    "connection_disconnects": (
        "givtcp_connection_disconnects_total", "counter", "Connections lost."),
    "connection_junk_drops": (
        "givtcp_connection_junk_drops_total", "counter",
        "Connections dropped after 64 KiB without a valid frame."),
    "pages_accepted": (
        "givtcp_pages_accepted_total", "counter", "Register pages accepted by the quality gate."),
    "polls": ("givtcp_polls_total", "counter", "Poll cycles run."),
    "failed_polls": (
        "givtcp_polls_failed_total", "counter", "Poll cycles in which a block failed."),
    "consecutive_failures": (
        "givtcp_poll_consecutive_failures", "gauge", "Failed poll cycles in a row right now."),
    "online": (
        "givtcp_inverter_online", "gauge",
        "1 while the inverter answers (a good poll within offline_after), else 0."),
    "values_rejected": (
        "givtcp_values_rejected_total", "counter",
        "Decoded values refused by the plausibility gates."),
    "writes_total": (
        "givtcp_register_writes_total", "counter", "Register writes sent to the inverter."),
    "writes_refused_budget": (
        "givtcp_writes_refused_budget_total", "counter",
        "Commands refused by control.write_budget_per_day (restores never are)."),
    "writes_refused_interval": (
        "givtcp_writes_refused_interval_total", "counter",
        "Commands refused by control.min_write_interval (restores never are)."),
    "state_errors": (
        "givtcp_state_errors_total", "counter",
        "Write counts or pending restores that could not be saved in control.state_dir."),
    "identity_mismatch": (
        "givtcp_inverter_identity_mismatch", "gauge",
        "1 while the unit at the inverter's address is not the one configured or identified "
        "(no writes, no publication), else 0."),
}  # fmt: skip
_PAGES_REJECTED: Final = "pages_rejected_"

# charger coordinator metrics() key -> (metric name, type, help)
_EVC_COUNTERS: Final[dict[str, tuple[str, str, str]]] = {
    "connection_requests": (
        "givtcp_evc_connection_requests_total", "counter", "Modbus requests sent to the charger."),
    "connection_responses": (
        "givtcp_evc_connection_responses_total", "counter", "Answers from the charger."),
    "connection_timeouts": (
        "givtcp_evc_connection_timeouts_total", "counter", "Requests that got no answer in time."),
    "connection_error_responses": (
        "givtcp_evc_connection_error_responses_total", "counter",
        "Modbus exception responses from the charger."),
    "connection_connects": (
        "givtcp_evc_connection_connects_total", "counter", "TCP connections established."),
    "connection_connect_failures": (
        "givtcp_evc_connection_connect_failures_total", "counter",
        "Connection attempts that failed."),
    "connection_disconnects": (
        "givtcp_evc_connection_disconnects_total", "counter", "Connections lost."),
    "connection_writes": (
        "givtcp_evc_connection_writes_total", "counter", "Write requests sent to the charger."),
    "connection_pauses": (
        "givtcp_evc_connection_lockouts_total", "counter",
        "Port lock-out pauses after repeated failures."),
    "polls": ("givtcp_evc_polls_total", "counter", "Charger poll cycles run."),
    "failed_polls": ("givtcp_evc_polls_failed_total", "counter", "Charger polls that failed."),
    "consecutive_failures": (
        "givtcp_evc_poll_consecutive_failures", "gauge", "Failed charger polls in a row now."),
    "online": (
        "givtcp_evc_online", "gauge",
        "1 while the charger answers (a good poll within its offline_after), else 0."),
    "values_rejected": (
        "givtcp_evc_values_rejected_total", "counter",
        "Charger values refused by the plausibility gates."),
    "writes_total": (
        "givtcp_evc_register_writes_total", "counter", "Register writes sent to the charger."),
}  # fmt: skip

# service metrics() key -> (metric name, type, help, labels); None: not exposed (the sum of
# samples that are)
_SERVICES: Final[dict[str, tuple[str, str, str, dict[str, str]] | None]] = {
    "influx_up": (
        "givtcp_influx_up", "gauge", "1 while the last write to InfluxDB succeeded, else 0.", {}),
    "influx_snapshots": (
        "givtcp_influx_snapshots_total", "counter", "Snapshots turned into InfluxDB points.", {}),
    "influx_points_buffered": (
        "givtcp_influx_points_buffered", "gauge",
        "Points waiting for InfluxDB to acknowledge them.", {}),
    "influx_points_written": (
        "givtcp_influx_points_written_total", "counter", "Points InfluxDB acknowledged.", {}),
    "influx_points_dropped": None,
    "influx_points_dropped_full": (
        "givtcp_influx_points_dropped_total", "counter",
        "Points dropped unwritten, by bound (buffer_max_points, buffer_max_age).",
        {"reason": "full"}),
    "influx_points_dropped_age": (
        "givtcp_influx_points_dropped_total", "counter",
        "Points dropped unwritten, by bound (buffer_max_points, buffer_max_age).",
        {"reason": "age"}),
    "influx_points_rejected": (
        "givtcp_influx_points_rejected_total", "counter",
        "Points InfluxDB refused as malformed (dropped).", {}),
    "influx_writes": (
        "givtcp_influx_writes_total", "counter", "Batches InfluxDB acknowledged.", {}),
    "influx_write_failures": (
        "givtcp_influx_write_failures_total", "counter",
        "Batch writes that failed and are retried.", {}),
    "influx_oldest_buffered_seconds": (
        "givtcp_influx_oldest_buffered_seconds", "gauge",
        "Age of the oldest point waiting for InfluxDB (0 when none).", {}),
    "influx_last_write": (
        "givtcp_influx_last_write_timestamp_seconds", "gauge",
        "Unix time InfluxDB last acknowledged a batch.", {}),
    "mqtt_connected": (
        "givtcp_mqtt_connected", "gauge", "1 while connected to the MQTT broker, else 0.", {}),
    "mqtt_connections": (
        "givtcp_mqtt_connections_total", "counter", "MQTT connections set up.", {}),
    "mqtt_connection_failures": (
        "givtcp_mqtt_connection_failures_total", "counter",
        "MQTT connection attempts that failed.", {}),
    "mqtt_messages": (
        "givtcp_mqtt_messages_total", "counter",
        "State and discovery messages published.", {}),
    "mqtt_announcements": (
        "givtcp_mqtt_discovery_announcements_total", "counter",
        "Home Assistant discovery announcements (a whole device each).", {}),
    "mqtt_commands": (
        "givtcp_mqtt_commands_total", "counter", "Messages received on control topics.", {}),
    "mqtt_commands_rejected": (
        "givtcp_mqtt_commands_rejected_total", "counter",
        "Control messages refused without running (retained, empty, unknown inverter ...).",
        {}),
    "mqtt_results_undelivered": (
        "givtcp_mqtt_results_undelivered_total", "counter",
        "Command results that could not be published.", {}),
}  # fmt: skip


def escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def format_value(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if isinstance(value, int) or (value.is_integer() and abs(value) < 2**53):
        return str(int(value))
    return repr(float(value))


def numeric(value: Any) -> float | None:
    """A value as a sample: numbers as they are, true/false as 1/0, anything else None."""
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float):
        return float(value) if isinstance(value, float) else value
    return None


@dataclass
class Family:
    """One metric family: a name, its type and help, and its samples."""

    name: str
    type: str
    help: str
    samples: list[tuple[str, Mapping[str, str], float]] = field(default_factory=list)

    def add(self, value: float, suffix: str = "", **labels: str) -> None:
        self.samples.append((suffix, labels, value))

    def render(self) -> str:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.type}"]
        for suffix, labels, value in self.samples:
            if labels:
                inner = ",".join(f'{k}="{escape_label(v)}"' for k, v in labels.items())
                lines.append(f"{self.name}{suffix}{{{inner}}} {format_value(value)}")
            else:
                lines.append(f"{self.name}{suffix} {format_value(value)}")
        return "\n".join(lines)


@dataclass
class RestCounters:
    """What the REST service counts about itself."""

    requests: Counter[tuple[str, str, int]] = field(default_factory=Counter)
    commands: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    command_seconds: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))
    command_count: Counter[str] = field(default_factory=Counter)
    event_clients: int = 0
    connections_closed: Counter[str] = field(default_factory=Counter)  # by reason

    def command(self, serial: str, function: str, status: str, seconds: float) -> None:
        self.commands[(serial, function, status)] += 1
        self.command_seconds[serial] += seconds
        self.command_count[serial] += 1


def inverter_label(view: InverterView) -> str:
    """The ``serial`` label of an inverter (its configured name until it is detected)."""
    return view.serial or view.name


def _values(
    family: Family,
    values: Mapping[str, Reading],
    specs: Mapping[str, Spec],
    labels: Mapping[str, str],
    *,
    group: bool,
) -> None:
    for name, reading in values.items():
        sample = numeric(reading.value)
        if sample is None:
            continue
        spec = specs.get(name)
        extra = {"field": name}
        if group:
            extra["group"] = "/".join(spec.path) if spec is not None else ""
        extra["unit"] = reading.unit or ""
        family.add(sample, **labels, **extra)


def _samples(values: Mapping[str, Any]) -> Iterable[tuple[str, float]]:
    """The numeric entries of a ``metrics()`` mapping."""
    for key, value in values.items():
        sample = numeric(value)
        if sample is not None:
            yield key, sample


def _add(
    families: dict[str, Family], name: str, kind: str, text: str, value: float, **labels: str
) -> None:
    families.setdefault(name, Family(name, kind, text)).add(value, **labels)


def render(
    views: Sequence[InverterView],
    rest: RestCounters | None = None,
    services: Iterable[MetricsSource] = (),
    chargers: Sequence[ChargerView] = (),
) -> str:
    """The whole exposition, every family once, ending in a newline."""
    info = Family("givtcp_info", "gauge", "givtcp-async build information.")
    info.add(1, version=__version__)
    inverter = Family(
        "givtcp_inverter_value", "gauge", "Every numeric value of the latest inverter snapshot."
    )
    battery = Family("givtcp_battery_value", "gauge", "Every numeric value of each battery pack.")
    meter = Family("givtcp_meter_value", "gauge", "Every numeric value of each meter.")
    age = Family("givtcp_last_good_poll_age_seconds", "gauge", "Seconds since the last good poll.")
    taken = Family(
        "givtcp_snapshot_timestamp_seconds",
        "gauge",
        "Unix time the latest snapshot was taken.",
    )
    stale = Family(
        "givtcp_stale_values", "gauge", "Values republished as their last good value right now."
    )
    counters: dict[str, Family] = {}
    rejected_pages = Family(
        "givtcp_pages_rejected_total", "counter", "Register pages refused by the quality gate."
    )
    for view in views:
        serial = inverter_label(view)
        snap = view.snapshot
        if snap is not None:
            _values(inverter, snap.values, snap.specs, {"serial": serial}, group=True)
            for pack in snap.batteries:
                labels = {"serial": serial, "battery_serial": pack.serial}
                _values(battery, pack.values, pack.specs, labels, group=False)
            for dev in snap.meters:
                labels = {"serial": serial, "meter": str(dev.address)}
                _values(meter, dev.values, dev.specs, labels, group=False)
            taken.add(snap.taken_at.timestamp(), serial=serial)
            stale.add(len(snap.stale()), serial=serial)
        health = view.health()
        if health.last_good_poll is not None:
            age.add(max(0.0, (view.now() - health.last_good_poll).total_seconds()), serial=serial)
        for key, sample in _samples(view.metrics()):
            if key.startswith(_PAGES_REJECTED):
                rejected_pages.add(sample, serial=serial, verdict=key[len(_PAGES_REJECTED) :])
                continue
            name, kind, text = _COUNTERS.get(
                key, (f"givtcp_{key}", "gauge", f"Coordinator value {key}.")
            )
            _add(counters, name, kind, text, sample, serial=serial)
    families: list[Family] = [info, inverter, battery, meter, taken, age, stale]
    families += counters.values()
    families.append(rejected_pages)
    if rest is not None:
        families += _rest_families(rest)
    families += _service_families(services)
    families += _charger_families(chargers)
    return "\n".join(f.render() for f in families if f.samples or f is info) + "\n"


def _rest_families(rest: RestCounters) -> Iterable[Family]:
    requests = Family(
        "givtcp_rest_requests_total", "counter", "HTTP requests answered, by route and status."
    )
    for (route, method, code), n in sorted(rest.requests.items()):
        requests.add(n, route=route, method=method, code=str(code))
    commands = Family(
        "givtcp_rest_commands_total", "counter", "Control commands run over REST, by result."
    )
    for (serial, function, status), n in sorted(rest.commands.items()):
        commands.add(n, serial=serial, function=function, status=status)
    duration = Family(
        "givtcp_rest_command_duration_seconds",
        "summary",
        "Time from a control request to its result.",
    )
    for serial in sorted(rest.command_count):
        duration.add(rest.command_seconds[serial], "_sum", serial=serial)
        duration.add(rest.command_count[serial], "_count", serial=serial)
    clients = Family(
        "givtcp_rest_event_clients", "gauge", "Open server-sent event streams (dashboards)."
    )
    clients.add(rest.event_clients)
    closed = Family(
        "givtcp_rest_connections_closed_total",
        "counter",
        "Connections closed by the cap (rest.max_connections): the oldest idle one to let a "
        "new one in (evicted), or a new one finding every one busy (refused).",
    )
    for reason in ("evicted", "refused"):
        closed.add(rest.connections_closed[reason], reason=reason)
    return (requests, commands, duration, clients, closed)


def _service_families(services: Iterable[MetricsSource]) -> Iterable[Family]:
    families: dict[str, Family] = {}
    for service in services:
        for key, sample in _samples(service.metrics()):
            spec = _SERVICES.get(key, (f"givtcp_{key}", "gauge", f"Service value {key}.", {}))
            if spec is not None:
                name, kind, text, labels = spec
                _add(families, name, kind, text, sample, **labels)
    return families.values()


def charger_label(charger: ChargerView) -> str:
    """The ``serial`` label of a charger (its address until its serial is read)."""
    return charger.serial or charger.address


def _charger_families(chargers: Sequence[ChargerView]) -> Iterable[Family]:
    values = Family(
        "givtcp_evc_value", "gauge", "Every numeric value of the latest EV charger snapshot."
    )
    taken = Family(
        "givtcp_evc_snapshot_timestamp_seconds",
        "gauge",
        "Unix time the charger's latest snapshot was taken.",
    )
    counters: dict[str, Family] = {}
    for charger in chargers:
        serial = charger_label(charger)
        snap = charger.snapshot
        if snap is not None:
            _values(values, snap.values, snap.specs, {"serial": serial}, group=False)
            taken.add(snap.taken_at.timestamp(), serial=serial)
        for key, sample in _samples(charger.metrics()):
            name, kind, text = _EVC_COUNTERS.get(
                key, (f"givtcp_evc_{key}", "gauge", f"Charger value {key}.")
            )
            _add(counters, name, kind, text, sample, serial=serial)
    return [values, taken, *counters.values()]
