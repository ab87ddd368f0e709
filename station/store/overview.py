"""What the manager's pages read at a glance: today's numbers, open issues, live rigs, the chain.

Every query here is by index (the home page and the badges in every page's navigation read
them on each request): see the indexes in station.store.db and the timings in bench/README.md.
"""

from __future__ import annotations

import json
import sqlite3
import time
from datetime import date
from typing import Any

from station.errors import StoreError
from station.store import backup, chain
from station.store.audit import ISSUE
from station.store.db import Store
from station.store.records import FILL_ORDER
from station.store.stats import epoch_range

ERROR_EVENTS = ("rig_lost", "permit_failed", "pre_check_refused", "override_refused")


def _guard(call: Any) -> Any:
    try:
        return call()
    except sqlite3.Error as err:
        raise StoreError(f"store read failed: {err}") from err


# --- live rig state and events ---------------------------------------------------------------
def live(store: Store) -> dict[str, dict[str, Any]]:
    """Rig → {"at": epoch s of the daemon's last publication, "state": its picture (dict)}."""
    return {r["rig"]: {"at": r["at"], "state": json.loads(r["state"])}
            for r in store.query("SELECT rig, at, state FROM rig_live")}


def live_one(store: Store, rig: str) -> tuple[float | None, dict[str, Any]]:
    """One rig's last publication: (epoch s or None when never, its picture or {})."""
    rows = store.query("SELECT at, state FROM rig_live WHERE rig = ?", (rig,))
    return (rows[0]["at"], json.loads(rows[0]["state"])) if rows else (None, {})


def rig_events(store: Store, rig: str, errors_only: bool = False,
               limit: int = 8) -> list[dict[str, Any]]:
    """A rig's newest events first: at (epoch s), event, detail."""
    if errors_only:
        marks = ", ".join("?" * len(ERROR_EVENTS))
        return store.query(f"SELECT at, event, detail FROM rig_events WHERE rig = ? AND event "
                           f"IN ({marks}) ORDER BY id DESC LIMIT ?", (rig, *ERROR_EVENTS, limit))
    return store.query("SELECT at, event, detail FROM rig_events WHERE rig = ? ORDER BY id DESC "
                       "LIMIT ?", (rig, limit))


# --- refusals, issues, block list -------------------------------------------------------------
def refusals_since(store: Store, since: float) -> list[dict[str, Any]]:
    """Refusals since `since` (epoch s) per local day and reason: day, reason, n."""
    return store.query("SELECT substr(local_time, 1, 10) AS day, reason, count(*) AS n "
                       "FROM decisions WHERE permit = 0 AND at >= ? GROUP BY day, reason",
                       (since,))


def open_issues(store: Store, limit: int = 500) -> list[dict[str, Any]]:
    """Overfills and overrides not yet marked handled, newest first (fill rows)."""
    return store.query(f"SELECT f.* FROM fills f WHERE f.state != 'open' AND f.handled_at IS "
                       f"NULL AND {ISSUE} ORDER BY {FILL_ORDER} DESC LIMIT ?", (limit,))


def handled_issues(store: Store, limit: int = 20) -> list[dict[str, Any]]:
    return store.query(f"SELECT f.* FROM fills f WHERE f.handled_at IS NOT NULL AND {ISSUE} "
                       "ORDER BY f.handled_at DESC LIMIT ?", (limit,))


def blocklist(store: Store) -> list[dict[str, Any]]:
    """The block list as stored, newest first: key, reason, added_at, added_by."""
    return store.query("SELECT key, reason, added_at, added_by FROM blocklist ORDER BY added_at "
                       "DESC")


# --- the chain's head ------------------------------------------------------------------------
def chain_head(store: Store) -> chain.Newest | None:
    """The chain's newest entry by primary key (never verified here); None: no records yet,
    or a store from before the chain that the daemon has not upgraded yet."""
    try:
        return chain.newest(store.conn)
    except sqlite3.OperationalError as err:
        if "no such table" in str(err):
            return None
        raise StoreError(f"store read failed: {err}") from err
    except sqlite3.Error as err:
        raise StoreError(f"store read failed: {err}") from err


# --- today at a glance -----------------------------------------------------------------------
def counts(store: Store) -> dict[str, int]:
    """The navigation's badges: open issues, dead letters and pending records (indexed counts)."""
    issues = store.value(f"SELECT count(*) FROM fills f WHERE f.handled_at IS NULL AND {ISSUE} "
                         "AND f.state != 'open'")
    boxes = dict(_guard(lambda: store.conn.execute(
        "SELECT state, count(*) FROM outbox WHERE state IN ('pending', 'dead') GROUP BY state"
    ).fetchall()))
    return {"issues": int(issues or 0), "dead": int(boxes.get("dead", 0)),
            "pending": int(boxes.get("pending", 0))}


def today(store: Store, day: date, now: float | None = None) -> dict[str, Any]:
    """One local day's numbers for the home page:

    fills: post-check → closed records that day ("ok", "overfill", …; "cancelled" for unused
    permits), permits, refusals: reason → count, open issues, pending and dead outbox rows, the
    oldest pending record's age in hours (None: none pending), the last backup's result
    (station.store.backup.last) and the chain's head."""
    now = time.time() if now is None else now
    start, end = epoch_range(day, day)
    fills: dict[str, int] = {}
    for r in store.query("SELECT CASE WHEN state = 'cancelled' THEN 'cancelled' ELSE "
                         "coalesce(substr(post_check, 1, instr(post_check || ' ', ' ') - 1), '') "
                         "END AS checked, count(*) AS n FROM fills WHERE fill_date = ? AND "
                         "state != 'open' GROUP BY checked", (day.isoformat(),)):
        fills[r["checked"] or "?"] = int(r["n"])
    permits, refusals = 0, {}
    for r in store.query("SELECT permit, reason, count(*) AS n FROM decisions WHERE at >= ? "
                         "AND at < ? GROUP BY permit, reason", (start, end)):
        if r["permit"]:
            permits += int(r["n"])
        else:
            refusals[r["reason"] or "UNKNOWN"] = int(r["n"])
    oldest = store.value("SELECT created_at FROM outbox WHERE state = 'pending' ORDER BY id "
                         "LIMIT 1")
    return {"day": day.isoformat(), "fills": fills, "permits": permits,
            "refusals": dict(sorted(refusals.items(), key=lambda kv: (-kv[1], kv[0]))),
            **counts(store),
            "oldest_pending_h": None if oldest is None else max(0.0, (now - oldest) / 3600),
            "backup": _guard(lambda: backup.last(store.conn)), "head": chain_head(store)}
