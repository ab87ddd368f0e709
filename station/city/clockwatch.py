"""Whether the wall clock may date and judge a fill: not behind the records, not off the city's."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from station.logfmt import kv

log = logging.getLogger("station.clock")

BEHIND_TOLERANCE_S = 2.0  # records are dated to the millisecond; NTP slews by far less


@dataclass(frozen=True)
class CitySample:
    """The city's clock (its HTTP Date) against ours, when its answer arrived."""

    city: float  # epoch seconds from the Date header (1 s resolution)
    wall: float  # our time.time() then
    mono: float  # our time.monotonic() then: a later step shows as (wall - mono) changing


def clock_problem(now: float, mono: float, newest_record: float, sample: CitySample | None,
                  max_skew_s: float) -> str | None:
    """Why the clock cannot be trusted now, or None. Pure.

    With a sample from the city (and max_skew_s > 0): our clock must agree with the city's within
    max_skew_s, corrected for any step of our clock since the sample; when it does, the city
    vouches for it even if it reads earlier than the newest record (that record was dated by a
    clock running ahead). Without one: it must not read earlier than the newest record.
    """
    if sample is not None and max_skew_s > 0:
        stepped = (now - mono) - (sample.wall - sample.mono)
        ours_minus_city = stepped - (sample.city - sample.wall)
        if abs(ours_minus_city) > max_skew_s + 1:  # + the Date header's resolution
            return f"clock is {ours_minus_city:+.0f} s off the city's"
        return None
    if now < newest_record - BEHIND_TOLERANCE_S:
        return f"clock reads {newest_record - now:.0f} s earlier than the newest record"
    return None


class Dated(Protocol):
    newest_at: float  # the newest record's time (the store keeps it)


class ClockWatch:
    """The daemon's one view of its clock: the newest record's time and the city's last Date."""

    def __init__(self, records: Dated, city_sample: Callable[[], CitySample | None],
                 max_skew_s: float):
        self._records, self._sample, self.max_skew_s = records, city_sample, max_skew_s
        self._lock = threading.Lock()
        self._said: str | None = None

    def problem(self, before_city: bool = False) -> str | None:
        """None when trusted; logs each change of verdict once. `before_city`: a reading about
        to be looked up, which brings the city's Date: without one yet, the verdict waits."""
        now, mono, sample = time.time(), time.monotonic(), self._sample()
        if before_city and sample is None:
            return None
        with self._lock:
            newest = self._records.newest_at
            why = clock_problem(now, mono, newest, sample, self.max_skew_s)
            if why is None and now < newest - BEHIND_TOLERANCE_S:
                log.warning(kv("clock_reanchored", newest_record=round(newest, 3),
                               now=round(now, 3), note="the city vouches for the clock; "
                               "records dated after now were dated by a clock running ahead"))
                self._records.newest_at = now
            if why != self._said:
                (log.error if why else log.info)(kv("clock_untrusted" if why else "clock_trusted",
                                                    why=why))
                self._said = why
        return why
