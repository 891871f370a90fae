"""Values computed from other fields of the same snapshot (SPEC §6.1), GivTCP's names.

Every input is a field name of the inverter map; ``compute(values, model)`` gets the decoded
values. Known GivTCP bugs are fixed rather than copied:

* ``Grid_to_Battery`` is clamped at 0 (GivTCP can publish a negative flow);
* the Gen1 battery discharge total comes from IR180, not HR180 (see the inverter map);
* the charge / discharge rate in watts uses the C/100 meaning of HR111/112 (SPEC §7 #7):
  raw / 100 x capacity (HR55 x nominal voltage), capped at the model's battery power limit.

GivTCP's arithmetic is kept where a client compares numbers: ``SOC_kWh`` and the times
remaining use the capacity rounded to 2 decimals (``Battery_Capacity_kWh``), and the times
remaining are truncated to whole minutes.

Mode is read back from HR27 (eco), HR59 (discharge schedule) and HR110 (reserve):

=====  =====  ========  ==================
eco    sched  reserve   Mode
=====  =====  ========  ==================
on     off    < 100     Eco
on     off    100       Eco (Paused)
on     on     any       Timed Demand
off    on     any       Timed Export
off    off    any       Export (Paused)
=====  =====  ========  ==================

anything else (a value that is not 0/1) is "Unknown".
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any, Final

from givtcp_async.registers import common as c
from givtcp_async.registers.ems import EMS_DERIVED
from givtcp_async.registers.gateway import GATEWAY_DERIVED
from givtcp_async.registers.raw import DERIVED_RAW, attach_raw
from givtcp_async.registers.schema import (
    DIAGNOSTIC,
    ENERGY_TODAY,
    ENERGY_TOTAL,
    HA,
    NOW,
    POWER,
    THREE_PHASE_FAMILIES,
    Bounds,
    Derived,
    Family,
    Kind,
)
from givtcp_async.registers.three_phase import THREE_PHASE_DERIVED

Values = Mapping[str, Any]
POWER_PATH: Final = ("Power", "Power")
FLOWS_PATH: Final = ("Power", "Flows")
TODAY_PATH: Final = ("Energy", "Today")
TOTAL_PATH: Final = ("Energy", "Total")
DETAILS_PATH: Final = ("Invertor_Details",)
CONTROL_PATH: Final = ("Control",)

# Load energy: DC hybrids' inverter output already contains PV (SPEC §6.1 / §7 #8).
_HYBRID_LOAD: Final = c.LV_HYBRIDS | {Family.HV_GEN3}
_OTHER_LOAD: Final = c.SP_BATTERY - _HYBRID_LOAD
MODES: Final = ("Eco", "Eco (Paused)", "Timed Demand", "Timed Export", "Export (Paused)")


def _r(value: float, decimals: int = 2) -> float:
    return round(value, decimals)


# --- input helpers -----------------------------------------------------------------------------


def pv(v: Values) -> int:
    return int(v["PV_Power_String_1"]) + int(v["PV_Power_String_2"])


def imp(v: Values) -> int:
    return max(0, -int(v["Grid_Power"]))


def exp(v: Values) -> int:
    return max(0, int(v["Grid_Power"]))


def charge(v: Values) -> int:
    return max(0, -int(v["Battery_Power"]))


def discharge(v: Values) -> int:
    return max(0, int(v["Battery_Power"]))


def capacity_kwh(v: Values, model: Any) -> float:
    """Battery capacity: HR55 (Ah) x the model's nominal battery voltage."""
    return float(v["Battery_Nominal_Capacity"]) * float(model.nominal_battery_voltage) / 1000


# --- flows (SPEC §6.1) -------------------------------------------------------------------------


def solar_to_house(v: Values) -> int:
    return min(pv(v), int(v["Load_Power"])) if pv(v) > 0 else 0


def solar_to_battery(v: Values) -> int:
    return max(pv(v) - solar_to_house(v) - exp(v), 0) if pv(v) > 0 else 0


def solar_to_grid(v: Values) -> int:
    return max(pv(v) - solar_to_house(v) - solar_to_battery(v), 0) if pv(v) > 0 else 0


