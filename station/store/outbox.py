"""The outbox's SQL, all of it: fill records waiting for the city, their delivery and its state.

A row is `pending` until the city took it (`delivered`) or gave its word against it (`dead`:
kept, shown, retried only by hand). The sync worker (station.city.sync) reads the oldest
pending row and writes the city's answer; `station sync`, `station outbox` and the web read
and nudge it. Every function raises StoreError when the store fails.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from station.store import chain

if TYPE_CHECKING:
    from station.store.db import Store


def enqueue(conn: sqlite3.Connection, record_id: str, payload: dict[str, Any],
            now: float) -> None:
    """A closed fill's submission, due at once (inside the caller's transaction: the fill row
    and its entry commit together, Store.close_fill)."""
    conn.execute("INSERT INTO outbox (record_id, payload, next_at, created_at) "
                 "VALUES (?, ?, ?, ?)",
                 (record_id, json.dumps(payload, ensure_ascii=False), now, now))


def oldest_pending(store: Store) -> dict[str, Any] | None:
    """The oldest pending row (every column), or None: records go to the city in order."""
    rows = store.query("SELECT * FROM outbox WHERE state = 'pending' ORDER BY id LIMIT 1")
    return rows[0] if rows else None


def pending_count(store: Store) -> int:
    return int(store.value("SELECT count(*) FROM outbox WHERE state = 'pending'") or 0)


def mark(store: Store, outbox_id: int, state: str, trace_id: str | None,
         error: str | None) -> None:
    """The city's answer to one attempt: `delivered` (with its trace id) or `dead` (with the
    error), one attempt more; a previous error stays when this one has none."""
    with store.transaction() as conn:
        conn.execute(
            "UPDATE outbox SET state = ?, attempts = attempts + 1, delivered_at = ?, "
            "trace_id = ?, last_error = coalesce(?, last_error) WHERE id = ?",
            (state, time.time() if state == "delivered" else None, trace_id, error, outbox_id))


def retry_later(store: Store, outbox_id: int, error: str, next_at: float) -> None:
    """One failed attempt: pending still, due again at `next_at` (epoch s)."""
    with store.transaction() as conn:
        conn.execute("UPDATE outbox SET attempts = attempts + 1, last_error = ?, next_at = ? "
                     "WHERE id = ?", (error, next_at, outbox_id))


def amend_cylinder(store: Store, outbox_id: int, record_id: str,
                   payload: dict[str, Any]) -> None:
    """The cylinder id found for a fill made without one: the payload, the fill row and the
    record chain (the amended fill re-chained) in one transaction."""
    with store.transaction() as conn:
        conn.execute("UPDATE outbox SET payload = ? WHERE id = ?",
                     (json.dumps(payload, ensure_ascii=False), outbox_id))
        conn.execute("UPDATE fills SET cylinder_id = ? WHERE record_id = ?",
                     (payload["id"], record_id))
        chain.append(conn, "fill", record_id)


def due_now(store: Store) -> int:
    """Every pending row due at once (`station sync`); how many."""
    with store.transaction() as conn:
        return conn.execute("UPDATE outbox SET next_at = 0 WHERE state = 'pending'").rowcount


def revive(store: Store, record_id: str) -> bool:
    """A dead record pending again, due now (after its cause was fixed); False when there is
    no dead record of that id. A record is never deleted from the outbox by hand."""
    with store.transaction() as conn:
        return conn.execute("UPDATE outbox SET state = 'pending', next_at = 0 WHERE record_id "
                            "= ? AND state = 'dead'", (record_id,)).rowcount > 0


def states(store: Store) -> dict[str, str]:
    """Record id → outbox state, every row (small stores: the demo, tests)."""
    return {r["record_id"]: r["state"] for r in
            store.query("SELECT record_id, state FROM outbox ORDER BY id")}


def counts(store: Store) -> dict[str, int]:
    """State → rows (pending, delivered, dead; a state with no row is absent)."""
    return {r["state"]: int(r["n"]) for r in
            store.query("SELECT state, count(*) AS n FROM outbox GROUP BY state")}


def oldest_pending_at(store: Store) -> float | None:
    """When the oldest pending row was created (epoch s), or None."""
    at = store.value("SELECT min(created_at) FROM outbox WHERE state = 'pending'")
    return None if at is None else float(at)


def last_error(store: Store) -> dict[str, Any] | None:
    """The newest undelivered row that failed: record_id, last_error, attempts."""
    rows = store.query("SELECT record_id, last_error, attempts FROM outbox WHERE last_error "
                       "IS NOT NULL AND state != 'delivered' ORDER BY id DESC LIMIT 1")
    return rows[0] if rows else None


def dead(store: Store) -> list[dict[str, Any]]:
    """The dead rows, oldest first: record_id, last_error."""
    return store.query("SELECT record_id, last_error FROM outbox WHERE state = 'dead' "
                       "ORDER BY id")


def delivered_of(store: Store, record_ids: Iterable[str]) -> set[str]:
    """Which of these fill records the city has received (photo rotation may drop theirs)."""
    ids, out = list(record_ids), set()
    for at in range(0, len(ids), 500):  # (SQLite's bound-variable limit)
        chunk = ids[at:at + 500]
        out |= {r["record_id"] for r in store.query(
            f"SELECT record_id FROM outbox WHERE state = 'delivered' AND record_id IN "
            f"({', '.join('?' * len(chunk))})", tuple(chunk))}
    return out
