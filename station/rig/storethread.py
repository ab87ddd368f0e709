"""The daemon's store thread: every write to the store off the event loop, in one thread, in order."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from station.errors import StoreError
from station.logfmt import kv
from station.store.db import Store

log = logging.getLogger("station.store")

DEADLINE_S = 1.0  # a decision's store call: refused (no permit) when it cannot commit by then
GRACE_S = 0.25  # beyond the deadline, what the loop allows the thread (an fsync) before giving up
BUSY_MS = 5000  # SQLite's busy timeout for the calls without a deadline (fill records)
LIVE = frozenset({"publish", "rig_event"})  # the non-durable writes: the live thread's

Call = str | Callable[..., Any]  # a Store method's name, or fn(store, *args)


class StoreThread:
    """One thread owning the daemon's writing connection (a Store of its own, opened in it:
    SQLite connections stay in one thread) and running the rig loops' store calls one at a
    time, in the order they were made; a second one for the non-durable writes (LIVE: the
    screens' pictures, rig events, on their own no-fsync connection), so that a picture
    waiting for the lock never holds up a decision.

    The event loop never waits on SQLite: while another process holds the write lock (a
    technician's `sqlite3`, `station prune`) a call waits in this thread, and the loop, the
    links and their heartbeats run on. Reads stay on the loop's own connection (`reader`): in
    WAL mode a reader never waits for a writer. Two ways in:

    - `await call(...)`: the result, with a deadline (s, default `deadline_s`): a call that
      cannot start, or get SQLite's lock, before it raises StoreError and writes nothing (its
      busy timeout is what is left of the deadline), so a decision refused for a busy store
      is never committed late. The loop gives up GRACE_S after the deadline all the same.
    - `post(...)`: queued, not awaited (fill started, fill closed, events, the screen's
      picture); `done(result, error)` is then called on the event loop.

    A call given up at the deadline may still commit if it had got the lock and its fsync
    outlasted GRACE_S: the loop has refused it all the same (no permit); a decision and
    open row committed so are a permit never written, closed at the next start (recovery).

    The reader learns the newest decision's time (`newest_at`, for the clock checks) after
    each awaited call. `idle()` waits until every call queued so far has run.
    """

    def __init__(self, reader: Store, deadline_s: float = DEADLINE_S):
        self.reader, self.path, self.deadline_s = reader, reader.path, deadline_s
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="store")
        self._live_pool = ThreadPoolExecutor(1, thread_name_prefix="store-live")
        self._store: Store | None = None  # opened in the thread by its first call
        self._live: Store | None = None  # the live thread's
        self.queued = 0  # calls submitted and not yet finished
        self.waited_s = 0.0  # the longest call in the thread (s), lock waits included: a gauge
        self._closed = False

    # --- in the store thread ------------------------------------------------------------
    def _writer(self, live: bool) -> Store:
        if live:
            if self._live is None:
                self._live = Store(self.path)
            return self._live
        if self._store is None:
            self._store = Store(self.path)
        return self._store

    def _run(self, what: Call, args: tuple, kwargs: dict, deadline: float | None,
             abandoned: threading.Event) -> Any:
        started = time.monotonic()
        try:
            if abandoned.is_set():
                raise StoreError("store busy: the call was given up before it could start")
            store = self._writer(what in LIVE)
            if deadline is not None:
                left = deadline - started
                if left <= 0:
                    raise StoreError("store busy: the call's deadline passed before it could "
                                     "start")
                store.conn.execute(f"PRAGMA busy_timeout={max(1, int(left * 1000))}")
            try:
                fn = getattr(store, what) if isinstance(what, str) else what
                return fn(*args, **kwargs) if isinstance(what, str) else fn(store, *args,
                                                                             **kwargs)
            finally:
                if deadline is not None:
                    store.conn.execute(f"PRAGMA busy_timeout={BUSY_MS}")
        except StoreError:
            raise
        except sqlite3.Error as err:  # outside the Store's own translation (the pragma)
            raise StoreError(f"store write failed: {err}") from err
        finally:
            self.waited_s = max(self.waited_s, time.monotonic() - started)

    # --- on the event loop --------------------------------------------------------------
    def _submit(self, what: Call, args: tuple, kwargs: dict, deadline: float | None,
                abandoned: threading.Event) -> Future:
        if self._closed:
            raise StoreError("store thread closed")
        self.queued += 1
        pool = self._live_pool if what in LIVE else self._pool
        fut = pool.submit(self._run, what, args, kwargs, deadline, abandoned)
        fut.add_done_callback(self._finished)
        return fut

    def _finished(self, _fut: Future) -> None:
        self.queued -= 1  # (the GIL makes the decrement safe enough for a gauge)

    async def call(self, what: Call, *args: Any, deadline_s: float | None = None,
                   **kwargs: Any) -> Any:
        """Run `what` in the store thread and return its result; StoreError when it fails or
        cannot be carried out within `deadline_s` (s; default `self.deadline_s`)."""
        limit = self.deadline_s if deadline_s is None else deadline_s
        abandoned = threading.Event()
        fut = self._submit(what, args, kwargs, time.monotonic() + limit, abandoned)
        try:
            result = await asyncio.wait_for(asyncio.wrap_future(fut), limit + GRACE_S)
        except TimeoutError:
            abandoned.set()
            raise StoreError(f"store busy: no answer within {limit + GRACE_S:g} s") from None
        except asyncio.CancelledError:
            abandoned.set()
            raise
        if self._store is not None:
            self.reader.newest_at = max(self.reader.newest_at, self._store.newest_at)
        return result

    def post(self, what: Call, *args: Any,
             done: Callable[[Any, BaseException | None], None] | None = None,
             **kwargs: Any) -> asyncio.Future:
        """Queue `what` for the store thread without waiting (no deadline: the busy timeout
        is BUSY_MS); `done(result, error)` runs on the event loop afterwards. An error with no
        `done` is logged. The asyncio future of the call."""
        wrapped = asyncio.wrap_future(self._submit(what, args, kwargs, None,
                                                   threading.Event()))

        def finished(f: asyncio.Future) -> None:
            if f.cancelled():
                return
            err = f.exception()
            if done is not None:
                done(None if err else f.result(), err)
            elif err is not None:
                log.error(kv("store_error", call=getattr(what, "__name__", what),
                             error=str(err)))
        wrapped.add_done_callback(finished)
        return wrapped

    async def idle(self) -> None:
        """Return once every call queued before it has run and its `done` has been called."""
        await asyncio.wrap_future(self._pool.submit(lambda: None))
        await asyncio.wrap_future(self._live_pool.submit(lambda: None))
        await asyncio.sleep(0)  # the done callbacks scheduled by then run first
        await asyncio.sleep(0)

    def close(self) -> None:
        """Run what is queued, close the thread's connections (in the thread), stop it."""
        if self._closed:
            return
        self._closed = True

        def shut(live: bool) -> None:
            store = self._live if live else self._store
            if store is not None:
                store.close()
        try:
            self._pool.submit(shut, False).result()
            self._live_pool.submit(shut, True).result()
        finally:
            self._pool.shutdown(wait=True)
            self._live_pool.shutdown(wait=True)

