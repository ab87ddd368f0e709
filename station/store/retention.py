"""Record retention: decisions and fill records older than [retention] keep_years are pruned.

Never pruned: a fill whose record has not been delivered to the city (pending or dead in the
outbox), an open fill, or the decision behind a fill that is kept. A pruned record leaves its
hash-chain entry in place and a tombstone in `pruned`, so `station verify` can tell a record
removed by retention from one deleted behind the station's back.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from datetime import datetime

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


@dataclass(frozen=True)
class Pruned:
    cutoff: str  # local date: records before it were (or would be) pruned
    decisions: int
    fills: int
    outbox: int
    rig_events: int
    kept_undelivered: int  # old fills kept because the city does not have them yet


def cutoff(now: datetime, keep_years: int) -> datetime:
    """Local midnight `keep_years` calendar years before today (29 Feb → 28 Feb)."""
    today = now.astimezone(LOCAL_TZ).date()
    try:
        day = today.replace(year=today.year - keep_years)
    except ValueError:
        day = today.replace(year=today.year - keep_years, day=28)
    return datetime(day.year, day.month, day.day, tzinfo=LOCAL_TZ)


def prune(store: Store, keep_years: int, *, dry_run: bool = False,
          now: datetime | None = None) -> Pruned:
    """Delete (or with dry_run only count) what is older than the retention period."""
    edge = cutoff(now or datetime.now(LOCAL_TZ), keep_years)
    p = {"cutoff": edge.timestamp(), "now": time.time()}
    with store.transaction() as conn:
        counts = _count(conn, p)
        if not dry_run:
            _delete(conn, p)
    return Pruned(cutoff=edge.date().isoformat(), **counts)


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


def _delete(conn: sqlite3.Connection, p: dict) -> None:
    """Tombstones first (while the rows still exist), then fills with their delivered outbox
    rows, then the decisions no kept fill refers to."""
    conn.execute(TOMBSTONES)
    conn.execute("INSERT OR REPLACE INTO pruned (kind, ref, seq, at) SELECT 'fill', c.ref, "
                 "max(c.seq), :now FROM chain c WHERE c.kind = 'fill' AND c.ref IN (SELECT "
                 f"record_id FROM fills f WHERE {PRUNABLE_FILL}) GROUP BY c.ref", p)
    conn.execute("INSERT OR REPLACE INTO pruned (kind, ref, seq, at) SELECT 'decision', c.ref, "
                 "max(c.seq), :now FROM chain c WHERE c.kind = 'decision' AND c.ref IN (SELECT "
                 f"CAST(d.id AS TEXT) FROM decisions d WHERE {PRUNABLE_DECISION}) GROUP BY c.ref",
                 p)
    conn.execute("CREATE TEMP TABLE doomed_fills AS SELECT record_id FROM fills f WHERE "
                 f"{PRUNABLE_FILL}", p)
    conn.execute("CREATE TEMP TABLE doomed_decisions AS SELECT id FROM decisions d WHERE "
                 f"{PRUNABLE_DECISION}", p)
    conn.execute("DELETE FROM outbox WHERE record_id IN (SELECT record_id FROM doomed_fills)")
    conn.execute("DELETE FROM fills WHERE record_id IN (SELECT record_id FROM doomed_fills)")
    conn.execute("DELETE FROM decisions WHERE id IN (SELECT id FROM doomed_decisions)")
    conn.execute("DELETE FROM rig_events WHERE at < :cutoff", p)
    conn.execute("DROP TABLE temp.doomed_fills")
    conn.execute("DROP TABLE temp.doomed_decisions")


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
