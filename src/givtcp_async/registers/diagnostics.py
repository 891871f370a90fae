"""Single-phase diagnostics (issue 12 item 6): the other register values of the blocks the map
already reads (HR0-179, IR0-59) that givenergy-modbus 2.13.0 decodes and no entry published
yet, read only.

Grid-protection trip and reconnect limits and times (HR63-83), insulation, GFCI and DCI
protection (HR84-93), string and import-limit adjustments (HR99-107), the power-factor curve
(HR129-137), the CEI-021 settings (HR138-145), low-voltage fault ride-through (HR146-156), the
inverter module code (HR1-2), the output power factor (IR16) and the charger warning code
(IR57), and the HR300 page's plant, derating, tariff, EV-charger and generator settings. Each
is one entry in the ``Diagnostics`` group, named after the peer library's attribute (its ``raw``
name), published in runAll, on MQTT and to InfluxDB like the register values of
``raw_fields.py``. Like them they are announced to Home Assistant (disabled) only when
``mqtt.all_entities`` asks for it: the single-phase plant's announcement has a size budget
(tests/test_mqtt_service.py) and these ~100 entities would add ~50 KB of retained configs, for
entities that would start disabled anyway. The three-phase ones (``three_phase.py``) are always
announced, disabled.

The alternative battery counters of IR180-183: every single-phase plan reads the IR180 block
already, but only Gen1 fills them (the captures: IR180-183 read 15711, 18430, 65, 88 on the
Gen1 and 0 on Gen2, HV Gen3, All-in-One, EMS, Gateway and three-phase units, whose own battery
counters IR36/37 read 47/55, 90/13, 48/19, 170/141). Gen1 publishes IR180/181 as its battery
totals (``inverter.py``) and IR182/183, which repeat its IR37/IR36 today counters, here; the
other models publish none of them, since a 0 there is no reading.
"""

from __future__ import annotations

from typing import Final

from givtcp_async.registers import common as c
from givtcp_async.registers.schema import HA, Bank, Enc, Family, Field, Kind

DIAGNOSTICS_PATH: Final = ("Diagnostics",)
HR = Bank.HOLDING
IR = Bank.INPUT