def battery_to_house(v: Values) -> int:
    return max(discharge(v) - exp(v), 0)


def battery_to_grid(v: Values) -> int:
    return max(discharge(v) - battery_to_house(v), 0) if exp(v) > 0 else 0


def grid_to_battery(v: Values) -> int:
    # GivTCP does not clamp this and can publish a negative flow.
    if imp(v) <= 0:
        return 0
    return max(0, charge(v) - max(pv(v) - int(v["Load_Power"]), 0))


def grid_to_house(v: Values) -> int:
    return max(imp(v) - charge(v), 0) if imp(v) > 0 else 0


# --- energy ------------------------------------------------------------------------------------


def _load_energy(period: str, with_pv: bool) -> Callable[[Values, Any], float]:
    def compute(v: Values, model: Any) -> float:
        out = (v[f"Invertor_Energy_{period}_kWh"] - v[f"AC_Charge_Energy_{period}_kWh"]) - (
            v[f"Export_Energy_{period}_kWh"] - v[f"Import_Energy_{period}_kWh"]
        )
        if with_pv:
            out += (
                v["PV1_Energy_Today_kWh"] + v["PV2_Energy_Today_kWh"]
                if period == "Today"
                else v["PV_Energy_Total_kWh"]
            )
        return _r(max(0.0, out), 1)

    return compute


def _load_inputs(period: str, with_pv: bool) -> tuple[str, ...]:
    base = (
        f"Invertor_Energy_{period}_kWh",
        f"AC_Charge_Energy_{period}_kWh",
        f"Export_Energy_{period}_kWh",
        f"Import_Energy_{period}_kWh",
    )
    if not with_pv:
        return base
    pv_inputs = (
        ("PV1_Energy_Today_kWh", "PV2_Energy_Today_kWh")
        if period == "Today"
        else ("PV_Energy_Total_kWh",)
    )
    return base + pv_inputs


def _load(period: str) -> list[Derived]:
    kind = Kind.TODAY if period == "Today" else Kind.TOTAL
    path = TODAY_PATH if period == "Today" else TOTAL_PATH
    ha = ENERGY_TODAY if period == "Today" else ENERGY_TOTAL
    bounds = c.TODAY_KWH if period == "Today" else c.TOTAL_KWH
    return [
        Derived(
            f"Load_Energy_{period}_kWh",
            path,
            _load_inputs(period, with_pv),
            _load_energy(period, with_pv),
            unit="kWh",
            kind=kind,
            families=families,
            bounds=bounds,
            ha=ha,
            description="inverter out - AC charge - (export - import)" + (" + PV" * with_pv),
        )
        for with_pv, families in ((False, _HYBRID_LOAD), (True, _OTHER_LOAD))
    ]


# --- battery -----------------------------------------------------------------------------------


def rate_watts(raw_field: str) -> Callable[[Values, Any], int | None]:
    """HR111/112 (C/100) in watts: raw / 100 x capacity_Wh, capped at the battery limit."""

    def compute(v: Values, model: Any) -> int | None:
        watts = float(v[raw_field]) / 100 * capacity_kwh(v, model) * 1000
        limit = getattr(model, "battery_max_power", None)
        if limit:
            watts = min(watts, float(limit))
        return round(watts)

    return compute


def capacity_kwh_2dp(v: Values, model: Any) -> float:
    """The capacity as GivTCP publishes and computes with it: rounded to 2 decimals first."""
    return round(capacity_kwh(v, model), 2)


def _time_remaining(v: Values, model: Any, soc_gap: float, power: int) -> int:
    if power <= 0 or soc_gap <= 0:
        return 0
    # Whole minutes, truncated, from the rounded capacity: GivTCP's arithmetic.
    return int(capacity_kwh_2dp(v, model) * soc_gap / 100 / (power / 1000) * 60)


def charge_time_remaining(v: Values, model: Any) -> int:
    return _time_remaining(v, model, float(v["Target_SOC"]) - float(v["SOC"]), charge(v))


def discharge_time_remaining(v: Values, model: Any) -> int:
    gap = float(v["SOC"]) - float(v["Battery_Power_Reserve"])
    return _time_remaining(v, model, gap, discharge(v))


