"""The sync worker: delivers the outbox to the city oldest first, exactly once, whatever happens.

It runs in its own thread with its own store connection, apart from the interlock path (a slow
city never delays a verdict). A record is pending until the city answers 200, or 409 for its own
record id (delivered); the city's own 400 or 403 envelope makes it dead (kept, shown, retried
only by hand), never a proxy's page with that HTTP status (station.city: only a well-formed
envelope is the city's word, and such a failure carries no code); anything else is retried with exponential backoff and full jitter, honouring Retry-After, capped.
Records go in order: the oldest pending one goes first, and waits out its backoff before any
younger one is sent. Nothing is dropped for age or queue size.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from typing import Any, Protocol

from station.backoff import Backoff
from station.config import SyncConfig
from station.errors import StoreError
from station.logfmt import kv
from station.store import outbox
from station.store.db import Store

log = logging.getLogger("station.sync")

# Answers worth waiting out: throttling, server trouble, a token problem; no code at all is a
# connection failure or timeout. Any other code is the city's word on this record.
RETRY_CODES = frozenset({"401", "429", "500", "502", "503", "504"})


class CityFillings(Protocol):
    def submit_filling(self, record: dict, deadline_s: float = 10.0) -> Any: ...
    def query(self, condition: dict[str, str], deadline_s: float | None = None) -> Any: ...


def backoff_s(attempts: int, cap_s: float, retry_after_s: float | None,
              rng: random.Random) -> float:
    """Full jitter: uniform in [0, min(cap, 2^attempts)], never less than Retry-After."""
    jitter = rng.uniform(0, Backoff(start_s=1.0, cap_s=cap_s).ceiling_s(attempts))
    return min(cap_s, max(jitter, retry_after_s or 0.0))


class SyncWorker(threading.Thread):
    """Drains the outbox of one store; `wake()` after a new record, `stop()` to end."""

    def __init__(self, store_path: str, city: CityFillings, cfg: SyncConfig,
                 rng: random.Random | None = None):
        super().__init__(name="sync", daemon=True)
        self.store_path, self.city, self.cfg = store_path, city, cfg
        self.rng = rng or random.Random()
        self._wake, self._halt = threading.Event(), threading.Event()
        self._last_send = 0.0
        self._backlog_old: bool | None = None
        self._store_error = ""  # set while the store fails: logged once, and once recovered
        self._unmarked: tuple | None = None  # the city's answer the store could not take yet

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._halt.set()
        self._wake.set()

    def run(self) -> None:
        """Deliver until stopped; any failure is logged and retried, never the end of it."""
        store: Store | None = None
        while not self._halt.is_set():
            try:
                store = store or Store(self.store_path)
                if self._unmarked is not None:  # before anything else is sent
                    self._mark(store, *self._unmarked)
                pause = self.step(store)
                self._store_works()
            except StoreError as err:  # disk full, read-only: waited out, logged once
                self._store_failed(err)
                pause = 5.0
            except Exception as err:  # noqa: BLE001 - the worker must outlive any one failure
                log.error(kv("sync_error", error=repr(err), action="retry in 5 s"))
                if store is not None:
                    store.close()
                    store = None  # a fresh connection next time
                pause = 5.0
            self._wake.wait(pause)
            self._wake.clear()
        if store is not None:
            store.close()

    def _store_failed(self, err: StoreError) -> None:
        if not self._store_error:
            log.error(kv("sync_store_failed", error=str(err), action="retried every 5 s"))
        self._store_error = str(err)

    def _store_works(self) -> None:
        if self._store_error:
            log.info(kv("sync_store_recovered", was=self._store_error))
        self._store_error = ""

    def step(self, store: Store) -> float:
        """Deliver the oldest pending record if it is due; return how long to wait next."""
        row = outbox.oldest_pending(store)
        self._watch_backlog(store, row["created_at"] if row else None)
        if row is None:
            return 5.0
        now = time.time()
        if now < row["next_at"] <= now + self.cfg.backoff_cap_s:  # (further off: the clock
            return min(row["next_at"] - now, 5.0)  # was stepped back since; due now)
        if self.cfg.rate_per_s > 0:
            gap = 1.0 / self.cfg.rate_per_s - (time.monotonic() - self._last_send)
            if gap > 0:
                return gap
        self._last_send = time.monotonic()
        self.deliver(store, row)
        return 0.0

    def deliver(self, store: Store, row: dict[str, Any]) -> None:
        payload = json.loads(row["payload"])
        if not payload.get("id"):
            resolved = self._resolve(store, row, payload)
            if resolved is None:
                return
            payload = resolved
        body = {k: v for k, v in payload.items() if not k.startswith("_")}
        reply = self.city.submit_filling(body, deadline_s=self.cfg.submit_timeout_s)
        data = reply.data if isinstance(reply.data, dict) else {}
        if reply.outcome == "ok" or (reply.outcome == "duplicate"
                                     and data.get("record_id", row["record_id"]) ==
                                     row["record_id"]):
            self._mark(store, row, "delivered", data.get("trace_id"))
        elif reply.outcome in ("invalid", "refused", "duplicate"):
            self._mark(store, row, "dead", error=f"{reply.code}: {reply.message}")
        elif reply.code and reply.code not in RETRY_CODES:  # a code the contract does not
            self._mark(store, row, "dead", error=f"{reply.code}: {reply.message}")  # know
        else:
            self._retry(store, row, reply.message or reply.outcome,
                        getattr(reply, "retry_after_s", None))

    def _resolve(self, store: Store, row: dict[str, Any],
                 payload: dict[str, Any]) -> dict[str, Any] | None:
        """Find the cylinder id of a fill made without one (override while the city was down)."""
        tag = payload.get("_resolve") or {}
        condition = {"info_code": tag["info_code"]} if tag.get("info_code") else None
        if condition is None:
            self._mark(store, row, "dead", error="no cylinder id and no tag to look it up by")
            return None
        reply = self.city.query(condition, deadline_s=self.cfg.submit_timeout_s)
        if reply.outcome == "found" and len(reply.items) == 1:
            payload["id"] = reply.items[0].get("id")
            outbox.amend_cylinder(store, row["id"], row["record_id"], payload)
            return payload
        if reply.outcome == "transient":
            self._retry(store, row, f"resolving the cylinder id: {reply.message}", None)
        else:
            self._mark(store, row, "dead", error=f"cylinder id not found by tag ({reply.outcome})")
        return None

    def _mark(self, store: Store, row: dict[str, Any], state: str,
              trace_id: str | None = None, error: str | None = None) -> None:
        """Commit the city's answer; one the store cannot take is kept, and committed before
        anything else is sent (sent again only if the worker stops meanwhile: a 409, once)."""
        self._unmarked = (row, state, trace_id, error)
        outbox.mark(store, row["id"], state, trace_id, error)
        self._unmarked = None
        event = "record_delivered" if state == "delivered" else "record_dead"
        (log.info if state == "delivered" else log.error)(kv(
            event, record_id=row["record_id"], attempts=row["attempts"] + 1, trace_id=trace_id,
            error=error))

    def _retry(self, store: Store, row: dict[str, Any], error: str,
               retry_after_s: float | None) -> None:
        wait = backoff_s(row["attempts"], self.cfg.backoff_cap_s, retry_after_s, self.rng)
        outbox.retry_later(store, row["id"], error, time.time() + wait)
        log.warning(kv("record_retry", record_id=row["record_id"], attempts=row["attempts"] + 1,
                       retry_in_s=wait, error=error))

    def _watch_backlog(self, store: Store, oldest: float | None) -> None:
        """Warn once when the oldest pending record is older than backlog_warn_h, once again
        when the backlog is young again (the count is read only for those two lines)."""
        age_h = (time.time() - oldest) / 3600 if oldest else 0.0
        old = age_h > self.cfg.backlog_warn_h
        if old == self._backlog_old:
            return
        pending = outbox.pending_count(store)
        if old:
            log.warning(kv("backlog_old", pending=pending, oldest_h=age_h))
        elif self._backlog_old is not None:
            log.info(kv("backlog_recovered", pending=pending))
        self._backlog_old = old
