"""The REST API, the live dashboard, OpenAPI, Prometheus metrics and server-sent events.

One aiohttp application served inside the daemon's event loop (:class:`RestService`). It only
reads the inverters' snapshots and hands commands to :meth:`InverterView.execute
<givtcp_async.ports.InverterView.execute>`, so every write goes through the inverter's one
serialised queue.

Routes (unprefixed routes address the first configured inverter; ``/<serial>/...`` any of them,
by serial or configured name):

* ``GET /runAll`` (aliases ``/readData``, ``/getCache``): the latest snapshot, GivTCP's layout;
* ``POST /<function>``: every control function, alias and slot router of the catalogue, with
  GivTCP's JSON body, a plain value, or no body; answered with the command's result;
* ``GET /health``, ``/metrics``, ``/openapi.json``, ``/docs``, ``/functions``, ``/inverters``,
  ``/events`` (server-sent events) and ``/`` (the dashboard);
* EV chargers: ``GET /getEVCCache`` (the first charger's snapshot, GivTCP's EVC tree; any
  charger as ``/<charger serial>/getEVCCache``) and ``POST /<function>`` for the charger's
  functions (:mod:`givtcp_async.evc.controls`: ``setCurrentLimit``, ``setChargeControl``, ...;
  ``/<charger serial>/<function>`` for any charger), answered as inverter commands are.

Status codes of control routes: 200 ok; 400 unreadable body; 401 token missing or wrong; 403 a
browser request from another site; 404 unknown function or inverter; 405 GET on a control route;
413 body too large; 422 payload refused or function unavailable on the model; 429 write budget
used up; 502 the inverter failed (nothing changed) or did only part (``written`` says what);
503 the inverter is not reachable or not ready. Nothing is ever written for a 4xx.

A port that cannot be bound stops the daemon (``cannot listen on HOST:PORT: ...``); on
cancellation the server closes its sockets and event streams within ``shutdown_timeout``.
"""

from __future__ import annotations

import asyncio
import hmac
import html
import json
import os
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import UTC
from importlib import resources
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

import structlog
from aiohttp import web

from givtcp_async import __version__
from givtcp_async.config import RestConfig
from givtcp_async.control.catalogue import Catalogue
from givtcp_async.control.layout import Layout
from givtcp_async.control.payloads import decode_json
from givtcp_async.control.result import CommandResult, rejected
from givtcp_async.errors import UnknownFunction, ValidationFailed
from givtcp_async.layout import TreeLayout
from givtcp_async.ports import ChargerView, InverterView, Links, MetricsSource
from givtcp_async.sinks import metrics
from givtcp_async.sinks.http_guard import (
    BODY_TIMEOUT,
    HEADER_TIMEOUT,
    AcceptErrorLimiter,
    ClientRule,
    ConnectionGuard,
    GuardedSite,
    HostRule,
)
from givtcp_async.snapshot import FlatHistory

if TYPE_CHECKING:
    from givtcp_async.evc.controls import EvcFunction
    from givtcp_async.snapshot import Snapshot

log = structlog.get_logger(__name__)

__all__ = ["RestService", "build_app", "http_status", "rest_service"]

MAX_BODY: Final = 64 * 1024
MAX_WAITING_COMMANDS: Final = 32  # as MQTT: beyond it, 503 with Retry-After
DATA_ROUTES: Final = ("runAll", "readData", "getCache")
CHARGER_ROUTE: Final = "getEVCCache"
# GivTCP 3's views of its cache: the data as a page, the recent history, its API list.
CACHE_ROUTES: Final = ("showdata", "fullCache", "api")
FULL_CACHE: Final = 10  # snapshots kept per inverter for /fullCache, as GivTCP kept
# First path segments that are GET routes: a POST there is a wrong method, not a function.
GET_ROUTES: Final = frozenset(
    {*(r.lower() for r in (*DATA_ROUTES, *CACHE_ROUTES)), CHARGER_ROUTE.lower(), "health",
     "metrics", "openapi.json", "docs", "functions", "inverters", "events", "dashboard"}
)  # fmt: skip
ASSETS: Final = {"dashboard.js": "text/javascript", "dashboard.css": "text/css"}
_TRUE: Final = frozenset({"1", "true", "yes"})
_FALSE: Final = frozenset({"0", "false", "no", ""})
DASHBOARD_CSP: Final = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'"
)
# /docs is static HTML with one inline style sheet: nothing else may load or run.
DOCS_CSP: Final = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'; "
    "base-uri 'none'; form-action 'none'"
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _dumps(value: Any) -> str:
    return json.dumps(value, default=str)


