"""Register values that only GivTCP 3's ``raw`` block names, read only: single-phase inverters
and LV packs.

The registers of blocks the map already reads (HR0-179, IR0-59) that no entry decoded yet:
protection limits, meter and CT options, firmware details, bus voltages, spare counters. Each
is one entry in the ``Diagnostics`` group, named after its raw name in GivTCP's style and
carrying it (``Field.raw``), so ``raw`` has it. They are announced to Home Assistant (disabled)
only when ``mqtt.all_entities`` asks for it.

Kept apart until the per-family diagnostics fields (which decode these registers too) are in
the map: then the raw names move onto those entries and this module goes.
"""

from __future__ import annotations

from typing import Final

from givtcp_async.registers import common as c
from givtcp_async.registers.diagnostics import DIAGNOSTICS_PATH, field_name, hidden
from givtcp_async.registers.schema import Bank, Enc, Field, Kind, Source

HR = Bank.HOLDING
IR = Bank.INPUT

_ENC: Final = {"u": Enc.U16, "hb": Enc.HIGH_BYTE, "lb": Enc.LOW_BYTE, "lbx100": Enc.LOW_BYTE,
                "ascii": Enc.ASCII}  # fmt: skip
_SCALE: Final = {"d": 0.1, "c": 0.01, "lbx100": 100.0}

# (raw name, bank, first register, code): u raw, d x0.1, c x0.01, hb/lb a byte (lbx100 times
# 100), ascii text.
_ROWS: Final[tuple[tuple[str, Bank, int, str], ...]] = (
    ("inverter_max_power_new", HR, 2, "lbx100"),
    ("num_mppt", HR, 3, "hb"),
    ("num_phases", HR, 3, "lb"),
    ("enable_ammeter", HR, 7, "u"),
    ("first_battery_serial_number", HR, 8, "ascii"),
    ("first_battery_bms_firmware_version", HR, 18, "u"),
    ("usb_device_inserted", HR, 22, "u"),
    ("select_arm_chip", HR, 23, "u"),
    ("variable_address", HR, 24, "u"),
    ("variable_value", HR, 25, "u"),
    ("enable_60hz_freq_mode", HR, 28, "u"),
    ("modbus_address", HR, 30, "u"),
    ("user_code", HR, 33, "u"),
    ("enable_drm_rj45_port", HR, 41, "u"),
    ("enable_reversed_ct_clamp", HR, 42, "u"),
    ("charge_soc", HR, 43, "hb"),
    ("discharge_soc", HR, 43, "lb"),
    ("bms_firmware_version", HR, 46, "u"),
    ("enable_reversed_115_meter", HR, 48, "u"),
    ("enable_reversed_418_meter", HR, 49, "u"),
    ("reactive_power_rate", HR, 51, "u"),
    ("power_factor", HR, 52, "u"),
    ("enable_inverter_auto_restart", HR, 53, "hb"),
    ("enable_inverter", HR, 53, "lb"),
    ("enable_auto_judge_battery_type", HR, 58, "u"),
    ("v_pv_start", HR, 60, "d"),
    ("start_countdown_timer", HR, 61, "u"),
    ("restart_delay_time", HR, 62, "u"),
    ("battery_low_voltage_protection_limit", HR, 97, "c"),
    ("battery_high_voltage_protection_limit", HR, 98, "c"),
    ("battery_voltage_adjust", HR, 105, "c"),
    ("battery_low_force_charge_time", HR, 108, "u"),
    ("enable_bms_read", HR, 109, "u"),
    ("enable_buzzer", HR, 113, "u"),
    ("charge_soc_stop_2", HR, 117, "u"),
    ("discharge_soc_stop_2", HR, 118, "u"),
    ("charge_soc_stop_1", HR, 119, "u"),
    ("discharge_soc_stop_1", HR, 120, "u"),
    ("enable_local_command_test", HR, 121, "u"),
    ("power_factor_function_model", HR, 122, "u"),
    ("frequency_load_limit_rate", HR, 123, "u"),
    ("enable_low_voltage_fault_ride_through", HR, 124, "u"),
    ("enable_frequency_derating", HR, 125, "u"),
    ("enable_above_6kw_system", HR, 126, "u"),
    ("start_system_auto_test", HR, 127, "u"),
    ("enable_spi", HR, 128, "u"),
    ("inverter_reboot", HR, 163, "u"),
    ("threephase_balance_mode", HR, 167, "u"),
    ("threephase_abc", HR, 168, "u"),
    ("threephase_balance_1", HR, 169, "u"),
    ("threephase_balance_2", HR, 170, "u"),
    ("threephase_balance_3", HR, 171, "u"),
    ("enable_battery_on_pv_or_grid", HR, 175, "u"),
    ("debug_inverter", HR, 176, "u"),
    ("enable_ups_mode", HR, 177, "u"),
    ("enable_g100_limit_switch", HR, 178, "u"),
    ("enable_battery_cable_impedance_alarm", HR, 179, "u"),
    ("v_p_bus", IR, 3, "d"),
    ("v_n_bus", IR, 4, "d"),
    ("v_highbrigh_bus", IR, 15, "d"),
    ("e_solar_diverter", IR, 23, "d"),
    ("e_discharge_year", IR, 29, "d"),
    ("inverter_countdown", IR, 38, "u"),
    ("p_grid_apparent", IR, 43, "u"),
    ("v_eps_backup", IR, 53, "d"),
)