def _completion(
    kind: str, limit: str, remaining: Callable[[Values, Any], int], what: str
) -> Derived:
    """``<kind>_Completion_Time``: the snapshot's time plus the minutes ``remaining``."""

    def compute(v: Values, model: Any) -> datetime:
        now: datetime = v[NOW]
        return now + timedelta(minutes=remaining(v, model))

    return Derived(f"{kind}_Completion_Time", POWER_PATH,
                   (*_SOC_CAP, limit, "Battery_Power", NOW), compute, kind=Kind.STATUS,
                   families=c.SP_BATTERY, ha=_TIMESTAMP, returns=str,
                   description=f"when {what} at the current {kind.lower()} power (now if not "
                   f"{kind.lower()}ing)")  # fmt: skip


def mode(v: Values, model: Any) -> str:
    """The battery mode GivTCP's setBatteryMode would have produced (see the module table)."""
    eco, sched = v["Eco_Mode"], v["Enable_Discharge_Schedule"]
    if eco not in c.ENABLE.values() or sched not in c.ENABLE.values():
        return "Unknown"
    if eco == "enable" and sched == "disable":
        return "Eco (Paused)" if int(v["Battery_Power_Reserve"]) >= 100 else "Eco"
    if sched == "enable":
        return "Timed Demand" if eco == "enable" else "Timed Export"
    return "Export (Paused)"


# --- the list ----------------------------------------------------------------------------------

_P = ("PV_Power_String_1", "PV_Power_String_2")
_FLOW_INPUTS = (*_P, "Load_Power", "Grid_Power", "Battery_Power")
_FLOW_FAMILIES: Final = c.SP_BATTERY


def _flow(name: str, fn: Callable[[Values], int]) -> Derived:
    return Derived(name, FLOWS_PATH, _FLOW_INPUTS, lambda v, m: fn(v), unit="W",
                   families=_FLOW_FAMILIES, bounds=c.LOAD_POWER, ha=POWER,
                   returns=int)  # fmt: skip


def _power(name: str, inputs: tuple[str, ...], fn: Callable[[Values], int],
           families: frozenset[Family] = c.SP_BATTERY, bounds: Bounds = c.LOAD_POWER,
           description: str = "") -> Derived:  # fmt: skip
    return Derived(name, POWER_PATH, inputs, lambda v, m: fn(v), unit="W", families=families,
                   bounds=bounds, ha=POWER, description=description, returns=int)  # fmt: skip


# Three-phase units (issue 12): the same flows, the grid from the meter's export - import and the
# battery from its discharge - charge power (three_phase.py has no Grid_Power / Battery_Power
# field to feed them).
_3PH_FLOW_INPUTS: Final = (*_P, "Load_Power", "Meter_Import_Power", "Meter_Export_Power",
                           "Battery_Charge_Power", "Battery_Discharge_Power")  # fmt: skip


def _three_phase_flow(name: str, fn: Callable[[Values], int]) -> Derived:
    def compute(v: Values, model: Any) -> int:
        return fn({
            **{k: v[k] for k in (*_P, "Load_Power")},
            "Grid_Power": round(v["Meter_Export_Power"] - v["Meter_Import_Power"]),
            "Battery_Power": round(v["Battery_Discharge_Power"] - v["Battery_Charge_Power"]),
        })  # fmt: skip

    return Derived(name, FLOWS_PATH, _3PH_FLOW_INPUTS, compute, unit="W",
                   families=THREE_PHASE_FAMILIES, bounds=(0.0, 60000.0), ha=POWER,
                   returns=int)  # fmt: skip


_FLOWS: Final[tuple[tuple[str, Callable[[Values], int]], ...]] = (
    ("Solar_to_House", solar_to_house),
    ("Solar_to_Battery", solar_to_battery),
    ("Solar_to_Grid", solar_to_grid),
    ("Battery_to_House", battery_to_house),
    ("Battery_to_Grid", battery_to_grid),
    ("Grid_to_Battery", grid_to_battery),
    ("Grid_to_House", grid_to_house),
)
THREE_PHASE_FLOWS: Final[tuple[Derived, ...]] = tuple(
    _three_phase_flow(name, fn) for name, fn in _FLOWS
)

