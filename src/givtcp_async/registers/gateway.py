"""Gateway (DTC 70xx) specifics at 0x11 (SPEC §4.7: IR1600-1959; controls use the standard
single-phase holding registers, which :mod:`givtcp_async.registers.inverter` covers).

Layout from givenergy-modbus 2.13.0's ``model/gateway.py``, checked against the gateway_gaaa0014
capture (two All-in-Ones); names are GivTCP 3.5's (``read.py``, processGatewayInfo):

* IR1600-1603 software version ("GAAA" then one digit per byte: "GAAA0014"); IR1604 work mode;
  grid voltage / current IR1608-1609, load voltage / current IR1610-1611, PV current IR1612
  (0.1 V, 0.1 A); grid IR1616 (+ = export, as the single-phase IR30), PV IR1617, load IR1618,
  Liberty IR1619 (W); fault protection IR1620-1621 and fault bits IR1622-1623; relay voltages
  IR1624-1625; the first AIO's serial IR1627-1631.
* Energy: today IR1640 / 1643 / 1646 / 1649 / 1652 / 1655 / 1795 / 1798 (0.1 kWh), each
  followed by its lifetime total in two registers; per AIO charge today / total from IR1705 and
  discharge from IR1750 (three registers a slot).
* AIO summary: count IR1700, online count IR1701, total power IR1702, state IR1703, battery
  firmware IR1704; per AIO SOC IR1801-1803, power IR1816-1818, serial IR1841-1855 (five each).

Decisions:

* **Word order of the lifetime totals.** GivTCP 3.5 and the peer's "V2" table swap the words for
  firmware 10 and later; the GAAA0014 capture (firmware 14) says otherwise: high word first
  gives import 12710.8 kWh, PV 5087.0, load 12006.4 (sane, and the per-AIO totals add up to
  the plant's within the AIOs' own history), swapped gives 4.0e8 kWh. Every total here is high
  word first for every firmware. A unit that really swapped them would read hundreds of millions
  of kWh, outside the totals' bounds: the gates refuse those, nothing wrong is published.
  The AIO serials sit at IR1841 + 5(n-1) on that firmware (AIO 2 "CH2542…" at IR1846), not at
  GivTCP's IR1848 for firmware > 9.
* **Signs.** The Gateway reports the AIOs' power positive while they charge (daylight capture:
  IR1702 = +156 with PV 2 kW and the AIOs charging). ``Battery_Power`` / ``Invertor_Power``
  (GivTCP: ``-p_aio_total``), ``AIO_<n>_Invertor_Power`` and ``Liberty_Power`` are negated, so
  battery power is positive when discharging and inverter power negative when charging, as on
  the single-phase models.
* ``SOC`` is the mean of the AIOs that report one (GivTCP's average); per-AIO values live under
  ``Inverters/AIO_<n>`` with the slot in the name (``AIO_1_SOC``), one name per value.
* ``raw`` is the name GivTCP 3.5's Gateway model gives the register (``raw/invertor``):
  ``software_version``, ``work_mode``, ``v_grid``, ``i_grid``, ``v_load``, ``i_load``, ``i_pv``,
  ``p_ac1``, ``p_pv``, ``p_load``, ``p_liberty``, ``fault_protection``, the relay voltages,
  ``first_inverter_serial_number``, ``e_grid_import_today`` / ``_total`` and the other plant
  energies, ``parallel_aio_num``, ``p_aio_total``, ``aio_state``, per AIO ``e_aio<n>_charge_*``,
  ``aio<n>_soc``, ``p_aio<n>_inverter`` and ``aio1_serial_number_new``; in its forms (the
  negated powers as the register reads, codes as numbers). ``gateway_fault_codes`` is left out
  (GivTCP prints a list of fault names; the map has the word and ``Gateway_Faults``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from givtcp_async.registers import common as c
from givtcp_async.registers.schema import (
    BATTERY_PCT,
    CURRENT,
    DIAGNOSTIC,
    ENERGY_TODAY,
    ENERGY_TOTAL,
    POWER,
    VOLTAGE,
    Bank,
    Derived,
    Enc,
    Family,
    Field,
    Kind,
)

IR = Bank.INPUT
_GATEWAY: Final = frozenset({Family.GATEWAY})
DETAILS: Final = ("Invertor_Details",)
POWER_PATH: Final = ("Power", "Power")
TODAY_PATH: Final = ("Energy", "Today")
TOTAL_PATH: Final = ("Energy", "Total")
AIOS: Final = 3
WORK_MODE: Final = {0: "Initialising", 1: "Off grid", 2: "On grid", 3: "Fault", 4: "Update"}
AIO_STATE: Final = {0: "Static", 1: "Charge", 2: "Discharge"}
PLANT_POWER: Final = (-40000.0, 40000.0)  # three 12 kW All-in-Ones
# IR1622-1623 fault bits, most significant first (bit 31 = the first name).
FAULT_BITS: Final[tuple[str | None, ...]] = (
    "Relay 1&2 bonding", "Relay 3&4 bonding", "Relay 1&2 disconnect", "Relay 3&4 disconnect",
    "AC over frequency 1", "AC under frequency 1", "AC over voltage 1", "AC under voltage 1",
    "AC over frequency 2", "AC under frequency 2", "AC over voltage 2", "AC under voltage 2",
    None, "No zero-point protection", "Over quarter AC voltage", "Under quarter AC voltage",
    "Over AC voltage long-time", "AC over frequency constant", "AC under frequency constant",
    "AC over voltage constant", *([None] * 11), "Grid mode Off",
)  # fmt: skip
NO_FAULTS: Final = "No faults"


def _ir(name: str, path: tuple[str, ...], registers: tuple[int, ...], **kw: Any) -> Field:
    return Field(name, path, IR, registers, families=_GATEWAY, **kw)


def _v(name: str, reg: int, raw: str) -> Field:
    return _ir(name, POWER_PATH, (reg,), enc=Enc.S16, scale=0.1, unit="V",
               bounds=c.GRID_VOLTAGE, ha=VOLTAGE, raw=raw)  # fmt: skip


def _a(name: str, reg: int, raw: str) -> Field:
    return _ir(name, POWER_PATH, (reg,), enc=Enc.S16, scale=0.1, unit="A",
               bounds=(-200.0, 200.0), ha=CURRENT, raw=raw)  # fmt: skip


def _w(name: str, path: tuple[str, ...], reg: int, description: str, raw: str | None, *,
       negate: bool = False, bounds: tuple[float, float] = PLANT_POWER) -> Field:  # fmt: skip
    return _ir(name, path, (reg,), enc=Enc.S16, scale=-1 if negate else 1, unit="W",
               bounds=bounds, ha=POWER, description=description, raw=raw)  # fmt: skip


def _today(name: str, path: tuple[str, ...], reg: int, raw: str) -> Field:
    return _ir(name, path, (reg,), scale=0.1, unit="kWh", kind=Kind.TODAY,
               bounds=c.TODAY_KWH, ha=ENERGY_TODAY, raw=raw)  # fmt: skip


def _total(name: str, path: tuple[str, ...], reg: int, raw: str) -> Field:
    return _ir(name, path, (reg, reg + 1), enc=Enc.U32, scale=0.1, unit="kWh", kind=Kind.TOTAL,
               bounds=c.TOTAL_KWH, ha=ENERGY_TOTAL,
               description=f"IR{reg}-{reg + 1}, high word first", raw=raw)  # fmt: skip


def _energy(stem: str, reg: int, raw: str, path_today: tuple[str, ...] = TODAY_PATH,
            path_total: tuple[str, ...] = TOTAL_PATH) -> list[Field]:  # fmt: skip
    """Today at ``reg``, lifetime at ``reg + 1``; raw: GivTCP's ``<raw>_today`` / ``_total``."""
    return [_today(f"{stem}_Today_kWh", path_today, reg, f"{raw}_today"),
            _total(f"{stem}_Total_kWh", path_total, reg + 1, f"{raw}_total")]  # fmt: skip


