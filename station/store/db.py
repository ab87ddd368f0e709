"""The local store on SQLite: cylinder cache, decisions, operators, block list, rig events."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlite_utils

from station.core.keys import typed_key
from station.core.model import Decision
from station.errors import StoreError
from station.logfmt import escape
from station.store import chain
from station.today import LOCAL_TZ

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
)

FILL_COLUMNS = ("record_id", "decision_id", "rig", "state", "cylinder_id", "info_code", "tag",
                "medium", "operator", "source", "cache_age_s", "tare_g", "target_g", "prefill_g",
                "gross_g", "net_g", "pre_check", "post_check", "end_reason", "permitted_at",
                "started_at", "ended_at", "fill_date", "override_by", "override_reason")


class Store:
    """One connection, used from one thread (the daemon's loop); durable writes commit FULL."""

    def __init__(self, path: str, *, readonly: bool = False):
        self.path = path
        try:
            if not readonly:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            uri = f"file:{path}?mode=ro" if readonly else f"file:{path}"
            conn = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=5)
            conn.execute("PRAGMA busy_timeout=5000")
            if not readonly:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=FULL")
            self.db = sqlite_utils.Database(conn)
            if not readonly:
                self._migrate()
        except (sqlite3.Error, OSError) as err:
            raise StoreError(f"cannot open store {path}: {err}") from err
        self.newest_at = self._newest_time()  # the newest decision's time (clock checks)
        self._live: sqlite3.Connection | None = None

    @property
    def conn(self) -> sqlite3.Connection:
        return self.db.conn

    def _migrate(self) -> None:
        version = self.conn.execute("PRAGMA user_version").fetchone()[0]
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            with self.transaction() as conn:
                for statement in filter(str.strip, script.split(";")):
                    conn.execute(statement)
                if "CREATE TABLE chain" in script:
                    _chain_existing(conn)
                conn.execute(f"PRAGMA user_version={number}")

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic, durable transaction; a failure is a StoreError and nothing is written."""
        try:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
                self.conn.execute("COMMIT")
            except BaseException:
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as err:
            raise StoreError(f"store write failed: {err}") from err

    def close(self) -> None:
        if self._live is not None:
            self._live.close()
        self.conn.close()

    def integrity_ok(self) -> bool:
        return self.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"

    def _newest_time(self) -> float:
        row = self.conn.execute("SELECT max(at) FROM decisions").fetchone()
        return float(row[0] or 0.0)

    # --- decisions and the cylinder cache ---------------------------------------------
    def record_decision(self, d: Decision, city_record: dict[str, Any] | None = None,
                        tag_key: str | None = None, forget_tag: bool = False,
                        refusal: tuple[str, str] | None = None) -> int:
        """Commit a decision durably (with the cache update it implies) before anyone sees it.

        `refusal`: the city's definitive (outcome, message) for `tag_key` (not_found, refused),
        remembered until the city gives a record for that tag."""
        at = d.at.timestamp()
        v = d.verdict
        row = {
            "at": at, "local_time": d.at.astimezone(LOCAL_TZ).isoformat(timespec="milliseconds"), "rig": d.rig_id,
            "reader": d.reading.reader, "operator": d.operator,
            "reading": escape(d.reading.raw[:1000]), "kind": d.reading.kind,
            "tag": d.reading.value or None, "cylinder_id": v.cylinder_id, "permit": int(v.permit),
            "reason": v.reason, "warnings": ",".join(v.warnings) or None, "detail": v.detail,
            "source": d.source, "cache_age_s": d.cache_age_s, "latency_ms": round(d.latency_ms, 2),
        }
        with self.transaction() as conn:
            if refusal is not None and tag_key:  # for the tag, and for its cylinder's every key
                cylinder = conn.execute("SELECT cylinder_id FROM tag_index WHERE key = ?",
                                        (tag_key,)).fetchone()
                keys = [tag_key] + ([f"cylinder:{cylinder[0]}"] if cylinder else [])
                conn.executemany("INSERT OR REPLACE INTO city_refusals (key, outcome, message, "
                                 "at) VALUES (?, ?, ?, ?)",
                                 [(k, refusal[0], refusal[1][:500], at) for k in keys])
            if city_record is not None and isinstance(city_record.get("id"), str):
                self._cache(conn, city_record, at, tag_key)
                conn.execute("DELETE FROM city_refusals WHERE key = ? OR key = ? OR key IN "
                             "(SELECT key FROM tag_index WHERE cylinder_id = ?)",
                             (tag_key, f"cylinder:{city_record['id']}", city_record["id"]))
            elif forget_tag and tag_key:  # every key of that cylinder: the city says unknown
                conn.execute("DELETE FROM tag_index WHERE cylinder_id IN (SELECT cylinder_id "
                             "FROM tag_index WHERE key = ?) OR key = ?", (tag_key, tag_key))
            cur = conn.execute(
                f"INSERT INTO decisions ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                tuple(row.values()))
            chain.append(conn, "decision", cur.lastrowid or 0)
        self.newest_at = max(self.newest_at, at)
        return int(cur.lastrowid or 0)

    @staticmethod
    def _cache(conn: sqlite3.Connection, record: dict[str, Any], at: float,
               tag_key: str | None) -> None:
        cid = record["id"]
        conn.execute("INSERT OR REPLACE INTO cylinders (id, record, fetched_at) VALUES (?, ?, ?)",
                     (cid, json.dumps(record, ensure_ascii=False), at))
        keys = [f"{k}:{record[k]}" for k in ("info_code", "rfid_uid", "product_no")
                if isinstance(record.get(k), str) and record[k]]
        if tag_key:
            keys.append(tag_key)
        for key in keys:
            conn.execute("INSERT OR REPLACE INTO tag_index (key, cylinder_id, at) VALUES (?, ?, ?)",
                         (key, cid, at))

    def cached(self, tag_key: str) -> tuple[dict[str, Any], float] | None:
        """The last city record for a tag and when it was fetched (epoch seconds)."""
        rows = self.query("SELECT c.record, c.fetched_at FROM tag_index t JOIN cylinders c "
                          "ON c.id = t.cylinder_id WHERE t.key = ?", (tag_key,))
        return (json.loads(rows[0]["record"]), float(rows[0]["fetched_at"])) if rows else None

    def city_refusal(self, tag_key: str) -> tuple[str, str, float] | None:
        """The city's remembered definitive refusal of a tag: (outcome, message, epoch s)."""
        rows = self.query("SELECT outcome, message, at FROM city_refusals WHERE key = ?",
                          (tag_key,))
        return (rows[0]["outcome"], rows[0]["message"] or "", float(rows[0]["at"])) \
            if rows else None

    def last_permit_at(self, cylinder_id: str) -> float | None:
        at = self.value("SELECT max(at) FROM decisions WHERE cylinder_id = ? AND permit = 1",
                        (cylinder_id,))
        return None if at is None else float(at)

    def decisions(self, since_id: int = 0, limit: int = 1000) -> list[dict[str, Any]]:
        return self.query("SELECT * FROM decisions WHERE id > ? ORDER BY id LIMIT ?",
                          (since_id, limit))

    # --- fills and the outbox ------------------------------------------------------------
    def open_fill(self, row: dict[str, Any]) -> None:
        """The fill row, committed as open before the permit is written."""
        row = {k: row.get(k) for k in FILL_COLUMNS} | {"state": "open"}
        with self.transaction() as conn:
            conn.execute(f"INSERT INTO fills ({', '.join(row)}) VALUES "
                         f"({', '.join('?' * len(row))})", tuple(row.values()))

    def close_fill(self, row: dict[str, Any], payload: dict[str, Any] | None) -> None:
        """The final fill record and its outbox entry in one transaction (no entry: cancelled);
        once only: closing a record already closed changes nothing."""
        row = {k: row.get(k) for k in FILL_COLUMNS}
        row["state"] = "closed" if payload is not None else "cancelled"
        now = time.time()
        with self.transaction() as conn:
            if conn.execute("SELECT 1 FROM fills WHERE record_id = ? AND state != 'open'",
                            (row["record_id"],)).fetchone():
                return  # committed already (a retry after an error that hid the commit)
            cols = [k for k in row if k != "record_id"]
            updated = conn.execute(
                f"UPDATE fills SET {', '.join(f'{k} = ?' for k in cols)} WHERE record_id = ?",
                (*(row[k] for k in cols), row["record_id"])).rowcount
            if not updated:
                conn.execute(f"INSERT INTO fills ({', '.join(row)}) VALUES "
                             f"({', '.join('?' * len(row))})", tuple(row.values()))
            chain.append(conn, "fill", row["record_id"])
            if payload is not None:
                conn.execute("INSERT INTO outbox (record_id, payload, next_at, created_at) "
                             "VALUES (?, ?, ?, ?)", (row["record_id"],
                                                     json.dumps(payload, ensure_ascii=False),
                                                     now, now))

    def fill_started(self, record_id: str, started_at: float) -> None:
        with self.transaction() as conn:
            conn.execute("UPDATE fills SET started_at = ? WHERE record_id = ? AND state = 'open'",
                         (started_at, record_id))

    def open_fills(self) -> list[dict[str, Any]]:
        """Fills whose permit was granted but whose record was never closed (a crash)."""
        return self.query("SELECT * FROM fills WHERE state = 'open' ORDER BY permitted_at")

    def query(self, sql: str, params: tuple = ()) -> list[dict[str, Any]]:
        try:
            cur = self.conn.execute(sql, params)
            cols = [c[0] for c in cur.description]
            return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]
        except sqlite3.Error as err:
            raise StoreError(f"store read failed: {err}") from err

    def value(self, sql: str, params: tuple = ()) -> Any:
        """The first column of the first row (None when there is none)."""
        rows = self.query(sql, params)
        return next(iter(rows[0].values())) if rows else None

    def last_fill_at(self, cylinder_id: str) -> float | None:
        """When this cylinder was last filled here (a fill running or recorded; a cancelled,
        unused permit is no fill): the refill warning."""
        at = self.value("SELECT max(coalesce(started_at, permitted_at)) FROM fills "
                        "WHERE cylinder_id = ? AND state != 'cancelled'", (cylinder_id,))
        return None if at is None else float(at)

    # --- manual entries (typed at a terminal for a rig) ---------------------------------
    def enter_manually(self, rig: str, code: str, via: str) -> int:
        with self.transaction() as conn:
            cur = conn.execute("INSERT INTO manual_entries (at, rig, code, via) VALUES "
                               "(?, ?, ?, ?)", (time.time(), rig, code, via))
        return int(cur.lastrowid or 0)

    def take_manual_entries(self, rig: str) -> list[dict[str, Any]]:
        """Entries typed for a rig and not yet taken; marked taken (each is read once)."""
        rows = self.query("SELECT * FROM manual_entries WHERE rig = ? AND taken_at IS NULL "
                          "ORDER BY id", (rig,))
        if rows:
            with self.transaction() as conn:
                conn.executemany("UPDATE manual_entries SET taken_at = ? WHERE id = ?",
                                 [(time.time(), r["id"]) for r in rows])
        return rows

    # --- tag binding: the daemon hands the next reading at a rig to a waiting request ------
    def bind_request(self, rig: str, cylinder_id: str) -> int:
        with self.transaction() as conn:
            conn.execute("UPDATE bind_requests SET state = 'expired' WHERE rig = ? AND state = "
                         "'waiting'", (rig,))
            cur = conn.execute("INSERT INTO bind_requests (at, rig, cylinder_id, state) VALUES "
                               "(?, ?, ?, 'waiting')", (time.time(), rig, cylinder_id))
        return int(cur.lastrowid or 0)

    def take_for_binding(self, rig: str, reader: str, reading: str, window_s: float) -> bool:
        """Give this reading to a request waiting at the rig (younger than window_s)."""
        with self.transaction() as conn:
            return conn.execute(
                "UPDATE bind_requests SET state = 'read', reader = ?, reading = ?, read_at = ? "
                "WHERE rig = ? AND state = 'waiting' AND at > ?",
                (reader, reading, time.time(), rig, time.time() - window_s)).rowcount > 0

    def bind_done(self, request_id: int, state: str, info_code: str | None,
                  message: str) -> None:
        with self.transaction() as conn:
            conn.execute("UPDATE bind_requests SET state = ?, info_code = ?, message = ? "
                         "WHERE id = ?", (state, info_code, message, request_id))

    # --- live rig state, for screens: frequent, not worth an fsync each ----------------------
    def publish(self, rig: str, state: dict[str, Any]) -> None:
        """The rig's current picture for the operator screen (a second connection that does
        not wait for the disk: losing the last second of it in a power cut loses nothing)."""
        if self._live is None:
            self._live = sqlite3.connect(self.path, isolation_level=None, timeout=1)
            self._live.execute("PRAGMA synchronous=OFF")
        try:
            self._live.execute("INSERT OR REPLACE INTO rig_live (rig, at, state) VALUES (?, ?, ?)",
                               (rig, time.time(), json.dumps(state, ensure_ascii=False)))
        except sqlite3.Error as err:
            raise StoreError(f"live state not written: {err}") from err

    def live(self) -> dict[str, dict[str, Any]]:
        rows = self.query("SELECT rig, at, state FROM rig_live")
        return {r["rig"]: {**json.loads(r["state"]), "at": r["at"]} for r in rows}

    # --- block list ---------------------------------------------------------------------
    def blocklist(self) -> dict[str, str]:
        """Key → reason for the rules: every row as stored and, for a row typed before keys were
        normalised (`cyl-000002`, `CYL－000014`, a trailing space), its normalised form too, so
        that such a row blocks what it was meant to (keys.typed_key)."""
        out: dict[str, str] = {}
        for r in self.blocklist_rows():
            out[r["key"]] = r["reason"]
            out.setdefault(typed_key(r["key"], "code"), r["reason"])
        return out

    def blocklist_rows(self) -> list[dict[str, Any]]:
        """The rows as stored (key, reason, added_at, added_by), oldest first."""
        return self.query("SELECT key, reason, added_at, added_by FROM blocklist "
                          "ORDER BY added_at, key")

    def block(self, key: str, reason: str, by: str = "") -> None:
        """Store a key as given: callers pass `keys.block_key(typed)` (normalised, checked)."""
        with self.transaction() as conn:
            conn.execute("INSERT OR REPLACE INTO blocklist VALUES (?, ?, ?, ?)",
                         (key, reason, time.time(), by or None))

    def unblock(self, key: str) -> bool:
        """Remove the row stored as `key` exactly, or else every row whose normalised form is
        the normalised `key` (a row typed as `cyl-000002` goes with `CYL-000002`)."""
        with self.transaction() as conn:
            if conn.execute("DELETE FROM blocklist WHERE key = ?", (key,)).rowcount:
                return True
            wanted = typed_key(key, "code")
            same = [k for (k,) in conn.execute("SELECT key FROM blocklist").fetchall()
                    if typed_key(k, "code") == wanted]
            conn.executemany("DELETE FROM blocklist WHERE key = ?", [(k,) for k in same])
            return bool(same)

    # --- operators and rig events -------------------------------------------------------
    def operator_event(self, rig: str, operator: str, event: str, via: str) -> None:
        with self.transaction() as conn:
            conn.execute("INSERT INTO operator_events (at, rig, operator, event, via) "
                         "VALUES (?, ?, ?, ?, ?)", (time.time(), rig, operator, event, via))

    def operator_on_shift(self, rig: str) -> str | None:
        """The operator logged in at one rig, or None: its last operator event, found by index
        (read on every poll of every rig: its cost must not grow with the table)."""
        rows = self.query("SELECT operator, event FROM operator_events WHERE rig = ? "
                          "ORDER BY id DESC LIMIT 1", (rig,))
        return rows[0]["operator"] if rows and rows[0]["event"] == "login" else None

    def operators_on_shift(self) -> dict[str, str]:
        """Rig → operator for every rig whose last operator event is a log-in."""
        rows = self.query("SELECT rig, operator, event FROM operator_events WHERE id IN "
                          "(SELECT max(id) FROM operator_events GROUP BY rig)")
        return {r["rig"]: r["operator"] for r in rows if r["event"] == "login"}

    def rig_event(self, rig: str, event: str, detail: str = "") -> None:
        """A rig state change (connected, lost, permit granted/withdrawn); not fsync-critical."""
        with self.transaction() as conn:
            conn.execute("INSERT INTO rig_events (at, rig, event, detail) VALUES (?, ?, ?, ?)",
                         (time.time(), rig, event, detail))


def _chain_existing(conn: sqlite3.Connection) -> None:
    """On upgrade, the records already in the store join the chain, oldest first."""
    for (ref,) in conn.execute("SELECT id FROM decisions ORDER BY id").fetchall():
        chain.append(conn, "decision", ref)
    for (ref,) in conn.execute("SELECT record_id FROM fills WHERE state != 'open' "
                               "ORDER BY rowid").fetchall():
        chain.append(conn, "fill", ref)


def utc_now() -> datetime:
    return datetime.now(UTC)
