"""Tamper evidence: every decision and fill record chained by hash; `station verify` walks it.

Each record, when committed, appends an entry to the `chain` table in the same transaction:
digest = SHA-256 of the row's canonical JSON, hash = SHA-256(previous hash, kind, ref, digest).
A manager's action from the web pages (a block-list entry removed, an overfill or override
marked handled, a dead letter sent again: station.store.audit) is a record of its own, with who,
when and the note. A fill whose record is amended later (its cylinder id resolved after an override) appends a new
entry; the latest entry for a record is the one its row must match. Fields a manager may change
afterwards (an overfill marked handled) are outside the digest. Verification names the first
row that was edited, deleted or reordered, and any record that is not in the chain at all.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

GENESIS = "0" * 64
SHORT = 16  # hex digits of a hash shown to people (64 bits: enough to compare by eye)
UNHASHED = {"fills": ("handled_at", "handled_by")}
# Columns added after records were chained: left out of the digest while NULL, so that a record
# chained before they existed still verifies (issue 17: a fill's checklists and photo hash).
LATER = {"fills": ("checks", "photo_sha256")}
KINDS = {"decision": ("decisions", "id"), "fill": ("fills", "record_id"),
         "action": ("manager_actions", "id")}
OPEN = {"fills": " WHERE state != 'open'"}  # rows not yet records (chained when they close)


def digest(table: str, row: dict[str, Any]) -> str:
    later = LATER.get(table, ())
    kept = {k: v for k, v in row.items()
            if k not in UNHASHED.get(table, ()) and not (v is None and k in later)}
    text = json.dumps(kept, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def link(prev: str, kind: str, ref: str, row_digest: str) -> str:
    return hashlib.sha256(f"{prev}|{kind}|{ref}|{row_digest}".encode()).hexdigest()


def _row(conn: sqlite3.Connection, kind: str, ref: str) -> dict[str, Any] | None:
    table, key = KINDS[kind]
    cur = conn.execute(f"SELECT * FROM {table} WHERE {key} = ?", (ref,))
    values = cur.fetchone()
    return None if values is None else dict(zip([c[0] for c in cur.description], values,
                                                strict=True))


def append(conn: sqlite3.Connection, kind: str, ref: str | int) -> str:
    """Chain the record as it now stands; call inside the transaction that wrote it."""
    row = _row(conn, kind, str(ref))
    if row is None:
        raise ValueError(f"no {kind} {ref} to chain")
    last = conn.execute("SELECT hash FROM chain ORDER BY seq DESC LIMIT 1").fetchone()
    prev = last[0] if last else GENESIS
    row_digest = digest(KINDS[kind][0], row)
    new = link(prev, kind, str(ref), row_digest)
    conn.execute("INSERT INTO chain (kind, ref, digest, prev, hash) VALUES (?, ?, ?, ?, ?)",
                 (kind, str(ref), row_digest, prev, new))
    return new


@dataclass(frozen=True)
class Head:
    seq: int
    hash: str
    records: int


def head(conn: sqlite3.Connection) -> Head:
    row = conn.execute("SELECT seq, hash FROM chain ORDER BY seq DESC LIMIT 1").fetchone()
    count = conn.execute("SELECT count(*) FROM chain").fetchone()[0]
    return Head(row[0], row[1], count) if row else Head(0, GENESIS, 0)


@dataclass(frozen=True)
class Newest:
    """The chain's newest entry (its head) and when the record it chains was made."""

    seq: int
    hash: str
    kind: str
    ref: str
    at: float | None  # the decision's or action's time, or the fill's end (None: record gone)

    @property
    def short(self) -> str:
        return self.hash[:SHORT]


NEWEST = """SELECT c.seq, c.hash, c.kind, c.ref, CASE c.kind
    WHEN 'decision' THEN (SELECT d.at FROM decisions d WHERE d.id = CAST(c.ref AS INTEGER))
    WHEN 'fill' THEN (SELECT coalesce(f.ended_at, f.started_at, f.permitted_at) FROM fills f
                      WHERE f.record_id = c.ref)
    WHEN 'action' THEN (SELECT a.at FROM manager_actions a WHERE a.id = CAST(c.ref AS INTEGER))
    END
    FROM chain c ORDER BY c.seq DESC LIMIT 1"""


def newest(conn: sqlite3.Connection) -> Newest | None:
    """The head without counting or verifying: one query by primary keys (None: empty chain)."""
    row = conn.execute(NEWEST).fetchone()
    return None if row is None else Newest(*row)


@contextmanager
def _snapshot(conn: sqlite3.Connection) -> Iterator[None]:
    """One read transaction around a walk of several queries, so that a record the daemon
    commits meanwhile is not seen half-way (in its table but not yet in the walked chain)."""
    if conn.in_transaction:
        yield
        return
    conn.execute("BEGIN")
    try:
        yield
    finally:
        conn.execute("ROLLBACK")


def verify(conn: sqlite3.Connection) -> list[str]:
    """Problems found, first first; [] when every record is as it was committed."""
    with _snapshot(conn):
        return _verify(conn)


def _verify(conn: sqlite3.Connection) -> list[str]:
    problems: list[str] = []
    prev, expected_seq = GENESIS, None
    latest: dict[tuple[str, str], tuple[int, str]] = {}
    for seq, kind, ref, row_digest, entry_prev, entry_hash in conn.execute(
            "SELECT seq, kind, ref, digest, prev, hash FROM chain ORDER BY seq"):
        if expected_seq is not None and seq != expected_seq:
            problems.append(f"chain entries {expected_seq}…{seq - 1} deleted")
        if entry_prev != prev or link(prev, kind, ref, row_digest) != entry_hash:
            problems.append(f"chain entry {seq} ({kind} {ref}) edited or out of order")
        prev, expected_seq = entry_hash, seq + 1
        latest[(kind, ref)] = (seq, row_digest)
    for (kind, ref), (seq, row_digest) in sorted(latest.items(), key=lambda kv: kv[1][0]):
        row = _row(conn, kind, ref)
        if row is None:
            problems.append(f"{kind} {ref} (chain entry {seq}) deleted")
        elif digest(KINDS[kind][0], row) != row_digest:
            problems.append(f"{kind} {ref} (chain entry {seq}) edited")
    problems += _unchained(conn, latest)
    return problems


def _unchained(conn: sqlite3.Connection, chained: dict) -> list[str]:
    """Records in the tables that the station never chained: inserted behind its back."""
    out = []
    for kind, (table, key) in KINDS.items():
        try:
            refs = conn.execute(f"SELECT {key} FROM {table}{OPEN.get(table, '')} ORDER BY rowid"
                                ).fetchall()
        except sqlite3.OperationalError as err:  # a store from before that table
            if "no such table" in str(err):
                continue
            raise
        for (ref,) in refs:
            if (kind, str(ref)) not in chained:
                out.append(f"{kind} {ref} is not in the chain (inserted outside the station)")
    return out
