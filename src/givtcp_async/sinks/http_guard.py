"""What the REST server lets in: the name it is reached by, the clients that may control without a
token, and how many connections it holds open.

* :class:`HostRule` - a DNS-rebinding page reaches the server under the attacker's own name, so
  without a token a control request must name the server by its bind address, a loopback name,
  an IP literal, this machine's host name or a configured ``rest.allowed_hosts`` entry (else
  421).
* :class:`ClientRule` - without a token, control is accepted from loopback and ``rest.allow_from``
  networks only (private ranges by default, as GivTCP's add-on allowed; else 403).
* :class:`ConnectionGuard` - at most ``rest.max_connections`` connections are held: a new one
  beyond it closes the oldest idle one (a client that connected and sent no complete request),
  so idle or slow sockets can never starve ``/health``; one that finds every connection busy is
  closed at once. Idle connections are also closed after :data:`HEADER_TIMEOUT`.
* :class:`AcceptErrorLimiter` - the event loop's "accept() out of system resource" reports come
  at most once a minute, with the count of those held back, so they cannot flood the log.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final

import structlog
from aiohttp import web

log = structlog.get_logger(__name__)

HEADER_TIMEOUT: Final = 15.0  # seconds a connection may stay without a complete request
BODY_TIMEOUT: Final = 10.0  # seconds a control request's body may take to arrive
ACCEPT_REPORT_EVERY: Final = 60.0
LOOPBACK_NAMES: Final = frozenset({"localhost", "localhost.localdomain", "ip6-localhost",
                                   "ip6-loopback"})  # fmt: skip
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def host_name(header: str) -> str:
    """The name in a Host header, without port or IPv6 brackets, in lower case."""
    text = header.strip().lower()
    if text.startswith("["):
        return text[1:].partition("]")[0]
    if text.count(":") == 1:
        text = text.partition(":")[0]
    return text.rstrip(".")


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def client_address(remote: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The peer address (an IPv4-mapped IPv6 one as IPv4); None when unknown (a Unix socket)."""
    if not remote:
        return None
    try:
        address = ipaddress.ip_address(remote.partition("%")[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class HostRule:
    """Which names a control request may reach this server under (see the module docstring)."""

    def __init__(self, bind_host: str, allowed_hosts: Iterable[str] = ()) -> None:
        own = socket.gethostname().lower()
        self.names = {host_name(bind_host), own, f"{own}.local", *LOOPBACK_NAMES}
        self.names |= {host_name(h) for h in allowed_hosts}

    def allows(self, header: str | None) -> bool:
        if not header:  # HTTP/1.0 without Host: nothing to rebind
            return True
        name = host_name(header)
        return _is_ip(name) or name in self.names or name.endswith(".localhost")


class ClientRule:
    """Which clients may control without a token: loopback and ``networks``."""

    def __init__(self, networks: Sequence[IpNetwork]) -> None:
        self.networks = tuple(networks)

    def allows(self, remote: str | None) -> bool:
        address = client_address(remote)
        if address is None:
            return remote is None  # a Unix socket has no address to check
        return address.is_loopback or any(address in net for net in self.networks)

    def describe(self) -> str:
        return ", ".join(str(n) for n in self.networks) or "nowhere else"


class _Refuse(asyncio.Protocol):
    """A connection that arrived with every slot busy: closed at once."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.abort()


class ConnectionGuard:
    """Caps the server's open connections (see the module docstring); counts what it closed."""

    def __init__(self, max_connections: int) -> None:
        self.max_connections = max_connections
        self.busy: set[object] = set()  # request handlers (protocols) serving a request now
        self.evicted = 0
        self.refused = 0

    def factory(self, server: web.Server) -> Callable[[], asyncio.BaseProtocol]:
        """A protocol factory for ``loop.create_server`` in front of aiohttp's ``server``."""

        loop = asyncio.get_running_loop()
        # Handlers made but not yet registered by the server (their connection_made runs soon
        # after; a burst of accepts makes many first), with when they were made.
        made: list[tuple[object, float]] = []

        def make() -> asyncio.BaseProtocol:
            registered = server.connections  # oldest first
            known = set(registered)
            now = loop.time()
            made[:] = [(h, t) for h, t in made if h not in known and now - t < 1.0]
            open_ = [c for c in registered if c.transport is not None]
            if len(open_) + len(made) >= self.max_connections:
                idle = next((c for c in open_ if c not in self.busy), None)
                if idle is None:
                    self.refused += 1
                    return _Refuse()
                idle.force_close()
                self.evicted += 1
            handler = server()
            made.append((handler, now))
            return handler

        return make

    @web.middleware
    async def middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        """Marks the connection busy while a request on it is being answered."""
        protocol = request.protocol
        self.busy.add(protocol)
        try:
            response: web.StreamResponse = await handler(request)
            return response
        finally:
            self.busy.discard(protocol)


class GuardedSite(web.TCPSite):
    """A TCP site whose connections pass through a :class:`ConnectionGuard`."""

    def __init__(
        self, runner: web.BaseRunner, host: str, port: int, *, guard: ConnectionGuard
    ) -> None:
        super().__init__(runner, host, port, reuse_address=True)
        self._guard = guard

    async def start(self) -> None:
        await web.BaseSite.start(self)
        server = self._runner.server
        assert isinstance(server, web.Server)
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._guard.factory(server),
            self._host,
            self._port,
            backlog=self._backlog,
            reuse_address=self._reuse_address,
        )
        sockets = self._server.sockets
        self._bound_port = sockets[0].getsockname()[1] if sockets else self._port


class AcceptErrorLimiter:
    """An event-loop exception handler passing everything on except "accept() out of system
    resource", which is logged at most once every :data:`ACCEPT_REPORT_EVERY` seconds."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._previous = loop.get_exception_handler()
        self._next_report = 0.0
        self.held_back = 0

    def __enter__(self) -> AcceptErrorLimiter:
        self._loop.set_exception_handler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.set_exception_handler(self._previous)

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if "out of system resource" not in str(context.get("message", "")):
            if self._previous is not None:
                self._previous(loop, context)
            else:
                loop.default_exception_handler(context)
            return
        now = time.monotonic()
        if now < self._next_report:
            self.held_back += 1
            return
        self._next_report = now + ACCEPT_REPORT_EVERY
        error = context.get("exception")
        log.error("REST cannot accept connections: out of file descriptors or memory",
                  error=str(error), held_back=self.held_back)  # fmt: skip
        self.held_back = 0
