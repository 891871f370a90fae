"""Reconnect policy: capped exponential back-off with jitter, testable without a network."""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass(slots=True)
class Backoff:
    """Delay before the next connection attempt.

    The n-th consecutive failure waits ``initial * factor**n`` seconds, capped at ``maximum``,
    then spread by ``±jitter`` (a fraction) so several clients do not retry in step. The
    spread never takes a delay above ``maximum`` or below zero.
    """

    initial: float = 1.0
    maximum: float = 60.0
    factor: float = 2.0
    jitter: float = 0.2
    failures: int = 0
    _rng: random.Random = field(default_factory=random.Random, repr=False)

    def next_delay(self) -> float:
        """Delay for the current failure count, then count one more failure."""
        exponent = min(self.failures, 32)  # keeps factor**exponent finite
        base = min(self.maximum, self.initial * self.factor**exponent)
        self.failures += 1
        spread = base * self.jitter * (2 * self._rng.random() - 1)
        return max(0.0, min(self.maximum, base + spread))

    def bound(self) -> float:
        """The longest delay this policy can ever return."""
        return self.maximum

    def reset(self) -> None:
        """Forget past failures (after a connection proved healthy)."""
        self.failures = 0