class ApiError(Exception):
    """An error answered as ``{"error", "message", ...}`` JSON with ``status``."""

    def __init__(
        self,
        status: int,
        error: str,
        message: str,
        *,
        headers: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = {"error": error, "message": message, **extra}
        self.headers = dict(headers or {})

    def response(self) -> web.Response:
        resp = web.json_response(self.body, status=self.status, headers=self.headers,
                                 dumps=_dumps)  # fmt: skip
        if self.headers.get("Connection") == "close":
            resp.force_close()  # e.g. a body that never came: the connection's state is unknown
        return resp


def http_status(result: CommandResult, *, reachable: bool) -> int:
    """The HTTP status of a command result (``reachable``: the inverter link is up)."""
    if result.status == "ok":
        return 200
    if result.status == "rejected":
        fields = {e.get("field") for e in result.errors}
        if not fields:
            return 503  # not ready yet (e.g. timed overrides still starting)
        if "payload" in fields:
            return 400
        if "budget" in fields or "interval" in fields:
            return 429
        if "state_dir" in fields:
            return 503  # the state directory is full or read-only: nothing could be accounted
        if "serial" in fields:
            return 409  # another inverter answers at this address
        return 422
    if result.status == "failed" and not reachable:
        return 503
    return 502


def raw_name(catalogue: Catalogue, name: str) -> str:
    """The canonical name of a function or alias (slot routers keep their own name)."""
    try:
        return catalogue.get(name).name
    except UnknownFunction:
        return name


def result_body(result: CommandResult, serial: str | None) -> dict[str, Any]:
    """The command result JSON, with GivTCP's ``result`` key and what was written."""
    body = result.to_json()
    body["result"] = result.message
    body["serial"] = serial
    body["written"] = [
        {"register": c.register, "value": c.echo if c.echo is not None else c.new}
        for c in result.registers
        if c.written
    ]
    return body


def health_of(view: InverterView) -> dict[str, Any]:
    health = view.health()
    last = health.last_good_poll
    age = round(max(0.0, (view.now() - last).total_seconds()), 3) if last else None
    return {
        "serial": view.serial,
        "name": view.name,
        "online": health.online,
        "connected": health.connected,
        "detected": health.detected,
        "last_good_poll": last.isoformat() if last else None,
        "last_good_poll_age_seconds": age,
        "stale_after_seconds": view.offline_after,
        "consecutive_failures": health.consecutive_failures,
        "polls": health.polls,
        "failed_polls": health.failed_polls,
        "problem": health.problem,
    }


def find_charger_function(name: str) -> EvcFunction:
    """The charger's control function ``name`` (the charger's modules are imported on the first
    request that may address one: a daemon without a charger and such requests never loads them)."""
    from givtcp_async.evc.controls import find

    return find(name)


def _is_charger_function(name: str) -> bool:
    try:
        find_charger_function(name)
    except UnknownFunction:
        return False
    return True


def api_listing(catalogue: Catalogue) -> dict[str, Any]:
    """GivTCP's api.json shape: ``{"api": ..., "commands": {name: {url, method, usage,
    payload}}}``, for every data route, cache view and control function (and alias)."""
    commands: dict[str, dict[str, Any]] = {}
    gets = {
        "runAll": "Retrieve the latest data (the same as readData and getCache)",
        "readData": "Retrieve the latest data",
        "getCache": "Retrieve the latest data",
        "showdata": "Show the latest data as a page",
        "fullCache": "Return the last snapshots' values as a JSON file",
        "api": "This list",
    }
    for name, usage in gets.items():
        commands[name] = {"url": f"/{name}", "method": "GET", "usage": usage}
    for fn in catalogue:
        entry: dict[str, Any] = {"url": f"/{fn.name}", "method": "POST", "usage": fn.summary}
        if fn.example is not None:
            entry["payload"] = _dumps(fn.example)
        commands[fn.name] = entry
        for alias in fn.aliases:
            commands[alias] = {**entry, "url": f"/{alias}", "usage": f"alias of {fn.name}"}
    return {
        "api": "GivTCP-compatible REST API (givtcp-async): the first inverter at /<route>, "
        "every one at /<serial>/<route>",
        "commands": commands,
    }


def showdata_html(serial: str, taken_at: str, tree: Mapping[str, Any]) -> str:
    """The runAll tree as nested tables: GivTCP 3's /showdata page, without scripts."""

    def table(node: Mapping[str, Any]) -> str:
        rows = []
        for key, value in node.items():
            cell = table(value) if isinstance(value, Mapping) else html.escape(_text(value))
            rows.append(f"<tr><th>{html.escape(str(key))}</th><td>{cell}</td></tr>")
        return "<table>" + "".join(rows) + "</table>"

    title = f"givtcp-async: {html.escape(serial)} at {html.escape(taken_at)}"
    style = (
        "body{font-family:sans-serif;margin:1em}table{border-collapse:collapse}"
        "th,td{border:1px solid #ccc;padding:2px 6px;text-align:left;vertical-align:top}"
    )
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{title}</title>"
        f"<style>{style}</style></head><body><h1>{title}</h1>{table(tree)}</body></html>"
    )


