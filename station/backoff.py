"""Exponential backoff as a value: the one retry schedule of every reconnect loop."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Backoff:
    """Delays that start at `start_s` seconds and grow by `factor` up to `cap_s` seconds.

    `next()` gives the delay to wait now (seconds) and advances the schedule; `reset()` after a
    success starts it again at `start_s`. The first delay is `start_s` as given (not clamped to
    the cap), every later one at most `cap_s`. Raises ValueError for a start or cap not above 0
    or a factor below 1.
    """

    start_s: float
    cap_s: float
    factor: float = 2.0
    _next_s: float = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.start_s <= 0 or self.cap_s <= 0 or self.factor < 1:
            raise ValueError("backoff: start_s and cap_s must be above 0, factor at least 1")
        self._next_s = self.start_s

    def next(self) -> float:
        """The delay to wait now, in seconds; the one after it grows by `factor`, capped."""
        delay = self._next_s
        self._next_s = min(delay * self.factor, self.cap_s)
        return delay

    def reset(self) -> None:
        """After a success: the next delay is `start_s` again."""
        self._next_s = self.start_s

    def ceiling_s(self, attempts: int) -> float:
        """The delay after `attempts` failures without state (seconds): start·factor^attempts,
        capped; for schedules kept elsewhere (the outbox row) and jittered by the caller."""
        return min(self.cap_s, self.start_s * self.factor ** min(max(attempts, 0), 30))
