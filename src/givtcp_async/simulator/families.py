"""Simulated three-phase, EMS and Gateway plants: a real plant's registers, moving in real time.

Each plant starts from the register image of a real capture (``images/<family>.json``, made by
``scripts/sim_images.py``: every page, every device, meters included) and keeps the live values
true to a small physical model on a simulated clock, as :class:`~givtcp_async.simulator.plant.
Plant` does for the single-phase hybrid:

* PV follows the sun (day length by the day of year, noon at 12:30 local time) dimmed by a
  seeded, smooth cloudiness; the load follows the wall clock (base, morning and evening peaks)
  with seeded noise. Noise is a pure function of the seed and the simulated minute.
* Battery power (+ = discharging) obeys the plant's own control registers, read each step: a
  charge slot charges from the grid towards its target, an export (or forced discharge) slot
  discharges at full power, a discharge slot meets the demand; otherwise the battery covers the
  load (eco) and stores any PV surplus. It stops at the reserve and at 100 %.
* Grid = load - PV - battery (+ = importing); export beyond the plant's export limit is curtailed
  from PV. Energy counters integrate the same powers: lifetime totals start at the image's,
  "today" counters are worked out from local midnight to the start time by running the same
  model (so at 13:00 they hold the morning's energy, not zero), and reset at local midnight.

Which registers carry what follows the register map (``registers/ems.py``, ``gateway.py``; the
three-phase IR1000+ layout of givenergy-modbus 2.13.0): every value the map decodes from a
moved register moves with the model, everything else keeps the captured value.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from importlib import resources
from typing import TYPE_CHECKING, Any, Final
from zoneinfo import ZoneInfo

from givtcp_async.protocol.frames import FunctionCode
from givtcp_async.simulator.plant import SimClock
from givtcp_async.simulator.store import RegisterStore

if TYPE_CHECKING:
    from givtcp_async.simulator.server import DongleSimulator, SimulatorConfig

INVERTER: Final = 0x11
HR: Final = int(FunctionCode.READ_HOLDING)
IR: Final = int(FunctionCode.READ_INPUT)
FAMILIES: Final = ("three-phase", "ems", "gateway")
_IMAGE: Final = {"three-phase": "three_phase", "ems": "ems", "gateway": "gateway"}
_DAY: Final = 86400.0
CLOCK: Final = range(35, 41)  # HR35-40: year - 2000, month, day, hour, minute, second
WARMUP_STEP: Final = 300.0  # seconds per step when working out today's counters at start
# The counters every family keeps (Wh).
COUNTERS: Final = ("pv", "load", "import", "export", "charge", "discharge", "ac_charge", "inv_out")


@dataclass(frozen=True, slots=True)
class Request:
    """What the control registers ask of the batteries now."""

    charge: bool = False  # charge from the grid towards ``target``
    target: float = 100.0
    rate_w: float | None = None  # charge / discharge power limit; None: the battery maximum
    force: bool = False  # discharge at full power (export)
    demand: bool = False  # discharge to meet the demand
    eco: bool = True  # cover the load outside slots
    floor: float = 4.0  # SOC the battery never discharges below
    export_limit_w: float = 1e9
    block_charge: bool = False
    block_discharge: bool = False


@dataclass(slots=True)
class Unit:
    """One battery behind the plant (an EMS-managed inverter, an All-in-One, an HV stack)."""

    capacity_wh: float
    max_w: float
    soc: float
    power: float = 0.0  # + = discharging
    temp_c: float = 25.0


def _hhmm_minutes(value: int) -> int | None:
    hours, minutes = divmod(value, 100)
    return hours * 60 + minutes if 0 <= hours <= 23 and minutes < 60 else None


def in_slot(start: int, end: int, minute: int) -> bool:
    """Whether ``minute`` of the day lies in the HHMM slot start-end (which may span midnight)."""
    a, b = _hhmm_minutes(start), _hhmm_minutes(end)
    if a is None or b is None or a == b:
        return False
    return a <= minute < b if a < b else minute >= a or minute < b


def load_image(family: str) -> dict[str, Any]:
    name = _IMAGE[family]
    text = resources.files("givtcp_async.simulator").joinpath(f"images/{name}.json").read_text()
    data: dict[str, Any] = json.loads(text)
    return data


def _s16(value: float) -> int:
    return round(value) & 0xFFFF


class FamilyPlant:
    """A simulated three-phase, EMS or Gateway plant (see the module docstring).

    The same interface as the single-phase :class:`~givtcp_async.simulator.plant.Plant` where
    the demo and the simulator need it: :attr:`store`, :attr:`clock`, :meth:`sync`,
    :meth:`advance`, :meth:`run`, :meth:`attach`, :meth:`simulator`.
    """

    def __init__(
        self,
        family: str,
        *,
        speed: float = 1.0,
        start: datetime | None = None,
        seed: int = 0,
        timezone: str = "Europe/London",
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if family not in FAMILIES:
            raise ValueError(f"family must be one of {', '.join(FAMILIES)}, got {family!r}")
        self.family = family
        self.tz = ZoneInfo(timezone)
        self.clock = SimClock(start, speed, tz=self.tz, monotonic=monotonic)
        self.seed = seed
        self.external_load: Callable[[], float] | None = None
        self.store = RegisterStore()
        image = load_image(family)
        for dev in image["devices"]:
            device = self.store.add_device(int(dev["address"]), dev["serial"].encode("latin1"))
            for function, pages in dev["banks"].items():
                for base, values in pages.items():
                    device.add_page(FunctionCode(int(function)), int(base), values)
        inv = self.store.devices[INVERTER]
        self.serial = inv.serial.decode("latin1")
        self.dongle_serial = "WG2350G" + f"{seed % 1000:03d}"
        spec = _SPECS[family]
        self._spec = spec
        self.units = [Unit(cap, mx, soc) for cap, mx, soc in spec.units(self)]
        self._pv_peak = spec.pv_peak_w
        self._load_base = spec.load_base_w
        self._base_total = spec.totals(self)  # Wh, the image's lifetime counters
        self._total = dict.fromkeys(COUNTERS, 0.0)  # Wh since the model started
        self._today = dict.fromkeys(COUNTERS, 0.0)
        self.pv = self.load = self.grid = self.battery = 0.0
        self._noise_key = random.Random(seed).getrandbits(32)
        # The inverter's clock (HR35-40) runs with the plant's, plus what setDateTime moved it by.
        self._clock_offset = 0.0
        self.store.write_hooks.append(self._on_write)
        # Work out today's counters: run the model from local midnight to the start.
        start_t = self.clock.timestamp()
        local = datetime.fromtimestamp(start_t, self.tz)
        midnight = local.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
        self._day = local.date()
        self._t = midnight
        while self._t < start_t:
            dt = min(WARMUP_STEP, start_t - self._t)
            self._step(dt)
            self._t += dt
        self._encode()

    # --- public API ----------------------------------------------------------------------------

    def now(self) -> datetime:
        return datetime.fromtimestamp(self._t, self.tz)

    def today_kwh(self, counter: str) -> float:
        return self._today[counter] / 1000

    def sync(self) -> None:
        self.advance_to(self.clock.timestamp())

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self.sync()

    def advance_to(self, t: float) -> None:
        moved = False
        while self._t < t:
            dt = min(10.0, t - self._t)
            self._step(dt)
            self._t += dt
            moved = True
        if moved:
            self._encode()

    def attach(self, sim: DongleSimulator) -> None:
        if sim.store is not self.store:
            raise ValueError("the simulator must serve this plant's store")
        if self.sync not in sim.pre_answer_hooks:
            sim.pre_answer_hooks.append(self.sync)

    def simulator_config(self, **overrides: Any) -> SimulatorConfig:
        from givtcp_async.simulator.server import SimulatorConfig

        config = SimulatorConfig(adapter_serial=self.dongle_serial.encode("ascii"))
        return replace(config, **overrides)

    def simulator(self, config: SimulatorConfig | None = None) -> DongleSimulator:
        from givtcp_async.simulator.server import DongleSimulator

        sim = DongleSimulator(self.store, config or self.simulator_config())
        self.attach(sim)
        return sim

    async def run(self, interval: float = 1.0) -> None:
        while True:
            self.sync()
            await asyncio.sleep(interval)

    # --- registers -----------------------------------------------------------------------------

    def hr(self, register: int) -> int:
        return self.store.holding(register)

    def set_ir(self, register: int, value: float, device: int = INVERTER) -> None:
        self.store.devices[device].set(IR, register, int(value) & 0xFFFF)

    def set_u32(self, register: int, value: float, device: int = INVERTER) -> None:
        raw = max(0, round(value))
        self.set_ir(register, raw >> 16 & 0xFFFF, device)
        self.set_ir(register + 1, raw & 0xFFFF, device)

    def ir(self, register: int, device: int = INVERTER) -> int:
        return self.store.devices[device].get(IR, register)

    def u32(self, register: int) -> int:
        return self.ir(register) << 16 | self.ir(register + 1)

    def total_wh(self, counter: str) -> float:
        return self._base_total.get(counter, 0.0) + self._total[counter]

    def today_wh(self, counter: str) -> float:
        return self._today[counter]

    # --- the model -----------------------------------------------------------------------------

    def _noise(self, minute: int, stream: int) -> float:
        """A value in [-1, 1], a pure function of the seed, the stream and the minute."""
        x = (minute * 2654435761 + stream * 40503 + self._noise_key) & 0xFFFFFFFF
        x ^= x >> 15
        x = (x * 2246822519) & 0xFFFFFFFF
        x ^= x >> 13
        return (x / 0xFFFFFFFF) * 2 - 1

    def _sun(self, local: datetime) -> float:
        doy = local.timetuple().tm_yday
        daylen = 12.0 + 4.5 * math.sin(2 * math.pi * (doy - 80) / 365)
        hour = local.hour + local.minute / 60 + local.second / 3600
        x = (hour - (12.5 - daylen / 2)) / daylen
        if not 0 < x < 1:
            return 0.0
        season = 0.55 + 0.45 * math.sin(2 * math.pi * (doy - 80) / 365)
        return float(math.sin(math.pi * x) ** 1.5 * season)

    def _environment(self, t: float) -> tuple[float, float, datetime]:
        local = datetime.fromtimestamp(t, self.tz)
        minute = int(t // 60)
        slow = sum(self._noise(minute // 10 + k, 1) for k in range(3)) / 3
        cloud = 0.75 + 0.25 * slow
        pv = self._pv_peak * self._sun(local) * cloud
        hour = local.hour + local.minute / 60
        profile = (
            600 * math.exp(-(((hour - 7.5) / 1.2) ** 2))
            + 300 * math.exp(-(((hour - 13.0) / 1.5) ** 2))
            + 1200 * math.exp(-(((hour - 18.5) / 1.8) ** 2))
        )
        load = self._load_base + profile * (1 + 0.15 * self._noise(minute, 2))
        if self.external_load is not None:
            load += max(0.0, float(self.external_load()))
        return max(0.0, pv), max(0.0, load), local

    def _step(self, dt: float) -> None:
        pv, load, local = self._environment(self._t + dt / 2)
        if local.date() != self._day:
            self._day = local.date()
            self._today = dict.fromkeys(COUNTERS, 0.0)
        req = self._spec.request(self, local.hour * 60 + local.minute)
        soc = self.soc()
        max_w = sum(u.max_w for u in self.units)
        limit = min(max_w, req.rate_w) if req.rate_w is not None else max_w
        if req.charge and soc < req.target:
            battery = -limit
        elif req.force and soc > req.floor:
            battery = limit
        elif (req.demand or req.eco) and soc > req.floor and load > pv:
            battery = min(limit, load - pv)
        else:
            battery = -min(max_w, max(0.0, pv - load))  # store the surplus
        if battery < 0 and (soc >= 100.0 or req.block_charge):
            battery = 0.0
        if battery > 0 and (soc <= req.floor or req.block_discharge):
            battery = 0.0
        grid = load - pv - battery  # + = importing
        if -grid > req.export_limit_w:  # too much export: less discharge, then less PV
            excess = -grid - req.export_limit_w
            cut = min(excess, max(0.0, battery))
            battery -= cut
            pv -= excess - cut
            grid = load - pv - battery
        self.pv, self.load, self.battery, self.grid = pv, load, battery, grid
        total_cap = sum(u.capacity_wh for u in self.units)
        hours = dt / 3600
        for u in self.units:
            u.power = battery * u.capacity_wh / total_cap
            u.soc = min(100.0, max(0.0, u.soc - u.power * hours / u.capacity_wh * 100))
            target = 22.0 + abs(u.power) / max(u.max_w, 1.0) * 15
            u.temp_c += (target - u.temp_c) * min(1.0, dt / 1800)
        flows = {
            "pv": pv,
            "load": load,
            "import": max(0.0, grid),
            "export": max(0.0, -grid),
            "charge": max(0.0, -battery),
            "discharge": max(0.0, battery),
            "ac_charge": max(0.0, min(-battery, grid)) if battery < 0 else 0.0,
            "inv_out": max(0.0, pv + battery),
        }
        for key, watts in flows.items():
            self._total[key] += watts * hours
            self._today[key] += watts * hours

    def soc(self) -> float:
        total = sum(u.capacity_wh for u in self.units)
        return sum(u.soc * u.capacity_wh for u in self.units) / total

    def inverter_time(self) -> datetime:
        """The inverter's wall clock (naive, whole seconds), as HR35-40 show it."""
        local = datetime.fromtimestamp(self._t + self._clock_offset, self.tz)
        return local.replace(tzinfo=None, microsecond=0)

    def _on_write(self, device: int, register: int, value: int) -> int | None:
        """A write to the clock registers moves the inverter's clock; others land as they are."""
        if device == INVERTER and CLOCK.start <= register < CLOCK.stop:
            fields = [self.hr(r) for r in CLOCK]
            fields[register - CLOCK.start] = value
            try:
                year, month, day, hour, minute, second = fields
                shown = datetime(2000 + year, month, day, hour, minute, second, tzinfo=self.tz)
            except ValueError:
                return value  # one field of several being set: the others follow
            self._clock_offset = shown.timestamp() - self._t
        return value

    def _encode(self) -> None:
        clock = self.inverter_time()
        hr = self.store.devices[INVERTER].banks.setdefault(HR, {})
        hr[35], hr[36], hr[37] = clock.year - 2000, clock.month, clock.day
        hr[38], hr[39], hr[40] = clock.hour, clock.minute, clock.second
        self._spec.encode(self)


