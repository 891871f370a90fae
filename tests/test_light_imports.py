"""Lighter outputs (issue #16): a daemon with MQTT and REST loads neither pymodbus nor the InfluxDB
client; TLS client contexts that load the CA certificates on first use
(the same settings and certificate store as :func:`ssl.create_default_context` once used; aiohttp
imported through :func:`import_aiohttp` holds none until a connection needs them), and the
InfluxDB client imported without its unused models, writing to a real VictoriaMetrics."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import json
import os
import signal
import ssl
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from givtcp_async.simulator.plant import Plant, PlantConfig
from givtcp_async.sinks.tls import CertsOnFirstUse, client_context
from tests.servers import Mosquitto, VictoriaMetrics, free_port
from tests.test_influx import refusing_server, stored


def pending(context: CertsOnFirstUse) -> bool:
    return context._certs_pending


def test_a_lazy_context_is_the_default_context_once_used() -> None:
    lazy, eager = client_context(), ssl.create_default_context()
    assert isinstance(lazy, CertsOnFirstUse)
    for attr in ("protocol", "verify_mode", "check_hostname", "options", "verify_flags",
                 "minimum_version", "maximum_version"):  # fmt: skip
        assert getattr(lazy, attr) == getattr(eager, attr), attr
    assert pending(lazy)
    lazy.wrap_bio(ssl.MemoryBIO(), ssl.MemoryBIO(), server_hostname="example.invalid")
    assert not pending(lazy)
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


_SERVER_HALF = """
import json, ssl, sys
from givtcp_async.sinks.tls import CertsOnFirstUse, import_aiohttp
import_aiohttp(client=False)
from aiohttp import web
server_only = not {"aiohttp.client", "aiohttp.connector", "aiohttp.tracing"} & set(sys.modules)
app = web.Application()
import aiohttp
version = aiohttp.__version__
if sys.argv[1] == "attribute":
    session = aiohttp.ClientSession  # a name of the package's __init__ completes it
else:
    import_aiohttp(client=True)
from aiohttp import connector
verified = connector._SSL_CONTEXT_VERIFIED
print(json.dumps({
    "server_only": server_only,
    "version": version,
    "client": "aiohttp.client" in sys.modules,
    "all": sorted(aiohttp.__all__) == sorted(n for n in aiohttp.__all__ if hasattr(aiohttp, n)),
    "lazy": isinstance(verified, CertsOnFirstUse) and verified._certs_pending,
    "restored": "set_default_verify_paths" not in ssl.SSLContext.__dict__,
}))
"""


@pytest.mark.parametrize("completed_by", ["attribute", "import_aiohttp"])
def test_aiohttp_server_half_alone_then_completed_like_an_ordinary_import(
    completed_by: str,
) -> None:
    """REST without InfluxDB imports aiohttp.web only; the package's ``__init__`` runs when a
    name of it is asked for (or the client is imported), with the certificates still deferred."""
    out = subprocess.run([sys.executable, "-c", _SERVER_HALF, completed_by], capture_output=True,
                         text=True, check=True, timeout=60)  # fmt: skip
    seen = json.loads(out.stdout)
    assert seen == {
        "server_only": True,
        "version": importlib.metadata.version("aiohttp"),
        "client": True,
        "all": True,
        "lazy": True,
        "restored": True,
    }


_FROZENLIST = """
import json, os, sys
from givtcp_async.sinks.tls import import_aiohttp
import_aiohttp(client=sys.argv[1] == "client")
import aiosignal, frozenlist
from aiohttp import web
maps = open(f"/proc/{os.getpid()}/maps").read()
print(json.dumps({
    "python_class": frozenlist.FrozenList is frozenlist.PyFrozenList,
    "compiled": "frozenlist._frozenlist" in sys.modules,
    "signal": issubclass(aiosignal.Signal, frozenlist.PyFrozenList),
    "app_signal": type(web.Application().on_startup) is aiosignal.Signal,
    "libstdc++": "libstdc++" in maps,
    "switch": os.environ.get("FROZENLIST_NO_EXTENSIONS"),
    "ws_reader_c": "aiohttp._websocket.reader_c" in sys.modules,
    "ws_reader": web.WebSocketResponse()._reader is None
    and __import__("aiohttp._websocket.reader", fromlist=["x"]).WebSocketReader.__module__,
}))
"""


@pytest.mark.parametrize("half", ["server", "client"])
def test_aiohttp_imported_with_the_pure_python_frozenlist_and_websocket_reader(half: str) -> None:
    """frozenlist's compiled class is C++ (libstdc++, ~1 MiB of RSS); the daemon's aiohttp uses
    the library's own pure-Python class, the switch being set only while frozenlist imports; and
    aiohttp's pure-Python WebSocket reader (nothing of the daemon speaks WebSocket)."""
    env = {k: v for k, v in os.environ.items() if k != "FROZENLIST_NO_EXTENSIONS"}
    out = subprocess.run([sys.executable, "-c", _FROZENLIST, half], capture_output=True,
                         text=True, check=True, timeout=60, env=env)  # fmt: skip
    assert json.loads(out.stdout) == {
        "python_class": True,
        "compiled": False,
        "signal": True,
        "app_signal": True,
        "libstdc++": False,
        "switch": None,
        "ws_reader_c": False,
        "ws_reader": "aiohttp._websocket.reader_py",
    }


