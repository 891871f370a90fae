#!/usr/bin/env python3
"""The add-on's entry point: Home Assistant's options become givtcp-async's settings.

Reads the options the Supervisor wrote (``/data/options.json``), turns them into ``GIVTCP_*``
variables (the project's own settings, so ``givtcp-async config check`` shows the result),
takes the broker from the Supervisor's MQTT service (the Mosquitto add-on) when no
``mqtt_host`` is set, and replaces itself with ``givtcp-async run``. Standard library only: it
runs in the image before anything else. A bad option stops the add-on with one line on stderr.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

OPTIONS = Path(os.environ.get("GIVTCP_ADDON_OPTIONS", "/data/options.json"))
SUPERVISOR = os.environ.get("GIVTCP_ADDON_SUPERVISOR", "http://supervisor")
LOG_LEVELS = {"debug": "DEBUG", "info": "INFO", "warning": "WARNING", "error": "ERROR",
              "critical": "CRITICAL"}  # fmt: skip
_INVERTER_KEYS = ("host", "port", "name", "serial", "num_batteries")


class OptionError(ValueError):
    """An option the add-on cannot use."""


def _given(value: Any) -> bool:
    return value is not None and value != ""


def supervisor_mqtt(token: str, base: str = SUPERVISOR, timeout: float = 5.0) -> dict[str, Any]:
    """The Supervisor's MQTT service (host, port, username, password, ssl), or {} when no
    add-on provides one (the Supervisor answers 400) or the Supervisor cannot be reached."""
    request = urllib.request.Request(
        f"{base}/services/mqtt", headers={"Authorization": f"Bearer {token}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            body = json.load(resp)
    except (urllib.error.URLError, OSError, ValueError):
        return {}
    data = body.get("data") if isinstance(body, dict) else None
    return data if isinstance(data, dict) and body.get("result") == "ok" else {}


def environment(options: Mapping[str, Any], broker: Mapping[str, Any]) -> dict[str, str]:
    """The ``GIVTCP_*`` variables for ``options``; ``broker`` is the Supervisor's MQTT service
    ({} for none), used only when ``mqtt_host`` is empty."""
    inverters = []
    for i, raw in enumerate(options.get("inverters") or []):
        entry = {k: raw[k] for k in _INVERTER_KEYS if _given(raw.get(k))}
        if "host" not in entry:
            raise OptionError(f"inverters[{i}].host: required (the dongle's address)")
        entry["poll_interval"] = options.get("poll_interval", 15)
        entry["settings_interval"] = options.get("settings_interval", 120)
        inverters.append(entry)
    if not inverters:
        raise OptionError("inverters: add at least one inverter with its host")
    env = {
        "GIVTCP_INVERTERS": json.dumps(inverters),
        "GIVTCP_LOGGING__LEVEL": LOG_LEVELS.get(str(options.get("log_level", "info")), "INFO"),
        "GIVTCP_DATA__PRINT_RAW": _bool(options.get("print_raw", False)),
    }
    mqtt: dict[str, Any] = {}
    if _given(options.get("mqtt_host")):
        mqtt = {
            "host": options["mqtt_host"],
            "port": options.get("mqtt_port", 1883),
            "username": options.get("mqtt_username"),
            "password": options.get("mqtt_password"),
        }
    elif broker.get("host"):
        mqtt = {k: broker.get(k) for k in ("host", "port", "username", "password")}
        if broker.get("ssl"):
            env["GIVTCP_MQTT__TLS__ENABLED"] = "true"
    if mqtt:
        for key, value in mqtt.items():
            if _given(value):
                env[f"GIVTCP_MQTT__{key.upper()}"] = str(value)
        env["GIVTCP_MQTT__TOPIC"] = str(options.get("mqtt_topic") or "GivEnergy")
        env["GIVTCP_MQTT__RETAIN"] = _bool(options.get("mqtt_retain", True))
        env["GIVTCP_MQTT__DISCOVERY"] = _bool(options.get("discovery", True))
        env["GIVTCP_MQTT__DISCOVERY_FORMAT"] = str(options.get("discovery_format") or "device")
        env["GIVTCP_MQTT__TIME_ENTITIES"] = str(options.get("time_entities") or "auto")
        env["GIVTCP_MQTT__TIME_STEP"] = str(options.get("time_step") or 5)
    else:
        env["GIVTCP_MQTT__ENABLED"] = "false"
    if _given(options.get("influx_url")):
        env["GIVTCP_INFLUX__URL"] = str(options["influx_url"])
        for key in ("token", "org", "bucket"):
            if _given(options.get(f"influx_{key}")):
                env[f"GIVTCP_INFLUX__{key.upper()}"] = str(options[f"influx_{key}"])
    if _given(options.get("rest_token")):
        env["GIVTCP_REST__TOKEN"] = str(options["rest_token"])
    return env


def _bool(value: Any) -> str:
    return "true" if value in (True, "true", "True", 1, "1") else "false"


def main() -> None:
    try:
        options = json.loads(OPTIONS.read_text())
        broker: dict[str, Any] = {}
        token = os.environ.get("SUPERVISOR_TOKEN", "")
        if not _given(options.get("mqtt_host")) and token:
            broker = supervisor_mqtt(token)
            if not broker:
                note = "no MQTT broker set and the Supervisor offers none (install Mosquitto)"
                print(f"givtcp-addon: {note}: MQTT is off", file=sys.stderr)
        env = environment(options, broker)
    except (OSError, ValueError) as err:
        print(f"givtcp-addon: {err}", file=sys.stderr)
        raise SystemExit(2) from err
    os.execvpe("givtcp-async", ["givtcp-async", "run"], {**os.environ, **env})


if __name__ == "__main__":
    main()