# --- per family ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Spec:
    pv_peak_w: float
    load_base_w: float
    units: Callable[[FamilyPlant], list[tuple[float, float, float]]]
    totals: Callable[[FamilyPlant], dict[str, float]]
    request: Callable[[FamilyPlant, int], Request]
    encode: Callable[[FamilyPlant], None]


# EMS (registers/ems.py): slots HR2044-2070, export limit HR2071; live IR2040-2094.


def _ems_units(p: FamilyPlant) -> list[tuple[float, float, float]]:
    return [(5120.0, 3000.0, float(p.ir(2058 + i) or 50)) for i in range(p.ir(2044) or 1)]


def _ems_request(p: FamilyPlant, minute: int) -> Request:
    limit = float(p.hr(2071) or 1e9)
    if not p.hr(2040):  # the plant is not under EMS control: the inverters run eco
        return Request(export_limit_w=limit)
    for n in range(3):
        start, end, target = p.hr(2053 + 3 * n), p.hr(2054 + 3 * n), p.hr(2055 + 3 * n)
        if in_slot(start, end, minute):
            return Request(charge=True, target=float(target), export_limit_w=limit)
    for n in range(3):
        start, end, target = p.hr(2062 + 3 * n), p.hr(2063 + 3 * n), p.hr(2064 + 3 * n)
        if in_slot(start, end, minute):
            return Request(force=True, floor=float(target), export_limit_w=limit)
    for n in range(3):
        start, end, target = p.hr(2044 + 3 * n), p.hr(2045 + 3 * n), p.hr(2046 + 3 * n)
        if in_slot(start, end, minute):
            return Request(demand=True, floor=float(target), export_limit_w=limit)
    return Request(export_limit_w=limit)


