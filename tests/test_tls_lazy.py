"""TLS client contexts that load the CA certificates on first use (issue #16): the same settings
and the same certificate store as :func:`ssl.create_default_context` once used, and aiohttp
imported through :func:`import_aiohttp` holds no certificates until a connection needs them."""

from __future__ import annotations

import json
import ssl
import subprocess
import sys

from givtcp_async.sinks.tls import CertsOnFirstUse, client_context


def test_a_lazy_context_is_the_default_context_once_used() -> None:
    lazy, eager = client_context(), ssl.create_default_context()
    assert isinstance(lazy, CertsOnFirstUse)
    for attr in ("protocol", "verify_mode", "check_hostname", "options", "verify_flags",
                 "minimum_version", "maximum_version"):  # fmt: skip
        assert getattr(lazy, attr) == getattr(eager, attr), attr
    assert lazy._certs_pending
    lazy.wrap_bio(ssl.MemoryBIO(), ssl.MemoryBIO(), server_hostname="example.invalid")
    assert not lazy._certs_pending
    assert lazy.cert_store_stats() == eager.cert_store_stats()
    assert lazy.get_ca_certs() == eager.get_ca_certs()


def test_a_context_with_its_own_ca_or_purpose_is_made_as_always() -> None:
    server = client_context(ssl.Purpose.CLIENT_AUTH)
    assert not isinstance(server, CertsOnFirstUse)
    assert server.protocol == ssl.PROTOCOL_TLS_SERVER


_PROBE = """
import json, ssl, sys
from givtcp_async.sinks.tls import CertsOnFirstUse, import_aiohttp
before = ssl.create_default_context
import_aiohttp()
from aiohttp import connector
verified, unverified = connector._SSL_CONTEXT_VERIFIED, connector._SSL_CONTEXT_UNVERIFIED
print(json.dumps({
    "lazy": isinstance(verified, CertsOnFirstUse) and verified._certs_pending,
    "verify_mode": int(verified.verify_mode), "check_hostname": verified.check_hostname,
    "unverified_mode": int(unverified.verify_mode),
    "unverified_certs": unverified.cert_store_stats()["x509_ca"],
    "restored": ssl.create_default_context is before
    and "set_default_verify_paths" not in ssl.SSLContext.__dict__,
    "default_loads": ssl.create_default_context().cert_store_stats()
    == ssl.create_default_context().cert_store_stats(),
}))
"""


def test_aiohttp_imported_without_certificates_in_its_default_contexts() -> None:
    out = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True,
                         check=True, timeout=60)  # fmt: skip
    seen = json.loads(out.stdout)
    assert seen == {
        "lazy": True,
        "verify_mode": int(ssl.CERT_REQUIRED),
        "check_hostname": True,
        "unverified_mode": int(ssl.CERT_NONE),
        "unverified_certs": 0,
        "restored": True,
        "default_loads": True,
    }
