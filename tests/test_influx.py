"""InfluxDB output against a real VictoriaMetrics (InfluxDB v2 write API) and the simulated plant.

VictoriaMetrics stores measurement ``m`` with field ``f`` as the series ``m_f``, the tags as
labels, and serves them back from ``/api/v1/export``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import re
import time
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from givtcp_async.backoff import Backoff
from givtcp_async.config import InfluxConfig
from givtcp_async.ports import Links
from givtcp_async.quality.gates import Reading
from givtcp_async.sinks import influx as influx_module
from givtcp_async.sinks.influx import (
    LEGACY_GROUPS,
    InfluxService,
    PointBuffer,
    influx_service,
    snapshot_points,
)
from givtcp_async.snapshot import Snapshot
from tests.harness import Rig, running_daemon
from tests.rest_support import rest_rig
from tests.servers import Mosquitto, VictoriaMetrics, free_port

# Only the polls a test asks for (request_refresh), so every count below is exact.
MANUAL_POLLS = {"poll_interval": 600.0, "settings_interval": 600.0}
NO_REST = {"enabled": False}


# --- helpers ---------------------------------------------------------------------------------

_UNESCAPED_SPACE = re.compile(r"(?<!\\) ")
_UNESCAPED_COMMA = re.compile(r"(?<!\\),")


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def parse_line(line: str) -> tuple[str, dict[str, str], dict[str, float], int]:
    """Measurement, tags, fields and timestamp of one line-protocol line."""
    head, fields_text, ts = _UNESCAPED_SPACE.split(line)
    measurement, *tag_parts = _UNESCAPED_COMMA.split(head)
    tags = dict(_unescape(p).split("=", 1) for p in tag_parts)
    fields = {
        _unescape(k): float(v)
        for k, v in (p.split("=", 1) for p in _UNESCAPED_COMMA.split(fields_text))
    }
    return _unescape(measurement), tags, fields, int(ts)


def expected_samples(lines: list[str]) -> set[tuple[str, tuple[tuple[str, str], ...], int]]:
    """(series name, labels, timestamp ms) of every field of every line, as VictoriaMetrics
    stores them."""
    out = set()
    for line in lines:
        measurement, tags, fields, ts = parse_line(line)
        labels = tuple(sorted(tags.items()))
        for name in fields:
            out.add((f"{measurement}_{name}", labels, ts))
    return out


def stored_samples(vm: VictoriaMetrics, serial: str) -> list[tuple[str, tuple[Any, ...], int]]:
    """Every sample VictoriaMetrics holds for ``serial`` (one entry per stored sample)."""
    with urllib.request.urlopen(f"{vm.url}/internal/force_flush", timeout=5):
        pass
    query = urllib.parse.urlencode({"match[]": f'{{serial="{serial}"}}'})
    with urllib.request.urlopen(f"{vm.url}/api/v1/export?{query}", timeout=10) as resp:
        body = resp.read().decode()
    samples = []
    for row in filter(None, body.splitlines()):
        item = json.loads(row)
        labels = dict(item["metric"])
        name = labels.pop("__name__")
        for ts in item["timestamps"]:
            samples.append((name, tuple(sorted(labels.items())), int(ts)))
    return samples


async def stored(
    vm: VictoriaMetrics, serial: str, *, until: int
) -> list[tuple[str, tuple[Any, ...], int]]:
    """The stored samples, once there are at least ``until`` (or after 10 s: then whatever is
    there). VictoriaMetrics acknowledges a write before every sample is searchable, and gives no
    event when it is, so this asks again every 0.1 s."""
    deadline = asyncio.get_running_loop().time() + 10
    while True:
        samples = await asyncio.to_thread(stored_samples, vm, serial)
        if len(samples) >= until or asyncio.get_running_loop().time() > deadline:
            return samples
        await asyncio.sleep(0.1)


def influx_settings(url: str, **extra: Any) -> dict[str, Any]:
    return {"url": url, "bucket": "givenergy", "org": "home", "token": "secret-token", **extra}


def service_of(rig: Rig) -> InfluxService:
    found = [s for s in rig.daemon.services if isinstance(s, InfluxService)]
    assert len(found) == 1, rig.daemon.services
    return found[0]


async def poll(rig: Rig, service: InfluxService) -> Snapshot:
    """One poll, and the service has buffered its points."""
    seen = service.snapshots
    rig.coordinator.request_refresh(settings=False)
    snap = await rig.next_snapshot()
    async with asyncio.timeout(10):
        await service.wait_for(lambda: service.snapshots > seen)
    return snap


async def drained(service: InfluxService, *, snapshots: int = 1, timeout: float = 20.0) -> None:
    """The service has taken at least ``snapshots`` snapshots and written everything."""
    async with asyncio.timeout(timeout):
        await service.wait_for(
            lambda: (
                service.snapshots >= snapshots
                and len(service.buffer) == 0
                and service.buffer.in_flight == 0
            )
        )


# --- points ----------------------------------------------------------------------------------


async def test_snapshot_points_layout(tmp_path: Path) -> None:
    async with running_daemon(tmp_path, services=[], inverter=MANUAL_POLLS) as rig:
        snap = await rig.first_snapshot()
    lines = snapshot_points(snap)
    parsed = [parse_line(line) for line in lines]
    ms = round(snap.taken_at.timestamp() * 1000)
    assert {p[3] for p in parsed} == {ms}
    by_measurement: dict[str, list[tuple[dict[str, str], dict[str, float]]]] = {}
    for measurement, tags, fields, _ in parsed:
        assert tags["serial"] == snap.serial
        assert tags["model"] == snap.model.name
        by_measurement.setdefault(measurement, []).append((tags, fields))
    assert set(by_measurement) == {
        "power", "flows", "energy_today", "energy_total", "rates", "battery_stack", "inverter",
        "battery",
    }  # fmt: skip
    power = by_measurement["power"][0][1]
    assert power["pv_power"] == float(snap.value("PV_Power"))
    assert power["soc"] == float(snap.value("SOC"))
    assert "solar_to_house" in by_measurement["flows"][0][1]
    assert "import_energy_today_kwh" in by_measurement["energy_today"][0][1]
    assert "invertor_temperature" in by_measurement["inverter"][0][1]
    # Identity, settings and strings are not time series.
    every_field = {f for items in by_measurement.values() for _, fields in items for f in fields}
    assert not every_field & {"target_soc", "invertor_serial_number", "battery_capacity_kwh"}
    packs = {tags["battery_serial"]: fields for tags, fields in by_measurement["battery"]
             if "battery_serial" in tags}  # fmt: skip
    assert set(packs) == {b.serial for b in snap.batteries if b.serial}
    bcu = [f for tags, f in by_measurement["battery"] if tags.get("battery_address") == "0x31"]
    assert bcu == [{"lv_bcu_charge_current_request": 83.0,  # statuses are no time series
                    "lv_bcu_discharge_current_request": 83.0}]  # fmt: skip
    for bat in (b for b in snap.batteries if b.serial):
        assert packs[bat.serial]["battery_soc"] == float(bat.values["Battery_SOC"].value)
        assert "battery_serial_number" not in packs[bat.serial]


async def test_stale_and_missing_values_are_not_written(tmp_path: Path) -> None:
    async with running_daemon(tmp_path, services=[], inverter=MANUAL_POLLS) as rig:
        snap = await rig.first_snapshot()
    values = dict(snap.values)
    values["PV_Power"] = dataclasses.replace(values["PV_Power"], stale=True)
    values["SOC"] = Reading(None, "%")
    flows = [n for n, s in snap.specs.items() if s.path == ("Power", "Flows") and n in values]
    for name in flows:
        values[name] = dataclasses.replace(values[name], stale=True)
    changed = dataclasses.replace(snap, values=values)
    fields = {parse_line(line)[0]: parse_line(line)[2] for line in snapshot_points(changed)}
    assert "pv_power" not in fields["power"]
    assert "soc" not in fields["power"]
    assert "grid_power" in fields["power"]
    assert "flows" not in fields  # a group with nothing fresh writes no point


async def test_legacy_layout_is_givtcps(tmp_path: Path) -> None:
    async with running_daemon(tmp_path, services=[], inverter=MANUAL_POLLS) as rig:
        snap = await rig.first_snapshot()
    lines = snapshot_points(snap, legacy=True)
    assert len(lines) == 1
    measurement, tags, fields, _ = parse_line(lines[0])
    assert measurement == snap.serial
    assert tags == {"tagKey": "GivReal"}
    expected = {
        name.lower()
        for name, spec in snap.specs.items()
        if spec.path in LEGACY_GROUPS and isinstance(snap.value(name), int | float)
    }
    assert {"pv_power", "solar_to_house", "import_energy_today_kwh", "pv_energy_total_kwh"} <= (
        set(fields)
    )
    assert set(fields) == expected


# --- buffer ----------------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _accounted(buf: PointBuffer) -> None:
    assert buf.added == buf.written + buf.dropped + buf.rejected + len(buf)


def test_buffer_count_bound_drops_oldest() -> None:
    buf = PointBuffer(max_points=3, max_age=0)
    buf.add(["a", "b"])
    buf.add(["c", "d", "e"])
    assert len(buf) == 3
    assert buf.dropped_full == 2
    assert buf.take(10) == ["c", "d", "e"]
    assert buf.acknowledge() == 3
    _accounted(buf)


def test_buffer_in_flight_points_are_marked_not_recalled() -> None:
    buf = PointBuffer(max_points=3, max_age=0)
    buf.add(["a", "b", "c"])
    assert buf.take(2) == ["a", "b"]
    buf.add(["d", "e"])  # 5 > 3: a and b (in flight) are the oldest
    assert len(buf) == 3
    assert buf.dropped_full == 2
    _accounted(buf)
    buf.retry()  # a and b did not arrive: gone for good
    assert buf.take(10) == ["c", "d", "e"]
    buf.acknowledge()
    assert (buf.written, buf.dropped_full) == (3, 2)
    _accounted(buf)


def test_buffer_marked_points_that_arrive_are_not_dropped() -> None:
    buf = PointBuffer(max_points=2, max_age=0)
    buf.add(["a", "b"])
    assert buf.take(2) == ["a", "b"]
    buf.add(["c"])
    assert buf.dropped_full == 1
    buf.acknowledge()  # a arrived after all
    assert (buf.written, buf.dropped_full, len(buf)) == (2, 0, 1)
    _accounted(buf)


def test_buffer_retry_keeps_order_and_age_bound() -> None:
    clock = FakeClock()
    buf = PointBuffer(max_points=0, max_age=60, clock=clock)
    buf.add(["a", "b"])
    clock.now += 30
    buf.add(["c"])
    assert buf.take(2) == ["a", "b"]
    buf.retry()
    assert buf.oldest_age() == 30
    clock.now += 31  # a and b are now 61 s old
    assert buf.take(10) == ["c"]
    assert buf.dropped_age == 2
    buf.reject()
    assert buf.rejected == 1
    _accounted(buf)


def test_buffer_zero_bounds_are_off() -> None:
    clock = FakeClock()
    buf = PointBuffer(max_points=0, max_age=0, clock=clock)
    buf.add(str(i) for i in range(10_000))
    clock.now += 10**6
    assert len(buf.take(20_000)) == 10_000
    assert buf.dropped == 0


# --- against VictoriaMetrics -----------------------------------------------------------------


async def test_every_poll_is_written_and_read_back(
    tmp_path: Path, victoria: VictoriaMetrics
) -> None:
    async with running_daemon(
        tmp_path, inverter=MANUAL_POLLS, rest=NO_REST, influx=influx_settings(victoria.url)
    ) as rig:
        service = service_of(rig)
        first = await rig.first_snapshot()
        snaps = [first, await poll(rig, service), await poll(rig, service)]
        await drained(service)
        lines = [line for s in snaps for line in snapshot_points(s)]
        want = expected_samples(lines)
        samples = await stored(victoria, first.serial, until=len(want))
        metrics = service.metrics()
    assert set(samples) == want
    assert len(samples) == len(expected_samples(lines))  # each sample once
    assert metrics["influx_points_written"] == len(lines)
    assert metrics["influx_points_dropped"] == 0
    assert metrics["influx_up"] == 1.0
    # Values as written: the power series carries the snapshot's PV power.
    pv = {ts for name, _, ts in samples if name == "power_pv_power"}
    assert pv == {round(s.taken_at.timestamp() * 1000) for s in snaps}


@pytest.fixture
def written(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The points of every snapshot the service buffers, in order (a spy on the real
    function): the coordinator may publish a snapshot no test asked for (a poll after a
    reconnect), and those count too."""
    record: list[list[str]] = []

    def spy(snap: Snapshot, *, legacy: bool = False) -> list[str]:
        lines = snapshot_points(snap, legacy=legacy)
        record.append(lines)
        return lines

    monkeypatch.setattr(influx_module, "snapshot_points", spy)
    return record


