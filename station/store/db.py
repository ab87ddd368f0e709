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
from station.store import chain, outbox
from station.store.schema import MIGRATIONS, apply
from station.store.shifts import Shifts
from station.today import LOCAL_TZ

FILL_COLUMNS = ("record_id", "decision_id", "rig", "state", "cylinder_id", "info_code", "tag",
                "medium", "operator", "source", "cache_age_s", "tare_g", "target_g", "prefill_g",
                "gross_g", "net_g", "pre_check", "post_check", "end_reason", "permitted_at",
                "started_at", "ended_at", "fill_date", "override_by", "override_reason", "checks",
                "photo_sha256")


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
        self._live: sqlite3.Connection | None = None  # publish, rig events (no fsync)
        self.shifts = Shifts(self.conn)

    @property
    def conn(self) -> sqlite3.Connection:
        return self.db.conn

    def _migrate(self) -> None:
        version = self.conn.execute("PRAGMA user_version").fetchone()[0]
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            with self.transaction() as conn:
                apply(conn, script)
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
        """Commit a decision durably (with the cache update it implies) before anyone sees it;
        its id.

        `refusal`: the city's definitive (outcome, message) for `tag_key` (not_found, refused),
        remembered until the city gives a record for that tag."""
        with self.transaction() as conn:
            decision_id = self._decision(conn, d, city_record, tag_key, forget_tag, refusal)
        self.newest_at = max(self.newest_at, d.at.timestamp())
        return decision_id

    def record_grant(self, d: Decision, fill_row: dict[str, Any],
                     city_record: dict[str, Any] | None = None, tag_key: str | None = None,
                     forget_tag: bool = False, refusal: tuple[str, str] | None = None) -> int:
        """A permitting decision and its open fill row (fills.row: its decision_id is set here)
        in one durable transaction, for a permit written at once: one fsync before the permit
        instead of two (issue 15 item 3). Either both are committed or neither (StoreError):
        no permit without both. The decision's id."""
        with self.transaction() as conn:
            decision_id = self._decision(conn, d, city_record, tag_key, forget_tag, refusal)
            self._insert_open_fill(conn, {**fill_row, "decision_id": decision_id})
        self.newest_at = max(self.newest_at, d.at.timestamp())
        return decision_id

    def _decision(self, conn: sqlite3.Connection, d: Decision,
                  city_record: dict[str, Any] | None, tag_key: str | None, forget_tag: bool,
                  refusal: tuple[str, str] | None) -> int:
        """Insert a decision, chain it, and apply its cache update (in the caller's transaction)."""
        at = d.at.timestamp()
        v = d.verdict
        row = {
            "at": at, "local_time": d.at.astimezone(LOCAL_TZ).isoformat(timespec="milliseconds"),
            "rig": d.rig_id, "reader": d.reading.reader, "operator": d.operator,
            "reading": escape(d.reading.raw[:1000]), "kind": d.reading.kind,
            "tag": d.reading.value or None, "cylinder_id": v.cylinder_id, "permit": int(v.permit),
            "reason": v.reason, "warnings": ",".join(v.warnings) or None, "detail": v.detail,
            "source": d.source, "cache_age_s": d.cache_age_s, "latency_ms": round(d.latency_ms, 2),
        }
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

    def cached_by_id(self, cylinder_id: str) -> tuple[dict[str, Any], float] | None:
        """The last city record of a cylinder by its id and when it was fetched (epoch s)."""
        rows = self.query("SELECT record, fetched_at FROM cylinders WHERE id = ?", (cylinder_id,))
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
        """Decisions after `since_id`, oldest first, at most `limit` (every column)."""
        return self.query("SELECT * FROM decisions WHERE id > ? ORDER BY id LIMIT ?",
                          (since_id, limit))

    def recent_decisions(self, limit: int) -> list[dict[str, Any]]:
        """The newest `limit` decisions, oldest of them first (`station decisions`)."""
        return self.query("SELECT * FROM decisions ORDER BY id DESC LIMIT ?", (limit,))[::-1]

    # --- fills and the outbox ------------------------------------------------------------
    def open_fill(self, row: dict[str, Any]) -> None:
        """The fill row, committed as open before the permit is written."""
        with self.transaction() as conn:
            self._insert_open_fill(conn, row)

    @staticmethod
    def _insert_open_fill(conn: sqlite3.Connection, row: dict[str, Any]) -> None:
        row = {k: row.get(k) for k in FILL_COLUMNS} | {"state": "open"}
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
                outbox.enqueue(conn, row["record_id"], payload, now)

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
        """Give this reading to a request waiting at the rig (younger than window_s). Read
        first: a scan with no request waiting (nearly all) takes no write lock."""
        waiting = "WHERE rig = ? AND state = 'waiting' AND at > ?"
        if not self.query(f"SELECT 1 FROM bind_requests {waiting} LIMIT 1",
                          (rig, time.time() - window_s)):
            return False
        with self.transaction() as conn:
            return conn.execute(
                f"UPDATE bind_requests SET state = 'read', reader = ?, reading = ?, read_at = ? "
                f"{waiting}", (reader, reading, time.time(), rig, time.time() - window_s)
            ).rowcount > 0

    def bind_reading(self, request_id: int) -> tuple[str, str] | None:
        """(reader id, text) once the daemon gave a reading to the request, else None."""
        rows = self.query("SELECT reader, reading FROM bind_requests WHERE id = ? AND "
                          "state = 'read'", (request_id,))
        return (rows[0]["reader"], rows[0]["reading"]) if rows else None

    def bind_done(self, request_id: int, state: str, info_code: str | None,
                  message: str) -> None:
        with self.transaction() as conn:
            conn.execute("UPDATE bind_requests SET state = ?, info_code = ?, message = ? "
                         "WHERE id = ?", (state, info_code, message, request_id))

    # --- live rig state and rig events: frequent, not worth an fsync each -------------------
    def _quick(self, sql: str, params: tuple, what: str) -> None:
        """One write on the second connection, which does not wait for the disk
        (synchronous=OFF): it becomes durable with the next durable commit (same WAL), and a
        power cut before that loses only it. Never for a decision or a fill."""
        try:
            if self._live is None:
                self._live = sqlite3.connect(self.path, isolation_level=None, timeout=1)
                self._live.execute("PRAGMA synchronous=OFF")
            self._live.execute(sql, params)
        except sqlite3.Error as err:
            raise StoreError(f"{what} not written: {err}") from err

    def publish(self, rig: str, state: dict[str, Any]) -> None:
        """The rig's current picture for the operator screen (losing the last second of it in
        a power cut loses nothing)."""
        self._quick("INSERT OR REPLACE INTO rig_live (rig, at, state) VALUES (?, ?, ?)",
                    (rig, time.time(), json.dumps(state, ensure_ascii=False)), "live state")

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
            return remove_block(conn, key)

    # --- operators and rig events -------------------------------------------------------
    def operator_event(self, rig: str, operator: str, event: str, via: str) -> None:
        """A log-in or log-out, durable; seen at once by operator_on_shift."""
        with self.transaction() as conn:
            conn.execute("INSERT INTO operator_events (at, rig, operator, event, via) "
                         "VALUES (?, ?, ?, ?, ?)", (time.time(), rig, operator, event, via))
        self.shifts.refresh()

    def operator_on_shift(self, rig: str) -> str | None:
        """The operator logged in at one rig, or None (read on every poll of every rig: served
        from memory, ~3 µs plus a look at what another connection committed; shifts.Shifts)."""
        return self.shifts.current().get(rig)

    def operators_on_shift(self) -> dict[str, str]:
        """Rig → operator for every rig whose last operator event is a log-in."""
        return dict(self.shifts.current())

    def rig_event(self, rig: str, event: str, detail: str = "") -> None:
        """A rig state change (connected, lost, permit granted/withdrawn): not fsync-critical,
        so written on the quick connection (no fsync of its own)."""
        self._quick("INSERT INTO rig_events (at, rig, event, detail) VALUES (?, ?, ?, ?)",
                    (time.time(), rig, event, detail), "rig event")


def remove_block(conn: sqlite3.Connection, key: str) -> bool:
    """Within the caller's transaction: delete the block-list row stored as `key`, or else
    every row whose normalised form is `key`'s; whether any went."""
    if conn.execute("DELETE FROM blocklist WHERE key = ?", (key,)).rowcount:
        return True
    wanted = typed_key(key, "code")
    same = [k for (k,) in conn.execute("SELECT key FROM blocklist").fetchall()
            if typed_key(k, "code") == wanted]
    conn.executemany("DELETE FROM blocklist WHERE key = ?", [(k,) for k in same])
    return bool(same)


def utc_now() -> datetime:
    return datetime.now(UTC)