def _field(raw: str, bank: Bank, register: int, code: str) -> Field:
    registers = tuple(range(register, register + 5)) if code == "ascii" else (register,)
    return Field(
        field_name(raw),
        DIAGNOSTICS_PATH,
        bank,
        registers,
        enc=_ENC.get(code, Enc.U16),
        scale=_SCALE.get(code, 1.0),
        kind=Kind.SETTING if bank is HR else Kind.MEASUREMENT,
        families=c.SP_BATTERY if bank is HR else c.SP_INPUT,
        ha=hidden(raw, opt_in=True),
        raw=raw,
        description=f"GivTCP's raw {raw} ({bank.value}{register})",
    )


RAW_ONLY_FIELDS: Final[tuple[Field, ...]] = tuple(_field(*row) for row in _ROWS)

# The LV pack page (IR60-119 of 0x32..0x37): (raw name, first register, code), codes as above
# plus u32m (two registers, x0.001), u32c (two registers, x0.01) and s.
_PACK_ROWS: Final[tuple[tuple[str, int, str], ...]] = (
    ("v_out", 82, "u32m"),
    ("status_1", 90, "hb"),
    ("status_2", 90, "lb"),
    ("status_3", 91, "hb"),
    ("status_4", 91, "lb"),
    ("status_5", 92, "hb"),
    ("status_6", 92, "lb"),
    ("status_7", 93, "hb"),
    ("warning_1", 94, "hb"),
    ("warning_2", 94, "lb"),
    ("cap_design2", 101, "u32c"),
    ("t_max", 103, "sd"),
    ("t_min", 104, "sd"),
    ("force_discharge_flag", 107, "u"),
)
_PACK_ENC: Final = {"u32m": Enc.U32, "u32c": Enc.U32, "sd": Enc.S16}
_PACK_SCALE: Final = {"u32m": 0.001, "u32c": 0.01, "sd": 0.1}


def _pack_field(raw: str, register: int, code: str) -> Field:
    wide = code.startswith("u32")
    return Field(
        field_name(raw),
        DIAGNOSTICS_PATH,
        IR,
        (register, register + 1) if wide else (register,),
        enc=_PACK_ENC.get(code) or _ENC.get(code, Enc.U16),
        scale=_PACK_SCALE.get(code, 1.0),
        source=Source.BATTERY,
        families=c.LV_BATTERY,
        ha=hidden(raw, opt_in=True),
        raw=raw,
        description=f"GivTCP's raw {raw} (pack IR{register})",
    )


PACK_RAW_ONLY_FIELDS: Final[tuple[Field, ...]] = (
    # GivTCP publishes this one in the pack's own group too.
    Field("Battery_USB_present", (), IR, (115,), source=Source.BATTERY, families=c.LV_BATTERY,
          kind=Kind.STATUS, ha=None, raw="usb_device_inserted",
          description="USB device in the pack's port (GivTCP's Battery_USB_present; 8 = disk)"),
    *(_pack_field(*row) for row in _PACK_ROWS),
)  # fmt: skip

__all__ = ["PACK_RAW_ONLY_FIELDS", "RAW_ONLY_FIELDS"]