def _ts(lines: list[str]) -> int:
    return parse_line(lines[0])[3]


async def test_outage_loses_nothing(
    tmp_path: Path, victoria: VictoriaMetrics, written: list[list[str]]
) -> None:
    async with running_daemon(
        tmp_path, inverter=MANUAL_POLLS, rest=NO_REST, influx=influx_settings(victoria.url)
    ) as rig:
        service = service_of(rig)
        service.retry = Backoff(initial=0.05, maximum=0.3)
        first = await rig.first_snapshot()
        await drained(service)
        await asyncio.to_thread(victoria.stop)
        down = len(written)
        for _ in range(4):
            await poll(rig, service)
        async with asyncio.timeout(10):
            await service.wait_for(lambda: service.failures >= 2)
        assert service.metrics()["influx_up"] == 0.0
        outage = written[down:]
        assert len(outage) >= 4
        assert len(service.buffer) == sum(map(len, outage))
        await asyncio.to_thread(victoria.start)
        await drained(service)
        everything = expected_samples([line for lines in written for line in lines])
        samples = await stored(victoria, first.serial, until=len(everything))
        metrics = service.metrics()
    wanted = expected_samples([line for lines in outage for line in lines])
    outage_ts = {_ts(lines) for lines in outage}
    arrived = [s for s in samples if s[2] in outage_ts]
    assert set(arrived) == wanted
    assert len(arrived) == len(wanted)  # each once
    assert set(samples) == everything
    assert metrics["influx_points_dropped"] == 0
    assert metrics["influx_points_written"] == sum(map(len, written))
    assert metrics["influx_up"] == 1.0