def _text(value: Any) -> str:
    return json.dumps(value) if isinstance(value, list | bool) or value is None else str(value)


def _asset(name: str) -> bytes:
    return resources.files("givtcp_async.sinks").joinpath("dashboard", name).read_bytes()


class RestService:
    """The daemon's REST service; :meth:`run` serves until cancelled, then closes everything."""

    name = "rest"

    def __init__(
        self,
        config: RestConfig,
        views: Sequence[InverterView],
        *,
        ping_interval: float = 15.0,
        shutdown_timeout: float = 1.0,
        connect_wait: float = 5.0,
        metrics_sources: Callable[[], Iterable[MetricsSource]] = tuple,
        chargers: Sequence[ChargerView] = (),
    ) -> None:
        """``metrics_sources``: the other services whose counters /metrics shows, asked at
        every scrape; ``chargers``: the EV chargers served beside the inverters."""
        if not views:
            raise ValueError("the REST service needs at least one inverter")
        self.config = config
        self.views = list(views)
        self.chargers = list(chargers)
        self.ping_interval = ping_interval
        self.shutdown_timeout = shutdown_timeout
        self.connect_wait = connect_wait
        self.metrics_sources = metrics_sources
        self.counters = metrics.RestCounters()
        self.listening = asyncio.Event()
        self.url: str | None = None
        self._closing = asyncio.Event()
        self._token = config.token.get_secret_value().encode() if config.token else None
        self.hosts = HostRule(config.host, config.allowed_hosts)
        self.clients = ClientRule(config.allow_from)
        self.guard = ConnectionGuard(config.max_connections)
        self._openapi: dict[tuple[str | None, bool, TreeLayout], dict[str, Any]] = {}
        self._assets: dict[str, bytes] = {}
        self._waiting = 0  # control requests being read or run
        self._ports: dict[int, int] = {}  # extra listening port -> index of its inverter
        # /fullCache: each inverter's last snapshots in their flat form, kept compact.
        self._history = [FlatHistory(FULL_CACHE) for _ in self.views]

    # --- lifecycle -----------------------------------------------------------------------------

    async def run(self) -> None:
        runner = web.AppRunner(
            build_app(self), access_log=None, handle_signals=False,
            shutdown_timeout=self.shutdown_timeout,
            keepalive_timeout=HEADER_TIMEOUT,  # also closes a connection sending no request
            lingering_time=2.0,  # the rest of a body refused unread: not 10 s more of it
        )  # fmt: skip
        await runner.setup()
        keepers = [
            asyncio.create_task(self._keep_history(i), name=f"rest-history-{i}")
            for i in range(len(self.views))
        ]
        try:
            with AcceptErrorLimiter(asyncio.get_running_loop()):
                await self._listen(runner)
                await asyncio.Event().wait()
        finally:
            for keeper in keepers:
                keeper.cancel()
            await asyncio.gather(*keepers, return_exceptions=True)
            self._closing.set()
            self.listening.clear()
            await runner.cleanup()
            log.info("REST API stopped")

    async def _listen(self, runner: web.AppRunner) -> None:
        host, port = self.config.host, self.config.port
        ports = [port]
        if self.config.per_inverter_ports:
            ports += [port + n for n in range(1, len(self.views))]
        for index, number in enumerate(ports):
            site = GuardedSite(runner, host, number, guard=self.guard)
            try:
                await site.start()
            except OSError as err:
                # The daemon stops with this one line (``run`` exits 1); systemd or Docker
                # restarts it.
                reason = os.strerror(err.errno) if err.errno else str(err)
                raise OSError(
                    f"cannot listen on {host}:{number}: {reason[:1].lower()}{reason[1:]}"
                ) from err
            if index:
                self._ports[number] = index
        shown = f"[{host}]" if ":" in host else host
        self.url = f"http://{shown}:{port}"
        self.listening.set()
        log.info("REST API listening", url=self.url, auth=self._token is not None,
                 max_connections=self.guard.max_connections,
                 inverter_ports=sorted(self._ports))  # fmt: skip
        if self._token is None:
            log.info("REST control without a token: from loopback and rest.allow_from only, "
                     "under this server's own names; set rest.token to control from elsewhere",
                     allow_from=self.clients.describe(),
                     allowed_hosts=sorted(self.hosts.names))  # fmt: skip

    async def _keep_history(self, index: int) -> None:
        async for snap in self.views[index].updates():
            self._history[index].append(snap)

    # --- addressing and auth -------------------------------------------------------------------

    def target(self, request: web.Request) -> InverterView:
        key = request.match_info.get("serial")
        if key is None:
            return self.views[self._port_index(request)]
        for view in self.views:
            if (view.serial or "").upper() == key.upper() or view.name.lower() == key.lower():
                return view
        known = [v.serial or v.name for v in self.views]
        raise ApiError(404, "unknown inverter", f"no inverter {key!r} is served here",
                       inverters=known)  # fmt: skip

    def charger_target(self, request: web.Request, function: str | None) -> ChargerView | None:
        """The charger a request addresses: ``/<charger serial>/...``, or (unprefixed) the first
        charger for a function only a charger has. None: an inverter route."""
        key = request.match_info.get("serial")
        if key is not None:
            return next((c for c in self.chargers if (c.serial or "").upper() == key.upper()), None)
        if function is None or function in self.views[0].catalogue():
            return None
        if not _is_charger_function(function):
            return None
        if not self.chargers:
            raise ApiError(404, "no charger", f"{function} is an EV charger function and no "
                           "charger is configured ([[chargers]])", function=function)  # fmt: skip
        return self.chargers[0]

    def _port_index(self, request: web.Request) -> int:
        """The inverter an unprefixed route addresses: the first, or the one whose own port
        (``rest.per_inverter_ports``) the request came in on."""
        if not self._ports or request.transport is None:
            return 0
        sockname = request.transport.get_extra_info("sockname")
        number = sockname[1] if isinstance(sockname, tuple) and len(sockname) > 1 else None
        return self._ports.get(number, 0) if isinstance(number, int) else 0

    def authorise(self, request: web.Request) -> None:
        """Control routes: the bearer token when configured; else clients of ``rest.allow_from``
        naming this server by one of its own names, and same-origin browsers only."""
        if self._token is not None:
            scheme, _, value = request.headers.get("Authorization", "").partition(" ")
            # A header that is not UTF-8 arrives with surrogate escapes: still just a wrong token.
            given = value.strip().encode("utf-8", "surrogateescape")
            if scheme.lower() != "bearer" or not hmac.compare_digest(given, self._token):
                raise ApiError(
                    401,
                    "unauthorized",
                    "this route needs the header Authorization: Bearer <rest.token>",
                    headers={"WWW-Authenticate": 'Bearer realm="givtcp-async"'},
                )
            return
        if not self.clients.allows(request.remote):
            raise ApiError(
                403,
                "forbidden",
                f"control from {request.remote} needs rest.token (without one, only loopback "
                f"and {self.clients.describe()} may control; see rest.allow_from)",
            )
        if not self.hosts.allows(request.headers.get("Host")):
            raise ApiError(
                421,
                "misdirected request",
                f"{request.headers.get('Host')!r} is not a name of this server: without "
                "rest.token, control needs its address, a loopback name or a name in "
                "rest.allowed_hosts",
            )
        origin = request.headers.get("Origin")
        if origin is None:
            return
        hosts = {h.lower() for h in (request.host, request.headers.get("X-Forwarded-Host")) if h}
        if urlsplit(origin).netloc.lower() not in hosts:
            raise ApiError(
                403,
                "cross-site request",
                f"a page from {origin} may not control the inverter (set rest.token and send "
                "it to allow other sites)",
            )

    # --- data routes ---------------------------------------------------------------------------

    async def runall(self, request: web.Request) -> web.Response:
        view = self.target(request)
        units = request.query.get("units", "").lower()
        if units not in _TRUE | _FALSE:
            raise ApiError(400, "bad parameter", "units must be true or false", field="units",
                           value=request.query.get("units"), allowed="true, false")  # fmt: skip
        snap = view.snapshot
        if snap is None:
            raise ApiError(503, "no data yet", "the inverter has not been read since start",
                           headers={"Retry-After": "5"}, serial=view.serial)  # fmt: skip
        return web.json_response(snap.runall(units=units in _TRUE), dumps=_dumps)

    async def charger_cache(self, request: web.Request) -> web.Response:
        """GivTCP's ``/getEVCCache``: the charger's latest snapshot."""
        if not self.chargers:
            raise ApiError(404, "no charger", "no EV charger is configured ([[chargers]])")
        charger = self.charger_target(request, None) or (
            None if "serial" in request.match_info else self.chargers[0]
        )
        if charger is None:
            raise ApiError(404, "unknown charger", "no such charger is served here",
                           chargers=[c.serial or c.address for c in self.chargers])  # fmt: skip
        snap = charger.snapshot
        if snap is None:
            raise ApiError(503, "no data yet", "the charger has not been read since start",
                           headers={"Retry-After": "5"}, serial=charger.serial)  # fmt: skip
        return web.json_response(snap.runall(), dumps=_dumps)

    async def showdata(self, request: web.Request) -> web.Response:
        """GivTCP 3's /showdata: the latest snapshot as a page (no scripts)."""
        view = self.target(request)
        snap = view.snapshot
        if snap is None:
            raise ApiError(503, "no data yet", "the inverter has not been read since start",
                           headers={"Retry-After": "5"}, serial=view.serial)  # fmt: skip
        body = showdata_html(snap.serial, snap.taken_at.isoformat(), snap.runall())
        headers = {"Content-Security-Policy": DASHBOARD_CSP}
        return web.Response(text=body, content_type="text/html", headers=headers)

    async def full_cache(self, request: web.Request) -> web.Response:
        """GivTCP 3's /fullCache: every leaf of the last snapshots (oldest first) by path."""
        view = self.target(request)
        flats = self._history[self.views.index(view)].flats()
        paths = dict.fromkeys(path for flat in flats for path in flat)
        out = {path: [flat.get(path) for flat in flats] for path in paths}
        name = f"regCacheStack_{view.serial or view.name}.json"
        headers = {"Content-Disposition": f'attachment; filename="{name}"'}
        return web.json_response(out, dumps=_dumps, headers=headers)

    async def api(self, request: web.Request) -> web.Response:
        """GivTCP's /api (its api.json): every route with its method, use and payload."""
        view = self.target(request)
        return web.json_response(api_listing(view.catalogue()), dumps=_dumps)

    async def health(self, request: web.Request) -> web.Response:
        inverters = [health_of(v) for v in self.views]
        ok = all(i["online"] for i in inverters)
        body: dict[str, Any] = {
            "status": "ok" if ok else "stale", "version": __version__, "inverters": inverters,
        }  # fmt: skip
        if self.chargers:  # shown, not judged: a charger's state never fails the health check
            body["chargers"] = [
                {"serial": c.serial, "address": c.address, "online": c.health().online,
                 "connected": c.health().connected}
                for c in self.chargers
            ]  # fmt: skip
        return web.json_response(body, status=200 if ok else 503, dumps=_dumps)

    async def metrics_text(self, request: web.Request) -> web.Response:
        closed = self.counters.connections_closed
        closed["evicted"], closed["refused"] = self.guard.evicted, self.guard.refused
        text = metrics.render(
            self.views, self.counters, self.metrics_sources(), chargers=self.chargers
        )
        return web.Response(body=text.encode(), headers={"Content-Type": metrics.CONTENT_TYPE})

    async def inverters(self, request: web.Request) -> web.Response:
        out = []
        for index, view in enumerate(self.views):
            model = view.model
            out.append(
                {
                    "index": index,
                    "serial": view.serial,
                    "name": view.name,
                    "model": model.name if model else None,
                    "prefix": "" if index == 0 else f"/{view.serial or view.name}",
                    "online": view.health().online,
                }
            )
        return web.json_response({"inverters": out}, dumps=_dumps)

    async def functions(self, request: web.Request) -> web.Response:
        view = self.target(request)
        catalogue = view.catalogue()
        model = view.model
        routers = {
            r.name: {"target": r.target, "slots": r.count(Layout(model)) if model else None}
            for r in catalogue.routers.values()
        }
        body = {
            "serial": view.serial,
            "model": model.name if model else None,
            "functions": [fn.describe(model) for fn in catalogue],
            "aliases": dict(catalogue.aliases),
            "routers": routers,
        }
        return web.json_response(body, dumps=_dumps)

    def openapi_doc(self) -> dict[str, Any]:
        view = self.views[0]
        model = view.model
        layout = view.snapshot.layout if view.snapshot is not None else TreeLayout.GIVTCP3
        key = (model.name if model else None, self._token is not None, layout)
        if key not in self._openapi:
            # Imported on the first request: the daemon does not carry it (and ``html``) before.
            from givtcp_async.sinks.openapi import build_openapi

            self._openapi[key] = build_openapi(
                view.catalogue(), model=model, auth=self._token is not None, layout=layout,
                chargers=bool(self.chargers),
            )  # fmt: skip
        return self._openapi[key]

    async def openapi(self, request: web.Request) -> web.Response:
        return web.json_response(self.openapi_doc(), dumps=_dumps)

    async def docs(self, request: web.Request) -> web.Response:
        from givtcp_async.sinks.openapi import docs_html

        return web.Response(text=docs_html(self.openapi_doc()), content_type="text/html",
                            headers={"Content-Security-Policy": DOCS_CSP})  # fmt: skip

    async def dashboard(self, request: web.Request) -> web.Response:
        return self._asset_response("index.html", "text/html")

    async def asset(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in ASSETS:
            raise ApiError(404, "not found", f"no dashboard file {name!r}")
        return self._asset_response(name, ASSETS[name])

    def _asset_response(self, name: str, content_type: str) -> web.Response:
        if name not in self._assets:
            self._assets[name] = _asset(name)
        headers = {"Content-Security-Policy": DASHBOARD_CSP, "Cache-Control": "no-cache"}
        return web.Response(body=self._assets[name], content_type=content_type,
                            charset="utf-8", headers=headers)  # fmt: skip

    # --- server-sent events --------------------------------------------------------------------

    async def events(self, request: web.Request) -> web.StreamResponse:
        view = self.target(request)
        if self.counters.event_clients >= self.guard.max_connections // 2:
            # Streams hold their connection for good: half the connections stay for the rest.
            raise ApiError(503, "too many event streams",
                           f"{self.counters.event_clients} event streams are open; try later",
                           headers={"Retry-After": "30"})  # fmt: skip
        resp = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-store",
                "X-Accel-Buffering": "no",
            }
        )
        await resp.prepare(request)
        if request.method == "HEAD":
            return resp
        latest: asyncio.Queue[Snapshot] = asyncio.Queue(maxsize=1)

        async def pump() -> None:
            async for snap in view.updates():
                if latest.full():
                    latest.get_nowait()
                latest.put_nowait(snap)

        tasks: set[asyncio.Future[Any]] = set()
        pumper = asyncio.ensure_future(pump())
        closing = asyncio.ensure_future(self._closing.wait())
        tasks |= {pumper, closing}
        self.counters.event_clients += 1
        try:
            await resp.write(b"retry: 3000\n\n")
            await self._send(resp, "health", health_of(view))
            while not self._closing.is_set():
                getter = asyncio.ensure_future(latest.get())
                tasks.add(getter)
                await asyncio.wait(
                    {getter, closing, pumper},
                    timeout=self.ping_interval,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if getter.done():
                    await self._send(resp, "snapshot", self._snapshot_event(view, getter.result()))
                elif closing.done() or pumper.done():
                    break
                else:
                    await self._send(resp, "health", health_of(view))
                getter.cancel()
                tasks.discard(getter)
        except (ConnectionError, RuntimeError):
            pass  # the client went away (RuntimeError: aiohttp refuses writes after close)
        finally:
            self.counters.event_clients -= 1
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        return resp

    @staticmethod
    def _snapshot_event(view: InverterView, snap: Snapshot) -> dict[str, Any]:
        return {
            "serial": snap.serial,
            "taken_at": snap.taken_at.isoformat(),
            "family": snap.model.family.value,
            "runAll": snap.runall(),
            **snap.quality(),
            "health": health_of(view),
        }

    @staticmethod
    async def _send(resp: web.StreamResponse, event: str, data: Any) -> None:
        await resp.write(f"event: {event}\ndata: {_dumps(data)}\n\n".encode())

    # --- control routes ------------------------------------------------------------------------

    async def wrong_method(self, request: web.Request) -> web.Response:
        """GET on a control route: control is POST only (GET must never change anything)."""
        name = request.match_info["function"]
        charger = self.charger_target(request, name)
        if charger is None:
            view = self.target(request)
            if name not in view.catalogue():
                raise ApiError(404, "not found", f"no route {request.path}; see /docs")
        elif not _is_charger_function(name):
            raise ApiError(404, "not found", f"no route {request.path}; see /docs")
        raise ApiError(
            405,
            "method not allowed",
            f"{name} is a control function: call it with POST (GET never changes anything)",
            headers={"Allow": "POST"},
        )

    async def control(self, request: web.Request) -> web.Response:
        name = request.match_info["function"]
        if name.lower() in GET_ROUTES:
            raise ApiError(405, "method not allowed", f"/{name} is read with GET",
                           headers={"Allow": "GET, HEAD"})  # fmt: skip
        self.authorise(request)
        charger = self.charger_target(request, name)
        if charger is not None:
            return await self._charger_command(request, charger, name)
        view = self.target(request)
        catalogue = view.catalogue()
        if name not in catalogue:
            raise ApiError(
                404,
                "unknown function",
                f"{name!r} is not a control function; GET /functions lists them (and /docs)",
                function=name,
                functions="/functions",
            )
        if self._waiting >= MAX_WAITING_COMMANDS:
            raise ApiError(
                503,
                "too many commands",
                f"{MAX_WAITING_COMMANDS} commands are already waiting; nothing written, try again",
                headers={"Retry-After": "5"},
            )
        self._waiting += 1
        started = time.perf_counter()
        try:
            raw = await self._payload(request, name, catalogue)
            if isinstance(raw, CommandResult):
                result = raw
            elif not await view.link_up(self.connect_wait):
                # Waited briefly for a link that is down (reconnecting) rather than queue for 30 s.
                result = CommandResult(
                    function=raw_name(catalogue, name),
                    status="failed",
                    message=f"{name}: the inverter is not connected (waited "
                    f"{self.connect_wait:g} s); nothing written",
                    at=view.now().astimezone(UTC),
                )
            else:
                result = await view.execute(name, raw)
        finally:
            self._waiting -= 1
        elapsed = time.perf_counter() - started
        health = view.health()
        status = http_status(result, reachable=health.connected and health.detected)
        serial = metrics.inverter_label(view)
        self.counters.command(serial, result.function, result.status, elapsed)
        log.info("REST command", function=result.function, status=result.status, http=status,
                 serial=view.serial, ms=round(elapsed * 1000, 1))  # fmt: skip
        return web.json_response(result_body(result, view.serial), status=status, dumps=_dumps)

    async def _charger_command(
        self, request: web.Request, charger: ChargerView, name: str
    ) -> web.Response:
        if not _is_charger_function(name):
            raise ApiError(404, "unknown function", f"{name!r} is not a charger control function",
                           function=name)  # fmt: skip
        canonical = find_charger_function(name).name
        raw = await self._payload(request, canonical, self.views[0].catalogue())
        started = time.perf_counter()
        result = raw if isinstance(raw, CommandResult) else await charger.execute(name, raw)
        elapsed = time.perf_counter() - started
        status = http_status(result, reachable=charger.health().connected)
        self.counters.command(charger.serial or charger.address, result.function, result.status,
                              elapsed)  # fmt: skip
        log.info("REST command", function=result.function, status=result.status, http=status,
                 serial=charger.serial, ms=round(elapsed * 1000, 1))  # fmt: skip
        return web.json_response(result_body(result, charger.serial), status=status,
                                 dumps=_dumps)  # fmt: skip

    @staticmethod
    async def _payload(
        request: web.Request, name: str, catalogue: Catalogue
    ) -> str | dict[str, Any] | CommandResult | None:
        """The body as a payload (any content type), or a rejection when it cannot be read."""
        function = raw_name(catalogue, name)

        def refuse(message: str, value: Any, allowed: str) -> CommandResult:
            errors = [{"field": "payload", "value": value, "allowed": allowed, "message": message}]
            return rejected(function, f"{function}: {message}", errors)

        try:
            async with asyncio.timeout(BODY_TIMEOUT):
                body = await request.read()
        except TimeoutError:
            raise ApiError(408, "request timeout",
                           f"the body did not arrive within {BODY_TIMEOUT:g} s; nothing written",
                           headers={"Connection": "close"}) from None  # fmt: skip
        except web.RequestPayloadError:  # e.g. a Content-Encoding the body is not in
            encoding = request.headers.get("Content-Encoding")
            return refuse("payload cannot be decoded as sent", f"Content-Encoding: {encoding}",
                          "a body in its Content-Encoding (gzip, deflate) or plain")  # fmt: skip
        if not body.strip():
            return None
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            return refuse("payload is not UTF-8 text", repr(body[:40]), "UTF-8 text")
        stripped = text.strip()
        if not stripped:  # only Unicode whitespace (NBSP, U+3000, ...): no payload
            return None
        if stripped[0] not in "{[":
            return text
        try:
            value = decode_json(stripped)
        except ValidationFailed as err:
            return rejected(function, f"{function}: {err}", err.errors)
        if not isinstance(value, dict):
            return refuse("payload must be a JSON object or a plain value", value if len(
                stripped) <= 200 else stripped[:80], "a JSON object or a plain value")  # fmt: skip
        return value

    # --- middleware ----------------------------------------------------------------------------

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            resp = await handler(request)
        except ApiError as err:
            resp = err.response()
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            headers = {k: v for k, v in exc.headers.items()
                       if k.lower() not in ("content-type", "content-length")}  # fmt: skip
            message = exc.text or exc.reason
            if exc.status == 404:
                message = f"no route {request.path}; see /docs or /openapi.json"
            resp = web.json_response({"error": exc.reason.lower(), "message": message},
                                     status=exc.status, headers=headers)  # fmt: skip
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("REST handler failed", method=request.method, path=request.path)
            resp = web.json_response(
                {"error": "internal error", "message": "the request failed; see the daemon log"},
                status=500,
            )
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else "unmatched"
        self.counters.requests[(route, request.method, resp.status)] += 1
        if not resp.prepared:
            resp.headers.setdefault("X-Content-Type-Options", "nosniff")
            resp.headers.setdefault("Cache-Control", "no-store")
        return resp


def build_app(service: RestService) -> web.Application:
    app = web.Application(
        middlewares=[service.guard.middleware, service.middleware], client_max_size=MAX_BODY
    )
    r = app.router
    r.add_get("/", service.dashboard)
    r.add_get("/dashboard/{name}", service.asset)
    r.add_get("/health", service.health)
    r.add_get("/metrics", service.metrics_text)
    r.add_get("/openapi.json", service.openapi)
    r.add_get("/docs", service.docs)
    r.add_get("/inverters", service.inverters)
    r.add_get("/functions", service.functions)
    r.add_get("/events", service.events)
    for route in DATA_ROUTES:
        r.add_get(f"/{route}", service.runall)
    r.add_get(f"/{CHARGER_ROUTE}", service.charger_cache)

    cache_views = {"showdata": service.showdata, "fullCache": service.full_cache,
                   "api": service.api}  # fmt: skip
    for route, handler in cache_views.items():
        r.add_get(f"/{route}", handler)
    r.add_post("/{function}", service.control)
    r.add_get("/{function}", service.wrong_method)
    for route in DATA_ROUTES:
        r.add_get(f"/{{serial}}/{route}", service.runall)
    r.add_get(f"/{{serial}}/{CHARGER_ROUTE}", service.charger_cache)

    for route, handler in cache_views.items():
        r.add_get(f"/{{serial}}/{route}", handler)
    r.add_get("/{serial}/functions", service.functions)
    r.add_get("/{serial}/events", service.events)
    r.add_post("/{serial}/{function}", service.control)
    r.add_get("/{serial}/{function}", service.wrong_method)

    async def on_shutdown(_app: web.Application) -> None:
        service._closing.set()  # event streams end at once

    app.on_shutdown.append(on_shutdown)
    return app


def rest_service(
    config: RestConfig,
    views: Sequence[InverterView],
    links: Links,
    *,
    chargers: Sequence[ChargerView] = (),
) -> RestService | None:
    """The daemon's service factory: a :class:`RestService` when ``rest.enabled``; /metrics
    includes the counters of the daemon's other services (InfluxDB, MQTT)."""
    if not config.enabled:
        return None
    return RestService(
        config, views, metrics_sources=lambda: list(links.metrics_sources), chargers=chargers
    )
