"""The peer library as a test-only oracle: a capture read through our simulator, compared value by
value with what givenergy-modbus 2.13.0 decodes from the same registers (issue 12).

``project_run(path)`` serves a capture with our simulator over real TCP on 127.0.0.1, detects and
refreshes it exactly as the daemon does, and returns the snapshot (whose ``runall()`` is what the
REST API and MQTT publish). ``peer_*`` decode the same register words with the peer's models,
independently of our register map. A family's test names, per peer attribute, where that value
sits in our runAll (``Match``) and how the two forms relate; :func:`compare` then reports which of
the peer's values we publish with the same value, and the share.

The register words given to the peer are the capture's own (the last answer for each register,
as the simulator serves them); nothing of our register map touches them.
"""

from __future__ import annotations

import contextlib
import enum
import math
from collections.abc import Callable, Iterator, Mapping, Sequence, Set
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from givtcp_async.assemble import SnapshotAssembler
from givtcp_async.cache import RegisterCache
from givtcp_async.connection import DongleConnection
from givtcp_async.layout import device_paths
from givtcp_async.protocol.capture import load_capture
from givtcp_async.protocol.frames import FunctionCode
from givtcp_async.reader import PlantReader
from givtcp_async.simulator.server import DongleSimulator
from givtcp_async.simulator.store import RegisterStore
from givtcp_async.snapshot import Snapshot
from tests.control_support import fast_settings

HR = int(FunctionCode.READ_HOLDING)
IR = int(FunctionCode.READ_INPUT)
INVERTER = 0x11
TZ = ZoneInfo("Europe/London")


@cache
def _capture_store(path: Path) -> RegisterStore:
    return RegisterStore.from_capture(load_capture(path))


def capture_store(
    path: Path, holding_from: Path | None = None, device_type: int | None = None
) -> RegisterStore:
    """A fresh store of the capture's registers, for a capture whose poller never read the
    inverter's HR0-59: ``holding_from`` a capture of the same unit to borrow them from, or
    ``device_type`` the unit's device type code (with the serial the dongle's headers carry)."""
    store = RegisterStore.from_capture(load_capture(path))
    inv = store.device(INVERTER)
    assert inv is not None
    if 0 in inv.pages.get(HR, set()):
        return store
    page = [0] * 60
    if holding_from is not None:
        donor = _capture_store(holding_from).device(INVERTER)
        assert donor is not None
        page = [donor.banks[HR].get(r, 0) for r in range(60)]
    elif device_type is not None:
        page[0] = device_type
        serial = inv.serial.ljust(10, b"\x00")
        page[13:18] = [int.from_bytes(serial[i : i + 2], "big") for i in range(0, 10, 2)]
    inv.add_page(FunctionCode.READ_HOLDING, 0, page)
    return store


def unique_serials(store: RegisterStore) -> RegisterStore:
    """The captures' serials were anonymised upstream, so the modules of one stack share one
    (``HY2336G000`` six times) and would overwrite each other in runAll, where serials key
    them. Each battery module or pack after the first with a serial already seen gets its own
    (the last three digits become its address); our side and the peer read the same words."""
    seen: set[int] = set()
    for address in sorted(store.devices):
        base = 114 if 0x50 <= address < 0x60 else 110 if 0x32 <= address < 0x38 else None
        dev = store.devices[address]
        bank = dev.banks.get(IR, {})
        if base is None or base not in bank:
            continue
        words = [bank.get(base + i, 0) for i in range(5)]
        key = hash(tuple(words))
        if key in seen:
            text = b"".join(w.to_bytes(2, "big") for w in words)[:7] + f"{address:03d}".encode()
            for i in range(5):
                dev.set(IR, base + i, int.from_bytes(text[2 * i : 2 * i + 2], "big"))
        seen.add(key)
    return store


