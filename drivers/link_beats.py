"""The heartbeats a Modbus link sends by itself for each unit whose owner feeds it."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from station.errors import RigFault
from station.logfmt import kv

log = logging.getLogger("station.rig")

GUARD_MIN_S = 0.05


@dataclass(eq=False)
class Beats:
    """One unit's heartbeat as the link keeps it: `send()` writes the next value (RigFault on
    failure), at most `period_s` (s) after the previous write, while fed within `feed_s` (s)."""

    user: str
    send: Callable[[], Awaitable[None]]
    period_s: float
    feed_s: float
    on_fault: Callable[[RigFault], None]
    fed_until: float = 0.0  # monotonic s; start_beats() feeds it once
    waiting: int = 0  # the owner's requests queued or on the wire: it waits on the link
    last_at: float = field(default_factory=time.monotonic)  # when the last write was started
    sent: int = 0
    late: int = 0  # gaps longer than period_s
    max_gap_s: float = 0.0
    starved: bool = False
    fed: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task | None = None

    def written(self, at: float) -> None:
        """A heartbeat write went on the wire at `at` (monotonic s): measure the gap."""
        gap = at - self.last_at
        if self.sent:
            self.max_gap_s = max(self.max_gap_s, gap)
            self.late += gap > self.period_s
        self.sent += 1
        self.last_at = at


class BeatPacing:
    """ModbusLink's heartbeat half: one pacing task per unit (the link's module docstring
    states the timing and its trade-offs). Needs `key` and `tx_s` (s) from the link."""

    key: str
    tx_s: float
    _beats: dict[str, Beats]

    def start_beats(self, beats: Beats) -> None:
        """Heartbeat a unit from now on (replacing its earlier schedule); `beats.send()` runs at
        HEARTBEAT priority for its write (see module docstring for the timing)."""
        self.stop_beats(beats.user)
        beats.fed_until = time.monotonic() + beats.feed_s
        beats.fed.set()
        beats.task = asyncio.ensure_future(self._pace(beats))
        self._beats[beats.user] = beats

    def stop_beats(self, user: str) -> None:
        """Stop heartbeating `user`'s unit (its controller's watchdog then runs out)."""
        beats = self._beats.pop(user, None)
        if beats is not None and beats.task is not None:
            beats.task.cancel()

    def feed(self, user: str, extra_s: float = 0.0) -> None:
        """`user`'s owner is alive: keep heartbeating its unit for another feed_s, plus
        `extra_s` (s) when the owner is about to wait that long on purpose."""
        beats = self._beats.get(user)
        if beats is not None:
            beats.fed_until = max(beats.fed_until, time.monotonic() + beats.feed_s + extra_s)
            beats.fed.set()

    def guard_s(self) -> float:
        """How long before its deadline a heartbeat is queued (s): four slow answers."""
        return max(GUARD_MIN_S, 4 * self.tx_s)

    async def _pace(self, b: Beats) -> None:
        while True:
            due = b.last_at + max(b.period_s - self.guard_s(), b.period_s / 2)
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            if b.waiting:  # an owner waiting for its turn on a busy line is not hung
                b.fed_until = max(b.fed_until, time.monotonic() + b.feed_s)
            if time.monotonic() > b.fed_until:
                if not b.starved:
                    b.starved = True
                    log.error(kv("heartbeat_unfed", endpoint=self.key, rig=b.user,
                                 feed_s=b.feed_s))
                b.fed.clear()
                await b.fed.wait()
                continue
            if b.starved:
                b.starved = False
                log.warning(kv("heartbeat_fed_again", endpoint=self.key, rig=b.user))
            try:
                await b.send()
            except RigFault as err:
                b.on_fault(err)
                b.last_at = time.monotonic() - b.period_s + 0.1  # try again in 0.1 s

    def beats_of(self, user: str) -> Beats | None:
        """`user`'s heartbeat schedule, None when the link does not heartbeat it."""
        return self._beats.get(user)