_SOC_CAP = ("SOC", "Battery_Nominal_Capacity")
_TIMESTAMP: Final = HA(device_class="timestamp")

DERIVED: Final[tuple[Derived, ...]] = attach_raw((
    _power("PV_Power", _P, pv, c.SP_INPUT, c.PV_POWER, "PV string 1 + string 2"),
    _power("Import_Power", ("Grid_Power",), imp, c.SP_INPUT),
    _power("Export_Power", ("Grid_Power",), exp, c.SP_INPUT),
    _power("Charge_Power", ("Battery_Power",), charge),
    _power("Discharge_Power", ("Battery_Power",), discharge),
    _power("AC_Charge_Power", ("Invertor_Power",), lambda v: max(0, -int(v["Invertor_Power"]))),
    _power("Self_Consumption_Power", ("Load_Power", "Grid_Power"),
           lambda v: max(int(v["Load_Power"]) - imp(v), 0), c.SP_INPUT),
    _flow("Solar_to_House", solar_to_house),
    _flow("Solar_to_Battery", solar_to_battery),
    _flow("Solar_to_Grid", solar_to_grid),
    _flow("Battery_to_House", battery_to_house),
    _flow("Battery_to_Grid", battery_to_grid),
    _flow("Grid_to_Battery", grid_to_battery),
    _flow("Grid_to_House", grid_to_house),
    Derived("SOC_kWh", POWER_PATH, _SOC_CAP,
            lambda v, m: _r(float(v["SOC"]) * capacity_kwh_2dp(v, m) / 100),
            unit="kWh", families=c.SP_BATTERY, bounds=(0, 500),
            ha=HA(device_class="energy_storage", state_class="measurement",
                  name="Battery Stored Energy")),
    Derived("Charge_Time_Remaining", POWER_PATH,
            (*_SOC_CAP, "Target_SOC", "Battery_Power"), charge_time_remaining, unit="min",
            families=c.SP_BATTERY, bounds=c.MINUTES, ha=c.DURATION_MIN, returns=int,
            description="minutes to Target_SOC at the current charge power (0 if not charging)"),
    Derived("Discharge_Time_Remaining", POWER_PATH,
            (*_SOC_CAP, "Battery_Power_Reserve", "Battery_Power"), discharge_time_remaining,
            unit="min", families=c.SP_BATTERY, bounds=c.MINUTES, ha=c.DURATION_MIN, returns=int,
            description="minutes to the reserve at the current discharge power"),
    _completion("Charge", "Target_SOC", charge_time_remaining, "Target_SOC is reached"),
    _completion("Discharge", "Battery_Power_Reserve", discharge_time_remaining,
                "the reserve is reached"),
    Derived("PV_Energy_Today_kWh", TODAY_PATH, ("PV1_Energy_Today_kWh", "PV2_Energy_Today_kWh"),
            lambda v, m: _r(v["PV1_Energy_Today_kWh"] + v["PV2_Energy_Today_kWh"], 1),
            unit="kWh", kind=Kind.TODAY, families=c.SP_INPUT, bounds=c.TODAY_KWH,
            ha=ENERGY_TODAY),
    Derived("Battery_Throughput_Today_kWh", TODAY_PATH,
            ("Battery_Charge_Energy_Today_kWh", "Battery_Discharge_Energy_Today_kWh"),
            lambda v, m: _r(v["Battery_Charge_Energy_Today_kWh"]
                            + v["Battery_Discharge_Energy_Today_kWh"], 1),
            unit="kWh", kind=Kind.TODAY, families=c.SP_BATTERY, bounds=c.TODAY_KWH,
            ha=ENERGY_TODAY),
    Derived("Self_Consumption_Energy_Today_kWh", TODAY_PATH,
            ("PV1_Energy_Today_kWh", "PV2_Energy_Today_kWh", "Export_Energy_Today_kWh"),
            lambda v, m: _r(max(0.0, v["PV1_Energy_Today_kWh"] + v["PV2_Energy_Today_kWh"]
                                - v["Export_Energy_Today_kWh"]), 1),
            unit="kWh", kind=Kind.TODAY, families=c.SP_INPUT, bounds=c.TODAY_KWH,
            ha=ENERGY_TODAY),
    Derived("Self_Consumption_Energy_Total_kWh", TOTAL_PATH,
            ("PV_Energy_Total_kWh", "Export_Energy_Total_kWh"),
            lambda v, m: _r(max(0.0, v["PV_Energy_Total_kWh"] - v["Export_Energy_Total_kWh"]), 1),
            unit="kWh", kind=Kind.TOTAL, families=c.SP_INPUT, bounds=c.TOTAL_KWH,
            ha=ENERGY_TOTAL),
    *_load("Today"),
    *_load("Total"),
    Derived("Battery_Capacity_kWh", DETAILS_PATH, ("Battery_Nominal_Capacity",),
            lambda v, m: _r(capacity_kwh(v, m)), unit="kWh", kind=Kind.INFO,
            families=c.SP_BATTERY, bounds=(0, 500), ha=c.ENERGY_STORAGE),
    Derived("Invertor_Max_Inv_Rate", DETAILS_PATH, (), lambda v, m: m.rated_power or None,
            unit="W", kind=Kind.INFO,
            ha=HA(device_class="power", state_class="measurement", entity_category="diagnostic",
                  name="Inverter Max Power"), returns=int),
    Derived("Invertor_Max_Bat_Rate", DETAILS_PATH, (), lambda v, m: m.battery_max_power,
            unit="W", kind=Kind.INFO, families=c.SP_BATTERY | c.HV_BATTERY,
            ha=HA(device_class="power", state_class="measurement", entity_category="diagnostic",
                  name="Battery Max Power"), returns=int),
    Derived("Invertor_Type", DETAILS_PATH, (), lambda v, m: m.name, kind=Kind.INFO,
            ha=DIAGNOSTIC, returns=str),
    Derived("Invertor_Firmware", DETAILS_PATH, ("DSP_Firmware_Version", "ARM_Firmware_Version"),
            lambda v, m: f"D0.{v['DSP_Firmware_Version']}-A0.{v['ARM_Firmware_Version']}",
            kind=Kind.INFO, ha=DIAGNOSTIC, returns=str),
    Derived("Battery_Charge_Rate", CONTROL_PATH,
            ("Battery_Charge_Limit", "Battery_Nominal_Capacity"),
            rate_watts("Battery_Charge_Limit"), unit="W", kind=Kind.SETTING,
            families=c.SP_BATTERY, bounds=(0, 20000), ha=c.POWER_NUMBER, control="setChargeRate",
            returns=int),
    Derived("Battery_Discharge_Rate", CONTROL_PATH,
            ("Battery_Discharge_Limit", "Battery_Nominal_Capacity"),
            rate_watts("Battery_Discharge_Limit"), unit="W", kind=Kind.SETTING,
            families=c.SP_BATTERY, bounds=(0, 20000), ha=c.POWER_NUMBER,
            control="setDischargeRate", returns=int),
    # GivTCP's placeholders for its buttons (always "disable"): clients read them.
    *(Derived(name, CONTROL_PATH, (), lambda v, m: "disable", kind=Kind.STATUS,
              families=families, ha=None, returns=str, choices=("disable",),
              description="always disable (GivTCP's placeholder for its button)")
      for name, families in (("Sync_Time", None), ("Reboot_Invertor", c.SP_CONTROL),
                             ("Reboot_Addon", None))),
    Derived("Mode", CONTROL_PATH,
            ("Eco_Mode", "Enable_Discharge_Schedule", "Battery_Power_Reserve"),
            mode, kind=Kind.SETTING, families=c.SP_BATTERY,
            ha=HA(platform="select", entity_category="config"), control="setBatteryMode",
            description="one of " + ", ".join(MODES) + " or Unknown", returns=str,
            choices=(*MODES, "Unknown")),
), DERIVED_RAW) + THREE_PHASE_DERIVED + THREE_PHASE_FLOWS + EMS_DERIVED \
    + GATEWAY_DERIVED  # fmt: skip