async def project_run(store: RegisterStore, polls: int = 4, *, print_raw: bool = False) -> Snapshot:
    """Detect and refresh the plant the simulator serves from ``store``, as the daemon does;
    the snapshot after ``polls`` polls (a lifetime total of zero is published once three
    readings agree, as the gates have it); ``print_raw``: with GivTCP 3's ``raw`` block."""
    async with DongleSimulator(store) as sim, DongleConnection(fast_settings(sim.port)) as conn:
        await conn.wait_connected(5)
        reg_cache = RegisterCache()
        reader = PlantReader(conn, reg_cache, probe_timeout=0.3)
        layout = await reader.detect()
        assembler = SnapshotAssembler(
            layout.model, layout.serial, layout.fields, TZ, print_raw=print_raw
        )
        for _ in range(polls):
            await reader.refresh(layout.plan.blocks)
            snap = assembler.build(reg_cache, devices=layout.devices, now=datetime.now(TZ))
    return snap


# --- the peer's decode --------------------------------------------------------------------------


def peer_cache(store: RegisterStore, address: int) -> Any:
    """The peer's RegisterCache of one device, from the words the simulator serves."""
    from givenergy_modbus.model.register import HR as PeerHR
    from givenergy_modbus.model.register import IR as PeerIR
    from givenergy_modbus.model.register_cache import RegisterCache as PeerCache

    dev = store.device(address)
    assert dev is not None, f"nothing at 0x{address:02x}"
    regs: dict[Any, int] = {}
    for function, bank in dev.banks.items():
        kind = PeerHR if function == HR else PeerIR if function == IR else None
        if kind is None:
            continue
        for register, value in bank.items():
            regs[kind(register)] = value
    return PeerCache(regs)


