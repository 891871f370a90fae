"""A simulated GivEnergy plant: a Gen3 hybrid inverter, LV battery packs, a house and the sky.

The plant owns a :class:`RegisterStore` laid out as a Gen3 hybrid answers (SPEC §3.2, §4.3-4.5)
and keeps it true to a small physical model, integrated in steps of simulated time. Attach it to a
:class:`DongleSimulator` and every answer first brings the model up to the simulated "now"; every
holding-register write goes through the plant, which refuses what a real inverter would refuse and
changes its behaviour for the rest.

Physical rules (all powers in W, lossless, + = the direction named):

* PV follows the sun at the plant's latitude/longitude (declination by day of year, hour angle by
  UTC time); two strings facing slightly east and west, zero at night, scaled so that a clear
  midsummer noon gives ``pv_peak_w``, dimmed by a per-day cloudiness and a smooth 10-minute
  variation. The house load follows local wall time: base load, morning, midday and evening
  peaks, per-minute noise and short appliance bursts, plus :attr:`Plant.external_load` when set
  (a simulated EV charger's draw). All noise is a pure function of the seed and
  the simulated minute, so it does not depend on how the model is stepped.
* Battery power (+ = discharging) is chosen each step by the inverter's own clock (HR35-40):
  calibration (HR29) overrides everything; else a charge slot with HR96 = 1 charges at the charge
  rate until the target (HR116 while HR20 = 1, else 100 %, lowered by the slot's own target), then
  holds; else a discharge slot with HR59 = 1 discharges at the discharge rate (HR27 = 0, excess is
  exported) or to match demand (HR27 = 1) down to max(reserve, cutoff, slot target); else with
  HR27 = 1 and HR59 = 0 the battery follows demand (eco); otherwise it only stores PV surplus.
  Pause mode HR318 then blocks charging (1), discharging (2) or both (3) inside the pause slot
  HR319/320 (all day when the slot is unset). Charging tapers above 97 % SOC.
* Rates: HR111/HR112 x HR55 x 51.2 V / 100 W, capped at 3600 W. Discharge never goes below
  max(HR110, HR114); the AC side is capped at the rated 5000 W x HR50 %, export at HR26; what
  cannot go anywhere is taken off the discharge first and then curtailed from PV.
* Balance: inverter AC power IR24 = PV + battery; grid IR30 = IR24 - load (+ = export).
* Energy counters integrate the same powers; "today" counters reset when the inverter's date
  changes (its local midnight). Pack SOC follows energy over calibrated capacity; cell voltages
  follow an LFP open-circuit curve plus current x resistance; temperatures lag towards ambient plus
  resistive heating.

Holding-register writes are validated (see :data:`_WRITE_RULES`); writes to read-only registers
or with out-of-range values are refused with an error frame and change nothing.
"""

from __future__ import annotations

import asyncio
import bisect
import calendar
import math
import random
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final, Protocol
from zoneinfo import ZoneInfo

from givtcp_async.protocol.frames import FunctionCode, WriteResponse
from givtcp_async.simulator.store import PAGE, RegisterStore

if TYPE_CHECKING:
    from givtcp_async.simulator.faults import FaultInjector
    from givtcp_async.simulator.server import DongleSimulator, SimulatorConfig

INVERTER: Final = 0x11
BATTERY_BASE: Final = 0x32
MAX_BATTERIES: Final = 6
HR: Final = int(FunctionCode.READ_HOLDING)
IR: Final = int(FunctionCode.READ_INPUT)

METER: Final = 0x01  # the plant's EM115 grid meter
LV_BCU: Final = 0x31  # the LV battery control unit's page (BMS status, request currents)
# IR60-63 as the captured Gen2 (one pack, BMS firmware 3020, as here) answers them.
LV_BCU_WORDS: Final = (0, 0, 83, 83)
METER_PAGE: Final = 60
HOLDING_PAGES: Final = (0, 60, 120, 180, 240, 300)
INPUT_PAGES: Final = (0, 120, 180, 240)
BATTERY_PAGE: Final = 60

DEVICE_TYPE_CODE: Final = 0x2001
DSP_FIRMWARE: Final = 308
ARM_FIRMWARE: Final = 308
MODBUS_VERSION: Final = 140
RATED_POWER_W: Final = 5000
BATTERY_MAX_POWER_W: Final = 3600
NOMINAL_VOLTS: Final = 51.2  # LV pack: 16 LiFePO4 cells x 3.2 V
CELLS: Final = 16
DESIGN_CAPACITY_CAH: Final = 18600  # 186.00 Ah: a 9.5 kWh pack
BMS_FIRMWARE: Final = 3020
DEFAULT_EXPORT_LIMIT_W: Final = 6000

_DAY: Final = 86400.0
_EPOCH: Final = datetime.fromtimestamp(0, UTC).replace(tzinfo=None)

TruthValue = int | float | str | datetime


# --- time --------------------------------------------------------------------------------------