_MIME = """
import json, mimetypes, sys
mimetypes.knownfiles = [sys.argv[2]]  # this test's system table: one type of its own
from givtcp_async.config import load_config
from givtcp_async.daemon import import_outputs
environ = {"GIVTCP_MQTT__ENABLED": "false", "INVERTOR_IP": "127.0.0.1"}
if sys.argv[1] == "client":
    environ.update(GIVTCP_INFLUX__URL="http://127.0.0.1:1", GIVTCP_INFLUX__BUCKET="b",
                   GIVTCP_INFLUX__ORG="o")
settings = load_config(None, environ=environ)
import_outputs(settings)
from aiohttp import web_fileresponse
print(json.dumps({
    "outputs": [settings.rest.enabled, settings.influx.enabled],
    "database": mimetypes._db is not None,
    "inited": mimetypes.inited,
    "aiohttp": web_fileresponse.CONTENT_TYPES.guess_type("a.json")[0],
    "module": mimetypes.guess_type("a.givtcp-test")[0],
}))
"""


@pytest.mark.parametrize("half", ["server", "client"])
def test_outputs_imported_without_the_systems_mime_table(half: str, tmp_path: Path) -> None:
    """Importing the outputs (aiohttp's server makes its file-response table, of Python's
    built-in types) does not build the mimetypes module's database from the system's table
    (~0.4 MiB of strings the daemon never uses); the module still builds it on first use."""
    table = tmp_path / "mime.types"
    table.write_text("application/x-givtcp-test givtcp-test\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIVTCP_", "MQTT_", "INFLUX"))}
    out = subprocess.run([sys.executable, "-c", _MIME, half, str(table)], capture_output=True,
                         text=True, check=True, timeout=60, env=env)  # fmt: skip
    assert json.loads(out.stdout) == {
        "outputs": [True, half == "client"],
        "database": False,
        "inited": False,
        "aiohttp": "application/json",
        "module": "application/x-givtcp-test",
    }


_DATEUTIL = """
import json, sys
from givtcp_async.sinks.influx import _client_parts
_client_parts()
import dateutil.tz
from dateutil import parser
print(json.dumps({
    "ctypes": "ctypes" in sys.modules,
    "tzwin": dateutil.tz.tzwin,
    "blocked": "dateutil.tz.win" in sys.modules,
    "parsed": parser.isoparse("2024-06-01T12:30:00+01:00").isoformat(),
}))
"""


def test_the_influx_client_imported_without_dateutils_windows_time_zones_nor_ctypes() -> None:
    """dateutil's Windows time zones fail off Windows as always (``tzwin`` None), but before
    they import ctypes; the production install (no test tools, which load colorama and ctypes)."""
    from bench.production import launcher

    argv = launcher("givtcp-async", "exec(sys.argv[1])")
    out = subprocess.run([*argv, _DATEUTIL], capture_output=True, text=True, check=True,
                         timeout=60)  # fmt: skip
    assert json.loads(out.stdout) == {
        "ctypes": False,
        "tzwin": None,
        "blocked": False,  # the block is lifted once the client is imported
        "parsed": "2024-06-01T12:30:00+01:00",
    }