def _ems_encode(p: FamilyPlant) -> None:
    g, pv, b = p.grid, p.pv, p.battery
    p.set_ir(18, pv)  # moves with the generation (ems.py)
    p.set_ir(2046, _s16(g))  # meter 1: the grid meter
    p.set_ir(2048, _s16(pv))  # meter 3: the generation meter
    for i, u in enumerate(p.units):
        p.set_ir(2054 + i, _s16(u.power))
        p.set_ir(2058 + i, round(u.soc))
        p.set_ir(2062 + i, _s16(u.temp_c * 10))
    p.set_ir(2086, max(0, round(pv + g + b)))
    p.set_ir(2088, round(pv))
    p.set_ir(2089, _s16(g))
    p.set_ir(2090, _s16(b))
    p.set_ir(2091, round(sum(u.soc / 100 * u.capacity_wh for u in p.units)))
    _meter(p, 0x01, g, p.total_wh("import"), p.total_wh("export"), deci_amp=True)
    _meter(p, 0x03, pv, p.total_wh("pv"), 0.0, deci_amp=True)


def _meter(p: FamilyPlant, address: int, watts: float, imp_wh: float, exp_wh: float, *,
           deci_amp: bool) -> None:  # fmt: skip
    """A meter's IR60-89 page: power, current and its 16-bit energy registers (SPEC §4.6)."""
    dev = p.store.devices.get(address)
    if dev is None or not dev.get(IR, 60):
        return  # no meter answers there on this plant
    volts = dev.get(IR, 60) / 10 or 240.0
    amps = abs(watts) / volts
    p.set_ir(63, round(amps * (10 if deci_amp else 100)), address)
    p.set_ir(68, _s16(watts), address)
    p.set_ir(85, round(imp_wh / 100) & 0xFFFF, address)
    p.set_ir(87, round(exp_wh / 100) & 0xFFFF, address)


