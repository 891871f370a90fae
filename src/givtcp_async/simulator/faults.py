"""Faults the simulated dongle can inject, on demand (tests) or at random (command line)."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from givtcp_async.protocol.frames import ReadRequest, Request


class FaultKind(StrEnum):
    DELAY = "delay"  # answer after ``seconds`` more
    DROP = "drop"  # never answer
    BAD_CRC = "bad_crc"  # answer with a corrupted CRC
    TRUNCATE = "truncate"  # send only the first part of the answer
    SPLICE = "splice"  # a cut-off frame glued in front of the answer
    ZERO_PAGE = "zero_page"  # a read answered with every register 0 (valid CRC)
    GARBAGE_PAGE = "garbage_page"  # a read answered with the "Pattern A" fingerprint
    ONES_PAGE = "ones_page"  # a read answered with every register 0xFFFF (valid CRC)
    GARBAGE = "garbage"  # random bytes before the answer
    DISCONNECT = "disconnect"  # close the asking client's socket instead of answering
    REFUSE = "refuse"  # stop listening for ``seconds`` (connections are refused)


PAGE_FAULTS = frozenset({FaultKind.ZERO_PAGE, FaultKind.GARBAGE_PAGE, FaultKind.ONES_PAGE})
RequestMatcher = Callable[[Request], bool]


@dataclass(slots=True)
class Fault:
    kind: FaultKind
    count: int = 1
    seconds: float = 0.0
    match: RequestMatcher | None = None


@dataclass(slots=True)
class FaultInjector:
    """A queue of one-shot faults plus per-kind random probabilities.

    :meth:`take` is asked once per request the simulator answers; queued faults that match
    come first, then each random probability is drawn.
    """

    queued: list[Fault] = field(default_factory=list)
    probabilities: dict[FaultKind, float] = field(default_factory=dict)
    random_delay: float = 3.0
    rng: random.Random = field(default_factory=random.Random)
    injected: dict[FaultKind, int] = field(default_factory=dict)

    def add(
        self,
        kind: FaultKind | str,
        *,
        count: int = 1,
        seconds: float = 0.0,
        match: RequestMatcher | None = None,
    ) -> None:
        """Apply ``kind`` to the next ``count`` requests that ``match`` (all by default)."""
        self.queued.append(Fault(FaultKind(kind), count, seconds, match))

    def set_probability(self, kind: FaultKind | str, probability: float) -> None:
        if not 0.0 <= probability <= 1.0:
            raise ValueError("probability must be within 0..1")
        self.probabilities[FaultKind(kind)] = probability

    def clear(self) -> None:
        self.queued.clear()
        self.probabilities.clear()

    def take(self, request: Request) -> Fault | None:
        for fault in self.queued:
            if fault.match is not None and not fault.match(request):
                continue
            if fault.kind in PAGE_FAULTS and not isinstance(request, ReadRequest):
                continue
            fault.count -= 1
            if fault.count <= 0:
                self.queued.remove(fault)
            return self._note(Fault(fault.kind, 1, fault.seconds))
        for kind, p in self.probabilities.items():
            if kind in PAGE_FAULTS and not isinstance(request, ReadRequest):
                continue
            if p and self.rng.random() < p:
                seconds = (
                    self.rng.uniform(0.1, self.random_delay)
                    if kind in (FaultKind.DELAY, FaultKind.REFUSE)
                    else 0.0
                )
                return self._note(Fault(kind, 1, seconds))
        return None

    def _note(self, fault: Fault) -> Fault:
        self.injected[fault.kind] = self.injected.get(fault.kind, 0) + 1
        return fault


def parse_fault_option(text: str) -> tuple[FaultKind, float]:
    """``kind=probability`` (command line) into its parts; raises ValueError when malformed."""
    kind, sep, prob = text.partition("=")
    if not sep:
        raise ValueError(f"expected KIND=PROBABILITY, got {text!r}")
    try:
        fault = FaultKind(kind.strip())
    except ValueError as err:
        known = ", ".join(k.value for k in FaultKind)
        raise ValueError(f"unknown fault {kind!r}; known: {known}") from err
    p = float(prob)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"probability for {kind} must be within 0..1")
    return fault, p
