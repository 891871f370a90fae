"""TLS client contexts that load the system's CA certificates only when a connection needs them.

Loading the CA bundle into a context costs OpenSSL ~2 MiB of heap. aiohttp builds two default
client contexts (one verifying, one not) when it is imported, and the InfluxDB client builds one
more when it starts, whether or not anything is ever sent over TLS: a daemon serving REST over
plain HTTP and writing to an ``http://`` InfluxDB never uses them (issue #16).

:class:`CertsOnFirstUse` is what :func:`ssl.create_default_context` makes for a client (the same
protocol, verification and host-name check, ``SSLKEYLOGFILE`` honoured) except that the default
certificates are loaded just before its first handshake (or the first look at its store), so
every connection it makes verifies exactly as before. :func:`import_aiohttp` imports aiohttp with
its default contexts made that way (the one that verifies nothing gets no CA paths: it never
looks at them), and, for a daemon that serves REST but sends nothing over HTTP (no InfluxDB),
only aiohttp's server half.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.machinery
import importlib.util
import mimetypes
import os
import re
import ssl
import sys
import threading
import types
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["CertsOnFirstUse", "client_context", "import_aiohttp"]


class CertsOnFirstUse(ssl.SSLContext):
    """A client context like :func:`ssl.create_default_context`'s; see the module docstring."""

    _certs_pending: bool

    def __new__(cls) -> CertsOnFirstUse:
        return super().__new__(cls, ssl.PROTOCOL_TLS_CLIENT)

    def __init__(self) -> None:
        super().__init__()
        self.verify_mode = ssl.CERT_REQUIRED
        self.check_hostname = True
        if sys.version_info >= (3, 13):  # what create_default_context adds from 3.13 on
            self.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN | ssl.VERIFY_X509_STRICT
        self._certs_pending = True
        keylog = os.environ.get("SSLKEYLOGFILE")
        if keylog and not sys.flags.ignore_environment:
            self.keylog_filename = keylog

    def _load_certs(self) -> None:
        if self._certs_pending:
            self._certs_pending = False
            self.load_default_certs(ssl.Purpose.SERVER_AUTH)

    def wrap_socket(self, *args: Any, **kwargs: Any) -> ssl.SSLSocket:
        self._load_certs()
        return super().wrap_socket(*args, **kwargs)

    def wrap_bio(self, *args: Any, **kwargs: Any) -> ssl.SSLObject:
        self._load_certs()
        return super().wrap_bio(*args, **kwargs)

    def get_ca_certs(self, binary_form: bool = False) -> Any:
        self._load_certs()
        return super().get_ca_certs(binary_form)

    def cert_store_stats(self) -> dict[str, int]:
        self._load_certs()
        return super().cert_store_stats()


def client_context(
    purpose: ssl.Purpose = ssl.Purpose.SERVER_AUTH,
    *,
    cafile: Any = None,
    capath: Any = None,
    cadata: Any = None,
) -> ssl.SSLContext:
    """:func:`ssl.create_default_context`, with the default certificates loaded on first use
    (a context for another purpose, or with its own CA files, is made as it always is)."""
    if purpose is not ssl.Purpose.SERVER_AUTH or cafile or capath or cadata:
        return _create_default_context(purpose, cafile=cafile, capath=capath, cadata=cadata)
    return CertsOnFirstUse()


_create_default_context: Callable[..., ssl.SSLContext] = ssl.create_default_context
_set_default_verify_paths = ssl.SSLContext.set_default_verify_paths
_lock = threading.RLock()


def import_aiohttp(*, client: bool = True) -> None:
    """Import aiohttp (once) without loading CA certificates into its default contexts.

    ``client=False`` (REST without InfluxDB): only the server half, ``aiohttp.web``, is imported
    (see :func:`_import_server_half`); the client half follows, the same way, as soon as anything
    asks the package for a name its ``__init__`` would have bound."""
    module = sys.modules.get("aiohttp")
    if module is not None:
        if client and isinstance(module, _ServerHalf):
            module.complete()
        return
    _import_frozenlist()
    with _without(_WEBSOCKET_READER_C):
        if not client and _import_server_half():
            return
        with _lazy_certificates():
            importlib.import_module("aiohttp")


_FROZENLIST_SWITCH = "FROZENLIST_NO_EXTENSIONS"


def _import_frozenlist() -> None:
    """Import ``frozenlist`` (aiohttp's signals and aiosignal use its ``FrozenList``) with its
    pure-Python class, through the library's own switch, set only while it is imported.

    Its compiled class is C++ and maps ``libstdc++`` (~1 MiB of RSS) that nothing else in the
    daemon loads; the class holds an app's few signal handlers and middlewares, so the
    pure-Python one (the same API) costs nothing measurable. A switch already set is left alone."""
    if "frozenlist" in sys.modules or _FROZENLIST_SWITCH in os.environ:
        return
    os.environ[_FROZENLIST_SWITCH] = "1"
    try:
        importlib.import_module("frozenlist")
    finally:
        del os.environ[_FROZENLIST_SWITCH]