async def test_overflow_drops_oldest_and_counts(
    tmp_path: Path, victoria: VictoriaMetrics, written: list[list[str]]
) -> None:
    async with running_daemon(
        tmp_path, inverter=MANUAL_POLLS, rest=NO_REST, influx=influx_settings(victoria.url)
    ) as rig:
        service = service_of(rig)
        service.retry = Backoff(initial=0.05, maximum=0.3)
        first = await rig.first_snapshot()
        await drained(service)
        # After the first poll the meter scan finds the plant's EM115: its point joins from the
        # next poll on, so a poll's size is taken once it has.
        latest = first
        for _ in range(5):
            if latest.meters:
                break
            latest = await poll(rig, service)
        assert latest.meters
        await drained(service, snapshots=service.snapshots)
        per_poll = len(snapshot_points(latest))
        await asyncio.to_thread(victoria.stop)
        service.buffer.max_points = per_poll  # room for one poll
        down = len(written)
        for _ in range(3):
            await poll(rig, service)
        outage = written[down:]
        assert len(service.buffer) == len(outage[-1]) <= per_poll
        await asyncio.to_thread(victoria.start)
        await drained(service)
        after = written[down + len(outage) :]  # polls once the database was back, if any
        kept = [outage[-1], *after]
        sent = [*written[:down], *kept]
        samples = await stored(
            victoria, first.serial, until=len(expected_samples([x for ls in sent for x in ls]))
        )
        metrics = service.metrics()
    assert set(samples) == expected_samples([line for lines in sent for line in lines])
    assert not {s[2] for s in samples} & {_ts(lines) for lines in outage[:-1]}  # oldest gone
    assert metrics["influx_points_dropped_full"] == sum(map(len, outage[:-1]))
    assert metrics["influx_points_written"] == sum(map(len, sent))


