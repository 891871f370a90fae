"""The Home Assistant add-on: its files against the Supervisor's rules, its options mapping, the
dashboard under the ingress path.

The Supervisor skips an add-on whose config.yaml it refuses (a warning in its log, nothing in
the store), so the rules it enforces are written down here as a JSON Schema and checked, from
home-assistant/supervisor: ``supervisor/addons/validate.py`` (``_SCHEMA_ADDON_CONFIG``,
``SCHEMA_BUILD_CONFIG``, ``RE_SERVICE``), ``supervisor/addons/options.py``
(``RE_SCHEMA_ELEMENT`` and how options are validated against the schema),
``supervisor/store/validate.py`` (``SCHEMA_REPOSITORY_CONFIG``) and ``supervisor/const.py``
(``ARCH_ALL``). No Docker engine runs here: the add-on's Dockerfile is linted with hadolint.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import tomllib
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urljoin

import aiohttp
import jsonschema_rs
import pytest
import yaml  # type: ignore[import-untyped]
from aiohttp import web

from tests.rest_support import rest_rig
from tests.servers import free_port
from tests.test_packaging import _hadolint

ROOT = Path(__file__).resolve().parents[1]
ADDON = ROOT / "ha-addon" / "givtcp-async"
CONFIG = yaml.safe_load((ADDON / "config.yaml").read_text(encoding="utf-8"))
BUILD = yaml.safe_load((ADDON / "build.yaml").read_text(encoding="utf-8"))
REPOSITORY = yaml.safe_load((ROOT / "repository.yaml").read_text(encoding="utf-8"))
BIN = Path(sys.executable).parent

# --- the Supervisor's rules --------------------------------------------------------------------

ARCH_ALL = ["aarch64", "amd64", "armhf", "armv7", "i386"]
RE_SLUG = r"^[-_.A-Za-z0-9]+$"
RE_SERVICE = r"^(mqtt|mysql):(provide|want|need)$"
RE_VERSION = r"^[^\s]+$"  # version_tag: any string without white space
RE_WEBUI = r"^(?:https?|\[PROTO:\w+\]):\/\/\[HOST\]:\[PORT:\d+\].*$"
RE_DOCKER_IMAGE_BUILD = r"^([a-zA-Z\-\.:\d{}]+/)*?([\-\w{}]+)/([\-\w{}]+)(:[\.\-\w{}]+)?$"
RE_SCHEMA_ELEMENT = re.compile(
    r"^(?:"
    r"|bool"
    r"|email"
    r"|url"
    r"|port"
    r"|device(?:\((?P<filter>subsystem=[a-z]+)\))?"
    r"|str(?:\((?P<s_min>\d+)?,(?P<s_max>\d+)?\))?"
    r"|password(?:\((?P<p_min>\d+)?,(?P<p_max>\d+)?\))?"
    r"|int(?:\((?P<i_min>-?\d+)?,(?P<i_max>-?\d+)?\))?"
    r"|float(?:\((?P<f_min>-?\d*\.?\d+)?,(?P<f_max>-?\d*\.?\d+)?\))?"
    r"|match\((?P<match>.*)\)"
    r"|list\((?P<list>.+)\)"
    r")\??$"
)
_BOOL = {"type": "boolean"}
_STR = {"type": "string"}
_PORT = {"type": "integer", "minimum": 1, "maximum": 65535}
ADDON_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["name", "version", "slug", "description", "arch"],
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "version": {"type": "string", "pattern": RE_VERSION},
        "slug": {"type": "string", "pattern": RE_SLUG},
        "description": _STR,
        "arch": {"type": "array", "items": {"enum": ARCH_ALL}, "minItems": 1},
        "url": {"type": "string", "pattern": r"^https?://"},
        "startup": {"enum": ["initialize", "system", "services", "application", "once"]},
        "boot": {"enum": ["auto", "manual", "manual_only"]},
        "init": _BOOL,
        "advanced": _BOOL,
        "stage": {"enum": ["stable", "experimental", "deprecated"]},
        "ports": {
            "type": "object",
            "propertyNames": {"pattern": r"^\d+(?:/(?:tcp|udp))?$"},
            "additionalProperties": {"anyOf": [_PORT, {"type": "null"}]},
        },
        "ports_description": {
            "type": "object",
            "propertyNames": {"pattern": r"^\d+(?:/(?:tcp|udp))?$"},
            "additionalProperties": _STR,
        },
        "webui": {
            "type": "string",
            "pattern": r"^(?:https?|\[PROTO:\w+\]):\/\/\[HOST\]:\[PORT:\d+\].*$",
        },
        "ingress": _BOOL,
        "ingress_port": {"anyOf": [_PORT, {"const": 0}]},
        "ingress_entry": _STR,
        "ingress_stream": _BOOL,
        "panel_icon": _STR,
        "panel_title": _STR,
        "panel_admin": _BOOL,
        "homeassistant": {"type": "string", "pattern": RE_VERSION},
        "host_network": _BOOL,
        "map": {"type": "array"},
        "hassio_api": _BOOL,
        "homeassistant_api": _BOOL,
        "services": {"type": "array", "items": {"type": "string", "pattern": RE_SERVICE}},
        "timeout": {"type": "integer", "minimum": 10, "maximum": 300},
        "options": {"type": "object"},
        "schema": {"anyOf": [{"type": "object"}, {"const": False}]},
        "image": {"type": "string"},
        "backup": {"enum": ["hot", "cold"]},
    },
}
BUILD_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "build_from": {
            "anyOf": [
                {"type": "string", "pattern": RE_DOCKER_IMAGE_BUILD},
                {
                    "type": "object",
                    "propertyNames": {"enum": ARCH_ALL},
                    "additionalProperties": {"type": "string", "pattern": RE_DOCKER_IMAGE_BUILD},
                },
            ]
        },
        "squash": _BOOL,
        "args": {"type": "object", "additionalProperties": _STR},
        "labels": {"type": "object", "additionalProperties": _STR},
    },
}
REPOSITORY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": _STR,
        "url": {"type": "string", "pattern": r"^https?://"},
        "maintainer": _STR,
    },
}


def _schema_elements(schema: Any, path: str = "") -> list[tuple[str, str]]:
    """Every leaf of an options schema with its path (lists hold one element or one dict)."""
    if isinstance(schema, dict):
        return [e for k, v in schema.items() for e in _schema_elements(v, f"{path}.{k}")]
    if isinstance(schema, list):
        assert len(schema) == 1, f"{path}: a list schema holds one element"
        return _schema_elements(schema[0], f"{path}[]")
    return [(path, schema)]


def option_problems(value: Any, schema: Any, path: str = "options") -> list[str]:
    """How the Supervisor's options validation (addons/options.py) would refuse ``value``."""
    if isinstance(schema, dict):
        if not isinstance(value, dict):
            return [f"{path}: not a mapping"]
        out = [f"{path}.{k}: not in the schema" for k in value if k not in schema]
        for key, element in schema.items():
            if key in value:
                out += option_problems(value[key], element, f"{path}.{key}")
            elif not (isinstance(element, str) and element.endswith("?")):
                out.append(f"{path}.{key}: required")
        return out
    if isinstance(schema, list):
        if not isinstance(value, list):
            return [f"{path}: not a list"]
        return [
            p for i, v in enumerate(value) for p in option_problems(v, schema[0], f"{path}[{i}]")
        ]
    m = RE_SCHEMA_ELEMENT.match(schema)
    assert m is not None, schema
    kind = schema.rstrip("?").split("(")[0]
    if kind == "bool":
        ok = isinstance(value, bool)
    elif kind == "port":
        ok = isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 65535
    elif kind == "int":
        lo, hi = m["i_min"], m["i_max"]
        ok = isinstance(value, int) and not isinstance(value, bool)
        ok = ok and (lo is None or value >= int(lo)) and (hi is None or value <= int(hi))
    elif kind in ("str", "password"):
        lo, hi = (m["s_min"], m["s_max"]) if kind == "str" else (m["p_min"], m["p_max"])
        ok = isinstance(value, str)
        ok = ok and (lo is None or len(value) >= int(lo)) and (hi is None or len(value) <= int(hi))
    elif kind == "list":
        ok = str(value) in m["list"].split("|")
    else:
        ok = True
    return [] if ok else [f"{path}: {value!r} is not {schema}"]