def _aio(n: int) -> list[Field]:
    path = ("Inverters", f"AIO_{n}")
    i = n - 1
    return [
        *_energy(f"AIO_{n}_AC_Charge_Energy", 1705 + 3 * i, f"e_aio{n}_charge", path, path),
        *_energy(f"AIO_{n}_AC_Discharge_Energy", 1750 + 3 * i, f"e_aio{n}_discharge", path,
                 path),
        _ir(f"AIO_{n}_SOC", path, (1801 + i,), unit="%", bounds=c.PERCENT, ha=BATTERY_PCT,
            raw=f"aio{n}_soc"),
        _w(f"AIO_{n}_Invertor_Power", path, 1816 + i,
           f"IR{1816 + i} negated: positive = delivering AC, negative = charging",
           f"p_aio{n}_inverter", negate=True, bounds=(-15000.0, 15000.0)),
        # GivTCP 3.5 reads the first serial here too (aio1_serial_number_new); its other two
        # are five registers further on (IR1848, IR1855), where GAAA0014 has none: no raw name.
        _ir(f"AIO_{n}_Serial_Number", path, tuple(range(1841 + 5 * i, 1846 + 5 * i)),
            enc=Enc.ASCII, kind=Kind.INFO, ha=DIAGNOSTIC, description="empty for an unused slot",
            raw="aio1_serial_number_new" if n == 1 else None),
    ]  # fmt: skip