# (raw name, bank, first register, code): u the word as it is (flags: 0/1), d x0.1, c x0.01,
# hex two registers as eight hex digits, pf raw/10000 - 1.
_ROWS: Final[tuple[tuple[str, Bank, int, str], ...]] = (
    ("module", HR, 1, "hex"),
    ("v_ac_low_limit_trip", HR, 63, "d"),
    ("v_ac_high_limit_trip", HR, 64, "d"),
    ("f_ac_low_limit_trip", HR, 65, "c"),
    ("f_ac_high_limit_trip", HR, 66, "c"),
    ("t_ac_low_voltage_trip", HR, 67, "c"),
    ("t_ac_high_voltage_trip", HR, 68, "c"),
    ("t_ac_low_freq_trip", HR, 69, "c"),
    ("t_ac_high_freq_trip", HR, 70, "c"),
    ("v_ac_low_limit_reconnect", HR, 71, "d"),
    ("v_ac_high_limit_reconnect", HR, 72, "d"),
    ("f_ac_low_limit_reconnect", HR, 73, "c"),
    ("f_ac_high_limit_reconnect", HR, 74, "c"),
    ("t_ac_low_voltage_reconnect", HR, 75, "c"),
    ("t_ac_high_voltage_reconnect", HR, 76, "c"),
    ("t_ac_low_freq_reconnect", HR, 77, "c"),
    ("t_ac_high_freq_reconnect", HR, 78, "c"),
    ("v_ac_low_limit_grid", HR, 79, "d"),
    ("v_ac_high_limit_grid", HR, 80, "d"),
    ("f_ac_low_limit_grid", HR, 81, "c"),
    ("f_ac_high_limit_grid", HR, 82, "c"),
    ("v_ac_10min_protect", HR, 83, "d"),
    ("iso_protection_1", HR, 84, "u"),
    ("iso_protection_2", HR, 85, "u"),
    ("gfci_protection_value_1", HR, 86, "u"),
    ("gfci_protection_time_1", HR, 87, "u"),
    ("gfci_protection_value_2", HR, 88, "u"),
    ("gfci_protection_time_2", HR, 89, "u"),
    ("dci_protection_value_1", HR, 90, "u"),
    ("dci_protection_time_1", HR, 91, "u"),
    ("dci_protection_value_2", HR, 92, "u"),
    ("dci_protection_time_2", HR, 93, "u"),
    ("string_1_voltage_adjustment", HR, 99, "u"),
    ("string_2_voltage_adjustment", HR, 100, "u"),
    ("grid_import_limit", HR, 101, "u"),
    ("grid_import_limit_enabled", HR, 102, "u"),
    ("enable_lora", HR, 103, "u"),
    ("enable_battery_self_heating", HR, 104, "u"),
    ("string_1_power_adjustment", HR, 106, "u"),
    ("string_2_power_adjustment", HR, 107, "u"),
    ("power_factor_cmd_memory_state", HR, 129, "u"),
    *(
        row
        for n in range(1, 5)
        for row in (
            (f"power_factor_point_{n}_load_percent", HR, 128 + 2 * n, "u"),
            (f"power_factor_point_{n}_power_factor", HR, 129 + 2 * n, "u"),
        )
    ),
    ("cei021_v1s_q", HR, 138, "d"),
    ("cei021_v2s_q", HR, 139, "d"),
    ("cei021_v1l_q", HR, 140, "d"),
    ("cei021_v2l_q", HR, 141, "d"),
    ("cei021_lock_in_active_power", HR, 142, "u"),
    ("cei021_lock_out_active_power", HR, 143, "u"),
    ("cei021_lock_in_grid_voltage", HR, 144, "d"),
    ("cei021_lock_out_grid_voltage", HR, 145, "d"),
    ("lvfrt_reactive_rate", HR, 146, "u"),
    *(
        row
        for n in range(1, 5)
        for row in (
            (f"lvfrt_low_fault_value_{n}", HR, 145 + 2 * n, "u"),
            (f"lvfrt_low_fault_time_{n}", HR, 146 + 2 * n, "u"),
        )
    ),
    ("lvfrt_high_fault_value_1", HR, 155, "u"),
    ("lvfrt_high_fault_time_1", HR, 156, "u"),
    ("pf_inverter_output_now", IR, 16, "pf"),
    ("charger_warning_code", IR, 57, "u"),
)
# The HR300 page (AC-coupled, All-in-One; Gen3-type hybrids that answer it): plant, battery,
# frequency-derating, tariff, EV-charger, generator and display settings.
_HR300_ROWS: Final[tuple[tuple[str, Bank, int, str], ...]] = (
    ("enable_plant_mode", HR, 300, "u"),
    ("plant_role", HR, 301, "u"),
    ("plant_meters", HR, 302, "u"),
    ("overfrequency_load_drop_recovery_delay", HR, 303, "u"),
    ("mppt_operating_mode", HR, 305, "u"),
    ("connection_loading_slope", HR, 306, "u"),
    ("eps_nominal_voltage", HR, 307, "d"),
    ("battery_nominal_power", HR, 308, "u"),
    ("battery_nominal_current", HR, 309, "u"),
    ("battery_max_charge_pct", HR, 310, "u"),
    ("underfrequency_add_load_delay", HR, 312, "u"),
    ("en50549_zero_current_lower_voltage_limit", HR, 315, "d"),
    ("en50549_zero_current_upper_voltage_limit", HR, 316, "d"),
    ("overfrequency_derating_start_point", HR, 321, "c"),
    ("enable_tariff_pricing_battery_logic", HR, 322, "u"),
    ("import_price_battery_discharge_threshold", HR, 323, "u"),
    ("import_price_battery_charge_threshold", HR, 324, "u"),
    ("export_price_battery_discharge_threshold", HR, 325, "u"),
    ("underfrequency_derating_start_point", HR, 326, "c"),
    ("underfrequency_loading_slope", HR, 327, "u"),
    ("overfrequency_derating_stop_point", HR, 328, "c"),
    ("enable_bms_ocv_calibration", HR, 329, "u"),
    ("gateway_power_off_setting", HR, 330, "u"),
    ("force_off_grid", HR, 331, "u"),
    ("enable_micro_grid", HR, 332, "u"),
    ("enable_ev_charger", HR, 333, "u"),
    ("ev_charger_import_limit", HR, 334, "u"),
    ("ev_charger_reconnection_wait_time", HR, 335, "u"),
    ("ev_charger_soc_limit", HR, 336, "u"),
    ("enable_fan", HR, 337, "u"),
    ("fan_speed", HR, 338, "u"),
    ("enable_gateway", HR, 339, "u"),
    ("bms_communication_mode", HR, 340, "u"),
    ("n_pe_relay_toggle", HR, 341, "u"),
    ("afci_setting", HR, 342, "u"),
    ("enable_generator", HR, 343, "u"),
    ("generator_start_soc", HR, 344, "u"),
    ("generator_stop_soc", HR, 345, "u"),
    ("generator_charge_power", HR, 346, "u"),
    ("disable_leds", HR, 347, "u"),
    ("lcd_screen_idle_timeout", HR, 348, "u"),
    ("lead_acid_battery_calibration_upper_limit", HR, 349, "c"),
    ("lead_acid_battery_calibration_lower_limit", HR, 350, "c"),
    ("inverter_operating_mode", HR, 351, "u"),
)
# The Gateway reads the HR300 page too, with its own meanings (registers/gateway.py).
_HR300_FAMILIES: Final = c.HR300_PAGE - {Family.GATEWAY}
_ENC: Final = {"hex": Enc.HEX, "pf": Enc.PF}
_SCALE: Final = {"d": 0.1, "c": 0.01}


