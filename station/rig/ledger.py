"""One rig's records in the store: fill rows before and after the permit, held records, events."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from drivers.rig import RigStatus
from station.config import RigConfig, StationConfig
from station.core import fills
from station.core.fillcycle import Closed, FillContext, FillCycle
from station.errors import StoreError
from station.logfmt import kv
from station.store.db import Store

from .storethread import StoreThread

log = logging.getLogger("station.rig")


class Ledger:
    """Writes one rig's fills to the store in the order that makes a crash safe: the open row is
    committed before its permit is written, the valve seen open is noted on it, and the closed
    record goes with its outbox entry in one transaction. A closed record the store refuses is
    held in memory (`unsaved`, oldest first) and retried; while one is held (or a close is
    still queued) no new fill starts. Open rows a crash left are recovered at the first
    connection. Also the rig's event journal.

    Every write goes through the store thread (`writes`): the open row is awaited (within its
    deadline), the rest is queued, so the poll that feeds the heartbeat never waits on SQLite.
    Reads (the open rows at recovery) are the loop's own connection's (`store`).
    """

    def __init__(self, cfg: RigConfig, station: StationConfig, store: Store,
                 writes: StoreThread, on_fill: Callable[[], None]):
        self.cfg, self.station, self.store, self.on_fill = cfg, station, store, on_fill
        self.writes = writes
        self.unsaved: list[Closed] = []  # closed fills the store refused; retried every poll
        self.closing: set[asyncio.Future] = set()  # closes queued, not yet answered
        self.error = ""  # the store's last refusal of a fill record
        self._retrying = False

    def event(self, event: str, detail: str = "") -> None:
        """One line in the rig's event journal, queued; a store that refuses it is logged."""
        self.writes.post("rig_event", self.cfg.id, event, detail, done=self._logged)

    def _logged(self, _result: object, err: BaseException | None) -> None:
        if err is not None:
            log.error(kv("store_error", rig=self.cfg.id, error=str(err)))

    async def open(self, ctx: FillContext) -> bool:
        """Commit the open fill row before the permit (awaited, within the store thread's
        deadline); False (logged) when the store cannot: then there is no fill."""
        try:
            await self.writes.call("open_fill", fills.row(ctx, self.cfg.id))
            return True
        except StoreError as err:
            self.refused(err)
            return False

    def refused(self, err: StoreError) -> None:
        """The open row (with its decision) could not be committed: logged, no fill."""
        log.error(kv("store_error", rig=self.cfg.id, error=str(err),
                     action="fill refused: it could not be recorded"))

    def started(self, ctx: FillContext) -> None:
        """The open row learns the valve was seen open (epoch s), queued: a crash now is a
        fill (an open row whose store refuses this still is one at recovery)."""
        self.writes.post("fill_started", ctx.record_id, ctx.started_at or time.time(),
                         done=self._logged)

    def retry(self) -> str:
        """Queue the fill records the store refused, oldest first, once at a time; the
        store's last error while it still refuses them ("" once none is held)."""
        if self.unsaved and not self._retrying:
            self._retrying = True
            self.writes.post(_save_all, [self._args(c) for c in self.unsaved],
                             done=lambda saved, err, held=list(self.unsaved):
                             self._retried(held, saved, err))
        return self.error if self.unsaved else ""

    def _retried(self, held: list[Closed], saved: tuple[int, str] | None,
                 err: BaseException | None) -> None:
        self._retrying = False
        count, error = saved if saved is not None else (0, str(err))
        for closed in held[:count]:
            self._saved(closed)
        self.error = error
        if count and not self.unsaved:
            log.warning(kv("fill_records_saved", rig=self.cfg.id,
                           action="the store commits again: fills allowed"))

    async def settle(self) -> None:
        """No new fill while a fill record is queued or held in memory: waits for the queued
        closes and a retry of the held ones (within the store thread's deadline); StoreError
        while a record is still held."""
        if self.closing:
            await asyncio.wait(set(self.closing), timeout=self.writes.deadline_s)
        if self.unsaved:
            held = list(self.unsaved)
            try:
                saved = await self.writes.call(_save_all, [self._args(c) for c in held])
            except StoreError as err:
                saved = (0, str(err))
            self._retried(held, saved, None)
        if self.unsaved or self.closing:
            raise StoreError(f"{len(self.unsaved) + len(self.closing)} fill record(s) not "
                             f"committed yet: {self.error or 'the store is busy'}")

    def close(self, closed: Closed) -> None:
        """Record the end of a fill, queued; a store failure keeps it in memory and retries
        it."""
        future = self.writes.post(_save_all, [self._args(closed)],
                                  done=lambda saved, err: self._closed(closed, saved, err))
        self.closing.add(future)
        future.add_done_callback(self.closing.discard)

    def _closed(self, closed: Closed, saved: tuple[int, str] | None,
                err: BaseException | None) -> None:
        if saved is not None and saved[0] == 1:
            self._saved(closed)
            return
        self.error = saved[1] if saved is not None else str(err)
        log.critical(kv("fill_not_saved", rig=self.cfg.id, record_id=closed.ctx.record_id,
                        error=self.error, action="kept in memory, retried"))
        if closed not in self.unsaved:
            self.unsaved.append(closed)

    def _args(self, closed: Closed) -> tuple[dict, dict | None]:
        row = fills.row(closed.ctx, self.cfg.id)
        return row, None if closed.cancelled else fills.submission(row, self.station.unit_name)

    def _saved(self, closed: Closed) -> None:
        """A record committed (with its outbox entry): the sync worker woken, logged."""
        if closed in self.unsaved:
            self.unsaved.remove(closed)
        ctx = closed.ctx
        if not closed.cancelled:
            self.on_fill()
        log.info(kv("fill_cancelled" if closed.cancelled else "fill", rig=self.cfg.id,
                    record_id=ctx.record_id, cylinder=ctx.cylinder_id, operator=ctx.operator,
                    net_kg=None if ctx.net_g is None else ctx.net_g / 1000,
                    target_kg=ctx.target_g / 1000, pre_check=ctx.pre_check,
                    post_check=ctx.post_check or None, end=ctx.end_reason or None,
                    override_by=ctx.override_by))

    def recover(self, cycle: FillCycle, status: RigStatus) -> None:
        """Fills of this rig whose permit was granted before a crash: recorded from the rig as
        it stands now (FillCycle.recover), never silently forgotten. StoreError when the open
        rows cannot be read."""
        for row in self.store.open_fills():
            if row["rig"] == self.cfg.id:
                self.close(cycle.recover(row, status, time.time()))

    async def at_exit(self) -> None:
        """The queued closes waited for, and a last try for held records; those still
        refused stay open rows, recovered at the next start."""
        if self.closing:
            await asyncio.wait(set(self.closing), timeout=2 * self.writes.deadline_s)
        try:
            await self.settle()
        except StoreError:
            pass
        for closed in self.unsaved:  # its open row stays: recorded at the next start
            log.critical(kv("fill_not_saved_at_exit", rig=self.cfg.id,
                            record_id=closed.ctx.record_id,
                            action="recovered from its open row at the next start"))


def _save_all(store: Store, records: list[tuple[dict, dict | None]]) -> tuple[int, str]:
    """In the store thread: close the fill records in order (each with its outbox entry, one
    transaction each; closing one already closed changes nothing), stopping at the first the
    store refuses. (how many were committed, the store's error or "")."""
    for saved, (row, payload) in enumerate(records):
        try:
            store.close_fill(row, payload)
        except StoreError as err:
            return saved, str(err)
    return len(records), ""