def test_config_yaml_passes_the_supervisors_add_on_schema() -> None:
    jsonschema_rs.validate(ADDON_SCHEMA, CONFIG)
    assert not [p for p, e in _schema_elements(CONFIG["schema"]) if not RE_SCHEMA_ELEMENT.match(e)]
    assert option_problems(CONFIG["options"], CONFIG["schema"]) == []
    # The MQTT service is asked for, ingress points at the REST port, state lives in /data.
    assert "mqtt:want" in CONFIG["services"]
    assert CONFIG["ingress"] is True
    assert CONFIG["ingress_port"] == 6345


def test_the_rules_would_catch_mistakes() -> None:
    broken = {**CONFIG, "slug": "givtcp async", "arch": ["x86"], "timeout": 5}
    with pytest.raises(jsonschema_rs.ValidationError):
        jsonschema_rs.validate(ADDON_SCHEMA, broken)
    assert not RE_SCHEMA_ELEMENT.match("str=GivTCP")
    assert option_problems({"mqtt_port": 70000}, {"mqtt_port": "port"})
    assert option_problems({}, {"host": "str"}) == ["options.host: required"]
    assert option_problems({"time_step": "7"}, {"time_step": "list(1|5)"})


def test_build_and_repository_files_pass_the_supervisors_schemas() -> None:
    jsonschema_rs.validate(BUILD_SCHEMA, BUILD)
    jsonschema_rs.validate(REPOSITORY_SCHEMA, REPOSITORY)
    assert set(BUILD["build_from"]) == set(CONFIG["arch"])
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert CONFIG["version"] == version
    assert BUILD["args"]["GIVTCP_PACKAGE"].endswith(f"=={version}")


