"""Shared pieces of the register map: family groups, bounds, Home Assistant presets, options."""

from __future__ import annotations

from typing import Any, Final

from givtcp_async.registers.schema import (
    HA,
    SINGLE_PHASE,
    SINGLE_PHASE_LV,
    THREE_PHASE_FAMILIES,
    Family,
)

# --- family groups ---------------------------------------------------------------------------

LV_HYBRIDS: Final = frozenset(
    {
        Family.HYBRID_GEN1,
        Family.HYBRID_GEN2,
        Family.HYBRID_GEN3,
        Family.HYBRID_GEN4,
        Family.HYBRID_POLAR,
    }
)
# Models whose IR1/2/8/9 are real PV string measurements (on AC and All-in-One they echo the AC
# voltage: SPEC §4.4).
PV_STRINGS: Final = LV_HYBRIDS | {Family.HV_GEN3, Family.PV_ONLY}
# Models using the single-phase input registers IR0-59 (SPEC §4.4).
SP_INPUT: Final = SINGLE_PHASE
# ... of which those with a battery behind the inverter.
SP_BATTERY: Final = SINGLE_PHASE - {Family.PV_ONLY}
# Models controlled through the single-phase holding registers (SPEC §4.3; the Gateway too, §4.7).
SP_CONTROL: Final = SP_BATTERY | {Family.GATEWAY}
# Extended-slot candidates: the HR240 page (slots 2..10, per-slot targets). Gen3 only with ARM
# firmware > 302, which the read plan decides (the page is probed or read, not assumed).
SLOT_PAGE: Final = frozenset(
    {
        Family.HYBRID_GEN3,
        Family.HYBRID_GEN4,
        Family.HYBRID_POLAR,
        Family.AIO,
        Family.HV_GEN3,
        Family.GATEWAY,
    }
)
# The HR300 page: AC-coupled, All-in-One and Gateway read it; Gen3-type hybrids may answer it.
HR300_PAGE: Final = frozenset(
    {
        Family.AC,
        Family.AIO,
        Family.GATEWAY,
        Family.HYBRID_GEN3,
        Family.HYBRID_GEN4,
        Family.HYBRID_POLAR,
    }
)
ALL_FAMILIES: Final = frozenset(Family)
LV_BATTERY: Final = SINGLE_PHASE_LV
HV_BATTERY: Final = THREE_PHASE_FAMILIES | {Family.AIO, Family.HV_GEN3}

# --- bounds that depend on the model -----------------------------------------------------------

_FALLBACK_POWER: Final = 20000.0


def inverter_power(model: Any) -> tuple[float, float]:
    """Inverter AC power: within the rating (10 % margin), or ±20 kW when it is unknown."""
    rated = float(getattr(model, "rated_power", 0) or 0)
    limit = rated * 1.1 if rated else _FALLBACK_POWER
    return (-limit, limit)


def battery_power(model: Any) -> tuple[float, float]:
    """Battery power: within 1.25 x the model's battery limit, else its rating, else ±13 kW."""
    limit = float(
        getattr(model, "battery_max_power", None) or getattr(model, "rated_power", 0) or 10400
    )
    return (-limit * 1.25, limit * 1.25)


def eps_power(model: Any) -> tuple[float, float]:
    return (0.0, inverter_power(model)[1])


def battery_voltage(model: Any) -> tuple[float, float]:
    """Battery voltage at the inverter: LV packs about 40-60 V, HV stacks up to 600 V."""
    side = str(getattr(model, "battery_side", "lv"))
    return (0.0, 600.0) if side == "hv" else (0.0, 70.0)