class SimClock:
    """Simulated time: ``start`` plus real elapsed time x ``speed`` plus every :meth:`advance`.

    ``speed`` 1.0 is real time, 3600 an hour per second, 0 freezes the clock (tests step it by
    hand with :meth:`advance`). ``monotonic`` is the real-time source (injectable for tests).
    """

    def __init__(
        self,
        start: datetime | None = None,
        speed: float = 1.0,
        *,
        tz: ZoneInfo | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if speed < 0 or not math.isfinite(speed):
            raise ValueError(f"speed must be a finite number >= 0, got {speed}")
        self.tz = tz or ZoneInfo("Europe/London")
        if start is None:
            start = datetime.now(self.tz).replace(microsecond=0)
        elif start.tzinfo is None:
            start = start.replace(tzinfo=self.tz)
        self._monotonic = monotonic
        self._anchor_sim = start.timestamp()
        self._anchor_real = monotonic()
        self._speed = float(speed)

    @property
    def speed(self) -> float:
        return self._speed

    @speed.setter
    def speed(self, value: float) -> None:
        if value < 0 or not math.isfinite(value):
            raise ValueError(f"speed must be a finite number >= 0, got {value}")
        self._anchor_sim = self.timestamp()
        self._anchor_real = self._monotonic()
        self._speed = float(value)

    def timestamp(self) -> float:
        """Simulated POSIX time (seconds)."""
        return self._anchor_sim + (self._monotonic() - self._anchor_real) * self._speed

    def now(self) -> datetime:
        """Simulated time as an aware datetime in the clock's zone."""
        return datetime.fromtimestamp(self.timestamp(), self.tz)

    def advance(self, seconds: float) -> None:
        """Move simulated time forward by ``seconds`` (on top of whatever ``speed`` does)."""
        if seconds < 0 or not math.isfinite(seconds):
            raise ValueError(f"can only advance by a finite number >= 0, got {seconds}")
        self._anchor_sim += seconds


# --- configuration and results -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PlantConfig:
    """Everything that makes one simulated plant differ from another."""

    start: datetime | None = None  # naive: plant-local wall time; None: now
    speed: float = 1.0
    seed: int = 0
    batteries: int = 2
    pv_peak_w: float = 5000.0
    soc: float = 50.0  # initial state of charge, %
    timezone: str = "Europe/London"
    step_seconds: float = 10.0
    latitude: float = 51.5
    longitude: float = -1.0
    load_base_w: float = 250.0
    serial: str | None = None  # inverter serial; derived from the seed when None

    def __post_init__(self) -> None:
        if not 1 <= self.batteries <= MAX_BATTERIES:
            raise ValueError(f"batteries must be 1..{MAX_BATTERIES}, got {self.batteries}")
        if not 0 <= self.soc <= 100:
            raise ValueError(f"soc must be 0..100, got {self.soc}")
        if not self.step_seconds > 0:
            raise ValueError("step_seconds must be > 0")
        if self.pv_peak_w < 0:
            raise ValueError("pv_peak_w must be >= 0")
        if self.speed < 0 or not math.isfinite(self.speed):
            raise ValueError(f"speed must be a finite number >= 0, got {self.speed}")
        if self.serial is not None and not _valid_serial(self.serial):
            raise ValueError(f"serial must be 10 upper-case alphanumerics, got {self.serial!r}")


@dataclass(frozen=True, slots=True)
class PlantTruth:
    """What the plant really is at ``time``, keyed by GivTCP field names.

    ``values`` holds the inverter-level fields, ``batteries`` one mapping per present pack in
    address order. Values carry the registers' resolution: W as int, kWh to 0.1, V to 0.1 or
    0.01 as the register has it, slot times "HH:MM:SS", switches "enable"/"disable",
    ``Invertor_Time`` a naive datetime (the inverter's wall clock). ``Load_Energy_*`` are the
    model's own integrals (no register carries them), to 0.001 kWh.
    """

    time: datetime
    values: Mapping[str, TruthValue]
    batteries: tuple[Mapping[str, TruthValue], ...]

    def __getitem__(self, name: str) -> TruthValue:
        return self.values[name]


@dataclass(frozen=True, slots=True)
class PlantEvent:
    """A write the plant accepted or refused, or a reboot; ``time`` is simulated time."""

    time: datetime
    kind: str  # "write", "refused", "reboot"
    register: int
    value: int


# --- helpers -----------------------------------------------------------------------------------


def _valid_serial(text: str) -> bool:
    return len(text) == 10 and text.isascii() and text.isalnum() and text == text.upper()


def _ascii_words(text: str) -> list[int]:
    raw = text.encode("ascii").ljust(10, b"\x00")
    return [(raw[i] << 8) | raw[i + 1] for i in range(0, 10, 2)]


def _round(x: float) -> int:
    """Round half up (registers never see banker's rounding)."""
    return math.floor(x + 0.5)


def _tenths(wh: float) -> int:
    """An energy counter in 0.1 kWh units: whole steps only, like a meter."""
    return int(wh // 100.0)


_M64: Final = (1 << 64) - 1


def _unit(key: int) -> float:
    """A uniform number in [0, 1) from an integer key (splitmix64 finaliser): seeded noise."""
    z = (key + 0x9E3779B97F4A7C15) & _M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
    return ((z ^ (z >> 31)) >> 11) / 9007199254740992.0


def _hhmm_minutes(value: int) -> int | None:
    """Minutes after midnight of an HHMM register, or None if it is no valid time (2400 ok)."""
    hours, minutes = divmod(value, 100)
    if minutes >= 60 or hours > 24 or (hours == 24 and minutes):
        return None
    return hours * 60 + minutes


def _hhmm_text(value: int) -> str:
    hours, minutes = divmod(value, 100)
    return f"{hours:02d}:{minutes:02d}:00"


def _switch(on: bool) -> str:
    return "enable" if on else "disable"


# LiFePO4 cell open-circuit voltage by SOC (%, V).
_OCV_SOC: Final = (0.0, 5.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0, 95.0, 100.0)
_OCV_V: Final = (2.90, 3.10, 3.20, 3.245, 3.26, 3.275, 3.29, 3.30, 3.315, 3.33, 3.345, 3.37, 3.45)
_CELL_OHMS: Final = 0.0009
_PACK_TERMINAL_RISE_V: Final = 0.22  # pack output reads ~0.2 V above the cell sum (captures)


def _ocv(soc: float) -> float:
    soc = min(100.0, max(0.0, soc))
    i = min(bisect.bisect_right(_OCV_SOC, soc), len(_OCV_SOC) - 1)
    s0, s1 = _OCV_SOC[i - 1], _OCV_SOC[i]
    v0, v1 = _OCV_V[i - 1], _OCV_V[i]
    return v0 + (v1 - v0) * (soc - s0) / (s1 - s0)


# --- slot registers (SPEC §4.3, §5.1) ------------------------------------------------------------


def charge_slot_registers(k: int) -> tuple[int, int, int]:
    """(start, end, target SOC) holding registers of charge slot ``k`` (1..10)."""
    if k == 1:
        return (94, 95, 242)
    if k == 2:
        return (243, 244, 245)
    base = 246 + 3 * (k - 3)
    return (base, base + 1, base + 2)


def discharge_slot_registers(k: int) -> tuple[int, int, int]:
    """(start, end, target SOC) holding registers of discharge slot ``k`` (1..10)."""
    if k == 1:
        return (56, 57, 272)
    if k == 2:
        return (44, 45, 275)
    base = 276 + 3 * (k - 3)
    return (base, base + 1, base + 2)


SLOTS: Final = 10
PAUSE_MODES: Final = ("Disabled", "PauseCharge", "PauseDischarge", "PauseBoth")


def _is_bool(v: int) -> bool:
    return v in (0, 1)


def _is_pct(v: int) -> bool:
    return 0 <= v <= 100


def _is_slot_time(v: int) -> bool:
    minutes = _hhmm_minutes(v)
    return minutes is not None and minutes < 1440


def _is_pause_time(v: int) -> bool:
    return _hhmm_minutes(v) is not None


def _between(lo: int, hi: int) -> Callable[[int], bool]:
    return lambda v: lo <= v <= hi


def _write_rules() -> dict[int, Callable[[int], bool]]:
    rules: dict[int, Callable[[int], bool]] = {
        20: _is_bool,  # enable charge target
        26: _between(0, 60000),  # export limit, W
        27: _is_bool,  # eco
        29: lambda v: v in (0, 1, 3),  # calibration: stop, start, charge only
        35: _between(0, 99),  # year - 2000
        36: _between(1, 12),
        37: _between(1, 31),
        38: _between(0, 23),
        39: _between(0, 59),
        40: _between(0, 59),
        50: _is_pct,  # active power rate
        59: _is_bool,  # enable timed discharge
        96: _is_bool,  # enable AC charge in charge slots
        110: _is_pct,  # SOC reserve
        111: _between(0, 100),  # charge rate, C/100
        112: _between(0, 100),  # discharge rate, C/100
        114: _is_pct,  # discharge cutoff
        116: _is_pct,  # charge target
        163: lambda v: v == 100,  # reboot
        166: _is_bool,  # real-time control
        318: _between(0, 3),  # pause mode
        319: _is_pause_time,
        320: _is_pause_time,
    }
    for k in range(1, SLOTS + 1):
        for regs in (charge_slot_registers(k), discharge_slot_registers(k)):
            rules[regs[0]] = _is_slot_time
            rules[regs[1]] = _is_slot_time
            rules[regs[2]] = _is_pct
    return rules


# Holding registers a write may change, each with the values it accepts. Everything else is
# read-only: HR31/32 (charge slot 2 on some firmware, language/contrast on others, SPEC §7 #4)
# included, since this Gen3 keeps charge slot 2 at HR243/244.
_WRITE_RULES: Final = MappingProxyType(_write_rules())


# --- model state -------------------------------------------------------------------------------


@dataclass(slots=True)
class _Pack:
    """One LV battery pack's state."""

    serial: str
    design_cah: int  # centi-Ah
    full_cah: int
    cap_wh: float
    energy_wh: float
    cycles_base: int
    cell_offsets_v: tuple[float, ...]
    group_offsets_c: tuple[float, ...]
    temp_c: float
    power_w: float = 0.0  # + = discharging
    discharged_wh: float = 0.0


@dataclass(slots=True)
class _Controls:
    """The holding registers that steer the model, parsed once per change."""

    eco: bool
    timed_discharge: bool
    ac_charge: bool
    target_enabled: bool
    target: int
    floor: float
    charge_limit_w: float
    discharge_limit_w: float
    ac_max_w: float
    export_limit_w: float
    pause_mode: int
    charge_targets: tuple[int, ...]  # index = slot number (0 unused)
    discharge_targets: tuple[int, ...]
    charge_at: list[int]  # per inverter minute of the day: the charge slot covering it, or 0
    discharge_at: list[int]
    pause_at: list[bool]


# Energy counter indices.
_PV1, _PV2, _EXPORT, _IMPORT, _AC_IN, _INV_OUT, _CHARGE, _DISCHARGE, _LOAD = range(9)
_COUNTERS: Final = 9


@dataclass(slots=True)
class _Instant:
    """Physical values at the current state, at register resolution (ints in register units)."""

    pv1_w: int
    pv2_w: int
    pv1_dv: int  # 0.1 V
    pv2_dv: int
    pv1_da: int  # 0.1 A
    pv2_da: int
    load_w: int
    grid_w: int
    inverter_w: int
    battery_w: int
    grid_dv: int
    grid_ca: int  # 0.01 A
    inverter_da: int
    freq_chz: int  # 0.01 Hz
    battery_cv: int  # 0.01 V
    battery_ca: int  # 0.01 A, + = discharging
    soc: int
    heatsink_dc: int  # 0.1 degC
    charger_dc: int
    battery_dc: int
    status: int
    packs: list[_PackInstant]


@dataclass(slots=True)
class _PackInstant:
    cells_mv: list[int]
    group_dc: list[int]
    mosfet_dc: int
    sum_mv: int
    out_mv: int
    remaining_cah: int
    current_ca: int
    soc: int
    cycles: int
    max_dc: int
    min_dc: int


# --- the plant ---------------------------------------------------------------------------------


class Plant:
    """A simulated Gen3 hybrid with LV packs; see the module docstring for the rules.

    Drive it with :meth:`sync` (to the clock's now; the simulator does this before every answer)
    or :meth:`advance` (step the clock by hand, ``speed=0``). Read it with :meth:`truth` or the
    raw registers (:attr:`store`, :meth:`holding`, :meth:`input`, :meth:`registers`).
    """

    def __init__(
        self, config: PlantConfig | None = None, *, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        cfg = self.config = config or PlantConfig()
        self.tz = ZoneInfo(cfg.timezone)
        self.clock = SimClock(cfg.start, cfg.speed, tz=self.tz, monotonic=monotonic)
        rng = random.Random(cfg.seed)
        self._noise_key = rng.getrandbits(40) << 20
        unit = cfg.seed % 1000
        self.serial = cfg.serial or f"SA2347G{unit:03d}"
        self.dongle_serial = f"WG2350G{unit:03d}"
        self.events: deque[PlantEvent] = deque(maxlen=10_000)
        # Watts drawn beside the house (a simulated EV charger): part of the load from now on.
        self.external_load: Callable[[], float] | None = None
        self.reboots: list[datetime] = []

        # Batteries.
        self.packs: list[_Pack] = []
        for i in range(cfg.batteries):
            full = _round(DESIGN_CAPACITY_CAH * rng.uniform(0.985, 1.015))
            cap_wh = full / 100 * NOMINAL_VOLTS
            soc = min(
                100.0, max(0.0, cfg.soc + (rng.uniform(-1.5, 1.5) if 0 < cfg.soc < 100 else 0))
            )
            self.packs.append(
                _Pack(
                    serial=f"DZ2348G{(unit * 7 + 101 + i) % 1000:03d}",
                    design_cah=DESIGN_CAPACITY_CAH,
                    full_cah=full,
                    cap_wh=cap_wh,
                    energy_wh=cap_wh * soc / 100,
                    cycles_base=rng.randint(80, 400),
                    cell_offsets_v=tuple(rng.uniform(-0.004, 0.004) for _ in range(CELLS)),
                    group_offsets_c=tuple(rng.uniform(-0.8, 0.8) for _ in range(4)),
                    temp_c=rng.uniform(-0.5, 0.5),  # + ambient, once that is known
                )
            )
        self._cap_wh = sum(p.cap_wh for p in self.packs)
        self._weights = tuple(p.cap_wh / self._cap_wh for p in self.packs)
        self._packs_moving = False
        self._energy_wh = sum(p.energy_wh for p in self.packs)
        self._design_ah = sum(p.design_cah for p in self.packs) // 100  # HR55

        # Counters: lifetime totals start at plausible, mutually consistent values.
        f = rng.uniform(0.6, 1.4)
        self._total = [0.0] * _COUNTERS
        pv = 6_400_000.0 * f
        self._total[_PV1] = pv * 0.55
        self._total[_PV2] = pv * 0.45
        self._total[_CHARGE] = 2_100_000.0 * f
        self._total[_DISCHARGE] = 2_000_000.0 * f
        self._total[_AC_IN] = 800_000.0 * f
        self._total[_INV_OUT] = pv + self._total[_DISCHARGE] - self._total[_CHARGE]
        self._total[_INV_OUT] += self._total[_AC_IN]
        self._total[_EXPORT] = 1_900_000.0 * f
        self._total[_IMPORT] = 3_400_000.0 * f
        self._total[_LOAD] = (
            self._total[_INV_OUT]
            - self._total[_AC_IN]
            - self._total[_EXPORT]
            + self._total[_IMPORT]
        )
        self._midnight = list(self._total)  # totals when the inverter's day began
        self._work_seconds = rng.uniform(8000, 20000) * 3600.0

        # Physical state.
        self._t = self.clock.timestamp()
        self._clock_offset = 0.0  # inverter wall clock minus plant wall clock, seconds
        self._off_block = -1
        self._off = 0.0
        self._day = 0  # the inverter's local date (days since 1970), set below
        self._env_minute = -1
        self._sun_day = -1
        self._sun_a = self._sun_b = self._cloud_day = self._season = 0.0
        self._pv1_avail = self._pv2_avail = self._load_w = 0.0
        self._ambient_c = 18.0
        self._grid_v = 240.0
        self._freq = 50.0
        self._pv1 = self._pv2 = self._load = self._battery = self._grid = self._ac = 0.0
        self._heatsink_c = 0.0  # set once the ambient is known, below
        self._cal_stage = 0
        self._cal_until = 0.0
        lat = math.radians(cfg.latitude)
        self._sin_lat, self._cos_lat = math.sin(lat), math.cos(lat)
        self._lon_deg = cfg.longitude
        solstice = math.radians(23.44)
        noon = self._sun_factor(math.cos(lat - solstice))  # clear midsummer solar noon
        self._pv_scale = cfg.pv_peak_w / noon if noon > 0 else 0.0

        # Registers.
        self.store = RegisterStore()
        self._build_registers()
        self.store.write_hooks.append(self._on_write)
        self._controls = self._parse_controls()
        self._controls_dirty = False
        self._instant: _Instant | None = None
        self._encoded_t: float | None = None
        self._compute_env(int(self._t // 60), self._utc_offset(self._t))
        for p in self.packs:  # start near equilibrium with the room
            p.temp_c += self._ambient_c + 2.0
        self._heatsink_c = self._ambient_c + 6.0
        self._day = math.floor((self._t + self._utc_offset(self._t)) / _DAY)
        self._seed_today(self._t)
        # Warm up over one step ending at the start time, so that a frozen plant (speed 0)
        # already shows live power flows rather than an idle inverter.
        start_t = self._t
        self._t = start_t - cfg.step_seconds
        self._compute_env(int(self._t // 60), self._utc_offset(self._t))
        self.advance_to(start_t)
        self._encode()

    # --- public API ----------------------------------------------------------------------------

    @property
    def battery_serials(self) -> tuple[str, ...]:
        return tuple(p.serial for p in self.packs)

    @property
    def step_seconds(self) -> float:
        return self.config.step_seconds

    def now(self) -> datetime:
        """The simulated time the model (and the registers) currently describe."""
        return datetime.fromtimestamp(self._t, self.tz)

    def inverter_time(self) -> datetime:
        """The inverter's own wall clock (naive, whole seconds), as HR35-40 show it."""
        return (self._inverter_naive(self._t)).replace(microsecond=0)

    def sync(self) -> None:
        """Bring the model and the registers up to the clock's now."""
        self.advance_to(self.clock.timestamp())

    def advance(self, seconds: float) -> None:
        """Step the simulated clock forward by ``seconds`` and bring the model up to it."""
        self.clock.advance(seconds)
        self.sync()

    def advance_to(self, t: float) -> None:
        """Integrate the model up to simulated POSIX time ``t`` (never backwards)."""
        self._refresh_controls()
        dt_max = self.config.step_seconds
        while self._t < t:
            nxt = min(t, self._t + dt_max, (math.floor(self._t / 60) + 1) * 60.0)
            self._step(nxt - self._t)
            self._t = nxt
        if self._encoded_t != self._t:
            self._encode()

    def write_holding(self, register: int, value: int) -> int | None:
        """Write a holding register as the dongle would: the value now held, None if refused."""
        self.sync()
        resp = self.store.write(INVERTER, register, value)
        return resp.value if isinstance(resp, WriteResponse) else None

    def holding(self, register: int) -> int:
        return self.store.holding(register)

    def input(self, register: int, device: int = INVERTER) -> int:
        return self.store.input(register, device)

    def registers(self) -> dict[tuple[int, int, int], int]:
        """Every register as {(device, function, register): value}."""
        return self.store.snapshot()

    def attach(self, sim: DongleSimulator) -> None:
        """Let ``sim`` (which must serve :attr:`store`) bring the plant up to date per answer."""
        if sim.store is not self.store:
            raise ValueError(
                "the simulator must serve this plant's store: DongleSimulator(plant.store)"
            )
        if self.sync not in sim.pre_answer_hooks:
            sim.pre_answer_hooks.append(self.sync)

    def detach(self, sim: DongleSimulator) -> None:
        while self.sync in sim.pre_answer_hooks:
            sim.pre_answer_hooks.remove(self.sync)

    def simulator_config(self, **overrides: Any) -> SimulatorConfig:
        """A simulator configuration carrying this plant's dongle serial."""
        from givtcp_async.simulator.server import SimulatorConfig

        config = SimulatorConfig(adapter_serial=self.dongle_serial.encode("ascii"))
        return replace(config, **overrides)

    def simulator(
        self, config: SimulatorConfig | None = None, *, faults: FaultInjector | None = None
    ) -> DongleSimulator:
        """A :class:`DongleSimulator` serving this plant, already attached (start it yourself)."""
        from givtcp_async.simulator.server import DongleSimulator

        sim = DongleSimulator(self.store, config or self.simulator_config(), faults=faults)
        self.attach(sim)
        return sim

    async def run(self, interval: float = 1.0) -> None:
        """Keep the model current every ``interval`` real seconds (bounds catch-up work)."""
        while True:
            self.sync()
            await asyncio.sleep(interval)

    # --- registers: layout ---------------------------------------------------------------------

    def _build_registers(self) -> None:
        serial = self.serial.encode("ascii")
        inv = self.store.add_device(INVERTER, serial)
        for base in HOLDING_PAGES:
            inv.add_page(FunctionCode.READ_HOLDING, base, [0] * PAGE)
        for base in INPUT_PAGES:
            inv.add_page(FunctionCode.READ_INPUT, base, [0] * PAGE)
        hr = inv.banks[HR]
        first = self.packs[0]
        static_hr: dict[int, int] = {
            0: DEVICE_TYPE_CODE,
            1: 3,
            2: 0x0832,  # certification 8, 50 x 100 W
            3: 0x0201,  # 2 MPPT, 1 phase
            5: RATED_POWER_W * 10,
            6: 3600,
            7: 1,
            18: BMS_FIRMWARE,
            19: DSP_FIRMWARE,
            20: 0,
            21: ARM_FIRMWARE,
            22: 2,
            24: 0xC000,
            26: DEFAULT_EXPORT_LIMIT_W,
            27: 1,
            30: INVERTER,
            31: 1,
            32: 4,
            33: 7,
            34: MODBUS_VERSION,
            42: 2,
            46: 101,
            47: 1,
            50: 100,
            53: 1,
            54: 1,
            55: self._design_ah,
            56: 1600,  # discharge slot 1 (idle while HR59 = 0)
            57: 1900,
            58: 1,
            59: 0,
            # HR60 page: grid protection values as a UK unit carries them (captures).
            60: 1500, 61: 30, 62: 30, 63: 1840, 64: 2740, 65: 4700, 66: 5198, 67: 126,
            68: 27, 69: 24, 70: 28, 71: 1840, 72: 2620, 73: 4745, 74: 5200, 75: 126,
            76: 52, 77: 1, 78: 28, 79: 1755, 80: 2837, 81: 4700, 82: 5200, 83: 2740,
            94: 30,  # charge slot 1 00:30-04:30 (idle while HR96 = 0)
            95: 430,
            96: 0,
            97: 4320,
            98: 5850,
            108: 6,
            109: 1,
            110: 4,
            111: 50,
            112: 50,
            114: 4,
            116: 100,
            # HR120 page
            123: 24, 125: 1, 128: 1, 129: 1, 130: 255, 131: 20000, 132: 255, 133: 20000,
            134: 255, 135: 20000, 136: 255, 137: 20000, 138: 2484, 139: 2530, 140: 2116,
            141: 2070, 142: 20, 143: 5, 144: 2415, 145: 2300, 176: 15,
        }  # fmt: skip
        for i, word in enumerate(_ascii_words(first.serial)):
            static_hr[8 + i] = word
        for i, word in enumerate(_ascii_words(self.serial)):
            static_hr[13 + i] = word
        for k in range(1, SLOTS + 1):
            static_hr[charge_slot_registers(k)[2]] = 100
            static_hr[discharge_slot_registers(k)[2]] = 4
        hr.update(static_hr)
        ir = inv.banks[IR]
        ir[0] = 1  # normal
        ir[49] = 1  # grid-tied
        ir[227] = 300  # constant on every captured hybrid

        # The EM115 HR47 names (SPEC §4.6): it answers at 0x01 as on real sites, so a client's
        # meter probe finds it instead of timing out.
        meter = self.store.add_device(METER, serial)
        meter.add_page(FunctionCode.READ_INPUT, METER_PAGE, [0] * PAGE)
        meter.banks[IR].update({60: 2400, 80: 20000, 84: 5000})

        bcu = self.store.add_device(LV_BCU, serial)
        bcu.add_page(FunctionCode.READ_INPUT, BATTERY_PAGE, [0] * PAGE)
        bcu.banks[IR].update(dict(enumerate(LV_BCU_WORDS, start=60)))

        for slot in range(MAX_BATTERIES):
            dev = self.store.add_device(BATTERY_BASE + slot, serial)
            dev.add_page(FunctionCode.READ_INPUT, BATTERY_PAGE, [0] * PAGE)
            if slot >= len(self.packs):
                continue  # absent slots answer all-zero pages
            pack = self.packs[slot]
            bank = dev.banks[IR]
            bank[84], bank[85] = pack.full_cah >> 16, pack.full_cah & 0xFFFF
            bank[86], bank[87] = pack.design_cah >> 16, pack.design_cah & 0xFFFF
            bank[101], bank[102] = bank[86], bank[87]
            bank[97] = CELLS
            bank[98] = BMS_FIRMWARE
            for i, word in enumerate(_ascii_words(pack.serial)):
                bank[110 + i] = word

    # --- registers: controls -------------------------------------------------------------------

    def _parse_controls(self) -> _Controls:
        hr = self.store.holding
        cap_wh = hr(55) * NOMINAL_VOLTS

        def rate(register: int) -> float:
            return float(min(hr(register) / 100 * cap_wh, BATTERY_MAX_POWER_W))

        charge_at = [0] * 1440
        discharge_at = [0] * 1440
        for k in range(SLOTS, 0, -1):  # lowest slot number wins where slots overlap
            cs, ce, _ = charge_slot_registers(k)
            _mark(charge_at, hr(cs), hr(ce), k)
            ds, de, _ = discharge_slot_registers(k)
            _mark(discharge_at, hr(ds), hr(de), k)
        ps, pe = hr(319), hr(320)
        if ps == pe:  # no pause slot: the pause mode applies all day
            pause_at = [True] * 1440
        else:
            marks = [0] * 1440
            _mark(marks, ps, pe, 1)
            pause_at = [m == 1 for m in marks]
        return _Controls(
            eco=hr(27) == 1,
            timed_discharge=hr(59) == 1,
            ac_charge=hr(96) == 1,
            target_enabled=hr(20) == 1,
            target=hr(116),
            floor=float(max(hr(110), hr(114))),
            charge_limit_w=rate(111),
            discharge_limit_w=rate(112),
            ac_max_w=RATED_POWER_W * min(hr(50), 100) / 100,
            export_limit_w=float(hr(26)),
            pause_mode=hr(318),
            charge_targets=(0, *(hr(charge_slot_registers(k)[2]) for k in range(1, SLOTS + 1))),
            discharge_targets=(
                0,
                *(hr(discharge_slot_registers(k)[2]) for k in range(1, SLOTS + 1)),
            ),
            charge_at=charge_at,
            discharge_at=discharge_at,
            pause_at=pause_at,
        )

    def _refresh_controls(self) -> None:
        """Re-read the steering registers after a write (the store applies it after the hook)."""
        if self._controls_dirty:
            self._controls = self._parse_controls()
            self._controls_dirty = False

    def _on_write(self, device: int, register: int, value: int) -> int | None:
        """The store's write hook: refuse what the inverter would refuse, react to the rest."""
        when = self.now()
        rule = _WRITE_RULES.get(register)
        if device != INVERTER or rule is None or not rule(value):
            self.events.append(PlantEvent(when, "refused", register, value))
            return None
        stored = value
        if 35 <= register <= 40:
            if not self._set_clock_field(register, value):
                self.events.append(PlantEvent(when, "refused", register, value))
                return None
            self._encoded_t = None
        elif register == 163:
            self.reboots.append(when)
            self.events.append(PlantEvent(when, "reboot", register, value))
            stored = 0
        elif register == 29:
            self._cal_stage = value
            self._cal_until = self._t + 60.0
        self.events.append(PlantEvent(when, "write", register, value))
        self._controls_dirty = True
        return stored

    def _set_clock_field(self, register: int, value: int) -> bool:
        cur = self._inverter_naive(self._t)
        year, month, day = cur.year, cur.month, cur.day
        hour, minute, second = cur.hour, cur.minute, cur.second
        if register == 35:
            year = 2000 + value
        elif register == 36:
            month = value
        elif register == 37:
            day = value
            if day > calendar.monthrange(year, month)[1]:
                return False
        elif register == 38:
            hour = value
        elif register == 39:
            minute = value
        else:
            second = value
        # Changing the year or month first keeps the day inside the new month (a client writes
        # year, month, day in turn; the final day write is still checked above).
        day = min(day, calendar.monthrange(year, month)[1])
        new = cur.replace(year=year, month=month, day=day, hour=hour, minute=minute, second=second)
        self._clock_offset += (new - cur).total_seconds()
        self._check_day(self._t)
        return True

    # --- time helpers --------------------------------------------------------------------------

    def _utc_offset(self, t: float) -> float:
        """The zone's UTC offset (s) at ``t``, cached per quarter hour (DST moves on those)."""
        block = int(t // 900)
        if block != self._off_block:
            self._off_block = block
            off = datetime.fromtimestamp(block * 900, self.tz).utcoffset()
            self._off = off.total_seconds() if off is not None else 0.0
        return self._off

    def _inverter_naive(self, t: float) -> datetime:
        return _EPOCH + timedelta(seconds=t + self._utc_offset(t) + self._clock_offset)

    # --- environment ---------------------------------------------------------------------------

    @staticmethod
    def _sun_factor(sin_el: float) -> float:
        return sin_el**1.2 if sin_el > 0.02 else 0.0

    def _noise(self, stream: int, index: int) -> float:
        return _unit(self._noise_key ^ (stream << 56) ^ (index & 0xFFFFFFFFFFFF))

    def _compute_env(self, minute_index: int, utc_offset: float) -> None:
        """PV available, house load, ambient and grid for one UTC minute (pure in seed + time)."""
        self._env_minute = minute_index
        day = minute_index // 1440
        if day != self._sun_day:
            self._sun_day = day
            doy = (day + 0.5) % 365.2422  # days since 1 January, close enough for the sun
            decl = math.radians(-23.44) * math.cos(2 * math.pi * (doy + 10) / 365.2422)
            self._sun_a = self._sin_lat * math.sin(decl)
            self._sun_b = self._cos_lat * math.cos(decl)
            u = self._noise(1, day)
            self._cloud_day = 1.0 - 0.7 * u * u  # mostly bright, some dull days
            self._season = math.sin(2 * math.pi * (doy - 110) / 365.2422)
        utc_hours = (minute_index % 1440 + 0.5) / 60
        hour_angle = math.radians(15.0 * (utc_hours - 12.0) + self._lon_deg)
        sun = self._sun_factor(self._sun_a + self._sun_b * math.cos(hour_angle))
        if sun:
            block, frac = divmod(minute_index, 10)
            v0, v1 = self._noise(2, block), self._noise(2, block + 1)
            v = v0 + (v1 - v0) * frac / 10
            cloud = max(0.05, 1.0 - (1.0 - self._cloud_day) * (0.5 + v))
            # String 1 faces a little east, string 2 a little west: same sky, shifted share.
            tilt = 0.35 * math.sin(hour_angle)
            self._pv1_avail = self._pv_scale * 0.55 * (1.0 - tilt) * sun * cloud
            self._pv2_avail = self._pv_scale * 0.45 * (1.0 + tilt) * sun * cloud
        else:
            self._pv1_avail = self._pv2_avail = 0.0

        local_minute = (minute_index + int(utc_offset // 60)) % 1440
        h = local_minute / 60
        base = self.config.load_base_w
        peaks = (
            650 * math.exp(-(((h - 7.4) / 0.8) ** 2))
            + 350 * math.exp(-(((h - 13.0) / 2.0) ** 2))
            + 1300 * math.exp(-(((h - 18.6) / 1.5) ** 2))
        )
        load = (base + peaks) * (0.9 + 0.2 * self._noise(3, minute_index))
        block, pos = divmod(minute_index, 20)
        busy = self._noise(4, block) < 0.08 + 0.25 * peaks / 1300
        if busy and pos < 2 + int(7 * self._noise(5, block)):
            load += 1200 + 1800 * self._noise(6, block)
        self._load_w = load
        self._ambient_c = 16.0 + 5.0 * self._season + 1.5 * math.sin(2 * math.pi * (h - 9) / 24)
        self._grid_v = 240.0 + 3.0 * math.sin(2 * math.pi * (h - 4) / 24)
        self._grid_v += 2.0 * (self._noise(7, minute_index) - 0.5)
        self._freq = 50.0 + 0.06 * (self._noise(8, minute_index) - 0.5)

    # --- the step ------------------------------------------------------------------------------

    def _step(self, dt: float) -> None:
        t = self._t
        off = self._utc_offset(t)
        minute = int((t + off + self._clock_offset) // 60) % 1440
        mi = int(t // 60)
        if mi != self._env_minute:
            self._compute_env(mi, off)
        c = self._controls
        pv1a, pv2a, load = self._pv1_avail, self._pv2_avail, self._load_w
        if self.external_load is not None:
            load += max(0.0, self.external_load())
        pv_a = pv1a + pv2a
        cap, energy = self._cap_wh, self._energy_wh
        soc = 100.0 * energy / cap
        charge_lim = c.charge_limit_w
        if soc > 97.0:
            charge_lim *= max(0.1, (100.0 - soc) / 3.0)
        floor = c.floor
        ceiling = 100.0
        surplus = pv_a - load

        if self._cal_stage:
            batt, floor = self._calibration(t, charge_lim, c.discharge_limit_w, cap, energy)
        elif c.ac_charge and (k := c.charge_at[minute]):
            target = c.target if c.target_enabled else 100
            ceiling = float(min(target, c.charge_targets[k]))
            batt = -charge_lim if soc < ceiling else 0.0
        elif c.timed_discharge and (k := c.discharge_at[minute]):
            floor = max(floor, float(c.discharge_targets[k]))
            if c.eco:
                batt = min(max(-surplus, -charge_lim), c.discharge_limit_w)
            else:
                batt = c.discharge_limit_w
        elif c.eco and not c.timed_discharge:
            batt = min(max(-surplus, -charge_lim), c.discharge_limit_w)
        else:
            batt = -min(max(surplus, 0.0), charge_lim)

        if c.pause_mode and c.pause_at[minute] and not self._cal_stage:
            if c.pause_mode == 1:
                batt = max(batt, 0.0)
            elif c.pause_mode == 2:
                batt = min(batt, 0.0)
            else:
                batt = 0.0

        # State-of-charge bounds, exact to the step (no overshoot past a limit).
        hours = dt / 3600.0
        if batt > 0:
            avail = energy - floor * cap / 100.0
            batt = 0.0 if avail <= 0 else min(batt, avail / hours)
        elif batt < 0:
            room = ceiling * cap / 100.0 - energy
            batt = 0.0 if room <= 0 else max(batt, -room / hours)

        # AC-side limits: rated output x HR50 and the export limit; then curtail PV.
        ac_max = min(c.ac_max_w, load + c.export_limit_w)
        ac = pv_a + batt
        pv1, pv2 = pv1a, pv2a
        if ac > ac_max:
            excess = ac - ac_max
            if batt > 0:
                cut = min(batt, excess)
                batt -= cut
                excess -= cut
            if excess > 0 and pv_a > 0:
                keep = max(0.0, pv_a - excess) / pv_a
                pv1, pv2 = pv1a * keep, pv2a * keep
        elif ac < -RATED_POWER_W:
            batt = -RATED_POWER_W - pv_a
        ac = pv1 + pv2 + batt
        grid = ac - load

        self._pv1, self._pv2, self._load = pv1, pv2, load
        self._battery, self._ac, self._grid = batt, ac, grid
        tot = self._total
        tot[_PV1] += pv1 * hours
        tot[_PV2] += pv2 * hours
        tot[_LOAD] += load * hours
        if grid > 0:
            tot[_EXPORT] += grid * hours
        else:
            tot[_IMPORT] -= grid * hours
        if ac > 0:
            tot[_INV_OUT] += ac * hours
        else:
            tot[_AC_IN] -= ac * hours
        if batt > 0:
            tot[_DISCHARGE] += batt * hours
        else:
            tot[_CHARGE] -= batt * hours
        self._work_seconds += dt
        self._move_energy(batt * hours, hours)

        # Temperatures lag towards their targets (time constants 40 min packs, 15 min inverter).
        k_pack = min(1.0, dt / 2400.0)
        amb = self._ambient_c + 2.0
        for p in self.packs:
            amps = p.power_w / NOMINAL_VOLTS
            p.temp_c += (amb + 0.0016 * amps * amps - p.temp_c) * k_pack
        sink = self._ambient_c + 6.0 + 14.0 * abs(ac) / RATED_POWER_W + abs(batt) / 900.0
        self._heatsink_c += (sink - self._heatsink_c) * min(1.0, dt / 900.0)
        self._check_day(t + dt)

    def _seed_today(self, start_t: float) -> None:
        """Today's counters at the start: what the house and the sky made since local midnight.

        The same PV and load model runs from midnight to ``start_t`` in 5-minute steps with the
        battery in eco (it stores the surplus and covers the deficit, within its rates and its
        room, starting from the configured state of charge); the state of charge stays the
        configured one, so only the counters take the morning in.
        """
        c = self._controls
        off = self._utc_offset(start_t)
        t = start_t - (start_t + off) % _DAY
        today = [0.0] * _COUNTERS
        # The packs' contents over the morning, from the configured state of charge.
        energy, floor = self._energy_wh, c.floor * self._cap_wh / 100.0
        while t < start_t:
            dt = min(300.0, start_t - t)
            self._compute_env(int((t + dt / 2) // 60), self._utc_offset(t))
            pv1, pv2, load = self._pv1_avail, self._pv2_avail, self._load_w
            surplus = pv1 + pv2 - load
            hours = dt / 3600.0
            batt = min(max(-surplus, -c.charge_limit_w), c.discharge_limit_w)
            batt = min(batt, max(0.0, energy - floor) / hours)  # within the packs' contents
            batt = max(batt, -max(0.0, self._cap_wh - energy) / hours)
            energy -= batt * hours
            ac = pv1 + pv2 + batt
            grid = ac - load
            today[_PV1] += pv1 * hours
            today[_PV2] += pv2 * hours
            today[_LOAD] += load * hours
            today[_EXPORT if grid > 0 else _IMPORT] += abs(grid) * hours
            today[_INV_OUT if ac > 0 else _AC_IN] += abs(ac) * hours
            today[_DISCHARGE if batt > 0 else _CHARGE] += abs(batt) * hours
            t += dt
        self._midnight = [total - part for total, part in zip(self._total, today, strict=True)]

    def _check_day(self, t: float) -> None:
        """Start new "today" counters when the inverter's date differs from the last one seen."""
        day = math.floor((t + self._utc_offset(t) + self._clock_offset) / _DAY)
        if day != self._day:
            self._day = day
            self._midnight = list(self._total)

    def _move_energy(self, wh: float, hours: float) -> None:
        """Take ``wh`` (+ = out, - = in) from the packs in proportion to their capacity."""
        packs = self.packs
        if wh == 0:
            if self._packs_moving:
                self._packs_moving = False
                for p in packs:
                    p.power_w = 0.0
            return
        self._packs_moving = True
        # One pass while no pack reaches empty or full (the usual case).
        total = 0.0
        for p, weight in zip(packs, self._weights, strict=True):
            e = p.energy_wh - wh * weight
            if e < 0.0 or e > p.cap_wh:
                break
            p.energy_wh = e
            total += e
        else:
            for p, weight in zip(packs, self._weights, strict=True):
                p.power_w = wh * weight / hours
                if wh > 0:
                    p.discharged_wh += wh * weight
            self._energy_wh = total
            return
        # A pack hit a limit (the pass above changed nothing): share among those that can move.
        self._share_energy(wh, hours)

    def _share_energy(self, wh: float, hours: float) -> None:
        packs = self.packs
        moved = [0.0] * len(packs)
        out = wh > 0
        open_ = [
            i for i, p in enumerate(packs) if (p.energy_wh > 0 if out else p.energy_wh < p.cap_wh)
        ]
        left = abs(wh)
        while left > 1e-9 and open_:
            share_cap = sum(packs[i].cap_wh for i in open_)
            full_share = []
            given = 0.0
            for i in open_:
                p = packs[i]
                want = left * p.cap_wh / share_cap
                take = min(want, p.energy_wh if out else p.cap_wh - p.energy_wh)
                p.energy_wh += -take if out else take
                moved[i] += take
                given += take
                if take >= want:
                    full_share.append(i)
            left -= given
            if len(full_share) == len(open_):
                break
            open_ = full_share
        sign = 1.0 if out else -1.0
        for i, p in enumerate(packs):
            p.power_w = sign * moved[i] / hours
            if out:
                p.discharged_wh += moved[i]
        self._energy_wh = sum(p.energy_wh for p in packs)

    def _calibration(
        self, t: float, charge_lim: float, discharge_lim: float, cap: float, energy: float
    ) -> tuple[float, float]:
        """Battery power and discharge floor while calibrating; advances the stage (HR29)."""
        stage = self._cal_stage
        if stage == 1 and energy <= 1e-6:
            stage, self._cal_until = 2, t + 60.0
        elif stage == 3 and energy >= cap - 1e-6:
            stage, self._cal_until = 4, t + 60.0
        elif stage in (2, 4, 5, 6, 7) and t >= self._cal_until:
            stage = 0 if stage == 7 else stage + 1
            self._cal_until = t + (1800.0 if stage == 5 else 60.0)
        if stage != self._cal_stage:
            self._cal_stage = stage
        if stage == 1:
            return discharge_lim, 0.0
        if stage == 3:
            return -charge_lim, 0.0
        return 0.0, 0.0

    # --- encoding ------------------------------------------------------------------------------

    def _compute_instant(self) -> _Instant:
        grid_v = self._grid_v
        pv1_w, pv2_w = _round(self._pv1), _round(self._pv2)
        v1 = 280.0 + 70.0 * min(1.0, self._pv1_avail / 2500.0) ** 0.3 if self._pv1_avail else 0.0
        v2 = 260.0 + 65.0 * min(1.0, self._pv2_avail / 2000.0) ** 0.3 if self._pv2_avail else 0.0
        pack_instants: list[_PackInstant] = []
        for p in self.packs:
            soc = 100.0 * p.energy_wh / p.cap_wh
            amps = p.power_w / NOMINAL_VOLTS  # + = discharging
            base = _ocv(soc) - amps * _CELL_OHMS
            cells = [_round((base + off) * 1000) for off in p.cell_offsets_v]
            groups = [_round((p.temp_c + off) * 10) for off in p.group_offsets_c]
            sum_mv = sum(cells)
            out_mv = sum_mv + _round(_PACK_TERMINAL_RISE_V * 1000)
            pack_instants.append(
                _PackInstant(
                    cells_mv=cells,
                    group_dc=groups,
                    mosfet_dc=_round((p.temp_c + 1.5 + 3.0 * abs(amps) / 70) * 10),
                    sum_mv=sum_mv,
                    out_mv=out_mv,
                    remaining_cah=_round(p.energy_wh / NOMINAL_VOLTS * 100),
                    current_ca=_round(p.power_w / (out_mv / 1000) * 100),
                    soc=_round(soc),
                    cycles=p.cycles_base + int(p.discharged_wh / p.cap_wh),
                    max_dc=max(groups),
                    min_dc=min(groups),
                )
            )
        battery_w = _round(self._battery)
        battery_v = sum(pi.out_mv for pi in pack_instants) / len(pack_instants) / 1000
        battery_v -= 0.003 * abs(self._battery) / NOMINAL_VOLTS  # cable drop
        battery_cv = _round(battery_v * 100)
        status = 5 if battery_w > 0 else 2 if battery_w < 0 else 0
        pack_temp = sum(p.temp_c for p in self.packs) / len(self.packs)
        return _Instant(
            pv1_w=pv1_w,
            pv2_w=pv2_w,
            pv1_dv=_round(v1 * 10),
            pv2_dv=_round(v2 * 10),
            pv1_da=_round(self._pv1 / v1 * 10) if v1 else 0,
            pv2_da=_round(self._pv2 / v2 * 10) if v2 else 0,
            load_w=_round(self._load),
            grid_w=_round(self._grid),
            inverter_w=_round(self._ac),
            battery_w=battery_w,
            grid_dv=_round(grid_v * 10),
            grid_ca=_round(abs(self._grid) / grid_v * 100),
            inverter_da=_round(abs(self._ac) / grid_v * 10),
            freq_chz=_round(self._freq * 100),
            battery_cv=battery_cv,
            battery_ca=_round(self._battery / (battery_cv / 100) * 100),
            soc=_round(100.0 * self._energy_wh / self._cap_wh),
            heatsink_dc=_round(self._heatsink_c * 10),
            charger_dc=_round((self._heatsink_c - 1.5) * 10),
            battery_dc=_round(pack_temp * 10),
            status=status,
            packs=pack_instants,
        )

    def _encode(self) -> None:
        """Write the current state into the register banks (SPEC §4.1 encodings)."""
        inst = self._instant = self._compute_instant()
        self._encoded_t = self._t
        inv = self.store.devices[INVERTER]
        hr, ir = inv.banks[HR], inv.banks[IR]
        clock = self.inverter_time()
        hr[35], hr[36], hr[37] = clock.year - 2000, clock.month, clock.day
        hr[38], hr[39], hr[40] = clock.hour, clock.minute, clock.second
        hr[29] = self._cal_stage
        hr[163] = 0

        tot = self._total
        tod = [a - b for a, b in zip(tot, self._midnight, strict=True)]

        def u32(reg: int, value: int) -> None:
            value &= 0xFFFFFFFF
            ir[reg], ir[reg + 1] = value >> 16, value & 0xFFFF

        ir[1], ir[2] = inst.pv1_dv, inst.pv2_dv
        ir[3] = 3950 + (inst.battery_cv - 5200) // 10
        ir[5] = inst.grid_dv
        u32(6, _tenths(tot[_CHARGE]) + _tenths(tot[_DISCHARGE]))
        ir[8], ir[9] = inst.pv1_da, inst.pv2_da
        ir[10] = inst.inverter_da
        u32(11, _tenths(tot[_PV1] + tot[_PV2]))
        ir[13] = inst.freq_chz
        ir[14] = inst.status
        ir[15] = 3090
        ir[16] = 19990 if abs(inst.inverter_w) > 50 else 10000
        ir[17], ir[18] = _tenths(tod[_PV1]), inst.pv1_w
        ir[19], ir[20] = _tenths(tod[_PV2]), inst.pv2_w
        u32(21, _tenths(tot[_EXPORT]))
        ir[24] = inst.inverter_w & 0xFFFF
        ir[25], ir[26] = _tenths(tod[_EXPORT]), _tenths(tod[_IMPORT])
        u32(27, _tenths(tot[_AC_IN]))
        ir[30] = inst.grid_w & 0xFFFF
        u32(32, _tenths(tot[_IMPORT]))
        ir[35] = _tenths(tod[_AC_IN])
        ir[36], ir[37] = _tenths(tod[_CHARGE]), _tenths(tod[_DISCHARGE])
        ir[41] = inst.heatsink_dc & 0xFFFF
        ir[42] = inst.load_w
        ir[43] = abs(inst.inverter_w)
        ir[44] = _tenths(tod[_INV_OUT])
        u32(45, _tenths(tot[_INV_OUT]))
        u32(47, int(self._work_seconds // 3600))
        ir[50] = inst.battery_cv
        ir[51] = inst.battery_ca & 0xFFFF
        ir[52] = inst.battery_w & 0xFFFF
        ir[53], ir[54] = inst.grid_dv, inst.freq_chz
        ir[55] = inst.charger_dc & 0xFFFF
        ir[56] = inst.battery_dc & 0xFFFF
        ir[58] = inst.grid_ca
        ir[59] = inst.soc
        u32(194, _tenths(tot[_CHARGE]))
        u32(196, _tenths(tot[_DISCHARGE]))
        ir[240] = inst.grid_dv
        ir[243] = _round(abs(self._ac) / self._grid_v * 100)
        ir[246] = 30
        ir[247], ir[248] = 0, inst.pv1_w + inst.pv2_w

        # The grid meter: the same grid power as IR30 (+ = export, as the EM115 reads on the
        # captured Gen2 site), its current in 0.01 A and its 16-bit energy registers.
        meter = self.store.devices[METER].banks[IR]
        meter[60] = inst.grid_dv
        meter[63] = _round(abs(self._grid) / self._grid_v * 100)
        meter[68] = inst.grid_w & 0xFFFF
        meter[84] = inst.freq_chz
        meter[85] = _tenths(tot[_IMPORT]) & 0xFFFF
        meter[87] = _tenths(tot[_EXPORT]) & 0xFFFF
        # Reactive energy moves with the active (a house's inductive loads: ~12 % on import,
        # ~5 % on export); a meter never reads a lifetime total of zero.
        meter[86] = max(1, _tenths(tot[_IMPORT] * 0.12)) & 0xFFFF
        meter[88] = max(1, _tenths(tot[_EXPORT] * 0.05)) & 0xFFFF

        pack_discharge = _tenths(tot[_DISCHARGE]) & 0xFFFF
        pack_charge = _tenths(tot[_CHARGE]) & 0xFFFF
        for slot, pi in enumerate(inst.packs):
            bank = self.store.devices[BATTERY_BASE + slot].banks[IR]
            for i, mv in enumerate(pi.cells_mv):
                bank[60 + i] = mv
            for i, dc in enumerate(pi.group_dc):
                bank[76 + i] = dc & 0xFFFF
            bank[80] = pi.sum_mv
            bank[81] = pi.mosfet_dc & 0xFFFF
            bank[82], bank[83] = pi.out_mv >> 16, pi.out_mv & 0xFFFF
            bank[88], bank[89] = pi.remaining_cah >> 16, pi.remaining_cah & 0xFFFF
            bank[91] = 0x0E10 if pi.current_ca > 0 else 0x0610
            bank[95] = pi.current_ca & 0xFFFF
            bank[96] = pi.cycles
            bank[100] = pi.soc
            bank[103], bank[104] = pi.max_dc & 0xFFFF, pi.min_dc & 0xFFFF
            bank[105], bank[106] = pack_discharge, pack_charge

    # --- truth ---------------------------------------------------------------------------------

    def truth(self) -> PlantTruth:
        """The plant's own truth for the state the registers currently hold (see PlantTruth).

        Computed from the model's state, not from the registers; call :meth:`sync` (or
        :meth:`advance`) first to bring it to the clock's now.
        """
        self._refresh_controls()
        inst = self._instant if self._instant is not None else self._compute_instant()
        c = self._controls
        hr = self.store.holding
        tot = self._total
        tod = [a - b for a, b in zip(tot, self._midnight, strict=True)]
        grid = inst.grid_w
        v: dict[str, TruthValue] = {
            "Invertor_Serial_Number": self.serial,
            "Invertor_Firmware": f"D0.{DSP_FIRMWARE}-A0.{ARM_FIRMWARE}",
            "Modbus_Version": MODBUS_VERSION / 100,
            "Invertor_Max_Inv_Rate": RATED_POWER_W,
            "Invertor_Max_Bat_Rate": BATTERY_MAX_POWER_W,
            "Battery_Capacity_kWh": round(self._design_ah * NOMINAL_VOLTS / 1000, 2),
            "Export_Limit": int(c.export_limit_w),
            "Invertor_Time": self.inverter_time(),
            "Invertor_Temperature": inst.heatsink_dc / 10,
            "PV_Power_String_1": inst.pv1_w,
            "PV_Power_String_2": inst.pv2_w,
            "PV_Power": inst.pv1_w + inst.pv2_w,
            "PV_Voltage_String_1": inst.pv1_dv / 10,
            "PV_Voltage_String_2": inst.pv2_dv / 10,
            "PV_Current_String_1": inst.pv1_da / 10,
            "PV_Current_String_2": inst.pv2_da / 10,
            "Combined_Generation_Power": inst.pv1_w + inst.pv2_w,
            "Grid_Voltage": inst.grid_dv / 10,
            "Grid_Current": inst.grid_ca / 100,
            "Grid_Frequency": inst.freq_chz / 100,
            "Grid_Power": grid,
            "Import_Power": max(0, -grid),
            "Export_Power": max(0, grid),
            "EPS_Power": 0,
            "Invertor_Power": inst.inverter_w,
            "AC_Charge_Power": max(0, -inst.inverter_w),
            "Load_Power": inst.load_w,
            "SOC": inst.soc,
            "Battery_Power": inst.battery_w,
            "Charge_Power": max(0, -inst.battery_w),
            "Discharge_Power": max(0, inst.battery_w),
            "Battery_Voltage": inst.battery_cv / 100,
            "Battery_Current": inst.battery_ca / 100,
            "PV_Energy_Today_kWh": (_tenths(tod[_PV1]) + _tenths(tod[_PV2])) / 10,
            "Import_Energy_Today_kWh": _tenths(tod[_IMPORT]) / 10,
            "Export_Energy_Today_kWh": _tenths(tod[_EXPORT]) / 10,
            "AC_Charge_Energy_Today_kWh": _tenths(tod[_AC_IN]) / 10,
            "Invertor_Energy_Today_kWh": _tenths(tod[_INV_OUT]) / 10,
            "Battery_Charge_Energy_Today_kWh": _tenths(tod[_CHARGE]) / 10,
            "Battery_Discharge_Energy_Today_kWh": _tenths(tod[_DISCHARGE]) / 10,
            "Battery_Throughput_Today_kWh": (_tenths(tod[_CHARGE]) + _tenths(tod[_DISCHARGE])) / 10,
            "Load_Energy_Today_kWh": round(tod[_LOAD] / 1000, 3),
            "PV_Energy_Total_kWh": _tenths(tot[_PV1] + tot[_PV2]) / 10,
            "Import_Energy_Total_kWh": _tenths(tot[_IMPORT]) / 10,
            "Export_Energy_Total_kWh": _tenths(tot[_EXPORT]) / 10,
            "AC_Charge_Energy_Total_kWh": _tenths(tot[_AC_IN]) / 10,
            "Invertor_Energy_Total_kWh": _tenths(tot[_INV_OUT]) / 10,
            "Battery_Throughput_Total_kWh": (_tenths(tot[_CHARGE]) + _tenths(tot[_DISCHARGE])) / 10,
            # From pack 1's 16-bit registers, which wrap at 6553.5 kWh (SPEC §4.5).
            "Battery_Charge_Energy_Total_kWh": (_tenths(tot[_CHARGE]) & 0xFFFF) / 10,
            "Battery_Discharge_Energy_Total_kWh": (_tenths(tot[_DISCHARGE]) & 0xFFFF) / 10,
            "Load_Energy_Total_kWh": round(tot[_LOAD] / 1000, 3),
            "Eco_Mode": _switch(c.eco),
            "Enable_Charge_Schedule": _switch(c.ac_charge),
            "Enable_Discharge_Schedule": _switch(c.timed_discharge),
            "Enable_Charge_Target": _switch(c.target_enabled),
            "Target_SOC": c.target,
            "Battery_Power_Reserve": hr(110),
            "Battery_Power_Cutoff": hr(114),
            "Battery_Charge_Rate": _round(c.charge_limit_w),
            "Battery_Discharge_Rate": _round(c.discharge_limit_w),
            "Active_Power_Rate": hr(50),
            "Real_Time_Control": _switch(hr(166) == 1),
            "Battery_pause_mode": PAUSE_MODES[c.pause_mode],
            "Battery_pause_start_time_slot": _hhmm_text(hr(319)),
            "Battery_pause_end_time_slot": _hhmm_text(hr(320)),
            "Battery_Calibration_Status": self._cal_stage,
        }
        for k in range(1, SLOTS + 1):
            cs, ce, _ = charge_slot_registers(k)
            ds, de, _ = discharge_slot_registers(k)
            v[f"Charge_start_time_slot_{k}"] = _hhmm_text(hr(cs))
            v[f"Charge_end_time_slot_{k}"] = _hhmm_text(hr(ce))
            v[f"Discharge_start_time_slot_{k}"] = _hhmm_text(hr(ds))
            v[f"Discharge_end_time_slot_{k}"] = _hhmm_text(hr(de))
            v[f"Charge_Target_SOC_{k}"] = c.charge_targets[k]
            v[f"Discharge_Target_SOC_{k}"] = c.discharge_targets[k]

        batteries: list[Mapping[str, TruthValue]] = []
        for p, pi in zip(self.packs, inst.packs, strict=True):
            b: dict[str, TruthValue] = {
                "Battery_Serial_Number": p.serial,
                "Battery_SOC": pi.soc,
                "Battery_Capacity": p.full_cah / 100,
                "Battery_Design_Capacity": p.design_cah / 100,
                "Battery_Remaining_Capacity": pi.remaining_cah / 100,
                "Battery_Firmware_Version": BMS_FIRMWARE,
                "Battery_Cells": CELLS,
                "Battery_Cycles": pi.cycles,
                "Battery_Temperature": pi.mosfet_dc / 10,
                "Battery_Voltage": pi.sum_mv / 1000,
                "Battery_Current": pi.current_ca / 100,
            }
            for i, mv in enumerate(pi.cells_mv, start=1):
                b[f"Battery_Cell_{i}_Voltage"] = mv / 1000
            for i, dc in enumerate(pi.group_dc, start=1):
                b[f"Battery_Cell_{i}_Temperature"] = dc / 10
            batteries.append(MappingProxyType(b))
        return PlantTruth(self.now(), MappingProxyType(v), tuple(batteries))


def _mark(table: list[int], start: int, end: int, value: int) -> None:
    """Set ``table[m] = value`` for every minute of the HHMM slot start..end (may wrap midnight)."""
    s, e = _hhmm_minutes(start), _hhmm_minutes(end)
    if s is None or e is None or s == e:
        return  # unset (0/0) or not a time: covers nothing
    s %= 1440  # a 24:00 start is midnight
    if s < e:
        table[s:e] = [value] * (e - s)
    else:
        table[s:] = [value] * (1440 - s)
        table[:e] = [value] * e


class Clocked(Protocol):
    """A simulated plant as :class:`PlantClock` needs it: its simulated clock (and a way to
    step it by hand, for tests)."""

    @property
    def clock(self) -> SimClock: ...

    def advance(self, seconds: float) -> None: ...


class PlantClock:
    """A daemon clock (:class:`givtcp_async.control.clock.Clock`) that follows a plant's
    simulated clock, for accelerated demos and tests; frozen (speed 0), it moves only when the
    plant is advanced by hand."""

    def __init__(self, plant: Clocked) -> None:
        self.plant = plant

    def now(self) -> datetime:
        return self.plant.clock.now()

    async def sleep_until(self, when: datetime) -> None:
        while (remaining := (when - self.now()).total_seconds()) > 0:
            speed = self.plant.clock.speed
            # Never longer than a second of real time: the speed or the clock may change.
            await asyncio.sleep(min(remaining / speed, 1.0) if speed > 0 else 0.05)


def build_default_plant(
    *,
    speed: float = 1.0,
    start: datetime | None = None,
    seed: int = 0,
    batteries: int = 2,
    pv_peak_w: float = 5000.0,
    soc: float = 50.0,
    step_seconds: float = 10.0,
    timezone: str = "Europe/London",
    monotonic: Callable[[], float] = time.monotonic,
) -> Plant:
    """The default plant: a Gen3 hybrid (DTC 2001, ARM 308, ten slots) with LV packs."""
    config = PlantConfig(
        start=start,
        speed=speed,
        seed=seed,
        batteries=batteries,
        pv_peak_w=pv_peak_w,
        soc=soc,
        step_seconds=step_seconds,
        timezone=timezone,
    )
    return Plant(config, monotonic=monotonic)


__all__ = [
    "Plant",
    "PlantConfig",
    "PlantEvent",
    "PlantTruth",
    "SimClock",
    "build_default_plant",
    "charge_slot_registers",
    "discharge_slot_registers",
]