# Gateway (registers/gateway.py): the single-phase control registers; live IR1600-1850.


def _gateway_units(p: FamilyPlant) -> list[tuple[float, float, float]]:
    count = p.ir(1700) or 1
    return [(13500.0, 6000.0, float(p.ir(1801 + i) or 50)) for i in range(count)]


def _gateway_totals(p: FamilyPlant) -> dict[str, float]:
    def kwh(reg: int) -> float:
        return p.u32(reg) * 100.0  # 0.1 kWh -> Wh

    return {"import": kwh(1641), "pv": kwh(1644), "export": kwh(1647), "charge": kwh(1650),
            "discharge": kwh(1653), "load": kwh(1656)}  # fmt: skip


def _single_phase_request(p: FamilyPlant, minute: int, *, reserve: int, target: int,
                          charge: tuple[int, int, int], discharge: tuple[int, int, int],
                          eco: int, pause: int | None) -> Request:  # fmt: skip
    floor = float(max(4, p.hr(reserve)))
    blocks = p.hr(pause) if pause is not None else 0
    base = Request(floor=floor, eco=bool(p.hr(eco)), block_charge=blocks in (1, 3),
                   block_discharge=blocks in (2, 3))  # fmt: skip
    start, end, enable = charge
    if p.hr(enable) and in_slot(p.hr(start), p.hr(end), minute):
        return replace(base, charge=True, target=float(p.hr(target) or 100))
    start, end, enable = discharge
    if p.hr(enable) and in_slot(p.hr(start), p.hr(end), minute):
        return replace(base, demand=True) if base.eco else replace(base, force=True)
    return base