GATEWAY_FIELDS: Final[tuple[Field, ...]] = (
    _ir("Gateway_Software_Code", DETAILS, (1600, 1601), enc=Enc.ASCII, kind=Kind.INFO, ha=None,
        description="IR1600-1601: the letters of Gateway_Software_Version"),
    _ir("Gateway_Software_Build", DETAILS, (1602, 1603), enc=Enc.U32, kind=Kind.INFO, ha=None,
        description="IR1602-1603: one digit per byte of Gateway_Software_Version"),
    _ir("Gateway_Mode", DETAILS, (1604,), options=WORK_MODE, kind=Kind.STATUS,
        ha=c.DIAGNOSTIC_ENUM, description="IR1604 work mode", raw="work_mode"),
    _v("Grid_Voltage", 1608, "v_grid"),
    _a("Grid_Current", 1609, "i_grid"),
    _v("Load_Voltage", 1610, "v_load"),
    _a("Load_Current", 1611, "i_load"),
    _ir("PV_Current", POWER_PATH, (1612,), enc=Enc.S16, scale=0.1, unit="A",
        bounds=c.PV_CURRENT, ha=CURRENT, raw="i_pv"),
    _w("Grid_Power", POWER_PATH, 1616, "IR1616: positive = export, negative = import", "p_ac1",
       bounds=c.GRID_POWER),
    _ir("PV_Power", POWER_PATH, (1617,), unit="W", bounds=(0.0, 50000.0), ha=POWER, raw="p_pv"),
    _ir("Load_Power", POWER_PATH, (1618,), unit="W", bounds=(0.0, 50000.0), ha=POWER,
        raw="p_load"),
    _w("Liberty_Power", POWER_PATH, 1619, "IR1619 negated (GivTCP's sign)", "p_liberty",
       negate=True),
    _ir("Fault_Protection_Code", DETAILS, (1620, 1621), enc=Enc.U32, kind=Kind.STATUS,
        ha=DIAGNOSTIC, description="IR1620-1621", raw="fault_protection"),
    _ir("Gateway_Fault_Code", DETAILS, (1622, 1623), enc=Enc.U32, kind=Kind.STATUS,
        ha=DIAGNOSTIC, description="IR1622-1623 bits (Gateway_Faults names them)"),
    _v("Grid_Relay_Voltage", 1624, "v_grid_relay"),
    _v("Inverter_Relay_Voltage", 1625, "v_inverter_relay"),
    _ir("First_Inverter_Serial_Number", DETAILS, tuple(range(1627, 1632)), enc=Enc.ASCII,
        kind=Kind.INFO, ha=DIAGNOSTIC, raw="first_inverter_serial_number"),
    *_energy("Import_Energy", 1640, "e_grid_import"),
    *_energy("PV_Energy", 1643, "e_pv"),
    *_energy("Export_Energy", 1646, "e_grid_export"),
    *_energy("Parallel_Total_Charge_Energy", 1649, "e_aio_charge"),
    *_energy("Parallel_Total_Discharge_Energy", 1652, "e_aio_discharge"),
    *_energy("Load_Energy", 1655, "e_load"),
    *_energy("Battery_Charge_Energy", 1795, "e_battery_charge"),
    *_energy("Battery_Discharge_Energy", 1798, "e_battery_discharge"),
    _ir("Parallel_Total_AIO_Number", DETAILS, (1700,), kind=Kind.INFO, bounds=(0, 8),
        ha=DIAGNOSTIC, raw="parallel_aio_num"),
    _ir("Parallel_Total_AIO_Online_Number", DETAILS, (1701,), kind=Kind.INFO, bounds=(0, 8),
        ha=DIAGNOSTIC, raw="parallel_aio_online_num"),
    _w("Battery_Power", POWER_PATH, 1702,
       "IR1702 negated (all AIOs): positive = discharging, negative = charging", "p_aio_total",
       negate=True),
    _w("Invertor_Power", POWER_PATH, 1702,
       "IR1702 negated (all AIOs): positive = delivering AC, negative = charging", None,
       negate=True),
    _ir("Gateway_State", DETAILS, (1703,), options=AIO_STATE, kind=Kind.STATUS,
        ha=c.DIAGNOSTIC_ENUM, description="IR1703: the AIOs' charge state", raw="aio_state"),
    _ir("Battery_Firmware_Version", DETAILS, (1704,), kind=Kind.INFO, ha=DIAGNOSTIC,
        raw="battery_firmware_version"),
    *(f for n in range(1, AIOS + 1) for f in _aio(n)),
)  # fmt: skip