def field_name(raw: str) -> str:
    """A register map name from the peer's attribute: ``v_ac_low_limit_trip`` ->
    ``V_Ac_Low_Limit_Trip``."""
    return "_".join(part.capitalize() for part in raw.split("_"))


# How a diagnostic's Home Assistant name reads: the peer's abbreviations spelt out.
_LEADS: Final = {"v": "Voltage", "f": "Frequency", "t": "Time", "i": "Current", "p": "Power",
                 "q": "Reactive", "e": "Energy"}  # fmt: skip
_UPPER: Final = frozenset({"ac", "pf", "cee", "cei021", "dci", "gfci", "iso", "lvfrt", "soc", "pv",
                           "bms", "eps", "ev", "ocv", "afci", "mppt", "lcd", "qu", "npe", "drms",
                           "en50549", "cv", "lv", "rtc", "led", "pe", "n"})  # fmt: skip


def display(raw: str) -> str:
    """``v_ac_low_limit_trip`` -> "Voltage AC Low Limit Trip" (the entity name)."""
    words = raw.split("_")
    out = [_LEADS[words[0]]] if words[0] in _LEADS and len(words) > 1 else [words[0]]
    out += words[1:]
    return " ".join(w.upper() if w in _UPPER else w[:1].upper() + w[1:] for w in out)


def hidden(raw: str, *, opt_in: bool = False) -> HA:
    """A read-only diagnostic entity that starts disabled, named from the peer's attribute;
    ``opt_in``: announced only with ``mqtt.all_entities``."""
    return HA(
        entity_category="diagnostic", enabled_by_default=False, name=display(raw), opt_in=opt_in
    )


def _field(
    raw: str, bank: Bank, register: int, code: str, families: frozenset[Family] | None = None
) -> Field:
    registers = (register, register + 1) if code == "hex" else (register,)
    return Field(
        field_name(raw),
        DIAGNOSTICS_PATH,
        bank,
        registers,
        enc=_ENC.get(code, Enc.U16),
        scale=_SCALE.get(code, 1.0),
        kind=Kind.SETTING if bank is HR else Kind.STATUS,
        families=families or (c.SP_BATTERY if bank is HR else c.SP_INPUT),
        ha=hidden(raw, opt_in=True),  # the announcement's size budget (module docstring)
        raw=raw,
        description=f"{bank.value}{register}, read only",
    )


def _gen1_today(raw: str, register: int) -> Field:
    return Field(field_name(raw), DIAGNOSTICS_PATH, IR, (register,), scale=0.1, unit="kWh",
                 kind=Kind.TODAY, families=frozenset({Family.HYBRID_GEN1}), bounds=c.TODAY_KWH,
                 ha=HA(device_class="energy", state_class="total_increasing",
                       entity_category="diagnostic", enabled_by_default=False, name=display(raw)),
                 raw=raw,
                 description=f"IR{register} (Gen1 only; as IR{219 - register})")  # fmt: skip


SP_DIAGNOSTIC_FIELDS: Final[tuple[Field, ...]] = (
    *(_field(*row) for row in _ROWS),
    *(_field(*row, families=_HR300_FAMILIES) for row in _HR300_ROWS),
    _gen1_today("e_battery_discharge_today_alt2", 182),
    _gen1_today("e_battery_charge_today_alt2", 183),
)

__all__ = ["DIAGNOSTICS_PATH", "SP_DIAGNOSTIC_FIELDS", "display", "field_name", "hidden"]
