"""Tariff tracking: GivTCP's ``Energy/Rates``, import costs by day and night rate.

One :class:`TariffTracker` per inverter follows its snapshots (:meth:`TariffTracker.observe`):
the energy imported since the last snapshot (``Import_Energy_Total_kWh``) is counted to the rate
in use and costed at it. The rate in use follows the clock (``day_start`` .. ``night_start``) or,
with ``dynamic``, only :meth:`TariffTracker.switch` (GivTCP's ``switchRate``; it works without
``dynamic`` too, until the next boundary). Everything restarts at local midnight. What it
publishes (:meth:`TariffTracker.readings`, GivTCP's names, :data:`SPECS`):

* ``Day_Rate``, ``Night_Rate``, ``Export_Rate``, ``Current_Rate`` (currency per kWh) and
  ``Current_Rate_Type`` (``Day`` / ``Night``);
* ``Day_Energy_kWh`` / ``Night_Energy_kWh`` imported at each rate today, ``Day_Cost`` /
  ``Night_Cost`` what it cost, ``Import_Cost_Today`` both, ``Export_Income_Today`` today's export
  at the export rate, ``Import_ppkwh_Today`` the average import price today;
* ``Day_Start_Energy_kWh`` / ``Night_Start_Energy_kWh``: the import total that, subtracted from
  the current total, gives the rate's energy today while it is in use (GivTCP's offsets), and
  ``Day_Energy_Total_kWh`` / ``Night_Energy_Total_kWh``: the rate's energy at the end of its last
  period today;
* ``Battery_Value`` / ``Battery_ppkwh``: what the energy in the battery cost, worked out every
  half hour as GivTCP does (energy charged from the grid since, at the rate in use).

State is kept in ``<state_dir>/<serial>.tariff.json`` (written atomically): on every switch of
rate, every new day, every half-hour battery value and at least every 5 minutes, and on
:meth:`TariffTracker.close`. After a restart the import since the last save is counted to the
rate then in use, so no energy is lost.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from functools import cache
from pathlib import Path
from typing import Any, Final

import structlog

from givtcp_async.control.persist import read_json, write_json
from givtcp_async.registers.schema import ENERGY_TODAY, HA, Derived, Kind

log = structlog.get_logger(__name__)

VERSION: Final = 1
RATES_PATH: Final = ("Energy", "Rates")
DAY: Final = "Day"
NIGHT: Final = "Night"
SAVE_EVERY: Final = timedelta(minutes=5)
# An import total that jumps further than this between two snapshots is a new baseline, not
# energy (the gates vouch for the counter; this guards a counter replaced or reset).
MAX_STEP_KWH: Final = 100.0
INPUTS: Final = (
    "Import_Energy_Total_kWh",
    "Import_Energy_Today_kWh",
    "Export_Energy_Today_kWh",
    "AC_Charge_Energy_Total_kWh",
    "SOC_kWh",
)


@dataclass(frozen=True, slots=True)
class TariffSettings:
    """The configured tariff (``[tariff]``; GivTCP's DAYRATE, NIGHTRATE, EXPORTRATE, ...)."""

    enabled: bool = True
    day_rate: float = 0.155
    night_rate: float = 0.055
    export_rate: float = 0.04
    day_start: time = time(4, 30)
    night_start: time = time(0, 30)
    dynamic: bool = False
    currency: str = "GBP"

    def rate(self, kind: str) -> float:
        return self.day_rate if kind == DAY else self.night_rate

    def by_clock(self, moment: datetime) -> str:
        """The rate the clock says is in use at ``moment`` (local)."""
        now, day, night = moment.time(), self.day_start, self.night_start
        if day == night:
            return DAY
        in_day = day <= now < night if day < night else not night <= now < day
        return DAY if in_day else NIGHT


def _published(_values: Mapping[str, Any], _model: Any) -> Any:
    raise LookupError("published by the tariff tracker, never computed from registers")


def _spec(name: str, unit: str | None, kind: Kind, ha: HA | None, description: str,
          returns: type[int | float | str | bool] = float,
          choices: tuple[str, ...] | None = None) -> Derived:  # fmt: skip
    return Derived(name, RATES_PATH, (), _published, unit=unit, kind=kind, ha=ha,
                   description=description, returns=returns, choices=choices)  # fmt: skip


@cache
def specs(currency: str = "GBP") -> tuple[Derived, ...]:
    """The published values' entries (units in ``currency``): made once per currency, so that
    the inverters of a layout share them (and the specs merged with them)."""
    per_kwh = f"{currency}/kWh"
    price = HA(state_class="measurement", icon="mdi:cash")
    money = HA(device_class="monetary", state_class="total")
    energy_info = HA(device_class="energy", state_class="total", entity_category="diagnostic")
    return (
        _spec("Day_Rate", per_kwh, Kind.SETTING, price, "import price at the day rate"),
        _spec("Night_Rate", per_kwh, Kind.SETTING, price, "import price at the night rate"),
        _spec("Export_Rate", per_kwh, Kind.SETTING, price, "export price"),
        _spec("Current_Rate", per_kwh, Kind.MEASUREMENT, price, "import price in use now"),
        _spec("Current_Rate_Type", None, Kind.STATUS, HA(platform="select"),
              "the rate in use now (switchRate sets it)", str, (DAY, NIGHT)),
        _spec("Day_Energy_kWh", "kWh", Kind.TODAY, ENERGY_TODAY, "imported at the day rate today"),
        _spec("Night_Energy_kWh", "kWh", Kind.TODAY, ENERGY_TODAY,
              "imported at the night rate today"),
        _spec("Day_Cost", currency, Kind.TODAY, money, "cost of the day-rate import today"),
        _spec("Night_Cost", currency, Kind.TODAY, money, "cost of the night-rate import today"),
        _spec("Import_Cost_Today", currency, Kind.TODAY, money, "cost of today's import"),
        _spec("Export_Income_Today", currency, Kind.TODAY, money,
              "today's export at the export rate"),
        _spec("Import_ppkwh_Today", per_kwh, Kind.MEASUREMENT, price,
              "average import price today"),
        _spec("Day_Start_Energy_kWh", "kWh", Kind.INFO, energy_info,
              "import total less the day-rate energy today, when the day rate last began"),
        _spec("Night_Start_Energy_kWh", "kWh", Kind.INFO, energy_info,
              "import total less the night-rate energy today, when the night rate last began"),
        _spec("Day_Energy_Total_kWh", "kWh", Kind.TODAY, ENERGY_TODAY,
              "day-rate energy today at the end of its last period"),
        _spec("Night_Energy_Total_kWh", "kWh", Kind.TODAY, ENERGY_TODAY,
              "night-rate energy today at the end of its last period"),
        _spec("Battery_Value", currency, Kind.MEASUREMENT, HA(device_class="monetary"),
              "what the energy in the battery cost (every half hour)"),
        _spec("Battery_ppkwh", per_kwh, Kind.MEASUREMENT, price,
              "price per kWh of the energy in the battery"),
    )  # fmt: skip


#: The entries in GBP (the REST schema documents these names).
SPECS: Final = specs()


@dataclass(slots=True)
class _State:
    day: date | None = None
    rate: str = DAY
    last_import: float | None = None
    energy: dict[str, float] = field(default_factory=lambda: {DAY: 0.0, NIGHT: 0.0})
    cost: dict[str, float] = field(default_factory=lambda: {DAY: 0.0, NIGHT: 0.0})
    start: dict[str, float] = field(default_factory=lambda: {DAY: 0.0, NIGHT: 0.0})
    closed: dict[str, float] = field(default_factory=lambda: {DAY: 0.0, NIGHT: 0.0})
    switched: str | None = None  # the rate switchRate asked for, while it holds
    clock_at_switch: str | None = None  # what the clock said then (it holds until that changes)
    battery_value: float = 0.0
    battery_ppkwh: float = 0.0
    ac_charge: float | None = None
    soc_kwh: float | None = None
    half_hour: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "version": VERSION,
            "day": self.day.isoformat() if self.day else None,
            "rate": self.rate,
            "last_import": self.last_import,
            "energy": self.energy,
            "cost": self.cost,
            "start": self.start,
            "closed": self.closed,
            "switched": self.switched,
            "clock_at_switch": self.clock_at_switch,
            "battery": {
                "value": self.battery_value,
                "ppkwh": self.battery_ppkwh,
                "ac_charge": self.ac_charge,
                "soc_kwh": self.soc_kwh,
                "half_hour": self.half_hour.isoformat() if self.half_hour else None,
            },
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> _State:
        def pair(key: str) -> dict[str, float]:
            raw = data.get(key) or {}
            return {k: float(raw.get(k, 0.0)) for k in (DAY, NIGHT)}

        battery = data.get("battery") or {}
        rate = data.get("rate")
        switched = data.get("switched")
        clock = data.get("clock_at_switch")
        return cls(
            day=date.fromisoformat(data["day"]) if data.get("day") else None,
            rate=rate if rate in (DAY, NIGHT) else DAY,
            last_import=_float(data.get("last_import")),
            energy=pair("energy"),
            cost=pair("cost"),
            start=pair("start"),
            closed=pair("closed"),
            switched=switched if switched in (DAY, NIGHT) else None,
            clock_at_switch=clock if clock in (DAY, NIGHT) else None,
            battery_value=float(battery.get("value") or 0.0),
            battery_ppkwh=float(battery.get("ppkwh") or 0.0),
            ac_charge=_float(battery.get("ac_charge")),
            soc_kwh=_float(battery.get("soc_kwh")),
            half_hour=(
                datetime.fromisoformat(battery["half_hour"]) if battery.get("half_hour") else None
            ),
        )


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _half_hour(moment: datetime) -> datetime:
    return moment.replace(minute=moment.minute - moment.minute % 30, second=0, microsecond=0)


class TariffTracker:
    """Counts one inverter's import to its tariff rates; see the module docstring."""

    def __init__(self, settings: TariffSettings, path: Path | None = None) -> None:
        self.settings = settings
        self.path = path
        self._state = _State()
        self._saved_at: datetime | None = None
        self._export_today: float | None = None
        self._import_today: float | None = None
        if path is not None:
            data = read_json(path)
            if isinstance(data, dict):
                try:
                    self._state = _State.from_json(data)
                except (KeyError, TypeError, ValueError) as err:
                    log.error("unreadable tariff state ignored", path=str(path), error=str(err))

    @property
    def rate(self) -> str:
        """The rate in use (``Day`` or ``Night``)."""
        return self._state.rate

    def observe(self, values: Mapping[str, Any], now: datetime) -> None:
        """Follow one new snapshot: ``values`` are its fresh values by name (missing or None
        ones: nothing is counted), ``now`` its local time."""
        state = self._state
        save = False
        if state.day != now.date():
            save = self._new_day(now, _float(values.get("Import_Energy_Total_kWh")))
        wanted = self._wanted(now)
        if wanted != state.rate:
            self._begin(wanted)
            save = True
        total = _float(values.get("Import_Energy_Total_kWh"))
        if total is not None:
            self._count(total)
        self._import_today = _float(values.get("Import_Energy_Today_kWh"))
        self._export_today = _float(values.get("Export_Energy_Today_kWh"))
        save = self._battery(values, now) or save
        if save or self._saved_at is None or now - self._saved_at >= SAVE_EVERY:
            self._save(now)

    def switch(self, rate: str, now: datetime) -> None:
        """switchRate: ``rate`` (``Day`` / ``Night``) is in use from now."""
        if rate not in (DAY, NIGHT):
            raise ValueError(f"unknown rate {rate!r}")
        self._state.switched = rate
        self._state.clock_at_switch = self.settings.by_clock(now)
        if rate != self._state.rate:
            self._begin(rate)
        self._save(now)

    def close(self, now: datetime) -> None:
        """Save the state (a clean stop)."""
        self._save(now)

    def readings(self) -> dict[str, Any]:
        """The published values now, by name (None: not known yet)."""
        s, cfg = self._state, self.settings
        total = s.last_import
        energy = dict(s.energy)
        cost_total = s.cost[DAY] + s.cost[NIGHT]
        imported = self._import_today
        out: dict[str, Any] = {
            "Day_Rate": cfg.day_rate,
            "Night_Rate": cfg.night_rate,
            "Export_Rate": cfg.export_rate,
            "Current_Rate": cfg.rate(s.rate),
            "Current_Rate_Type": s.rate,
            "Day_Energy_kWh": round(energy[DAY], 3),
            "Night_Energy_kWh": round(energy[NIGHT], 3),
            "Day_Cost": round(s.cost[DAY], 2),
            "Night_Cost": round(s.cost[NIGHT], 2),
            "Import_Cost_Today": round(cost_total, 2),
            "Export_Income_Today": (
                round(self._export_today * cfg.export_rate, 2)
                if self._export_today is not None
                else None
            ),
            "Import_ppkwh_Today": round(cost_total / imported, 3) if imported else 0.0,
            "Day_Start_Energy_kWh": round(s.start[DAY], 3) if total is not None else None,
            "Night_Start_Energy_kWh": round(s.start[NIGHT], 3) if total is not None else None,
            "Day_Energy_Total_kWh": round(s.closed[DAY], 3),
            "Night_Energy_Total_kWh": round(s.closed[NIGHT], 3),
            "Battery_Value": round(s.battery_value, 3),
            "Battery_ppkwh": round(s.battery_ppkwh, 3),
        }
        return out

    # --- internals ---------------------------------------------------------------------------

    def _wanted(self, now: datetime) -> str:
        state = self._state
        if self.settings.dynamic:
            return state.switched or state.rate
        clock = self.settings.by_clock(now)
        if state.switched is not None and clock == state.clock_at_switch:
            return state.switched  # a switchRate holds until the clock's next boundary
        state.switched = state.clock_at_switch = None
        return clock

    def _new_day(self, now: datetime, total: float | None) -> bool:
        state = self._state
        had_day = state.day is not None
        state.day = now.date()
        for kind in (DAY, NIGHT):
            state.energy[kind] = state.cost[kind] = state.closed[kind] = 0.0
            state.start[kind] = total if total is not None else (state.last_import or 0.0)
        if had_day:
            log.info("tariff day restarted", day=state.day.isoformat())
        return True

    def _begin(self, rate: str) -> None:
        state = self._state
        state.closed[state.rate] = state.energy[state.rate]
        state.rate = rate
        if state.last_import is not None:
            state.start[rate] = state.last_import - state.energy[rate]

    def _count(self, total: float) -> None:
        state = self._state
        last = state.last_import
        state.last_import = total
        if last is None:
            state.start[state.rate] = total - state.energy[state.rate]
            return
        step = total - last
        if not 0 <= step <= MAX_STEP_KWH:
            log.warning("import total jumped; counting from here", was=last, now=total)
            state.start[state.rate] = total - state.energy[state.rate]
            return
        state.energy[state.rate] += step
        state.cost[state.rate] += step * self.settings.rate(state.rate)

    def _battery(self, values: Mapping[str, Any], now: datetime) -> bool:
        """GivTCP's battery value, every half hour: what grid charging since cost at the rate
        in use, spread over the energy stored; without charging, the stored energy at the last
        price."""
        state = self._state
        soc_kwh = _float(values.get("SOC_kWh"))
        ac_total = _float(values.get("AC_Charge_Energy_Total_kWh"))
        if soc_kwh is None or ac_total is None:
            return False
        mark = _half_hour(now)
        if state.half_hour is None or state.ac_charge is None or state.soc_kwh is None:
            state.half_hour, state.ac_charge, state.soc_kwh = mark, ac_total, soc_kwh
            return True
        if mark <= state.half_hour:
            return False
        if soc_kwh > state.soc_kwh:
            charged = max(0.0, ac_total - state.ac_charge)
            state.battery_value += charged * self.settings.rate(state.rate)
            state.battery_ppkwh = state.battery_value / soc_kwh if soc_kwh else 0.0
        else:
            state.battery_value = state.battery_ppkwh * soc_kwh
        state.half_hour, state.ac_charge, state.soc_kwh = mark, ac_total, soc_kwh
        return True

    def _save(self, now: datetime) -> None:
        self._saved_at = now
        if self.path is None:
            return
        try:
            write_json(self.path, self._state.to_json())
        except OSError as err:
            log.error("could not save the tariff state", path=str(self.path), error=str(err))