def _version(v: Mapping[str, Any], model: Any) -> str:
    digits = "".join(str(b) for b in int(v["Gateway_Software_Build"]).to_bytes(4, "big"))
    return f"{v['Gateway_Software_Code']}{digits}"


def faults(code: int) -> str:
    """The names of the fault bits set in ``code`` (IR1622-1623), or "No faults"."""
    names = [n for i, n in enumerate(FAULT_BITS) if n and code >> (31 - i) & 1]
    return ", ".join(names) if names else NO_FAULTS


def _soc(v: Mapping[str, Any], model: Any) -> int | None:
    socs = [int(v[f"AIO_{n}_SOC"]) for n in range(1, AIOS + 1) if v[f"AIO_{n}_SOC"]]
    return int(sum(socs) / len(socs)) if socs else None


GATEWAY_DERIVED: Final[tuple[Derived, ...]] = (
    Derived("Gateway_Software_Version", DETAILS,
            ("Gateway_Software_Code", "Gateway_Software_Build"), _version, kind=Kind.INFO,
            families=_GATEWAY, ha=DIAGNOSTIC, returns=str,
            description="IR1600-1603, e.g. GAAA0014", raw="software_version"),
    Derived("Gateway_Faults", DETAILS, ("Gateway_Fault_Code",),
            lambda v, m: faults(int(v["Gateway_Fault_Code"])), kind=Kind.STATUS,
            families=_GATEWAY, ha=DIAGNOSTIC, returns=str,
            description=f"the IR1622-1623 fault bits by name, or {NO_FAULTS!r}"),
    Derived("SOC", POWER_PATH, tuple(f"AIO_{n}_SOC" for n in range(1, AIOS + 1)), _soc,
            unit="%", families=_GATEWAY, bounds=c.PERCENT, ha=BATTERY_PCT, returns=int,
            description="mean SOC of the All-in-Ones that report one"),
)  # fmt: skip
