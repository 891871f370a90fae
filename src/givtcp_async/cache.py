"""Register cache: the last good copy of every register page, per device address and bank.

Pages come from our own reads and from the dongle's fan-out of other clients' reads; both pass
the page-level gate first (:func:`givtcp_async.quality.pages.judge_page`).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

from givtcp_async.protocol.frames import FunctionCode, ReadResponse, WriteResponse
from givtcp_async.quality.pages import PageKey, PageVerdict, judge_page

_BANK_OF: dict[int, str] = {
    int(FunctionCode.READ_HOLDING): "HR",
    int(FunctionCode.READ_INPUT): "IR",
}


@dataclass(frozen=True, slots=True)
class Page:
    key: PageKey
    values: tuple[int, ...]
    received: float  # monotonic clock
    solicited: bool


@lru_cache(maxsize=256)
def _span(base: int, count: int) -> tuple[int, ...]:
    """The register numbers of a page: one tuple per page shape for the process, so that every
    inverter's look-ups (by register, values and pages) share the number objects as keys."""
    return tuple(range(base, base + count))


# Registers from here up are in no register map (the highest is IR 2094): their pages are not
# indexed by register, so that a page read there (by another client) costs no list that long.
INDEXED: Final = 4096


# Judges a page before the page gate: None admits it, a verdict refuses it (the identity check).
Admission = Callable[[ReadResponse, bool, Sequence[int] | None], PageVerdict | None]


class RegisterCache:
    """Accepts pages through the page gate and answers single-register look-ups.

    ``admit`` (set once the inverter is identified) then judges every page the page gate lets
    through, with whether we asked for it and the page it would replace.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.admit: Admission | None = None
        self._clock = clock
        self._pages: dict[PageKey, Page] = {}
        self._registers: dict[tuple[int, str], dict[int, int]] = {}
        # The page that last delivered each register (by register number, None where none
        # has): freshness is judged per page. Registers from INDEXED up are in no register
        # map: not indexed (their values are cached all the same).
        self._page_of: dict[tuple[int, str], list[Page | None]] = {}
        self.rejections: Counter[PageVerdict] = Counter()
        self.accepted = 0

    def offer(self, frame: ReadResponse, solicited: bool = True) -> PageVerdict:
        """Store a read response's page unless the gate refuses it; returns the verdict."""
        bank = _BANK_OF.get(int(frame.function))
        if bank is None:  # meter "product" pages are not cached
            return PageVerdict.OK
        key = PageKey(frame.device_address, bank, frame.base_register)
        previous = self._pages.get(key)
        before = previous.values if previous else None
        verdict = judge_page(key, frame.values, before)
        if verdict is PageVerdict.OK and self.admit is not None:
            verdict = self.admit(frame, solicited, before) or verdict
        if verdict is not PageVerdict.OK:
            self.rejections[verdict] += 1
            return verdict
        page = self._pages[key] = Page(key, frame.values, self._clock(), solicited)
        span = _span(frame.base_register, len(frame.values))
        self._registers.setdefault((frame.device_address, bank), {}).update(
            zip(span, frame.values, strict=True)
        )
        base, end = frame.base_register, min(frame.base_register + len(frame.values), INDEXED)
        if base < end:
            index = self._page_of.setdefault((frame.device_address, bank), [])
            if len(index) < end:
                index += [None] * (end - len(index))
            index[base:end] = [page] * (end - base)
        self.accepted += 1
        return verdict

    def offer_write(self, frame: WriteResponse) -> None:
        """A write echo carries the register's new value: keep the cache in step with it.

        Freshness stays the page's: the echo refreshes one register, not the page it sits in.
        """
        regs = self._registers.get((frame.device_address, "HR"))
        if regs is not None and frame.register in regs:
            regs[frame.register] = frame.value

    def get(self, device_address: int, bank: str, register: int) -> int | None:
        return self._registers.get((device_address, bank), {}).get(register)

    def getter(self, device_address: int, bank: str) -> Callable[[int], int | None]:
        """A look-up function for one device and bank (what field decoding takes)."""
        return self._registers.setdefault((device_address, bank), {}).get

    def registers(self, device_address: int, bank: str) -> dict[int, int]:
        """Every cached register of one device and bank (read-only for callers)."""
        return self._registers.setdefault((device_address, bank), {})

    def page_index(self, device_address: int, bank: str) -> list[Page | None]:
        """The page that last delivered each register of one device and bank, by register
        number below :data:`INDEXED` (None where none has; read-only): a list, not a mapping
        of ~60 entries per page (issue #16)."""
        return self._page_of.setdefault((device_address, bank), [])

    def page_of(self, device_address: int, bank: str, register: int) -> Page | None:
        """The page that last delivered the register (None for none, or from :data:`INDEXED`)."""
        index = self._page_of.get((device_address, bank), ())
        return index[register] if 0 <= register < len(index) else None

    def updated_at(self, device_address: int, bank: str, register: int) -> float | None:
        """Monotonic time the page that last delivered the register was received."""
        page = self.page_of(device_address, bank, register)
        return None if page is None else page.received

    def page(self, device_address: int, bank: str, base: int) -> Page | None:
        return self._pages.get(PageKey(device_address, bank, base))

    def read_within(
        self, device_address: int, bank: str, base: int, count: int, seconds: float
    ) -> bool:
        """True when our own read of this page (at least ``count`` registers from ``base``)
        was accepted less than ``seconds`` ago."""
        page = self._pages.get(PageKey(device_address, bank, base))
        return (
            page is not None
            and page.solicited
            and len(page.values) >= count
            and self._clock() - page.received < seconds
        )

    def pages(self) -> list[Page]:
        return list(self._pages.values())

    def forget_device(self, device_address: int) -> None:
        """Drop everything cached for an address (e.g. a battery that disappeared)."""
        for key in [k for k in self._pages if k.device_address == device_address]:
            del self._pages[key]
        for bank in ("HR", "IR"):
            self._registers.pop((device_address, bank), None)
            self._page_of.pop((device_address, bank), None)

    def raw(self, device_address: int) -> dict[str, int]:
        """Every cached register of one address as {"HR:0": value, "IR:5": value, ...}."""
        out: dict[str, int] = {}
        for bank in ("HR", "IR"):
            for reg, value in sorted(self._registers.get((device_address, bank), {}).items()):
                out[f"{bank}:{reg}"] = value
        return out
