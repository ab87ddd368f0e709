"""Record retention: decisions and fill records older than [retention] keep_years are pruned.

Never pruned: a fill whose record has not been delivered to the city (pending or dead in the
outbox), an open fill, or the decision behind a fill that is kept. A pruned record leaves its
hash-chain entry in place and a tombstone in `pruned`, so `station verify` can tell a record
removed by retention from one deleted behind the station's back.
"""

from __future__ import annotations

import json
import sqlite3
import statistics
import time
from dataclasses import dataclass
from datetime import datetime

from station.errors import StoreError
from station.store import chain
from station.store.db import Store
from station.today import LOCAL_TZ

# A fill may go: old, cancelled (never sent) or closed and delivered.
PRUNABLE_FILL = """(f.state = 'cancelled' OR (f.state = 'closed' AND EXISTS (SELECT 1 FROM outbox o
    WHERE o.record_id = f.record_id AND o.state = 'delivered')))
    AND coalesce(f.ended_at, f.started_at, f.permitted_at) < :cutoff"""
PRUNABLE_DECISION = f"""d.at < :cutoff AND NOT EXISTS (SELECT 1 FROM fills f
    WHERE f.decision_id = d.id AND NOT ({PRUNABLE_FILL}))"""
TOMBSTONES = """CREATE TABLE IF NOT EXISTS pruned (kind TEXT NOT NULL, ref TEXT NOT NULL,
    seq INTEGER NOT NULL, at REAL NOT NULL, PRIMARY KEY (kind, ref))"""


BATCH = 2000  # rows per write transaction: the write lock is held for milliseconds, not seconds
KEYS = "(SELECT value FROM json_each(:keys))"


@dataclass(frozen=True)
class Pruned:
    cutoff: str  # local date: records before it were (or would be) pruned
    decisions: int
    fills: int
    outbox: int
    rig_events: int
    kept_undelivered: int  # old fills kept because the city does not have them yet
    batches: int = 0  # write transactions taken
    longest_lock_ms: float = 0.0  # the longest of them, BEGIN IMMEDIATE to COMMIT
    median_lock_ms: float = 0.0


def cutoff(now: datetime, keep_years: int) -> datetime:
    """Local midnight `keep_years` calendar years before today (29 Feb → 28 Feb)."""
    today = now.astimezone(LOCAL_TZ).date()
    try:
        day = today.replace(year=today.year - keep_years)
    except ValueError:
        day = today.replace(year=today.year - keep_years, day=28)
    return datetime(day.year, day.month, day.day, tzinfo=LOCAL_TZ)


def prune(store: Store, keep_years: int, *, dry_run: bool = False,
          now: datetime | None = None, batch: int = BATCH) -> Pruned:
    """Delete (or with dry_run only count) what is older than the retention period.

    The candidates are found by reads (no lock: the daemon writes on meanwhile) and deleted
    in write transactions of at most `batch` rows each, every one re-checking that its rows
    may still go; another process (the daemon) waits at most one batch for the write lock
    (issue 15: one 800,000-row transaction held it for 6.6 s and cut every rig's fill).
    Fills with their delivered outbox rows go first, then the decisions no kept fill refers
    to, then old rig events. Counts are of the rows deleted. Errors: StoreError."""
    edge = cutoff(now or datetime.now(LOCAL_TZ), keep_years)
    p = {"cutoff": edge.timestamp(), "now": time.time()}
    try:
        counts = _count(store.conn, p)
    except sqlite3.Error as err:
        raise StoreError(f"store read failed: {err}") from err
    if dry_run:
        return Pruned(cutoff=edge.date().isoformat(), **counts)
    with store.transaction() as conn:
        conn.execute(TOMBSTONES)
    store.conn.execute("PRAGMA wal_autocheckpoint=0")  # this connection: _checkpoint instead
    done = {"decisions": 0, "fills": 0, "outbox": 0, "rig_events": 0}
    locks: list[float] = []
    for find, drop in STEPS:
        after: object = 0
        while True:
            try:
                found = store.conn.execute(find, {**p, "after": after, "n": batch}).fetchall()
            except sqlite3.Error as err:
                raise StoreError(f"store read failed: {err}") from err
            if not found:
                break
            after = found[-1][0]
            keys = json.dumps([key for _, key in found])
            started = time.perf_counter()
            with store.transaction() as conn:
                for name, n in drop(conn, {**p, "keys": keys}).items():
                    done[name] += n
            locks.append((time.perf_counter() - started) * 1000)
            _checkpoint(store)
            if len(found) < batch:
                break
    store.conn.execute("PRAGMA wal_autocheckpoint=1000")  # SQLite's default again
    return Pruned(cutoff=edge.date().isoformat(), **done,
                  kept_undelivered=counts["kept_undelivered"], batches=len(locks),
                  longest_lock_ms=round(max(locks, default=0.0), 2),
                  median_lock_ms=round(statistics.median(locks), 2) if locks else 0.0)


