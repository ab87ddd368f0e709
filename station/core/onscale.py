"""Which cylinder a reading belongs to: placements on the scale, held readings, tag sightings.

A tag is evidence about the cylinder standing on the scale only when it was read while that
cylinder stood there (interlock-rules.md, "the cylinder on the scale"). This module keeps the
facts that decide it, for one rig, from the controller's status samples and the readers' lines:

- every empty → present transition of the scale starts a new *placement* (a counter);
- a reading is bound to the placement current when it was read; a scanner's (or typed) reading
  made while the scale was empty is bound to the *next* placement, for `hold_reading_s` only;
  an RFID or camera sighting over an empty scale is void (it comes again once one is placed);
- a continuous reader (RFID, camera) repeats a tag many times a second: a tag already handled
  for this placement is a repeat (an empty scale: within the reader's de-duplication window);
  badges repeat by their own sliding window, so a badge in the field toggles a shift once;
- two distinct cylinder tags seen by one continuous reader within its window are ambiguous.

Pure: no I/O, no clock reads; times are monotonic seconds passed in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

CONTINUOUS = ("rfid", "camera")  # reader kinds that report whatever is in view, repeatedly
UNSTABLE_WAIT_S = 2.0  # a present cylinder not yet stable gets at least this long to settle
FORGET_S = 60.0  # sightings older than this (and not of the current placement) are dropped


@dataclass
class Held:
    """A reading waiting for its cylinder to stand stable on the scale."""

    line: Any  # drivers.reader.Line
    reading: Any  # model.Reading
    kind: str  # the reader's kind: scanner, rfid, camera, manual
    placement: int  # the placement it belongs to
    until: float  # monotonic deadline: void after it


@dataclass
class Scale:
    """One rig's scale as the readings see it."""

    placement: int = 0  # counts cylinders put on the scale (empty → present)
    on_scale: bool = False
    empty_seen_at: float = float("-inf")  # the latest sample that showed the scale empty
    held: Held | None = None
    sightings: dict[tuple[str, str], tuple[float, int | None]] = field(default_factory=dict)
    badges: dict[str, float] = field(default_factory=dict)
    retry_at: dict[tuple[str, str], float] = field(default_factory=dict)

    def sample(self, present: bool, mono: float) -> None:
        """One status sample of the scale (cylinder present or not) taken at `mono`."""
        if present and not self.on_scale:
            self.placement += 1
        if not present:
            self.empty_seen_at = max(self.empty_seen_at, mono)
        self.on_scale = present

    def read_while_empty(self, at: float) -> bool:
        """A sample taken after the reading (at `at`) still showed the scale empty."""
        return self.empty_seen_at >= at

    def repeat(self, reader: str, key: str, at: float, window_s: float, badge: bool) -> bool:
        """Whether a continuous reader's sighting of `key` repeats one already handled.

        Records the sighting. Badges: within `window_s` of the badge's own last sighting
        (sliding). Cylinder tags: already seen during the current placement, or (scale empty)
        within `window_s` of the tag's own last sighting.
        """
        if badge:
            last_badge = self.badges.get(key)
            self.badges[key] = at
            return last_badge is not None and at - last_badge < window_s
        placement = self.placement if self.on_scale and not self.read_while_empty(at) else None
        last = self.sightings.get((reader, key))
        self.sightings[(reader, key)] = (at, placement)
        again = self.retry_at.get((reader, key))
        if again is not None and at >= again:  # refused for a passing reason: judge it again
            del self.retry_at[(reader, key)]
            return False
        self._forget(at)
        if last is None:
            return False
        last_at, last_placement = last
        if last_placement is not None or placement is not None:
            return last_placement == placement
        return at - last_at < window_s

    def bound(self, reader: str, key: str, at: float) -> None:
        """The sighting of `key` is judged for the cylinder on the scale now: later sightings
        during this placement are repeats (the placement may have been noticed only after the
        tag was first seen)."""
        self.sightings[(reader, key)] = (at, self.placement if self.on_scale else None)

    def retry(self, reader: str, key: str, at: float, window_s: float) -> None:
        """Refused for a reason that may pass (no operator yet, a fault, the city down): the
        tag's next sighting `window_s` after `at` is judged again, not taken as a repeat."""
        self.retry_at[(reader, key)] = at + window_s

    def forget(self, reader: str, key: str) -> None:
        """A sighting that came to nothing (void): the tag's next sighting is a new reading."""
        self.sightings.pop((reader, key), None)
        self.retry_at.pop((reader, key), None)

    def current(self) -> int | None:
        """The placement standing on the scale now; None when the scale is empty."""
        return self.placement if self.on_scale else None

    def epoch(self) -> tuple[int, bool]:
        """Changes whenever a cylinder is put down or taken off."""
        return self.placement, self.on_scale

    def still_for(self, arrived: tuple[int, bool]) -> bool:
        """Whether a reading that arrived at epoch `arrived` may be judged now: the same
        cylinder still stands there, or the scale was empty then and the cylinder now on it
        is the first put down since (the held-reading rule)."""
        placement, occupied = arrived
        if occupied:
            return self.epoch() == arrived
        return self.placement <= placement + 1

    def link_lost(self) -> None:
        """No samples for a while: what stands on the scale after the gap is a new placement,
        and a reading waiting for its cylinder is void."""
        self.on_scale = False
        self.held = None

    def others_in_view(self, reader: str, key: str, at: float, window_s: float) -> list[str]:
        """Other cylinder tags this reader saw within `window_s` before `at`, or at any time
        during the current placement (one cylinder on the scale has one tag)."""
        current = self.placement if self.on_scale else None
        return [k for (r, k), (t, pl) in self.sightings.items()
                if r == reader and k != key and ((pl is None and 0 <= at - t < window_s)
                                                 or (current is not None and pl == current))]

    def hold(self, line: Any, reading: Any, kind: str, hold_s: float) -> Held | None:
        """Hold a reading for the cylinder on the scale (not yet stable) or the next one placed;
        None when it cannot be held: hold_s is 0, or a continuous reader saw the tag over an
        empty scale (a cylinder carried past; it reports the tag again once one is placed)."""
        if self.on_scale:
            held = Held(line, reading, kind, self.placement,
                        line.at + max(hold_s, UNSTABLE_WAIT_S))
        elif kind in CONTINUOUS or hold_s <= 0:
            return None
        else:
            held = Held(line, reading, kind, self.placement + 1, line.at + hold_s)
        self.held = held
        return held

    def held_state(self, stable: bool, now: float) -> str:
        """What to do with the held reading now: 'wait', 'judge', or 'void: <why>'.

        `stable`: the latest sample shows a cylinder standing stable (a whole sample)."""
        held = self.held
        if held is None:
            return "wait"
        if self.placement > held.placement or (self.placement == held.placement
                                               and not self.on_scale):
            return "void: the cylinder it was read for left the scale"
        if self.placement == held.placement and self.on_scale and stable:
            return "judge"
        if now > held.until:
            return ("void: no cylinder placed in time" if self.placement < held.placement
                    else "void: the cylinder never stood stable")
        return "wait"

    def _forget(self, now: float) -> None:
        if len(self.sightings) < 64:
            return
        current = self.placement if self.on_scale else None
        self.sightings = {k: v for k, v in self.sightings.items()
                          if now - v[0] < FORGET_S or (current is not None and v[1] == current)}
        self.badges = {k: t for k, t in self.badges.items() if now - t < FORGET_S}
        self.retry_at = {k: t for k, t in self.retry_at.items() if k in self.sightings}
