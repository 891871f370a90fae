"""The GivEnergy EV charger's register map: one declarative entry per published value.

The charger (GivEVC) answers Modbus TCP on port 502, unit 1, from holding registers HR0-114, read
as two blocks (HR0-59, HR60-114). Addresses, scaling and state names are GivTCP 3.5's
(``GivTCP/evc.py``, ``EVCLut``). 32-bit values are register pairs, high word first: GivTCP reads
the low word (HR13, HR17, HR29, HR79), so a value below 65536 reads the same either way.

Values the daemon holds itself (GivTCP kept them in its cache file, not on the charger) are
:data:`HELD` entries: the import cap, the charging mode and the session energy limit.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from givtcp_async.registers.plan import Block, Cadence
from givtcp_async.registers.schema import (
    CURRENT,
    DIAGNOSTIC,
    ENERGY_TOTAL,
    HA,
    POWER,
    VOLTAGE,
    Bank,
    Derived,
    Enc,
    Field,
    Kind,
    Source,
)

PATH: Final = ("Charger",)
UNIT: Final = 1  # Modbus unit id the charger answers
PORT: Final = 502
BLOCKS: Final = ((0, 60), (60, 55))  # HR0-59 and HR60-114
EVC_BLOCKS: Final = tuple(Block(UNIT, Bank.HOLDING, b, n, Cadence.FAST) for b, n in BLOCKS)

# Holding registers written by the controls.
CURRENT_LIMIT: Final = 91  # A x 10
PLUG_AND_GO: Final = 93  # 0 = enable, 1 = disable
CHARGE_CONTROL: Final = 95  # 0 Ready, 1 Start, 2 Stop
CLOCK: Final = tuple(range(97, 103))  # full year, month, day, hour, minute, second
WRITABLE: Final = frozenset({CURRENT_LIMIT, PLUG_AND_GO, CHARGE_CONTROL, *CLOCK})

STATES: Final[Mapping[int, str]] = {
    0: "Unknown",
    1: "Idle",
    2: "Connected",
    3: "Starting",
    4: "Charging",
    5: "Startup Failure",
    6: "End of Charging",
    7: "System Failure",
    8: "Scheduled",
    9: "Updating",
    10: "Unstable CP",
}
CHARGING: Final = "Charging"
CABLE: Final[Mapping[int, str]] = {0: "Not Connected", 1: "Connected"}
ERRORS: Final[Mapping[int, str]] = {
    0: "Clear",
    11: "CP voltage is abnormal",
    12: "Emergency stop",
    13: "Undervoltage",
    14: "Overvoltage",
    15: "Over temperature",
    16: "Meter failure",
    17: "Leakage fault",
    18: "Output short circuit",
    19: "Overcurrent",
    21: "Vehicle response timeout",
    22: "No diode at the vehicle end",
    23: "Relay sticking",
    24: "Leakage current device failure",
    25: "Ground fault",
    26: "Failed to start process",
}
SWITCH: Final[Mapping[int, str]] = {0: "enable", 1: "disable"}
CONTROL_CHOICES: Final = ("Ready", "Start", "Stop")
MODES: Final = ("Grid", "Hybrid", "Solar")

AMPS: Final = (0.0, 80.0)
WATTS: Final = (0.0, 25000.0)  # a 22 kW three-phase charger, with headroom
VOLTS: Final = (0.0, 300.0)
_SENSOR: Final = HA()
_ENUM: Final = HA(device_class="enum")
_TIMESTAMP: Final = HA(device_class="timestamp")


def _hr(
    name: str,
    registers: tuple[int, ...],
    *,
    enc: Enc = Enc.U16,
    scale: float = 1.0,
    unit: str | None = None,
    kind: Kind = Kind.MEASUREMENT,
    options: Mapping[int, str] | None = None,
    bounds: tuple[float, float] | None = None,
    ha: HA | None = _SENSOR,
    control: str | None = None,
    description: str = "",
) -> Field:
    return Field(name, PATH, Bank.HOLDING, registers, enc, scale, unit, kind, Source.EVC, None,
                 options, bounds, ha, control, description)  # fmt: skip


def _amps(name: str, register: int, kind: Kind = Kind.MEASUREMENT, **kw: Any) -> Field:
    return _hr(name, (register,), scale=0.1, unit="A", kind=kind, bounds=AMPS, **kw)


def _watts(name: str, high: int, description: str) -> Field:
    return _hr(name, (high, high + 1), enc=Enc.U32, unit="W", bounds=WATTS, ha=POWER,
               description=description)  # fmt: skip


def _volts(name: str, register: int) -> Field:
    return _hr(name, (register,), scale=0.1, unit="V", bounds=VOLTS, ha=VOLTAGE)


EVC_FIELDS: Final[tuple[Field, ...]] = (
    _hr("Charging_State", (0,), kind=Kind.STATUS, options=STATES, ha=_ENUM),
    _hr("Connection_Status", (2,), kind=Kind.STATUS, options=CABLE, ha=_ENUM,
        description="whether a car's cable is plugged in"),
    _hr("Error_Code", (4,), kind=Kind.STATUS, options=ERRORS, ha=_ENUM),
    _amps("Current_L1", 6, ha=CURRENT),
    _amps("Current_L2", 8, ha=CURRENT),
    _amps("Current_L3", 10, ha=CURRENT),
    _watts("Active_Power", 12, "HR12-13: power delivered to the car"),
    _watts("Active_Power_L1", 16, "HR16-17"),
    _watts("Active_Power_L2", 20, "HR20-21"),
    _watts("Active_Power_L3", 24, "HR24-25"),
    _hr("Meter_Energy", (28, 29), enc=Enc.U32, scale=0.1, unit="kWh", kind=Kind.TOTAL,
        bounds=(0.0, 1_000_000.0), ha=ENERGY_TOTAL, description="lifetime energy delivered"),
    _amps("Evse_Max_Current", 32, Kind.INFO, ha=HA(device_class="current",
                                                  entity_category="diagnostic")),
    _amps("Evse_Min_Current", 34, Kind.INFO, ha=HA(device_class="current",
                                                  entity_category="diagnostic")),
    _amps("Charge_Limit", 36, Kind.SETTING, ha=HA(platform="number", device_class="current"),
          control="setCurrentLimit",
          description="current limit in effect (set through HR91)"),
    _hr("Serial_Number", tuple(range(38, 69)), enc=Enc.ASCII, kind=Kind.INFO, ha=DIAGNOSTIC,
        description="one character per register"),
    _hr("Charge_Session_Energy", (72,), scale=0.1, unit="kWh", bounds=(0.0, 200.0),
        ha=HA(device_class="energy", state_class="total_increasing"),
        description="energy of the current (or, once it ended, the last) session"),
    _hr("Charge_Start_Time", (74, 75, 76), enc=Enc.TIME_HMS, kind=Kind.INFO, ha=_TIMESTAMP,
        description="start of the session: its latest occurrence, local time"),
    _hr("Charge_Session_Duration", (78, 79), enc=Enc.SECONDS, kind=Kind.INFO,
        description="H:MM:SS"),
    _hr("Charge_End_Time", (82, 83, 84), enc=Enc.TIME_HMS, kind=Kind.INFO, ha=_TIMESTAMP,
        description="end of the last session: its latest occurrence, local time"),
    _hr("Plug_and_Go", (PLUG_AND_GO,), kind=Kind.SETTING, options=SWITCH,
        ha=HA(platform="switch"), control="setChargeMode",
        description="charge as soon as a car is plugged in"),
    _hr("System_Time", CLOCK, enc=Enc.DATETIME_FULL, kind=Kind.INFO, ha=_TIMESTAMP),
    _volts("Voltage_L1", 109),
    _volts("Voltage_L2", 111),
    _volts("Voltage_L3", 113),
)  # fmt: skip


def _charge_control(values: Mapping[str, Any], _model: object) -> str:
    # GivTCP's rule: the select shows Start while the charger charges, Stop otherwise.
    return "Start" if values["Charging_State"] == CHARGING else "Stop"


def _held(name: str) -> Any:
    def value(values: Mapping[str, Any], _model: object) -> Any:
        return values[name]

    return value


DERIVED: Final[tuple[Derived, ...]] = (
    Derived("Charge_Control", PATH, ("Charging_State",), _charge_control, kind=Kind.SETTING,
            ha=HA(platform="select"), control="setChargeControl", returns=str,
            choices=CONTROL_CHOICES, description="Start while charging, else Stop"),
)  # fmt: skip

# Settings the daemon keeps (its state file) and publishes as if read: same tree, same gates.
HELD: Final[tuple[Derived, ...]] = (
    Derived("Charging_Mode", PATH, (), _held("Charging_Mode"), kind=Kind.SETTING,
            ha=HA(platform="select"), control="setChargingMode", returns=str, choices=MODES,
            description="Grid leaves the current alone; Hybrid and Solar follow the PV surplus"),
    Derived("Import_Cap", PATH, (), _held("Import_Cap"), unit="A", kind=Kind.SETTING,
            bounds=(0.0, 100.0), ha=HA(platform="number", device_class="current"),
            control="setImportCap", returns=int,
            description="grid import current the charger is held under; 0 = off"),
    Derived("Max_Session_Energy", PATH, (), _held("Max_Session_Energy"), unit="kWh",
            kind=Kind.SETTING, bounds=(0.0, 100.0),
            ha=HA(platform="number", device_class="energy"), control="setMaxSessionEnergy",
            description="a session stops at this energy; 0 = no limit"),
)  # fmt: skip

ALL_SPECS: Final[tuple[Field | Derived, ...]] = (*EVC_FIELDS, *DERIVED, *HELD)