async def test_unreachable_database_never_stops_the_daemon(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    async with running_daemon(
        tmp_path, inverter=MANUAL_POLLS, rest=NO_REST, influx=influx_settings(url)
    ) as rig:
        service = service_of(rig)
        service.retry = Backoff(initial=0.05, maximum=0.2)
        await rig.first_snapshot()
        async with asyncio.timeout(10):
            await service.wait_for(lambda: service.failures >= 3)
        snap = await poll(rig, service)  # the inverter is still polled
        assert snap.values
        runner = next(t for t in asyncio.all_tasks() if t.get_name() == "service-influx")
        assert not runner.done()
        assert service.metrics()["influx_points_buffered"] > 0
        assert service.last_error
        assert "secret-token" not in service.last_error


async def test_a_server_that_is_not_influx_is_survived(tmp_path: Path) -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"SSH-2.0-not-http\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(garbage, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with running_daemon(
            tmp_path,
            inverter=MANUAL_POLLS,
            rest=NO_REST,
            influx=influx_settings(f"http://127.0.0.1:{port}"),
        ) as rig:
            service = service_of(rig)
            service.retry = Backoff(initial=0.05, maximum=0.2)
            await rig.first_snapshot()
            async with asyncio.timeout(10):
                await service.wait_for(lambda: service.failures >= 2)
            assert service.buffer.written == 0
            assert (await poll(rig, service)).values
    finally:
        server.close()
        await server.wait_closed()


