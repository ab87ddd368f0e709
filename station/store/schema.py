"""The store's schema: its versioned migrations, applied in order by Store at start-up."""

from __future__ import annotations

import re
import sqlite3

from station.store import chain

# Versioned schema: migration N brings the store from user_version N-1 to N. Append only.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE cylinders (id TEXT PRIMARY KEY, record TEXT NOT NULL, fetched_at REAL NOT NULL);
    CREATE TABLE tag_index (key TEXT PRIMARY KEY, cylinder_id TEXT NOT NULL, at REAL NOT NULL);
    CREATE TABLE decisions (
        id INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, local_time TEXT NOT NULL,
        rig TEXT NOT NULL, reader TEXT, operator TEXT, reading TEXT NOT NULL, kind TEXT NOT NULL,
        tag TEXT, cylinder_id TEXT, permit INTEGER NOT NULL, reason TEXT, warnings TEXT,
        detail TEXT, source TEXT NOT NULL, cache_age_s REAL, latency_ms REAL NOT NULL);
    CREATE INDEX decisions_at ON decisions(at);
    CREATE INDEX decisions_cylinder ON decisions(cylinder_id, permit, at);
    CREATE TABLE blocklist (key TEXT PRIMARY KEY, reason TEXT NOT NULL, added_at REAL NOT NULL,
        added_by TEXT);
    CREATE TABLE operator_events (id INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL,
        rig TEXT NOT NULL, operator TEXT NOT NULL, event TEXT NOT NULL, via TEXT);
    CREATE TABLE rig_events (id INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL,
        rig TEXT NOT NULL, event TEXT NOT NULL, detail TEXT);
    CREATE INDEX rig_events_rig ON rig_events(rig, id);
    """,
    """
    CREATE TABLE fills (
        record_id TEXT PRIMARY KEY, decision_id INTEGER, rig TEXT NOT NULL, state TEXT NOT NULL,
        cylinder_id TEXT, info_code TEXT, tag TEXT, medium TEXT NOT NULL, operator TEXT,
        source TEXT NOT NULL, cache_age_s REAL, tare_g INTEGER NOT NULL, target_g INTEGER NOT NULL,
        prefill_g INTEGER, gross_g INTEGER, net_g INTEGER, pre_check TEXT, post_check TEXT,
        end_reason TEXT, permitted_at REAL, started_at REAL, ended_at REAL, fill_date TEXT,
        override_by TEXT, override_reason TEXT, handled_at REAL, handled_by TEXT);
    CREATE INDEX fills_date ON fills(fill_date, rig);
    CREATE INDEX fills_cylinder ON fills(cylinder_id, started_at);
    CREATE INDEX fills_state ON fills(state);
    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT, record_id TEXT NOT NULL UNIQUE,
        payload TEXT NOT NULL, state TEXT NOT NULL DEFAULT 'pending',
        attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT, next_at REAL NOT NULL,
        created_at REAL NOT NULL, delivered_at REAL, trace_id TEXT);
    CREATE INDEX outbox_pending ON outbox(state, id);
    """,
    """
    CREATE INDEX fills_info_code ON fills(info_code);
    CREATE INDEX fills_tag ON fills(tag);
    CREATE INDEX fills_time ON fills(coalesce(started_at, permitted_at));
    """,
    """
    CREATE TABLE manual_entries (id INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL,
        rig TEXT NOT NULL, code TEXT NOT NULL, via TEXT, taken_at REAL);
    CREATE INDEX manual_entries_open ON manual_entries(rig, taken_at);
    """,
    """
    CREATE TABLE bind_requests (id INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL,
        rig TEXT NOT NULL, cylinder_id TEXT NOT NULL, state TEXT NOT NULL,
        reader TEXT, reading TEXT, read_at REAL, info_code TEXT, message TEXT);
    CREATE INDEX bind_requests_waiting ON bind_requests(rig, state);
    """,
    """
    CREATE TABLE rig_live (rig TEXT PRIMARY KEY, at REAL NOT NULL, state TEXT NOT NULL);
    """,
    """
    CREATE TABLE chain (seq INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL,
        ref TEXT NOT NULL, digest TEXT NOT NULL, prev TEXT NOT NULL, hash TEXT NOT NULL);
    CREATE INDEX chain_ref ON chain(kind, ref);
    -- then: chain every record the store already holds (see _chain_existing)
    """,
    """
    CREATE TABLE IF NOT EXISTS city_refusals (key TEXT PRIMARY KEY, outcome TEXT NOT NULL,
        message TEXT, at REAL NOT NULL);
    """,
    """
    CREATE INDEX IF NOT EXISTS operator_events_rig ON operator_events(rig, id);
    """,
    # Per-scan and prune lookups that scanned a whole table (issue 15 item 4): a decision with a
    # city record clears its cylinder's remembered refusals through tag_index by cylinder; a
    # forgotten tag drops every key of its cylinder; retention finds a decision's fill.
    """
    CREATE INDEX IF NOT EXISTS tag_index_cylinder ON tag_index(cylinder_id);
    CREATE INDEX IF NOT EXISTS fills_decision ON fills(decision_id);
    """,
    # --- issue 16, the manager's pages: audited actions (chained, station.store.audit), backup
    # results (station.store.backup), and the indexes the search and the home page read by.
    """
    CREATE TABLE IF NOT EXISTS manager_actions (id INTEGER PRIMARY KEY AUTOINCREMENT,
        at REAL NOT NULL, user TEXT NOT NULL, action TEXT NOT NULL, target TEXT NOT NULL,
        note TEXT NOT NULL, done INTEGER NOT NULL);
    CREATE INDEX IF NOT EXISTS manager_actions_target ON manager_actions(target, id);
    CREATE TABLE IF NOT EXISTS backups (id INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL,
        ok INTEGER NOT NULL, path TEXT, detail TEXT, rows INTEGER, size INTEGER);
    CREATE INDEX IF NOT EXISTS decisions_tag ON decisions(tag);
    CREATE INDEX IF NOT EXISTS decisions_reason ON decisions(reason, id);
    CREATE INDEX IF NOT EXISTS fills_issues ON fills(handled_at)
        WHERE post_check LIKE 'overfill%' OR override_by IS NOT NULL;
    """,
    # --- issue 17, the operator's checklists and a photo per fill: answers posted by the rig's
    # screen for the daemon to take (station.store.answers); on the fill, the answers as JSON and
    # the photo's SHA-256 (both in the chain's digest once set: station.store.chain.LATER).
    """
    ALTER TABLE fills ADD COLUMN checks TEXT;
    ALTER TABLE fills ADD COLUMN photo_sha256 TEXT;
    CREATE TABLE IF NOT EXISTS checklist_answers (id INTEGER PRIMARY KEY AUTOINCREMENT,
        at REAL NOT NULL, rig TEXT NOT NULL, stage TEXT NOT NULL, decision_id INTEGER NOT NULL,
        cylinder_id TEXT NOT NULL, token TEXT NOT NULL, not_ok TEXT NOT NULL,
        skipped TEXT NOT NULL, by TEXT, via TEXT NOT NULL, taken_at REAL, outcome TEXT);
    CREATE INDEX IF NOT EXISTS checklist_answers_open ON checklist_answers(rig, taken_at);
    """,
)


ADD_COLUMN = re.compile(r"\s*ALTER TABLE (\w+) ADD COLUMN (\w+)", re.I)


def apply(conn: sqlite3.Connection, script: str) -> None:
    """One migration, inside the caller's transaction: its statements in order (an ADD COLUMN
    whose column is there already skipped), then, for the chain's, the records already held."""
    for statement in filter(str.strip, script.split(";")):
        if not _column_exists(conn, statement):
            conn.execute(statement)
    if "CREATE TABLE chain" in script:
        _chain_existing(conn)


def _column_exists(conn: sqlite3.Connection, statement: str) -> bool:
    """An `ALTER TABLE t ADD COLUMN c` whose column is there already (a migration run again
    after its version was reset: ADD COLUMN has no IF NOT EXISTS)."""
    m = ADD_COLUMN.match(statement)
    return bool(m) and any(r[1] == m[2] for r in conn.execute(f"PRAGMA table_info({m[1]})"))


def _chain_existing(conn: sqlite3.Connection) -> None:
    """On upgrade, the records already in the store join the chain, oldest first."""
    for (ref,) in conn.execute("SELECT id FROM decisions ORDER BY id").fetchall():
        chain.append(conn, "decision", ref)
    for (ref,) in conn.execute("SELECT record_id FROM fills WHERE state != 'open' "
                               "ORDER BY rowid").fetchall():
        chain.append(conn, "fill", ref)
