"""Availability logged as transitions: one line when a thing is lost, one when it is back."""

from __future__ import annotations

import logging
import time
from typing import Any

from station.logfmt import kv


class Transitions:
    """One thing's availability, logged when it changes and never on a repeat (as Home
    Assistant's update coordinator does: "lost" once, "recovered" once).

    `state` is None until the first outcome, then True (up) or False (lost). `up()` logs
    `first` (when given) the first time and `recovered` after a loss, at INFO; `down(**extra)`
    logs `lost` at WARNING on the first failure and on the first after each recovery. `fields`
    (key=values, in order) lead every line; `timed` adds `down_s` (seconds lost, monotonic) to
    the recovered line. Both return True when the state changed.
    """

    def __init__(self, logger: logging.Logger, *, lost: str, recovered: str,
                 first: str | None = None, timed: bool = False, **fields: Any) -> None:
        self.log, self.lost, self.recovered, self.first = logger, lost, recovered, first
        self.timed, self.fields = timed, fields
        self.state: bool | None = None
        self.lost_at = 0.0  # time.monotonic() when it was lost

    def up(self) -> bool:
        """It works (again): logs `recovered` after a loss, `first` the first time."""
        if self.state is True:
            return False
        was, self.state = self.state, True
        if was is False:
            extra = {"down_s": time.monotonic() - self.lost_at} if self.timed else {}
            self.log.info(kv(self.recovered, **self.fields, **extra))
        elif self.first:
            self.log.info(kv(self.first, **self.fields))
        return True

    def down(self, **extra: Any) -> bool:
        """It failed: logs `lost` with `extra` (e.g. error=…) unless it was already lost."""
        if self.state is False:
            return False
        self.state, self.lost_at = False, time.monotonic()
        self.log.warning(kv(self.lost, **self.fields, **extra))
        return True
