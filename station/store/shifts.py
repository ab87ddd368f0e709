"""Operators on shift, kept in memory: rebuilt once, then read only after a commit changed them."""

from __future__ import annotations

import sqlite3

from station.errors import StoreError

# The newest event of each rig, by a skip-scan of operator_events_rig (rig, id): one index
# seek per rig, whatever the table's length (a GROUP BY over it grows with every shift).
LATEST = """
WITH RECURSIVE rigs(rig) AS (
    SELECT (SELECT min(rig) FROM operator_events)
    UNION ALL
    SELECT (SELECT min(rig) FROM operator_events WHERE rig > rigs.rig)
    FROM rigs WHERE rig IS NOT NULL)
SELECT e.id, e.rig, e.operator, e.event FROM rigs JOIN operator_events e
    ON e.id = (SELECT max(id) FROM operator_events WHERE rig = rigs.rig AND id <= :top)
"""
NEWER = ("SELECT id, rig, operator, event FROM operator_events WHERE id > ? AND id <= ? "
         "ORDER BY id")


class Shifts:
    """Rig → operator whose last operator event is a log-in, for one connection.

    `current()` is called on every poll of every rig (issue 15 item 4). It costs one
    `PRAGMA data_version` (~3 µs; it changes only when another connection committed: the CLI's
    `station operator login|logout`, the web, the daemon's own second connection) and, after
    such a commit, one `max(id)` by the primary key and a read of the events newer than the
    last one seen. The store's own writes call `refresh()` (its own commits leave
    data_version as it was). Nothing here grows with the table. A table whose newest id went
    down (rows deleted, a store restored) is read afresh. Errors: StoreError.
    """

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn
        self._version: int | None = None
        self._seen = -1  # the newest event id applied; -1: nothing read yet
        self._on: dict[str, str] = {}

    def current(self) -> dict[str, str]:
        """Rig → operator on shift now (the map itself: callers copy before changing it)."""
        try:
            version = self.conn.execute("PRAGMA data_version").fetchone()[0]
        except sqlite3.Error as err:
            raise StoreError(f"store read failed: {err}") from err
        if version != self._version:
            self.refresh()
            self._version = version
        return self._on

    def refresh(self) -> None:
        """Apply the events committed since the last look (any connection's)."""
        try:
            top = self.conn.execute("SELECT max(id) FROM operator_events").fetchone()[0] or 0
            if top == self._seen:
                return
            if top < self._seen or self._seen < 0:
                self._on = {}
                rows = self.conn.execute(LATEST, {"top": top}).fetchall()
            else:
                rows = self.conn.execute(NEWER, (self._seen, top)).fetchall()
        except sqlite3.Error as err:
            raise StoreError(f"store read failed: {err}") from err
        for _, rig, operator, event in rows:
            if event == "login":
                self._on[rig] = operator
            else:
                self._on.pop(rig, None)
        self._seen = top