def test_every_option_has_a_translation() -> None:
    texts = yaml.safe_load((ADDON / "translations" / "en.yaml").read_text(encoding="utf-8"))
    assert set(texts["configuration"]) == set(CONFIG["schema"])


def test_addon_dockerfile_passes_hadolint() -> None:
    done = subprocess.run(
        [_hadolint(), "--no-color", str(ADDON / "Dockerfile")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


# --- options -> settings -----------------------------------------------------------------------


def _mapping() -> ModuleType:
    spec = importlib.util.spec_from_file_location("givtcp_addon", ADDON / "givtcp_addon.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


addon = _mapping()


def config_check(env: dict[str, str], tmp_path: Path) -> dict[str, Any]:
    """``givtcp-async config check`` under ``env`` alone (as the add-on's process would run)."""
    done = subprocess.run(
        [str(BIN / "givtcp-async"), "config", "check"],
        env={"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), **env},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_the_default_options_with_a_host_and_the_supervisors_broker(tmp_path: Path) -> None:
    options = json.loads(json.dumps(CONFIG["options"]))  # what the Supervisor writes
    options["inverters"][0]["host"] = "192.168.1.20"
    broker = {"host": "core-mosquitto", "port": 1883, "username": "addons", "password": "pw",
              "ssl": False, "protocol": "3.1.1"}  # fmt: skip
    settings = config_check(addon.environment(options, broker), tmp_path)
    assert settings["inverters"][0]["host"] == "192.168.1.20"
    assert settings["inverters"][0]["name"] == "GivTCP"
    assert settings["inverters"][0]["poll_interval"] == 15
    mqtt = settings["mqtt"]
    assert (mqtt["enabled"], mqtt["host"], mqtt["port"]) == (True, "core-mosquitto", 1883)
    assert (mqtt["username"], mqtt["password"]) == ("addons", "***")
    assert (mqtt["time_entities"], mqtt["time_step"], mqtt["discovery"]) == ("auto", 5, True)
    assert mqtt["discovery_format"] == "device"
    assert settings["influx"]["enabled"] is False
    assert settings["logging"]["level"] == "INFO"


def test_every_option_reaches_its_setting(tmp_path: Path) -> None:
    options = {
        "inverters": [
            {"host": "10.0.0.5", "name": "GivTCP", "num_batteries": 2},
            {"host": "10.0.0.6", "name": "GivTCP2", "port": 8899, "serial": "SA2347G001"},
        ],
        "mqtt_host": "broker.lan", "mqtt_port": 8883, "mqtt_username": "ge",
        "mqtt_password": "secret", "mqtt_topic": "home/ge", "mqtt_retain": False,
        "discovery": False, "discovery_format": "entity", "time_entities": "time",
        "time_step": "1", "poll_interval": 30,
        "settings_interval": 300, "influx_url": "http://influx.lan:8086", "influx_token": "t",
        "influx_org": "home", "influx_bucket": "solar", "rest_token": "sixteen-chars-or-more",
        "print_raw": True,
        "log_level": "debug",
    }  # fmt: skip
    assert option_problems(options, CONFIG["schema"]) == []
    settings = config_check(addon.environment(options, {"host": "ignored"}), tmp_path)
    first, second = settings["inverters"]
    assert (first["host"], first["num_batteries"], first["poll_interval"]) == ("10.0.0.5", 2, 30)
    assert (second["name"], second["serial"], second["settings_interval"]) == (
        "GivTCP2",
        "SA2347G001",
        300,
    )
    mqtt = settings["mqtt"]
    assert (mqtt["host"], mqtt["port"], mqtt["topic"], mqtt["retain"]) == (
        "broker.lan",
        8883,
        "home/ge",
        False,
    )
    assert (mqtt["discovery"], mqtt["time_entities"], mqtt["time_step"]) == (False, "time", 1)
    assert mqtt["discovery_format"] == "entity"
    influx = settings["influx"]
    assert (influx["url"], influx["org"], influx["bucket"]) == (
        "http://influx.lan:8086",
        "home",
        "solar",
    )
    assert settings["rest"]["token"] == "***"
    assert settings["data"]["print_raw"] is True
    assert settings["logging"]["level"] == "DEBUG"


def test_no_broker_anywhere_turns_mqtt_off_and_a_missing_host_is_refused(tmp_path: Path) -> None:
    options = {**CONFIG["options"], "inverters": [{"host": "10.0.0.5"}]}
    assert config_check(addon.environment(options, {}), tmp_path)["mqtt"]["enabled"] is False
    with pytest.raises(addon.OptionError, match=r"inverters\[0\]\.host"):
        addon.environment(CONFIG["options"], {})  # the default's empty host


@pytest.fixture
async def supervisor() -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """A stand-in Supervisor on 127.0.0.1 answering GET /services/mqtt as the real one does."""
    state: dict[str, Any] = {"provided": True, "auth": []}

    async def mqtt(request: web.Request) -> web.Response:
        state["auth"].append(request.headers.get("Authorization"))
        if request.headers.get("Authorization") != "Bearer tok":
            return web.json_response({"result": "error", "message": "Unauthorized"}, status=401)
        if not state["provided"]:
            return web.json_response(
                {"result": "error", "message": "No mqtt service available"}, status=400
            )
        data = {"host": "core-mosquitto", "port": 1883, "ssl": False, "protocol": "3.1.1",
                "username": "addons", "password": "pw"}  # fmt: skip
        return web.json_response({"result": "ok", "data": data})

    app = web.Application()
    app.router.add_get("/services/mqtt", mqtt)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}", state
    finally:
        await runner.cleanup()


async def test_the_broker_comes_from_the_supervisors_mqtt_service(
    supervisor: tuple[str, dict[str, Any]],
) -> None:
    import asyncio

    base, state = supervisor
    found = await asyncio.to_thread(addon.supervisor_mqtt, "tok", base)
    assert (found["host"], found["username"]) == ("core-mosquitto", "addons")
    assert state["auth"] == ["Bearer tok"]
    state["provided"] = False
    assert await asyncio.to_thread(addon.supervisor_mqtt, "tok", base) == {}
    assert await asyncio.to_thread(addon.supervisor_mqtt, "wrong", base) == {}


# --- the dashboard under ingress ---------------------------------------------------------------

INGRESS = "/api/hassio_ingress/abcdef0123456789/"


async def test_the_dashboard_works_under_the_ingress_path(tmp_path: Path) -> None:
    """Home Assistant's ingress serves the add-on at /api/hassio_ingress/<token>/ and strips
    that prefix: every URL the dashboard uses must be relative to work there."""
    async with rest_rig(tmp_path) as r:

        async def proxy(request: web.Request) -> web.StreamResponse:
            tail = request.path[len(INGRESS) :]
            async with r.session.request(
                request.method, f"{r.base}/{tail}", data=await request.read()
            ) as upstream:
                body = await upstream.read()
                return web.Response(
                    body=body, status=upstream.status, content_type=upstream.content_type
                )

        app = web.Application()
        app.router.add_route("*", INGRESS + "{tail:.*}", proxy)
        runner = web.AppRunner(app)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            base = f"http://127.0.0.1:{port}{INGRESS}"
            async with aiohttp.ClientSession() as client:
                async with client.get(base) as resp:
                    assert resp.status == 200
                    html = await resp.text()
                refs = [
                    ref
                    for ref in re.findall(r'(?:href|src)="([^"#]+)"', html)
                    if not ref.startswith("data:")
                ]
                script = (ROOT / "src/givtcp_async/sinks/dashboard/dashboard.js").read_text()
                calls = re.findall(r'(?:fetch|EventSource)\((?:url\()?"([^"]+)"', script)
                assert refs
                assert {"inverters", "functions"} <= set(calls)
                for ref in [*refs, *calls]:
                    assert not ref.startswith("/"), f"{ref}: absolute, lost under ingress"
                    if ref == "events":
                        continue  # a stream: its route is checked by the REST tests
                    async with client.get(urljoin(base, ref)) as resp:
                        assert resp.status == 200, ref
        finally:
            await runner.cleanup()