_WRITER = """
import asyncio, json, sys
from givtcp_async.sinks.influx import InfluxWriter, _status, _write_errors

async def main(url: str, refusing: str) -> None:
    errors = _write_errors()  # any of the output's entry points imports the client the light way
    client = InfluxWriter(url, "t", "home", 10_000)
    await client.write("givenergy", "home", ["lazy_probe,serial=LAZY1 v=1 1700000000000"])
    await client.close()
    client = InfluxWriter(refusing, "t", "home", 10_000)
    refused = None
    try:
        await client.write("givenergy", "home", ["x v=1"])
    except errors as err:
        refused = _status(err)
    await client.close()
    loaded = [m for m in sys.modules if m.startswith("influxdb_client")]
    print(json.dumps({"refused": refused, "modules": len(loaded),
                      "models": sum(m.startswith("influxdb_client.domain.") for m in loaded),
                      "reactivex": any(m.startswith("reactivex") for m in sys.modules)}))

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


async def test_the_lazily_imported_influx_client_writes_and_reports_errors(
    victoria: VictoriaMetrics,
) -> None:
    async with refusing_server(400, "unable to parse 'x': bad") as (refusing, got):
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", _WRITER, victoria.url, refusing,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert got == [1]
    assert proc.returncode == 0, err.decode()
    seen = json.loads(out)
    assert seen["refused"] == 400  # the ApiException came through with its status
    assert seen["models"] < 50  # of ~370: only what writing needs
    assert seen["reactivex"] is False  # the batching write API's library (~1.7 MiB) never loads
    samples = await stored(victoria, "LAZY1", until=1)
    assert samples == [("lazy_probe_v", (("serial", "LAZY1"),), 1700000000000)]


_DAEMON = """
import json, sys
from givtcp_async.cli import main
code = main(["run"])
print(json.dumps({
    "code": code,
    "modules": sorted({m.split(".")[0] for m in sys.modules}),
    "aiohttp": sorted(m for m in sys.modules if m.startswith("aiohttp.")),
    "givtcp": sorted(m for m in sys.modules if m.startswith("givtcp_async.")),
    "frozenlist": sorted(m for m in sys.modules if m.startswith("frozenlist")),
}))
"""


async def test_a_daemon_with_mqtt_and_rest_loads_no_charger_or_influx_library(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    plant = Plant(PlantConfig(speed=0))
    rest = free_port()
    async with plant.simulator() as sim:
        env = {
            **os.environ,
            "GIVTCP_INVERTERS__0__HOST": "127.0.0.1",
            "GIVTCP_INVERTERS__0__PORT": str(sim.port),
            "GIVTCP_CONTROL__STATE_DIR": str(tmp_path / "state"),
            "GIVTCP_MQTT__HOST": "127.0.0.1",
            "GIVTCP_MQTT__PORT": str(mosquitto.port),
            "GIVTCP_REST__HOST": "127.0.0.1",
            "GIVTCP_REST__PORT": str(rest),
            "GIVTCP_INFLUX__ENABLED": "false",
            "GIVTCP_LOGGING__LEVEL": "WARNING",
        }
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", _DAEMON, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            async with aiohttp.ClientSession() as http, asyncio.timeout(30):
                while True:  # the first answered /runAll: every output is up and has published
                    with contextlib.suppress(aiohttp.ClientError):
                        async with http.get(f"http://127.0.0.1:{rest}/runAll") as resp:
                            if resp.status == 200:
                                break
                    await asyncio.sleep(0.05)
            proc.send_signal(signal.SIGTERM)
            out, err = await asyncio.wait_for(proc.communicate(), 15)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    seen = json.loads(out.decode().splitlines()[-1])
    assert seen["code"] == 0, err.decode()[-2000:]
    assert {"aiohttp", "aiomqtt", "pydantic"} <= set(seen["modules"])
    assert not {"pymodbus", "influxdb_client", "reactivex"} & set(seen["modules"])
    # aiohttp's server half only: no client, connector (nor its TLS contexts) or tracing
    assert "aiohttp.web" in seen["aiohttp"]
    assert not {"aiohttp.client", "aiohttp.connector", "aiohttp.tracing"} & set(seen["aiohttp"])
    assert "aiohttp._websocket.reader_c" not in seen["aiohttp"]  # its pure-Python reader
    # built on the first /openapi.json or /docs only
    assert "givtcp_async.sinks.openapi" not in seen["givtcp"]
    # no charger configured: neither the charger's modules nor its discovery
    charger = ("givtcp_async.evc", "givtcp_async.sinks.evc_discovery")
    assert not [m for m in seen["givtcp"] if m.startswith(charger)]
    # frozenlist's pure-Python class: its compiled one would map libstdc++
    assert seen["frozenlist"] == ["frozenlist"]
