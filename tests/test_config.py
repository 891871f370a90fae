"""Configuration: sources, precedence, GivTCP's variables, rejection messages, masking, CLI."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, SecretStr

from givtcp_async.cli.common import add_config_options, config_overrides
from givtcp_async.config import (
    ControlConfig,
    DataConfig,
    InfluxConfig,
    InverterConfig,
    LoggingConfig,
    MqttConfig,
    MqttTlsConfig,
    RestConfig,
    Settings,
    TariffConfig,
    find_config_file,
    load_config,
    masked,
    secret_values,
    unused_legacy_variables,
)
from givtcp_async.connection import ConnectionSettings
from givtcp_async.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "config.example.toml"
SECRET = "s3cr3t-Pa55word-xyz"
MINIMAL = '[[inverters]]\nhost = "192.168.1.10"\n'


@pytest.fixture
def toml(tmp_path: Path) -> Callable[[str], Path]:
    def write(text: str) -> Path:
        path = tmp_path / "config.toml"
        path.write_text(text, encoding="utf-8")
        return path

    return write


def error_of(call: Callable[[], object]) -> str:
    with pytest.raises(ConfigError) as info:
        call()
    return str(info.value)


# --- sources ---------------------------------------------------------------------------------


def test_minimal_file_gives_documented_defaults(toml: Callable[[str], Path]) -> None:
    s = load_config(toml(MINIMAL), environ={})
    [inv] = s.inverters
    assert inv.host == "192.168.1.10"
    assert (inv.port, inv.name, inv.num_batteries, inv.serial) == (8899, "GivTCP", None, None)
    assert (inv.poll_interval, inv.settings_interval) == (15.0, 120.0)
    assert s.mqtt.enabled is False
    assert s.mqtt.host is None
    assert (s.mqtt.port, s.mqtt.topic, s.mqtt.retain, s.mqtt.changes_only) == (
        1883,
        "GivEnergy",
        True,
        True,
    )
    assert (s.mqtt.discovery, s.mqtt.discovery_prefix, s.mqtt.time_entities) == (
        True,
        "homeassistant",
        "auto",
    )
    assert (s.rest.enabled, s.rest.host, s.rest.port, s.rest.token) == (
        True,
        "127.0.0.1",
        6345,
        None,
    )
    assert s.influx.enabled is False
    assert s.control.write_budget_per_day == 500
    assert s.control.min_write_interval == 10
    assert s.control.dead_man_minutes == 0
    assert s.data.timezone == "Europe/London"
    assert s.data.stale_after == 600
    assert (s.logging.level, s.logging.format, s.logging.file) == ("INFO", "auto", None)


def test_connection_settings_defaults_match_connection_module(
    toml: Callable[[str], Path],
) -> None:
    inv = load_config(toml(MINIMAL), environ={}).inverters[0]
    produced = inv.connection_settings()
    assert produced == ConnectionSettings(host="192.168.1.10")
    custom = InverterConfig(host="h", port=9000, read_timeout=3.5, read_retries=2, backoff_max=30)
    cs = custom.connection_settings()
    assert (cs.host, cs.port, cs.read_timeout, cs.read_retries, cs.backoff_max) == (
        "h",
        9000,
        3.5,
        2,
        30,
    )
    assert cs.write_timeout == ConnectionSettings(host="x").write_timeout


def test_several_inverters_get_distinct_default_names(toml: Callable[[str], Path]) -> None:
    text = (
        MINIMAL + '[[inverters]]\nhost = "192.168.1.11"\n[[inverters]]\nhost = "b"\nname = "Shed"\n'
    )
    s = load_config(toml(text), environ={})
    assert [i.name for i in s.inverters] == ["GivTCP", "GivTCP2", "Shed"]


def test_settings_are_frozen(toml: Callable[[str], Path]) -> None:
    s = load_config(toml(MINIMAL), environ={})
    with pytest.raises(ValueError, match="frozen"):
        s.mqtt.port = 1


def test_prefixed_environment_with_nesting(toml: Callable[[str], Path]) -> None:
    environ = {
        "GIVTCP_MQTT__HOST": "broker.lan",
        "GIVTCP_MQTT__TLS__INSECURE": "true",
        "GIVTCP_MQTT__TLS__ENABLED": "1",
        "GIVTCP_INVERTERS__0__PORT": "8900",
        "GIVTCP_LOGGING__LEVEL": "debug",
        "GIVTCP_REST__TOKEN": SECRET,
    }
    s = load_config(toml(MINIMAL + "poll_interval = 30\n"), environ=environ)
    assert s.mqtt.host == "broker.lan"
    assert s.mqtt.enabled is True
    assert s.mqtt.tls.enabled is True
    assert s.mqtt.tls.insecure is True
    # position 0 merges: port from the environment, host and poll_interval from the file
    inv = s.inverters[0]
    assert (inv.host, inv.port, inv.poll_interval) == ("192.168.1.10", 8900, 30)
    assert s.logging.level == "DEBUG"
    assert s.rest.token is not None
    assert s.rest.token.get_secret_value() == SECRET


def test_prefixed_environment_without_file() -> None:
    s = load_config(
        None,
        environ={"GIVTCP_INVERTERS__0__HOST": "a", "GIVTCP_INVERTERS__1__HOST": "b"},
    )
    assert [i.host for i in s.inverters] == ["a", "b"]


def test_inverter_list_as_json(toml: Callable[[str], Path]) -> None:
    environ = {
        "GIVTCP_INVERTERS": json.dumps([{"host": "a", "num_batteries": 2}, {"host": "b"}]),
        "GIVTCP_INVERTERS__1__PORT": "9000",
    }
    s = load_config(None, environ=environ)
    assert [(i.host, i.port, i.num_batteries) for i in s.inverters] == [
        ("a", 8899, 2),
        ("b", 9000, None),
    ]


def test_section_as_json(toml: Callable[[str], Path]) -> None:
    environ = {"GIVTCP_MQTT": '{"host": "m", "port": 1884}', "GIVTCP_MQTT__PORT": "1885"}
    s = load_config(toml(MINIMAL), environ=environ)
    assert (s.mqtt.host, s.mqtt.port) == ("m", 1885)


def test_reserved_prefixed_variables_are_not_settings(toml: Callable[[str], Path]) -> None:
    environ = {"GIVTCP_SHARED": "/somewhere", "GIVTCP_CONFIG": str(toml(MINIMAL))}
    assert load_config(None, environ=environ).inverters[0].host == "192.168.1.10"


# --- GivTCP's variables ----------------------------------------------------------------------

BASE = {"INVERTOR_IP": "192.168.1.20"}


def reveal(secret: SecretStr | None) -> str | None:
    return None if secret is None else secret.get_secret_value()


LEGACY_CASES: list[tuple[dict[str, str], Callable[[Settings], Any], Any]] = [
    ({"INVERTOR_IP": "10.1.1.1"}, lambda s: s.inverters[0].host, "10.1.1.1"),
    ({"NUM_BATTERIES": "2"}, lambda s: s.inverters[0].num_batteries, 2),
    ({"NUMBATTERIES": "3"}, lambda s: s.inverters[0].num_batteries, 3),
    ({"HADEVICEPREFIX": "Garage"}, lambda s: s.inverters[0].name, "Garage"),
    ({"SELF_RUN_LOOP_TIMER": "30"}, lambda s: s.inverters[0].poll_interval, 30),
    ({"SELF_RUN_LOOP_TIMER_FULL": "300"}, lambda s: s.inverters[0].settings_interval, 300),
    ({"MQTT_OUTPUT": "True", "MQTT_ADDRESS": "b"}, lambda s: s.mqtt.enabled, True),
    ({"MQTT_OUTPUT": "False", "MQTT_ADDRESS": "b"}, lambda s: s.mqtt.enabled, False),
    ({"MQTT_ADDRESS": "broker"}, lambda s: (s.mqtt.host, s.mqtt.enabled), ("broker", True)),
    ({"MQTT_PORT": "1884"}, lambda s: s.mqtt.port, 1884),
    ({"MQTT_USERNAME": "bob"}, lambda s: s.mqtt.username, "bob"),
    (
        {"MQTT_USERNAME": "bob", "MQTT_PASSWORD": "cat"},
        lambda s: reveal(s.mqtt.password),
        "cat",
    ),
    ({"MQTT_TOPIC": "GivEnergy/Data"}, lambda s: s.mqtt.topic, "GivEnergy/Data"),
    ({"MQTT_RETAIN": "false"}, lambda s: s.mqtt.retain, False),
    ({"HA_AUTO_D": "False"}, lambda s: s.mqtt.discovery, False),
    ({"LOG_LEVEL": "Error"}, lambda s: s.logging.level, "ERROR"),
    (
        {"DEBUG_FILE_LOCATION": "/usr/pi/data"},
        lambda s: s.logging.file,
        Path("/usr/pi/data/givtcp-async.log"),
    ),
    ({"PRINT_RAW": "True"}, lambda s: s.data.print_raw, True),
    ({"TZ": "America/New_York"}, lambda s: s.data.timezone, "America/New_York"),
    (
        {"INFLUX_OUTPUT": "True", "INFLUX_URL": "http://i:8086", "INFLUX_BUCKET": "b"},
        lambda s: s.influx.enabled,
        True,
    ),
    (
        {"INFLUX_URL": "http://i:8086", "INFLUX_BUCKET": "b"},
        lambda s: (s.influx.enabled, s.influx.url, s.influx.bucket),
        (True, "http://i:8086", "b"),
    ),
    ({"INFLUX_TOKEN": "tok"}, lambda s: reveal(s.influx.token), "tok"),
    ({"INFLUX_ORG": "giv_tcp"}, lambda s: s.influx.org, "giv_tcp"),
]


@pytest.mark.parametrize(("environ", "read", "expected"), LEGACY_CASES)
def test_givtcp_variable(
    environ: dict[str, str], read: Callable[[Settings], Any], expected: Any
) -> None:
    assert read(load_config(None, environ={**BASE, **environ})) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [("True", True), ("true", True), ("1", True), ("False", False), ("false", False), ("0", False)],
)
def test_givtcp_booleans(value: str, expected: bool) -> None:
    s = load_config(None, environ={**BASE, "MQTT_ADDRESS": "b", "MQTT_OUTPUT": value})
    assert s.mqtt.enabled is expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Error", "ERROR"),
        ("Info", "INFO"),
        ("Debug", "DEBUG"),
        ("Warning", "WARNING"),
        ("Critical", "CRITICAL"),
        ("debug", "DEBUG"),
        ("WARN", "WARNING"),
    ],
)
def test_givtcp_log_levels(value: str, expected: str) -> None:
    assert load_config(None, environ={**BASE, "LOG_LEVEL": value}).logging.level == expected


def test_givtcp_numbered_inverters_and_loop_timer(toml: Callable[[str], Path]) -> None:
    file = toml(MINIMAL + '[[inverters]]\nhost = "b"\n[[inverters]]\nhost = "c"\n')
    environ = {
        "INVERTOR_IP_2": "10.0.0.2",
        "NUM_BATTERIES_2": "1",
        "NUMBATTERIES_1": "2",
        "HADEVICEPREFIX_3": "Third",
        "SELF_RUN_LOOP_TIMER": "20",
    }
    s = load_config(file, environ=environ)
    assert [i.host for i in s.inverters] == ["192.168.1.10", "10.0.0.2", "c"]
    assert [i.num_batteries for i in s.inverters] == [2, 1, None]
    assert [i.name for i in s.inverters] == ["GivTCP", "GivTCP2", "Third"]
    # SELF_RUN_LOOP_TIMER applies to every inverter, wherever it was configured
    assert [i.poll_interval for i in s.inverters] == [20, 20, 20]


def test_givtcp_empty_values_are_ignored() -> None:
    s = load_config(None, environ={**BASE, "MQTT_ADDRESS": "", "NUM_BATTERIES": " ", "TZ": ""})
    assert s.mqtt.host is None
    assert s.inverters[0].num_batteries is None
    assert s.data.timezone == "Europe/London"


def test_givtcp_variables_that_disagree_are_named() -> None:
    msg = error_of(
        lambda: load_config(None, environ={**BASE, "NUM_BATTERIES": "2", "NUMBATTERIES": "1"})
    )
    assert "inverters.0.num_batteries" in msg
    assert "NUM_BATTERIES" in msg
    assert "NUMBATTERIES" in msg


def test_unused_givtcp_variables_are_listed() -> None:
    environ = {"WEB_DASH": "True", "SELF_RUN": "True", "MQTT_TOPIC_2": "x", "PALM_WINTER": "1"}
    environ |= {"MQTT_ADDRESS": "b", "EMPTY": "", "SMARTTARGET": "", "DAYRATE": "0.3"}
    assert unused_legacy_variables(environ) == [
        "MQTT_TOPIC_2",
        "PALM_WINTER",
        "SELF_RUN",
        "WEB_DASH",
    ]


# --- precedence ------------------------------------------------------------------------------

LEVELS = ["override", "prefixed", "legacy", "file"]


@pytest.mark.parametrize("highest", LEVELS)
def test_precedence(toml: Callable[[str], Path], highest: str) -> None:
    """With mqtt.host set at every level from `highest` down, `highest` wins."""
    present = LEVELS[LEVELS.index(highest) :]
    file_text = MINIMAL + ('[mqtt]\nhost = "from-file"\n' if "file" in present else "")
    environ: dict[str, str] = {}
    if "legacy" in present:
        environ["MQTT_ADDRESS"] = "from-legacy"
    if "prefixed" in present:
        environ["GIVTCP_MQTT__HOST"] = "from-prefixed"
    overrides = {"mqtt.host": "from-override"} if "override" in present else None
    s = load_config(toml(file_text), environ=environ, overrides=overrides)
    assert s.mqtt.host == f"from-{highest}"


def test_defaults_apply_last(toml: Callable[[str], Path]) -> None:
    assert load_config(toml(MINIMAL), environ={}).mqtt.host is None


def test_precedence_inside_inverter_entries(toml: Callable[[str], Path]) -> None:
    file = toml(MINIMAL + "port = 9000\npoll_interval = 60\nnum_batteries = 1\n")
    environ = {
        "INVERTOR_IP": "legacy-host",
        "SELF_RUN_LOOP_TIMER": "45",
        "GIVTCP_INVERTERS__0__POLL_INTERVAL": "25",
    }
    s = load_config(file, environ=environ, overrides={"inverters.0.host": "cli-host"})
    inv = s.inverters[0]
    assert (inv.host, inv.port, inv.poll_interval, inv.num_batteries) == ("cli-host", 9000, 25, 1)


def test_overrides_accept_nested_mappings(toml: Callable[[str], Path]) -> None:
    s = load_config(
        toml(MINIMAL),
        environ={},
        overrides={"mqtt": {"host": "m", "port": 1999}, "logging.level": None},
    )
    assert (s.mqtt.host, s.mqtt.port, s.logging.level) == ("m", 1999, "INFO")


# --- files -----------------------------------------------------------------------------------


def test_missing_requested_file_is_an_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    msg = error_of(lambda: load_config(missing, environ=BASE))
    assert str(missing) in msg
    assert "not found" in msg


def test_missing_file_named_by_givtcp_config_is_an_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    msg = error_of(lambda: load_config(None, environ={**BASE, "GIVTCP_CONFIG": str(missing)}))
    assert "GIVTCP_CONFIG" in msg
    assert str(missing) in msg


def test_directory_instead_of_file_is_an_error(tmp_path: Path) -> None:
    assert "not a regular file" in error_of(lambda: load_config(tmp_path, environ=BASE))


def test_default_file_in_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert find_config_file(None, {}) is None  # absent default files are fine
    assert load_config(None, environ=BASE).inverters[0].host == "192.168.1.20"
    (tmp_path / "givtcp-async.toml").write_text(MINIMAL, encoding="utf-8")
    assert find_config_file(None, {}) == Path("givtcp-async.toml")
    assert load_config(None, environ={}).inverters[0].host == "192.168.1.10"


def test_malformed_toml_reports_line_and_column(toml: Callable[[str], Path]) -> None:
    path = toml(MINIMAL + "[mqtt]\nport = = 1\n")
    msg = error_of(lambda: load_config(path, environ={}))
    assert str(path) in msg
    assert "line 4" in msg
    assert "column" in msg


def test_binary_file_is_an_error(toml: Callable[[str], Path], tmp_path: Path) -> None:
    path = tmp_path / "bin.toml"
    path.write_bytes(b"\xff\xfe\x00garbage")
    assert str(path) in error_of(lambda: load_config(path, environ={}))


# --- rejection messages ----------------------------------------------------------------------


def test_out_of_range_names_the_key(toml: Callable[[str], Path]) -> None:
    path = toml(MINIMAL + "[mqtt]\nport = 70000\n")
    msg = error_of(lambda: load_config(path, environ={}))
    assert msg.startswith("mqtt.port: Input should be less than or equal to 65535 (got 70000)")
    assert str(path) in msg


def test_wrong_type_names_the_key(toml: Callable[[str], Path]) -> None:
    msg = error_of(lambda: load_config(toml(MINIMAL + 'port = "eighty"\n'), environ={}))
    assert msg.startswith("inverters.0.port: Input should be a valid integer")
    assert '"eighty"' in msg


def test_missing_required_key(toml: Callable[[str], Path]) -> None:
    msg = error_of(lambda: load_config(toml("[[inverters]]\nport = 8899\n"), environ={}))
    assert msg.startswith("inverters.0.host: Field required")


def test_no_inverter_at_all() -> None:
    msg = error_of(lambda: load_config(None, environ={}))
    assert msg.startswith("inverters: no inverter configured")
    assert "INVERTOR_IP" in msg


def test_unknown_key_in_file(toml: Callable[[str], Path]) -> None:
    path = toml(MINIMAL + '[mqtt]\nhots = "x"\n[mqtts]\nhost = "y"\n')
    lines = error_of(lambda: load_config(path, environ={})).splitlines()
    assert lines[0].startswith("mqtt.hots: unknown key")
    assert lines[1].startswith("mqtts: unknown key")
    assert all(str(path) in line for line in lines)


def test_unknown_prefixed_variable() -> None:
    msg = error_of(lambda: load_config(None, environ={**BASE, "GIVTCP_MQQT__HOST": "x"}))
    assert msg == "mqqt__host: unknown key [from GIVTCP_MQQT__HOST]"
    msg = error_of(lambda: load_config(None, environ={**BASE, "GIVTCP_MQTT__HOTS": "x"}))
    assert msg == "mqtt.hots: unknown key [from GIVTCP_MQTT__HOTS]"


def test_bad_prefixed_value_names_the_variable() -> None:
    msg = error_of(lambda: load_config(None, environ={**BASE, "GIVTCP_REST__PORT": "0"}))
    assert msg.startswith("rest.port: Input should be greater than or equal to 1")
    assert msg.endswith("[from GIVTCP_REST__PORT]")


def test_an_unknown_time_entities_form_names_the_allowed_ones() -> None:
    environ = {**BASE, "GIVTCP_MQTT__TIME_ENTITIES": "dropdown"}
    msg = error_of(lambda: load_config(None, environ=environ))
    assert msg.startswith("mqtt.time_entities: Input should be 'auto', 'select' or 'time'")
    assert msg.endswith("[from GIVTCP_MQTT__TIME_ENTITIES]")


def test_an_unknown_discovery_format_names_the_allowed_ones() -> None:
    environ = {**BASE, "GIVTCP_MQTT__DISCOVERY_FORMAT": "component"}
    msg = error_of(lambda: load_config(None, environ=environ))
    assert msg.startswith("mqtt.discovery_format: Input should be 'device' or 'entity'")
    assert msg.endswith("[from GIVTCP_MQTT__DISCOVERY_FORMAT]")


def test_a_bad_all_entities_value_names_the_key_and_the_variable() -> None:
    environ = {**BASE, "GIVTCP_MQTT__ALL_ENTITIES": "some"}
    msg = error_of(lambda: load_config(None, environ=environ))
    assert msg.startswith("mqtt.all_entities: Input should be a valid boolean")
    assert msg.endswith("[from GIVTCP_MQTT__ALL_ENTITIES]")


def test_bad_json_in_prefixed_variable() -> None:
    msg = error_of(lambda: load_config(None, environ={"GIVTCP_INVERTERS": "[{"}))
    assert msg.startswith("GIVTCP_INVERTERS: not valid JSON")


def test_bad_legacy_boolean_names_the_variable() -> None:
    msg = error_of(lambda: load_config(None, environ={**BASE, "MQTT_OUTPUT": "yes please"}))
    assert msg.startswith("mqtt.enabled: Input should be a valid boolean")
    assert "MQTT_OUTPUT" in msg


@pytest.mark.parametrize(
    ("var", "value", "key"),
    [
        ("NUM_BATTERIES", "two", "inverters.0.num_batteries"),
        ("MQTT_PORT", "70000", "mqtt.port"),
        ("SELF_RUN_LOOP_TIMER", "1", "inverters.0.poll_interval"),
        ("LOG_LEVEL", "Loud", "logging.level"),
        ("TZ", "Mars/Olympus", "data.timezone"),
        ("INFLUX_URL", "influx:8086", "influx.url"),
        ("PRINT_RAW", "maybe", "data.print_raw"),
        ("INVERTOR_IP", "http://192.168.1.5", "inverters.0.host"),
    ],
)
def test_bad_legacy_values_name_the_variable(var: str, value: str, key: str) -> None:
    msg = error_of(lambda: load_config(None, environ={**BASE, var: value}))
    assert msg.startswith(f"{key}: ")
    assert f"[from {var}]" in msg


def test_every_problem_gets_its_own_line(toml: Callable[[str], Path]) -> None:
    path = toml(MINIMAL + "[mqtt]\nport = 0\n[rest]\nport = 99999\n[logging]\nbackups = -1\n")
    lines = error_of(lambda: load_config(path, environ={"GIVTCP_FOO": "1"})).splitlines()
    assert sorted(line.split(":")[0] for line in lines) == [
        "foo",
        "logging.backups",
        "mqtt.port",
        "rest.port",
    ]


def test_cross_field_rules(toml: Callable[[str], Path]) -> None:
    msg = error_of(lambda: load_config(toml(MINIMAL + "[mqtt]\nenabled = true\n"), environ={}))
    assert msg.startswith("mqtt.host: required when mqtt.enabled is true")
    msg = error_of(lambda: load_config(None, environ={**BASE, "INFLUX_OUTPUT": "true"}))
    assert msg.splitlines()[0].startswith("influx.url: required")
    msg = error_of(
        lambda: load_config(
            toml(MINIMAL + "poll_interval = 60\nsettings_interval = 30\n"), environ={}
        )
    )
    assert msg.startswith("inverters.0.settings_interval: must not be shorter than poll_interval")
    dup = MINIMAL + MINIMAL
    msg = error_of(lambda: load_config(toml(dup), environ={}))
    assert msg.startswith("inverters: inverter 1 has the same host and port as inverter 0")
    msg = error_of(lambda: load_config(None, environ={"GIVTCP_INVERTERS__1__HOST": "x"}))
    assert msg.startswith("inverters: inverter 0 is missing")


def test_internal_broker_implies_localhost() -> None:
    s = load_config(None, environ={**BASE, "GIVTCP_MQTT__INTERNAL_BROKER": "true"})
    assert (s.mqtt.host, s.mqtt.enabled) == ("127.0.0.1", True)


def test_secrets_never_appear_in_errors(toml: Callable[[str], Path]) -> None:
    text = (
        MINIMAL + f'[mqtt]\npassword = "{SECRET}"\npasswd = "{SECRET}"\n[rest]\ntoken = 12345678\n'
    )
    msg = error_of(lambda: load_config(toml(text), environ={"MQTT_PASSWORD": SECRET + "x"}))
    assert SECRET not in msg
    assert "12345678" not in msg
    assert "mqtt.passwd: unknown key" in msg
    assert "mqtt.password: needs mqtt.username" in msg
    assert "rest.token: Input should be a valid string" in msg
    short = f'{MINIMAL}[rest]\ntoken = "{SECRET[:10]}"\n'
    msg = error_of(lambda: load_config(toml(short), environ={}))
    assert msg.startswith("rest.token: must be at least 16 characters")
    assert SECRET[:10] not in msg


# --- masking ---------------------------------------------------------------------------------


def test_masked_hides_every_secret(toml: Callable[[str], Path]) -> None:
    environ = {
        "MQTT_ADDRESS": "b",
        "MQTT_USERNAME": "u",
        "MQTT_PASSWORD": SECRET,
        "INFLUX_URL": "http://i:8086",
        "INFLUX_BUCKET": "b",
        "INFLUX_TOKEN": SECRET + "-influx",
    }
    s = load_config(toml(MINIMAL), environ=environ)
    out = masked(s)
    text = json.dumps(out)
    assert SECRET not in text
    assert out["mqtt"]["password"] == "***"
    assert out["influx"]["token"] == "***"
    assert out["rest"]["token"] is None
    assert out["mqtt"]["username"] == "u"
    assert out["inverters"][0]["host"] == "192.168.1.10"
    assert isinstance(out["control"]["state_dir"], str)
    assert secret_values(s) == [SECRET + "-influx", SECRET]


# --- the example file ------------------------------------------------------------------------


def test_example_file_validates() -> None:
    s = load_config(EXAMPLE, environ={})
    assert s.inverters[0].host == "192.168.1.100"
    defaults = Settings(inverters=[InverterConfig(host="192.168.1.100")])
    assert masked(s) == masked(defaults), "the example's active values must be the defaults"


SECTIONS: list[tuple[str, type[BaseModel]]] = [
    ("inverters", InverterConfig),
    ("mqtt", MqttConfig),
    ("mqtt.tls", MqttTlsConfig),
    ("rest", RestConfig),
    ("influx", InfluxConfig),
    ("control", ControlConfig),
    ("data", DataConfig),
    ("tariff", TariffConfig),
    ("logging", LoggingConfig),
]


@pytest.mark.parametrize(("section", "model"), SECTIONS)
def test_example_file_documents_every_key(section: str, model: type[BaseModel]) -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    header = f"[[{section}]]" if section == "inverters" else f"[{section}]"
    body = text.split(f"\n{header}\n", 1)[1].split("\n[", 1)[0]
    documented = set(re.findall(r"^#? ?([a-z_]+) = ", body, flags=re.MULTILINE))
    expected = {name for name, info in model.model_fields.items() if not _is_model(info.annotation)}
    assert expected <= documented, sorted(expected - documented)


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def test_connection_defaults_in_example_match_connection_module() -> None:
    defaults = {f.name: f.default for f in dataclasses.fields(ConnectionSettings)}
    inv = load_config(EXAMPLE, environ={}).inverters[0]
    for name in ("pacing", "read_timeout", "write_timeout", "retry_delay", "backoff_max"):
        assert getattr(inv, name) == defaults[name]


# --- command line ----------------------------------------------------------------------------


def test_cli_override_helper() -> None:
    parser = argparse.ArgumentParser()
    add_config_options(parser)
    args = parser.parse_args(["--config", "x.toml", "--host", "h", "--log-level", "debug"])
    assert args.config == Path("x.toml")
    assert config_overrides(args) == {"inverters.0.host": "h", "logging.level": "debug"}


def _clean_environ(**extra: str) -> dict[str, str]:
    legacy = re.compile(
        r"^(GIVTCP_(?!SHARED$).*|INVERTOR_IP.*|NUM_?BATTERIES.*|MQTT_.*|INFLUX_.*|LOG_LEVEL"
        r"|DEBUG_FILE_LOCATION|PRINT_RAW|HA_AUTO_D|HADEVICEPREFIX.*|SELF_RUN.*|TZ)$"
    )
    env = {k: v for k, v in os.environ.items() if not legacy.match(k)}
    return {**env, **extra}


def run_cli(args: list[str], cwd: Path, **environ: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "givtcp_async", *args],
        cwd=cwd,
        env=_clean_environ(**environ),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_config_check_prints_masked_settings(toml: Callable[[str], Path], tmp_path: Path) -> None:
    path = toml(MINIMAL + f'[mqtt]\nhost = "b"\nusername = "u"\npassword = "{SECRET}"\n')
    result = run_cli(
        ["config", "check", "--config", str(path), "--port", "9000"],
        tmp_path,
        GIVTCP_REST__TOKEN=SECRET + "-rest",
        INFLUX_URL="http://i:8086",
        INFLUX_BUCKET="b",
        INFLUX_TOKEN=SECRET,
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["mqtt"]["password"] == "***"
    assert out["rest"]["token"] == "***"
    assert out["influx"]["token"] == "***"
    assert out["influx"]["enabled"] is True
    assert out["inverters"][0]["port"] == 9000
    assert SECRET not in result.stdout
    assert SECRET not in result.stderr


def test_config_check_rejects_with_one_line_per_key(
    toml: Callable[[str], Path], tmp_path: Path
) -> None:
    path = toml(MINIMAL + f'[mqtt]\nport = 70000\npassword = "{SECRET}"\nbogus = 1\n')
    result = run_cli(["config", "check", "--config", str(path)], tmp_path, MQTT_OUTPUT="perhaps")
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    keys = sorted(line.removeprefix("givtcp-async: ").split(":")[0] for line in lines)
    assert keys == ["mqtt.bogus", "mqtt.enabled", "mqtt.password", "mqtt.port"]
    assert any("MQTT_OUTPUT" in line for line in lines)
    assert SECRET not in result.stderr


def test_config_check_missing_file(tmp_path: Path) -> None:
    result = run_cli(["config", "check", "--config", str(tmp_path / "none.toml")], tmp_path)
    assert result.returncode == 2
    assert "none.toml not found" in result.stderr


def test_config_check_names_cli_flags(toml: Callable[[str], Path], tmp_path: Path) -> None:
    result = run_cli(["config", "check", "--config", str(toml(MINIMAL)), "--port", "0"], tmp_path)
    assert result.returncode == 2
    assert "inverters.0.port" in result.stderr
    assert "[from --port]" in result.stderr


def test_config_check_from_givtcp_variables_alone(tmp_path: Path) -> None:
    result = run_cli(
        ["config", "check"],
        tmp_path,
        INVERTOR_IP="192.168.1.30",
        MQTT_ADDRESS="broker",
        MQTT_USERNAME="bob",
        MQTT_PASSWORD=SECRET,
        DAYRATE="0.3",
        WEB_DASH="True",
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["inverters"][0]["host"] == "192.168.1.30"
    assert out["mqtt"]["password"] == "***"
    assert out["tariff"]["day_rate"] == 0.3  # GivTCP's DAYRATE is read
    assert "WEB_DASH" in result.stderr  # listed: found, not used
    assert SECRET not in result.stdout + result.stderr