async def test_metrics_route_shows_the_influx_and_mqtt_counters(
    tmp_path: Path, victoria: VictoriaMetrics, mosquitto: Mosquitto, written: list[list[str]]
) -> None:
    async with rest_rig(
        tmp_path,
        inverter=MANUAL_POLLS,
        influx=influx_settings(victoria.url),
        mqtt={"host": "127.0.0.1", "port": mosquitto.port},
    ) as r:
        service = service_of(r.rig)
        await drained(service)
        before = _by_name(await r.metrics())
        started = time.time()
        snap = await poll(r.rig, service)
        await drained(service, snapshots=service.snapshots)
        after = _by_name(await r.metrics())
        new_points = snapshot_points(snap)
        everything = expected_samples([line for lines in written for line in lines])
        samples = await stored(victoria, snap.serial, until=len(everything))
    # The poll's points reached VictoriaMetrics, and the counters moved by what was written.
    assert expected_samples(new_points) <= set(samples) == everything
    points = "givtcp_influx_points_written_total"
    assert after[points][()] - before[points][()] >= len(new_points)
    assert after[points][()] == service.buffer.written == sum(map(len, written))
    assert after["givtcp_influx_writes_total"][()] > before["givtcp_influx_writes_total"][()]
    assert after["givtcp_influx_snapshots_total"][()] == service.snapshots >= 2
    assert after["givtcp_influx_up"][()] == 1
    assert after["givtcp_influx_points_buffered"][()] == 0
    assert after["givtcp_influx_write_failures_total"][()] == 0
    dropped = after["givtcp_influx_points_dropped_total"]
    assert dropped == {(("reason", "age"),): 0, (("reason", "full"),): 0}
    last = after["givtcp_influx_last_write_timestamp_seconds"][()]
    assert started <= last <= time.time()
    # The MQTT service's counters are there too.
    assert after["givtcp_mqtt_connected"][()] == 1
    assert after["givtcp_mqtt_connections_total"][()] == 1
    assert after["givtcp_mqtt_messages_total"][()] > 0
    assert after["givtcp_mqtt_discovery_announcements_total"][()] >= 1


def _by_name(
    samples: dict[str, list[tuple[dict[str, str], float]]],
) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """/metrics samples by name, then by their labels (sorted pairs)."""
    return {
        name: {tuple(sorted(labels.items())): value for labels, value in rows}
        for name, rows in samples.items()
    }