def _gateway_request(p: FamilyPlant, minute: int) -> Request:
    # HR94/95 charge slot 1 with HR96 on; HR56/57 discharge slot 1 with HR59 on; HR27 eco;
    # HR110 reserve; HR116 target; HR318 pause (SPEC §4.3).
    return _single_phase_request(p, minute, reserve=110, target=116, charge=(94, 95, 96),
                                 discharge=(56, 57, 59), eco=27, pause=318)  # fmt: skip


def _gateway_encode(p: FamilyPlant) -> None:
    g, pv, load, b = p.grid, p.pv, p.load, p.battery
    volts = 240.0 + 2.0 * p._noise(int(p._t // 60), 3)
    p.set_ir(1608, round(volts * 10))
    p.set_ir(1609, round(abs(g) / volts * 10))
    p.set_ir(1610, round(volts * 10) + 6)
    p.set_ir(1611, round(load / volts * 10))
    p.set_ir(1612, round(pv / volts * 10))
    p.set_ir(1616, _s16(-g))  # + = export
    p.set_ir(1617, round(pv))
    p.set_ir(1618, round(load))
    p.set_ir(1702, _s16(-b))  # the Gateway reports charging as positive
    p.set_ir(1703, 0 if abs(b) < 50 else (2 if b > 0 else 1))
    for i, u in enumerate(p.units):
        p.set_ir(1801 + i, round(u.soc))
        p.set_ir(1816 + i, _s16(-u.power))
    share = [u.capacity_wh / sum(x.capacity_wh for x in p.units) for u in p.units]
    for reg, counter in ((1640, "import"), (1643, "pv"), (1646, "export"), (1649, "charge"),
                         (1652, "discharge"), (1655, "load"), (1795, "charge"),
                         (1798, "discharge")):  # fmt: skip
        p.set_ir(reg, round(p.today_wh(counter) / 100))
        p.set_u32(reg + 1, p.total_wh(counter) / 100)
    for i, part in enumerate(share):
        p.set_ir(1705 + 3 * i, round(p.today_wh("charge") * part / 100))
        p.set_u32(1706 + 3 * i, (p.total_wh("charge") * part) / 100)
        p.set_ir(1750 + 3 * i, round(p.today_wh("discharge") * part / 100))
        p.set_u32(1751 + 3 * i, (p.total_wh("discharge") * part) / 100)
    _meter(p, 0x01, g, p.total_wh("import"), p.total_wh("export"), deci_amp=False)
    _meter(p, 0x02, pv, p.total_wh("pv"), 0.0, deci_amp=False)


# Three-phase (givenergy-modbus 2.13.0 inverter_threephase.py): HR1109 reserve, HR1111 target,
# HR1112 AC charge enable, HR1113/1114 charge slot 1, HR1118/1119 discharge slot 1;
# live IR1000-1413.

_TP_ENERGY: Final = (
    (1360, "inv_out"), (1376, "ac_charge"), (1380, "import"), (1384, "export"),
    (1388, "discharge"), (1392, "charge"), (1396, "load"),
)  # fmt: skip


def _tp_units(p: FamilyPlant) -> list[tuple[float, float, float]]:
    return [(11_000.0, 11_000.0, float(p.ir(1132) or 50))]


def _tp_totals(p: FamilyPlant) -> dict[str, float]:
    out = {counter: p.u32(reg + 2) * 100.0 for reg, counter in _TP_ENERGY}
    out["pv"] = p.u32(1374) * 100.0
    return out


def _tp_request(p: FamilyPlant, minute: int) -> Request:
    floor = float(max(4, p.hr(1109)))
    if p.hr(1112) and in_slot(p.hr(1113), p.hr(1114), minute):
        return Request(charge=True, target=float(p.hr(1111) or 100), floor=floor)
    if in_slot(p.hr(1118), p.hr(1119), minute):
        return Request(force=True, floor=floor)
    return Request(floor=floor)


def _tp_encode(p: FamilyPlant) -> None:
    g, pv, load, b = p.grid, p.pv, p.load, p.battery
    # IR1061-1063 are line to line, as on the captured unit (401.7 V on a 231.9 V phase).
    volts = 400.0 + 3.5 * p._noise(int(p._t // 60), 3)
    p.set_u32(1017, pv * 0.55 * 10)
    p.set_u32(1019, pv * 0.45 * 10)
    for k in range(3):
        p.set_ir(1061 + k, round((volts + k * 1.2) * 10))
        p.set_ir(1083 + k, _s16(-g / 3))
        p.set_ir(1091 + k, _s16((pv + b) / 3))
    out = round((pv + b) * 10) & 0xFFFFFFFF
    p.set_ir(1069, out >> 16)
    p.set_ir(1070, out & 0xFFFF)
    p.set_u32(1079, max(0.0, g) * 10)
    p.set_u32(1081, max(0.0, -g) * 10)
    p.set_u32(1089, load * 10)
    unit = p.units[0]
    p.set_ir(1128, _s16(unit.temp_c * 10 + 60))
    p.set_ir(1132, round(unit.soc))
    p.set_u32(1136, max(0.0, b) * 10)
    p.set_u32(1138, max(0.0, -b) * 10)
    p.set_ir(1140, _s16(b / 400 * 100))  # an HV stack near 400 V, 0.01 A
    p.set_u32(1240, max(0.0, -g) * 10)
    for reg, counter in _TP_ENERGY:
        p.set_u32(reg, p.today_wh(counter) / 100)
        p.set_u32(reg + 2, p.total_wh(counter) / 100)
    p.set_u32(1412, p.today_wh("pv") / 100)
    p.set_u32(1366, p.today_wh("pv") * 0.55 / 100)
    p.set_u32(1370, p.today_wh("pv") * 0.45 / 100)
    p.set_u32(1368, p.total_wh("pv") * 0.55 / 100)
    p.set_u32(1372, p.total_wh("pv") * 0.45 / 100)
    p.set_u32(1374, p.total_wh("pv") / 100)


_SPECS: Final[dict[str, _Spec]] = {
    "ems": _Spec(6000.0, 300.0, _ems_units, lambda p: {}, _ems_request, _ems_encode),
    "gateway": _Spec(8000.0, 350.0, _gateway_units, _gateway_totals, _gateway_request,
                     _gateway_encode),
    "three-phase": _Spec(11000.0, 500.0, _tp_units, _tp_totals, _tp_request, _tp_encode),
}  # fmt: skip


def build_family_plant(family: str, **kw: Any) -> FamilyPlant:
    """A simulated plant of ``family`` (one of :data:`FAMILIES`)."""
    return FamilyPlant(family, **kw)


__all__ = ["FAMILIES", "FamilyPlant", "Request", "build_family_plant", "in_slot"]