@contextlib.contextmanager
def builtin_mime_types() -> Iterator[None]:
    """While the outputs import: creating a :class:`mimetypes.MimeTypes` does not also build the
    module's own database from the system's table (``/etc/mime.types``, ~2,000 types, ~0.4 MiB
    of strings that would stay live).

    aiohttp's server creates one at import (its file-response table, which holds Python's
    built-in types either way); that creation is what initialises the module's database as a
    side effect. The database is built as always on first use (``mimetypes.guess_type``)."""
    if mimetypes.inited:
        yield
        return
    mimetypes.inited = True  # what MimeTypes() consults before initialising the module
    try:
        yield
    finally:
        mimetypes.inited = False


# aiohttp's compiled WebSocket frame reader (~0.3 MiB mapped): nothing of the daemon speaks
# WebSocket, and aiohttp falls back to its own pure-Python reader when the compiled one is
# missing, as on a platform without it.
_WEBSOCKET_READER_C = "aiohttp._websocket.reader_c"


@contextlib.contextmanager
def _without(name: str) -> Iterator[None]:
    """While aiohttp imports: module ``name`` fails to import, as a missing one does."""
    if name in sys.modules:
        yield
        return
    sys.modules[name] = None  # type: ignore[assignment]
    try:
        yield
    finally:
        if sys.modules.get(name, ...) is None:
            del sys.modules[name]


@contextlib.contextmanager
def _lazy_certificates() -> Iterator[None]:
    """While aiohttp's client half is imported: :func:`client_context` for
    :func:`ssl.create_default_context`, and no CA paths for a context that verifies nothing."""
    importer = threading.get_ident()

    def verify_paths(context: ssl.SSLContext) -> None:
        # aiohttp's context that verifies nothing never looks at CA paths: skip them there.
        if threading.get_ident() == importer and context.verify_mode == ssl.CERT_NONE:
            return
        _set_default_verify_paths(context)

    own = ssl.SSLContext.__dict__.get("set_default_verify_paths")
    with _lock:
        ssl.create_default_context = client_context
        setattr(ssl.SSLContext, "set_default_verify_paths", verify_paths)  # noqa: B010
        try:
            yield
        finally:
            ssl.create_default_context = _create_default_context
            if own is None:
                del ssl.SSLContext.set_default_verify_paths  # the C method shows through again
            else:
                setattr(ssl.SSLContext, "set_default_verify_paths", own)  # noqa: B010


_VERSION = re.compile(r"""^__version__\s*=\s*["']([^"']+)["']""", re.MULTILINE)


class _ServerHalf(types.ModuleType):
    """The ``aiohttp`` package before its ``__init__`` has run (:func:`_import_server_half`).

    Submodules import as usual (the package's path is set); any other name (``ClientSession``,
    ``ClientError``, ...) runs the real ``__init__`` in this same module first, with the
    certificates of its default client contexts deferred, so the package is then exactly what an
    ordinary ``import aiohttp`` gives."""

    def complete(self) -> None:
        with _lazy_certificates():
            if type(self) is _ServerHalf:  # not completed meanwhile by another thread
                self.__class__ = types.ModuleType  # type: ignore[assignment]
                loader = self.__spec__.loader if self.__spec__ is not None else None
                if loader is None:
                    raise ImportError("aiohttp's package has no loader", name="aiohttp")
                loader.exec_module(self)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or importlib.machinery.PathFinder.find_spec(
            f"aiohttp.{name}", self.__path__
        ):  # a submodule (``from . import hdrs``) is imported by the import system itself
            raise AttributeError(name)
        self.complete()
        return getattr(self, name)


def _import_server_half() -> bool:
    """Import ``aiohttp.web`` without running aiohttp's package ``__init__``, which imports the
    whole client too (connector, tracing, cookie jar, client requests and websockets: ~3.8 MiB
    a daemon serving REST without InfluxDB never uses; issue #16). False (nothing of aiohttp
    left imported) when the server half cannot be imported that way, e.g. a later aiohttp whose
    server modules need a name the ``__init__`` binds."""
    spec = importlib.util.find_spec("aiohttp")
    if spec is None or spec.origin is None or spec.submodule_search_locations is None:
        return False
    with open(spec.origin, encoding="utf-8") as file:
        version = _VERSION.search(file.read())
    if version is None:
        return False
    module = _ServerHalf("aiohttp")
    module.__file__ = spec.origin
    module.__path__ = list(spec.submodule_search_locations)
    module.__spec__ = spec
    module.__loader__ = spec.loader
    module.__package__ = "aiohttp"
    module.__version__ = version.group(1)  # type: ignore[attr-defined]  # aiohttp.http imports it
    sys.modules["aiohttp"] = module
    try:
        importlib.import_module("aiohttp.web")
    except (ImportError, AttributeError, OSError, SyntaxError):
        for name in [n for n in sys.modules if n == "aiohttp" or n.startswith("aiohttp.")]:
            del sys.modules[name]
        return False
    return True