async def test_metrics_route_without_influx_or_mqtt_has_neither(tmp_path: Path) -> None:
    async with rest_rig(tmp_path, inverter=MANUAL_POLLS) as r:
        names = set(await r.metrics())
    assert names
    assert not {n for n in names if n.startswith(("givtcp_influx_", "givtcp_mqtt_"))}


def test_influx_counters_never_go_down_while_a_marked_batch_is_in_flight() -> None:
    service = InfluxService(influx_settings_model(buffer_max_points=2), [])
    buf = service.buffer
    buf.add(["a", "b"])
    buf.take(2)
    buf.add(["c"])  # a, in flight, is dropped by the count bound: it may still arrive
    assert service.metrics()["influx_points_dropped_full"] == 0
    buf.acknowledge()  # it did
    assert service.metrics()["influx_points_dropped_full"] == 0
    buf.add(["d"])
    buf.take(2)
    buf.add(["e"])  # c is marked now
    buf.retry()  # and did not arrive: dropped for good
    assert service.metrics()["influx_points_dropped_full"] == 1


def influx_settings_model(**extra: Any) -> InfluxConfig:
    return InfluxConfig.model_validate(influx_settings("http://127.0.0.1:9", **extra))


# --- wiring ----------------------------------------------------------------------------------


async def test_factory_builds_the_service_only_when_enabled(tmp_path: Path) -> None:
    async with running_daemon(tmp_path, services=[], inverter=MANUAL_POLLS) as rig:
        assert influx_service(rig.settings.influx, rig.daemon.coordinators, Links()) is None
    with pytest.raises(ValueError, match="required"):
        InfluxService(InfluxConfig(), [])
    async with running_daemon(
        tmp_path, inverter=MANUAL_POLLS, rest=NO_REST, influx=influx_settings("http://127.0.0.1:9")
    ) as rig:
        service = service_of(rig)
        assert service.views == rig.daemon.coordinators
        assert rig.daemon.links.metrics_sources == [service]
        assert service.config.buffer_max_points == 100_000


@contextlib.asynccontextmanager
async def refusing_server(status: int, message: str) -> AsyncIterator[tuple[str, list[int]]]:
    """An HTTP server answering every write with ``status`` and InfluxDB's error body; its URL
    and the number of lines of each request it got."""
    got: list[int] = []

    async def write(request: web.Request) -> web.Response:
        got.append(len((await request.text()).splitlines()))
        return web.json_response({"code": "invalid", "message": message}, status=status)

    app = web.Application()
    app.router.add_post("/api/v2/write", write)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}", got
    finally:
        await runner.cleanup()


async def test_a_malformed_batch_is_dropped_and_counted(tmp_path: Path) -> None:
    async with (
        refusing_server(400, "unable to parse 'power x=': invalid field format") as (url, got),
        running_daemon(
            tmp_path, inverter=MANUAL_POLLS, rest=NO_REST, influx=influx_settings(url)
        ) as rig,
    ):
        service = service_of(rig)
        first = await rig.first_snapshot()
        await drained(service)
    assert service.buffer.rejected == service.buffer.added == sum(got)
    assert service.buffer.rejected >= len(snapshot_points(first))
    assert service.failures == 0
    assert service.buffer.written == 0


async def test_a_configuration_refusal_keeps_the_points(tmp_path: Path) -> None:
    async with (
        refusing_server(400, "Please provide either orgID or org") as (url, got),
        running_daemon(
            tmp_path, inverter=MANUAL_POLLS, rest=NO_REST, influx=influx_settings(url)
        ) as rig,
    ):
        service = service_of(rig)
        service.retry = Backoff(initial=0.05, maximum=0.2)
        first = await rig.first_snapshot()
        async with asyncio.timeout(10):
            await service.wait_for(lambda: service.failures >= 2)
        assert len(service.buffer) == service.buffer.added >= len(snapshot_points(first))
        assert service.buffer.rejected == 0
        assert service.last_error == "HTTP 400 Bad Request: Please provide either orgID or org"
        assert len(got) >= 2