GRID_POWER: Final = (-25000.0, 25000.0)  # a 100 A domestic supply at 250 V
LOAD_POWER: Final = (0.0, 25000.0)
PV_STRING_POWER: Final = (0.0, 10000.0)
PV_POWER: Final = (0.0, 15000.0)  # GivTCP publishes PV only below 15 kW
PV_VOLTAGE: Final = (0.0, 1000.0)
PV_CURRENT: Final = (0.0, 50.0)
GRID_VOLTAGE: Final = (0.0, 300.0)  # 0 is real during a power cut
FREQUENCY: Final = (40.0, 70.0)
OUTPUT_FREQUENCY: Final = (0.0, 70.0)  # 0 when the EPS output is off
AC_CURRENT: Final = (0.0, 100.0)
BATTERY_CURRENT: Final = (-300.0, 300.0)
TEMPERATURE: Final = (-40.0, 100.0)
PERCENT: Final = (0.0, 100.0)
CELL_VOLTAGE: Final = (1.0, 5.0)
PACK_VOLTAGE: Final = (16.0, 80.0)
TODAY_KWH: Final = (0.0, 200.0)
TOTAL_KWH: Final = (0.0, 10_000_000.0)
PACK_TOTAL_KWH: Final = (0.1, 6553.5)  # 16-bit counters; 0 means "not supported" (SPEC §7 #19)
POWER_FACTOR: Final = (-1.0, 1.0)
CAPACITY_AH: Final = (0.0, 2000.0)
MINUTES: Final = (0.0, 100_000.0)

# --- Home Assistant presets for controls -------------------------------------------------------

SWITCH: Final = HA(platform="switch", entity_category="config")
NUMBER: Final = HA(platform="number", entity_category="config")
AC_RATE: Final = HA(platform="number", entity_category="config", needs_control=True)
POWER_NUMBER: Final = HA(platform="number", device_class="power", entity_category="config")
SELECT: Final = HA(platform="select", entity_category="config")
TIME_SELECT: Final = HA(platform="select", entity_category="config", icon="mdi:clock-outline")
ENUM_SENSOR: Final = HA(device_class="enum")
DIAGNOSTIC_ENUM: Final = HA(device_class="enum", entity_category="diagnostic")
PLAIN: Final = HA(state_class="measurement")
HIDDEN_CELL_VOLTAGE: Final = HA(
    device_class="voltage", state_class="measurement", enabled_by_default=False, precision=3
)
HIDDEN_TEMPERATURE: Final = HA(
    device_class="temperature", state_class="measurement", enabled_by_default=False
)
DURATION_MIN: Final = HA(device_class="duration", state_class="measurement")
ENERGY_STORAGE: Final = HA(device_class="energy_storage", state_class="measurement")
COUNTER: Final = HA(state_class="total")

# --- option maps -------------------------------------------------------------------------------

# GivTCP publishes on/off settings as "enable" / "disable".
ENABLE: Final = {0: "disable", 1: "enable"}
INVERTER_STATUS: Final = {0: "Waiting", 1: "Normal", 2: "Warning", 3: "Fault", 4: "Firmware Update"}
CHARGE_STATUS: Final = {0: "Idle", 2: "Charging", 3: "Finishing", 5: "Discharging"}
SYSTEM_MODE: Final = {0: "Offline", 1: "Grid-Tied"}
METER_TYPE: Final = {0: "EM418/CT", 1: "EM115"}
BATTERY_TYPE: Final = {0: "Lead Acid", 1: "Lithium"}
CERTIFICATION: Final = {8: "G98", 12: "G99", 16: "G98 NI", 17: "G99 NI"}
PAUSE_MODE: Final = {0: "Disabled", 1: "PauseCharge", 2: "PauseDischarge", 3: "PauseBoth"}
# HR29 read-back: 0 idle, 1-7 a calibration stage in progress (GivTCP shows "Running").
CALIBRATION: Final = {0: "Off", **dict.fromkeys(range(1, 8), "Running")}
CALIBRATION_STAGE: Final = {
    0: "Off",
    1: "Discharge",
    2: "Set Lower Limit",
    3: "Charge",
    4: "Set Upper Limit",
    5: "Balance",
    6: "Set Full Capacity",
    7: "Finish",
}
LOCAL_CONTROL_MODE: Final = {0: "Load", 1: "Battery", 2: "Grid"}
