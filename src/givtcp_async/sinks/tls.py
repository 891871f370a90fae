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
looks at them).
"""

from __future__ import annotations

import importlib
import os
import ssl
import sys
import threading
from collections.abc import Callable
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
_lock = threading.Lock()


def import_aiohttp() -> None:
    """Import aiohttp (once) without loading CA certificates into its default contexts."""
    if "aiohttp" in sys.modules:
        return
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
            importlib.import_module("aiohttp")
        finally:
            ssl.create_default_context = _create_default_context
            if own is None:
                del ssl.SSLContext.set_default_verify_paths  # the C method shows through again
            else:
                setattr(ssl.SSLContext, "set_default_verify_paths", own)  # noqa: B010
