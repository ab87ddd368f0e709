"""One rig's readings: reader lines and typed codes → Readings bound to the cylinder they are for."""

from __future__ import annotations

import asyncio
import logging
import time

from drivers.reader import Line, TagReader
from station.config import RigConfig, StationConfig
from station.core import reading as parse
from station.core.model import Reading
from station.core.onscale import CONTINUOUS, Held
from station.logfmt import kv
from station.store.db import Store

from .state import RigState
from .storethread import StoreThread

log = logging.getLogger("station.rig")

MANUAL_EVERY_S = 0.5  # typed codes are looked for this often (a store thread call each time)
BIND_WINDOW_S = 120.0  # a `station bind` request takes the next reading at its rig this long
# Refusals that say nothing against the cylinder: a continuous reader's tag still in view is
# judged again (at most once per dedup_s) instead of waiting for the cylinder to be lifted.
PASSING = ("RIG_FAULT", "NO_OPERATOR", "NO_CYLINDER", "CITY_UNAVAILABLE", "AMBIGUOUS_TAGS")


class Intake:
    """Collects one rig's readings: its readers' lines and the codes typed for it (`station
    enter`), queued (at most 100) with the scale's epoch — (placement, occupied) — they arrived
    on; parses them; sorts out repeats and ambiguous views; binds each to the cylinder standing
    on the scale, holds it until one stands stable, or finds it void."""

    def __init__(self, cfg: RigConfig, station: StationConfig, store: Store, state: RigState,
                 writes: StoreThread):
        self.cfg, self.station, self.store, self.state = cfg, station, store, state
        self.writes = writes  # the store thread: taking entries and binding requests writes
        self._taking = False
        self._taken_at = float("-inf")
        # each reading with the scale's epoch when it arrived (which cylinder stood there)
        self.queue: asyncio.Queue[tuple[Line, tuple[int, bool]]] = asyncio.Queue(maxsize=100)

    async def feed(self, reader: TagReader) -> None:
        """Queue a reader's lines until it ends; a full queue drops the line (logged)."""
        async for line in reader.lines():
            self._put(line, "queue full")

    def take_manual_entries(self) -> None:
        """Codes typed with `station enter --rig R CODE` join the readings of this rig: taken
        by the store thread (one take at a time, at most every MANUAL_EVERY_S), never waited
        for."""
        now = time.monotonic()
        if not self._taking and now - self._taken_at >= MANUAL_EVERY_S:
            self._taking, self._taken_at = True, now
            self.writes.post("take_manual_entries", self.cfg.id, done=self._taken)

    def _taken(self, entries: list[dict] | None, err: BaseException | None) -> None:
        self._taking = False
        if err is not None:
            log.error(kv("store_error", rig=self.cfg.id, error=str(err)))
            return
        for entry in entries or []:
            self._put(Line(f"manual:{entry['via'] or 'cli'}", entry["code"].encode("utf-8"),
                           time.monotonic()))

    def _put(self, line: Line, why: str | None = None) -> None:
        try:
            self.queue.put_nowait((line, self.state.scale.epoch()))
        except asyncio.QueueFull:
            log.warning(kv("reading_dropped", rig=self.cfg.id, reader=line.reader_id, why=why))

    async def next(self) -> tuple[Line | None, tuple[int, bool]]:
        """The next queued line and its epoch; (None, (0, False)) after `poll_ms` without one
        while a reading is held (it is looked at again then)."""
        wait = self.cfg.poll_ms / 1000 if self.state.scale.held else None
        try:
            return await asyncio.wait_for(self.queue.get(), wait)
        except TimeoutError:
            return None, (0, False)

    def to_reading(self, line: Line) -> Reading:
        """Bytes to a parsed Reading (or a refusal); a badge UID gives kind 'badge'."""
        reader_cfg = next((r for r in self.cfg.readers if r.id == line.reader_id), None)
        if line.overlong:
            return Reading(raw=line.data[:64].decode("utf-8", "replace") + "…", kind="invalid",
                           refusal="TAG_UNREADABLE", detail="over-long reading",
                           reader=line.reader_id)
        text = parse.decode(line.data, line.reader_id)
        if isinstance(text, Reading):
            return text
        if reader_cfg is not None:
            text = parse.strip_framing(text, reader_cfg.prefix, reader_cfg.suffix,
                                       reader_cfg.strip_aim)
        if self.station.badge(text) is not None:
            return Reading(raw=text, kind="badge", value=text.upper(), reader=line.reader_id)
        if reader_cfg is not None and reader_cfg.kind == "rfid":
            return parse.parse_rfid(text, line.reader_id)
        return parse.parse_scan(text, self.station.qr_hosts, self.station.qr_allow_http,
                                line.reader_id)

    def reader_kind(self, reader_id: str) -> str:
        """scanner, rfid or camera (the configured kind); 'manual' for typed entries."""
        cfg = next((r for r in self.cfg.readers if r.id == reader_id), None)
        return cfg.kind if cfg is not None else "manual"

    def window(self, reader_id: str) -> float:
        """A reader's de-duplication window (s); 3 s for typed entries."""
        return next((r.dedup_s for r in self.cfg.readers if r.id == reader_id), 3.0)

    def sort(self, line: Line) -> tuple[Reading, str] | None:
        """A line as a Reading and its reader's kind; None for a repeat of one already
        handled. Several codes in view become one AMBIGUOUS_TAGS refusal."""
        reading = self.to_reading(line)
        kind = self.reader_kind(line.reader_id)
        if self._repeat(reading, line, kind):
            return None
        return self._ambiguous(reading, line, kind), kind

    def _repeat(self, reading: Reading, line: Line, kind: str) -> bool:
        """A reading already handled: a scanner's double read (the rig's last reading within
        the window), or a continuous reader's tag seen again for the same cylinder (onscale)."""
        key = reading.value or reading.raw
        window = self.window(reading.reader)
        if kind in CONTINUOUS:
            repeat = self.state.scale.repeat(line.reader_id, key, line.at, window,
                                             badge=reading.kind == "badge")
        else:  # the same code again at once, onto the same cylinder (or the same empty scale)
            last, last_at, last_placement = self.state.last_tag
            placement = self.state.scale.epoch()
            self.state.last_tag = (key, line.at, placement)
            repeat = key == last and line.at - last_at < window and placement == last_placement
        if repeat:
            log.debug(kv("reading_repeat", rig=self.cfg.id, reader=reading.reader,
                         within_s=window))
        return repeat

    def _ambiguous(self, reading: Reading, line: Line, kind: str) -> Reading:
        """Two or more cylinder codes in view at once (a camera's frame, an RFID field): refused
        as AMBIGUOUS_TAGS, whichever of them was reported first."""
        others = [o.decode("utf-8", "replace")[:60] for o in line.others]
        if kind in CONTINUOUS and reading.kind != "invalid":
            others += self.state.scale.others_in_view(line.reader_id, reading.value, line.at,
                                                      self.window(line.reader_id))
        if not others or reading.kind == "badge":
            return reading
        return Reading(raw=reading.raw, kind="invalid", refusal="AMBIGUOUS_TAGS",
                       detail=f"{len(others) + 1} codes in view: also {', '.join(others)[:200]}",
                       reader=reading.reader)

    async def for_binding(self, reading: Reading) -> bool:
        """The tag a pending `station bind` at this rig waits for (taken, logged): not a
        cylinder to judge. StoreError when the store thread cannot tell within its deadline."""
        if reading.kind == "invalid" or not await self.writes.call(
                "take_for_binding", self.cfg.id, reading.reader, reading.raw, BIND_WINDOW_S):
            return False
        log.info(kv("bind_tag_read", rig=self.cfg.id, reader=reading.reader,
                    reading=reading.raw[:200], kind=reading.kind))
        return True

    def bind(self, line: Line, reading: Reading, kind: str,
             arrived: tuple[int, bool] | None) -> str | None:
        """Bind a reading to the cylinder on the scale (replacing one held); None when bound.
        Otherwise why it is void: "" for a continuous reader's sighting on an empty scale
        (logged here, nothing recorded), else the reason to record (a scan queued while the
        cylinder it was read for left the scale)."""
        scale = self.state.scale
        scale.held = None  # a new reading replaces one waiting for its cylinder
        if kind in CONTINUOUS and scale.read_while_empty(line.at) and \
                reading.refusal not in ("TAG_UNREADABLE", "TAG_FOREIGN"):
            log.info(kv("reading_void", rig=self.cfg.id, reader=line.reader_id,
                        reading=reading.raw[:200], why="read while the scale was empty"))
            return ""
        if kind in CONTINUOUS:
            scale.bound(line.reader_id, reading.value or reading.raw, line.at)
        elif arrived is not None and reading.kind != "invalid" and \
                not scale.still_for(arrived):  # a scan queued while its cylinder left
            return "the cylinder it was read for left the scale"
        return None

    def hold(self, line: Line, reading: Reading, kind: str) -> bool:
        """No cylinder standing stable: hold the reading for it up to `hold_reading_s` (True,
        logged); False when no cylinder can come for it (the reading is void)."""
        held = self.state.scale.hold(line, reading, kind, self.cfg.hold_reading_s)
        if held is None:
            return False
        log.info(kv("reading_held", rig=self.cfg.id, reader=line.reader_id,
                    reading=reading.raw[:200], until_s=round(held.until - line.at, 1)))
        return True

    def take_held(self, busy: bool) -> tuple[Held, str] | None:
        """The held reading once it is to be judged ("judge") or is void ("void: why"); None
        while it waits (or there is none). A fill under way (`busy`) drops it."""
        scale = self.state.scale
        held = scale.held
        if held is None:
            return None
        if busy:
            scale.held = None
            return None
        what = scale.held_state(self.state.stable_gross() is not None, time.monotonic())
        if what == "wait":
            return None
        scale.held = None
        return held, what

    def again_later(self, line: Line, reading: Reading, reason: str | None) -> None:
        """A continuous reader's tag refused for a passing reason (PASSING) is judged again at
        its next sighting after the dedup window, not only once the cylinder is lifted."""
        if self.reader_kind(line.reader_id) in CONTINUOUS and reason in PASSING:
            self.state.scale.retry(line.reader_id, reading.value or reading.raw, line.at,
                                   self.window(line.reader_id))