def _checkpoint(store: Store) -> None:
    """Copy the batch's pages back into the database between batches, without the write lock
    (PASSIVE: readers and the daemon's writes go on), so that no batch's commit runs a large
    automatic checkpoint and the WAL stays small."""
    try:
        store.conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
    except sqlite3.Error as err:
        raise StoreError(f"checkpoint failed: {err}") from err


def _count(conn: sqlite3.Connection, p: dict) -> dict[str, int]:
    def one(sql: str) -> int:
        return int(conn.execute(sql, p).fetchone()[0])
    return {
        "decisions": one(f"SELECT count(*) FROM decisions d WHERE {PRUNABLE_DECISION}"),
        "fills": one(f"SELECT count(*) FROM fills f WHERE {PRUNABLE_FILL}"),
        "outbox": one(f"SELECT count(*) FROM outbox WHERE record_id IN (SELECT record_id FROM "
                      f"fills f WHERE {PRUNABLE_FILL})"),
        "rig_events": one("SELECT count(*) FROM rig_events WHERE at < :cutoff"),
        "kept_undelivered": one(
            "SELECT count(*) FROM fills f WHERE coalesce(f.ended_at, f.started_at, "
            f"f.permitted_at) < :cutoff AND NOT ({PRUNABLE_FILL})")}


def _drop_fills(conn: sqlite3.Connection, p: dict) -> dict[str, int]:
    """A batch of fills still prunable: tombstones first (while the rows exist), then their
    delivered outbox rows and the fills."""
    conn.execute("CREATE TEMP TABLE doomed AS SELECT record_id AS ref FROM fills f WHERE "
                 f"f.record_id IN {KEYS} AND {PRUNABLE_FILL}", p)
    try:
        conn.execute("INSERT OR REPLACE INTO pruned (kind, ref, seq, at) SELECT 'fill', c.ref, "
                     "max(c.seq), :now FROM chain c WHERE c.kind = 'fill' AND c.ref IN "
                     "(SELECT ref FROM temp.doomed) GROUP BY c.ref", p)
        outbox = conn.execute("DELETE FROM outbox WHERE record_id IN "
                              "(SELECT ref FROM temp.doomed)").rowcount
        fills = conn.execute("DELETE FROM fills WHERE record_id IN "
                             "(SELECT ref FROM temp.doomed)").rowcount
    finally:
        conn.execute("DROP TABLE temp.doomed")
    return {"fills": fills, "outbox": outbox}


def _drop_decisions(conn: sqlite3.Connection, p: dict) -> dict[str, int]:
    """A batch of decisions no kept fill refers to: tombstones, then the rows."""
    conn.execute("CREATE TEMP TABLE doomed AS SELECT d.id AS id FROM decisions d WHERE "
                 f"d.id IN {KEYS} AND {PRUNABLE_DECISION}", p)
    try:
        conn.execute("INSERT OR REPLACE INTO pruned (kind, ref, seq, at) SELECT 'decision', "
                     "c.ref, max(c.seq), :now FROM chain c WHERE c.kind = 'decision' AND c.ref "
                     "IN (SELECT CAST(id AS TEXT) FROM temp.doomed) GROUP BY c.ref", p)
        decisions = conn.execute("DELETE FROM decisions WHERE id IN "
                                 "(SELECT id FROM temp.doomed)").rowcount
    finally:
        conn.execute("DROP TABLE temp.doomed")
    return {"decisions": decisions}


def _drop_events(conn: sqlite3.Connection, p: dict) -> dict[str, int]:
    return {"rig_events": conn.execute(f"DELETE FROM rig_events WHERE id IN {KEYS} AND "
                                       "at < :cutoff", p).rowcount}


# (the next batch of candidates after the cursor :after, as (cursor, key); its deletion)
STEPS = (
    (f"SELECT f.rowid, f.record_id FROM fills f WHERE f.rowid > :after AND {PRUNABLE_FILL} "
     "ORDER BY f.rowid LIMIT :n", _drop_fills),
    (f"SELECT d.id, d.id FROM decisions d WHERE d.id > :after AND {PRUNABLE_DECISION} "
     "ORDER BY d.id LIMIT :n", _drop_decisions),
    ("SELECT id, id FROM rig_events WHERE id > :after AND at < :cutoff ORDER BY id LIMIT :n",
     _drop_events),
)


def verify(conn: sqlite3.Connection) -> tuple[list[str], int]:
    """chain.verify, less the records retention removed (each matched by its tombstone).

    Returns the problems and how many pruned records were accounted for.
    """
    problems = chain.verify(conn)
    has_tombstones = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND "
                                  "name = 'pruned'").fetchone()
    if not has_tombstones:
        return problems, 0
    expected = {f"{kind} {ref} (chain entry {seq}) deleted"
                for kind, ref, seq in conn.execute("SELECT kind, ref, seq FROM pruned")}
    kept = [p for p in problems if p not in expected]
    return kept, len(problems) - len(kept)
