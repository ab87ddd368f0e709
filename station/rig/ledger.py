"""One rig's records in the store: fill rows before and after the permit, held records, events."""

from __future__ import annotations

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

log = logging.getLogger("station.rig")


class Ledger:
    """Writes one rig's fills to the store in the order that makes a crash safe: the open row is
    committed before its permit is written, the valve seen open is noted on it, and the closed
    record goes with its outbox entry in one transaction. A closed record the store refuses is
    held in memory (`unsaved`, oldest first) and retried; while one is held no new fill starts.
    Open rows a crash left are recovered at the first connection. Also the rig's event journal.
    """

    def __init__(self, cfg: RigConfig, station: StationConfig, store: Store,
                 on_fill: Callable[[], None]):
        self.cfg, self.station, self.store, self.on_fill = cfg, station, store, on_fill
        self.unsaved: list[Closed] = []  # closed fills the store refused; retried every poll

    def event(self, event: str, detail: str = "") -> None:
        """One line in the rig's event journal; a store that refuses it is logged, not raised."""
        try:
            self.store.rig_event(self.cfg.id, event, detail)
        except StoreError as err:
            log.error(kv("store_error", rig=self.cfg.id, error=str(err)))

    def open(self, ctx: FillContext) -> bool:
        """Commit the open fill row before the permit; False (logged) when the store cannot:
        then there is no fill."""
        try:
            self.store.open_fill(fills.row(ctx, self.cfg.id))
            return True
        except StoreError as err:
            log.error(kv("store_error", rig=self.cfg.id, error=str(err),
                         action="fill refused: it could not be recorded"))
            return False

    def started(self, ctx: FillContext) -> None:
        """The open row learns the valve was seen open (epoch s): a crash now is a fill."""
        try:
            self.store.fill_started(ctx.record_id, ctx.started_at or time.time())
        except StoreError as err:  # the open row still stands: recovery treats it as a fill
            log.error(kv("store_error", rig=self.cfg.id, error=str(err)))

    def retry(self) -> str:
        """Commit the fill records the store refused, oldest first, once it takes them again;
        the store's error while it still refuses them ("" once none is held)."""
        while self.unsaved:
            try:
                self._save(self.unsaved[0])
            except StoreError as err:
                return str(err)
            self.unsaved.pop(0)
            if not self.unsaved:
                log.warning(kv("fill_records_saved", rig=self.cfg.id,
                               action="the store commits again: fills allowed"))
        return ""

    def hold_no_records(self) -> None:
        """No new fill while a fill record is held in memory: StoreError while the store still
        cannot commit it."""
        error = self.retry()
        if self.unsaved:
            raise StoreError(f"{len(self.unsaved)} fill record(s) held in memory: {error}")

    def close(self, closed: Closed) -> None:
        """Record the end of a fill; a store failure keeps it in memory and retries it."""
        try:
            self._save(closed)
        except StoreError as err:
            log.critical(kv("fill_not_saved", rig=self.cfg.id, record_id=closed.ctx.record_id,
                            error=str(err), action="kept in memory, retried"))
            self.unsaved.append(closed)

    def _save(self, closed: Closed) -> None:
        ctx = closed.ctx
        row = fills.row(ctx, self.cfg.id)
        payload = None if closed.cancelled else fills.submission(row, self.station.unit_name)
        self.store.close_fill(row, payload)  # the record and its outbox entry, one transaction
        if payload is not None:
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

    def at_exit(self) -> None:
        """The last try for held records; those still refused stay open rows, recovered at the
        next start."""
        self.retry()
        for closed in self.unsaved:  # its open row stays: recorded at the next start
            log.critical(kv("fill_not_saved_at_exit", rig=self.cfg.id,
                            record_id=closed.ctx.record_id,
                            action="recovered from its open row at the next start"))