def _plain(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    return value


def _dump(model: Any) -> dict[str, Any]:
    return {k: _plain(v) for k, v in model.model_dump().items()}


def peer_three_phase(store: RegisterStore) -> dict[str, Any]:
    from givenergy_modbus.model.inverter_threephase import ThreePhaseInverter

    return _dump(ThreePhaseInverter.from_register_cache(peer_cache(store, INVERTER)))


def peer_single_phase(store: RegisterStore) -> dict[str, Any]:
    from givenergy_modbus.model.inverter import SinglePhaseInverter

    return _dump(SinglePhaseInverter.from_register_cache(peer_cache(store, INVERTER)))


def peer_meter(store: RegisterStore, address: int) -> dict[str, Any]:
    from givenergy_modbus.model.meter import Meter

    return _dump(Meter.from_register_cache(peer_cache(store, address)))


# The meter's product registers: the peer reads MR60-68 (FC 0x16); the captures show the same
# words at IR95-103 of the meter's IR60 page (registers/meter.py).
PRODUCT_OFFSET = 35


def product_words(store: RegisterStore, address: int) -> list[int] | None:
    """MR60-68 of a meter: its FC 0x16 page where the capture has one, else IR95-103; None when
    they are absent or all zero (no product data)."""
    dev = store.device(address)
    if dev is None:
        return None
    mr = dev.banks.get(0x16, {})
    ir = dev.banks.get(IR, {})
    words = [mr.get(r, ir.get(r + PRODUCT_OFFSET)) for r in range(60, 69)]
    return None if None in words or not any(words) else [w for w in words if w is not None]


def peer_meter_product(store: RegisterStore, address: int) -> dict[str, Any]:
    from givenergy_modbus.model.meter import MeterProduct
    from givenergy_modbus.model.register import MR
    from givenergy_modbus.model.register_cache import RegisterCache as PeerCache

    words = product_words(store, address)
    if words is None:
        return {}
    cache = PeerCache({MR(60 + i): w for i, w in enumerate(words)})
    return _dump(MeterProduct.from_register_cache(cache))


def product_text(words: Sequence[int]) -> str:
    """Registers as text, high byte first, NULs dropped (the wire form, before the peer's
    upper-casing)."""
    return b"".join(w.to_bytes(2, "big") for w in words).decode("latin1").replace("\x00", "")


def peer_battery(store: RegisterStore, address: int) -> dict[str, Any]:
    from givenergy_modbus.model.battery import Battery

    return _dump(Battery.from_register_cache(peer_cache(store, address)))


def peer_lv_bcu(store: RegisterStore, address: int) -> dict[str, Any]:
    from givenergy_modbus.model.lv_bcu import LvBcu

    return _dump(LvBcu.from_register_cache(peer_cache(store, address)))


def peer_bcu(store: RegisterStore, address: int) -> dict[str, Any]:
    from givenergy_modbus.model.hv_bcu import Bcu

    return _dump(Bcu.from_register_cache(peer_cache(store, address)))


def peer_bmu(store: RegisterStore, address: int) -> dict[str, Any]:
    from givenergy_modbus.model.hv_bcu import Bmu

    out = _dump(Bmu.from_register_cache(peer_cache(store, address)))
    out.pop("bmu_index", None)  # the peer's own bookkeeping, not a register value
    return out


# --- comparing ---------------------------------------------------------------------------------


def same(ours: Any, theirs: Any) -> bool:
    """Equal values: numbers to within rounding of the last published decimal; the peer's
    flags (True/False) are the register's 0/1 that we publish as it is."""
    if isinstance(theirs, bool) or isinstance(ours, bool):
        return isinstance(ours, int | bool) and bool(ours) == bool(theirs)
    if isinstance(theirs, tuple) and isinstance(ours, tuple):
        return len(ours) == len(theirs) and all(map(same, ours, theirs))
    if isinstance(theirs, int | float) and isinstance(ours, int | float):
        return math.isclose(float(ours), float(theirs), rel_tol=1e-6, abs_tol=1e-6)
    return bool(ours == theirs)


@dataclass(frozen=True)
class Match:
    """Where a peer value sits in our runAll, and how our form relates to the peer's. A value
    we publish as several (a time slot as its start and its end) names each part: ``convert``
    then gives the tuple of our values, in ``path, *more`` order."""

    path: str  # slash-joined runAll path, relative to the device's subtree
    convert: Callable[[Any], Any] = lambda v: v  # the peer's value -> our form
    more: tuple[str, ...] = ()


@dataclass
class Comparison:
    decoded: dict[str, Any]  # the peer's non-empty values
    matched: list[str] = field(default_factory=list)
    differ: dict[str, tuple[Any, Any]] = field(default_factory=dict)  # name -> (ours, theirs)
    missing: list[str] = field(default_factory=list)

    @property
    def share(self) -> float:
        return len(self.matched) / len(self.decoded) if self.decoded else 1.0

    def summary(self) -> str:
        return (
            f"{len(self.matched)}/{len(self.decoded)} = {self.share:.0%}; "
            f"differ {self.differ}; missing {sorted(self.missing)}"
        )


def flat(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        path = f"{prefix}/{key}" if prefix else key
        if isinstance(value, Mapping):
            out.update(flat(value, path))
        else:
            out[path] = value
    return out


def decoded_values(peer: Mapping[str, Any], ignore: Set[str] = frozenset()) -> dict[str, Any]:
    """The values the peer decodes: not None, not an empty list."""
    return {k: v for k, v in peer.items() if v is not None and v != [] and k not in ignore}


def compare(
    peer: Mapping[str, Any],
    ours: Mapping[str, Any],
    matches: Mapping[str, Match],
    ignore: Set[str] = frozenset(),
) -> Comparison:
    """Which of the peer's decoded values our flat runAll (``ours``) publishes, same value."""
    result = Comparison(decoded_values(peer, ignore))
    for name, theirs in result.decoded.items():
        m = matches.get(name)
        if m is None or any(p not in ours for p in (m.path, *m.more)):
            result.missing.append(name)
            continue
        mine = tuple(ours[p] for p in (m.path, *m.more)) if m.more else ours[m.path]
        expected = m.convert(theirs)
        if same(mine, expected):
            result.matched.append(name)
        else:
            result.differ[name] = (mine, expected)
    return result


def device_tree(snap: Snapshot, address: int) -> dict[str, Any]:
    """The flat runAll subtree of one battery-side device or meter."""
    devices = (*snap.batteries, *snap.meters)
    paths = device_paths(snap.layout, devices)
    node: Any = snap.runall()
    for part in paths[address]:
        node = node.get(part, {})
    return flat(node)


@contextlib.contextmanager
def quiet_deprecations() -> Iterator[None]:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield
