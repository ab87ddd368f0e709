"""What the pages show, read from the store: live rig state, records, refusals, issues, health."""

from __future__ import annotations

import json
import re
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from station.core import hmi
from station.core.codes import MEDIA
from station.core.fills import local
from station.errors import StoreError
from station.store import chain
from station.store.db import Store
from station.store.records import FILL_ORDER, SELECT_FILLS, fill_where, shape
from station.today import LOCAL_TZ
from station.web import texts

STALE_S = 3.0  # the daemon republishes at least every second; older than this is not live
PAGE_SIZE = 50
CHECKS = ("ok", "overfill", "underfill", "interrupted")
SYNCS = ("pending", "delivered", "dead", "none")
DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
ERROR_EVENTS = ("rig_lost", "permit_failed", "pre_check_refused", "override_refused")


# --- the operator screen ---------------------------------------------------------------------
MODES = {"green": "ok", "red": "refused", "amber": "warn", "blue": "filling", "grey": "idle",
         "dark": "offline"}


def rig_screen(store: Store | None, rig: str, now: float | None = None) -> dict[str, Any]:
    """The operator screen's picture of one rig: its state (station.core.hmi, the same function the
    daemon lights the lamps from) and the facts of its current verdict. `store` None: the
    store cannot be read (the screen says so and keeps asking)."""
    now = time.time() if now is None else now
    rows = store.query("SELECT at, state FROM rig_live WHERE rig = ?", (rig,)) if store else []
    live = json.loads(rows[0]["state"]) if rows else {}
    at = rows[0]["at"] if rows else None
    stale = store is not None and (at is None or now - at > STALE_S)
    verdict = live.get("verdict") or {}
    view = hmi.screen(live, stale=stale, store_unreadable=store is None)
    result = live.get("result") or {}
    net = result.get("net_g") if live.get("phase") == "ended" else live.get("net_g")
    return {
        "rig": rig, "at": at, "stale": stale, "connected": bool(live.get("connected")),
        "phase": live.get("phase") or "idle", "operator": live.get("operator"),
        "state": view.state, "colour": view.colour, "mode": MODES[view.colour],
        "headline": {"zh": view.headline, "en": view.en}, "detail": view.detail,
        "key": view.key, "alarm": bool(view.lamps and view.lamps.buzz),
        "decision_id": verdict.get("decision_id"), "cylinder_id": verdict.get("cylinder_id"),
        "medium": _medium(verdict.get("medium")), "next_inspection": verdict.get("next_inspection"),
        "warnings": [texts.reason(w.get("code", "")) for w in verdict.get("warnings") or []
                     if isinstance(w, dict)],
        "net_g": net if view.state in MASS_STATES else None,
        "target_g": live.get("target_g") if view.state in MASS_STATES else None,
    }


MASS_STATES = ("filling", "settling", "done_ok", "overfill", "underfill", "interrupted",
               "permitted")


def _medium(code: Any) -> str | None:
    if not isinstance(code, str) or not code:
        return None
    return f"{code} {MEDIA[code]}" if code in MEDIA else code


# --- records ---------------------------------------------------------------------------------
@dataclass
class RecordFilter:
    """The records page's filters: the same as `station records` (station.store.records.select_fills)."""

    date_from: str = ""
    date_to: str = ""
    rig: str = ""
    operator: str = ""
    cylinder: str = ""
    check: str = ""
    sync: str = ""
    override: bool = False
    page: int = 1
    invalid: list[str] = field(default_factory=list)

    @classmethod
    def from_query(cls, q: dict[str, str]) -> RecordFilter:
        f = cls(invalid=[])
        for key, attr in (("from", "date_from"), ("to", "date_to")):
            value = q.get(key, "").strip()
            if value and not DATE.fullmatch(value):
                f.invalid.append(key)
            elif value:
                setattr(f, attr, value)
        f.rig, f.operator = q.get("rig", "").strip()[:64], q.get("operator", "").strip()[:64]
        f.cylinder = q.get("cylinder", "").strip()[:200]
        for key, allowed in (("check", CHECKS), ("sync", SYNCS)):
            value = q.get(key, "")
            if value and value not in allowed:
                f.invalid.append(key)
            elif value:
                setattr(f, key, value)
        f.override = q.get("override", "") in ("1", "on", "true")
        page = q.get("page", "1")
        f.page = int(page) if page.isdigit() and 0 < int(page) < 10**6 else 1
        return f

    def query_items(self, page: int | None = None) -> list[tuple[str, str]]:
        """The filter as query parameters (for links: paging, CSV export, language)."""
        items = [("from", self.date_from), ("to", self.date_to), ("rig", self.rig),
                 ("operator", self.operator), ("cylinder", self.cylinder), ("check", self.check),
                 ("sync", self.sync), ("override", "1" if self.override else "")]
        if page and page > 1:
            items.append(("page", str(page)))
        return [(k, v) for k, v in items if v]

    def where(self) -> tuple[str, list[Any]]:
        """The WHERE clause for these filters: the same as `station records` uses."""
        return fill_where(self)


def records_page(store: Store, flt: RecordFilter) -> tuple[list[dict[str, Any]], int]:
    """One page of matching records, newest first, and how many match in all."""
    where, params = flt.where()
    join = "LEFT JOIN outbox o ON o.record_id = f.record_id " if flt.sync else ""
    total = int(store.value(f"SELECT count(*) FROM fills f {join}WHERE {where}", tuple(params)))
    rows = store.query(f"{SELECT_FILLS}{where} ORDER BY {FILL_ORDER} DESC LIMIT ? OFFSET ?",
                       (*params, PAGE_SIZE, (flt.page - 1) * PAGE_SIZE))
    return [shape(r) for r in rows], total


def records_all(store: Store, flt: RecordFilter, batch: int = 1000
                ) -> Iterator[dict[str, Any]]:
    """Every matching record, oldest first, a batch at a time (the CSV export)."""
    where, params = flt.where()
    cur = store.conn.execute(f"{SELECT_FILLS}{where} ORDER BY {FILL_ORDER}", params)
    cols = [c[0] for c in cur.description]
    while rows := cur.fetchmany(batch):
        for r in rows:
            yield shape(dict(zip(cols, r, strict=True)))


# --- refusals by reason and day ----------------------------------------------------------------
def refusals_by_day(store: Store, days: int, today: datetime | None = None
                    ) -> tuple[list[str], dict[str, dict[str, int]]]:
    """The last `days` local dates (oldest first) and reason → date → refusals."""
    today = today or datetime.now(LOCAL_TZ)
    first = (today - timedelta(days=days - 1)).replace(hour=0, minute=0, second=0, microsecond=0)
    dates = [(first + timedelta(days=i)).date().isoformat() for i in range(days)]
    rows = store.query("SELECT substr(local_time, 1, 10) AS day, reason, count(*) AS n "
                       "FROM decisions WHERE permit = 0 AND at >= ? GROUP BY day, reason",
                       (first.timestamp(),))
    counts: dict[str, dict[str, int]] = {}
    for r in rows:
        if r["day"] in dates:
            counts.setdefault(r["reason"] or "?", {})[r["day"]] = int(r["n"])
    return dates, counts


# --- overfills and overrides to handle --------------------------------------------------------
ISSUE = "(f.post_check = 'overfill' OR f.override_by IS NOT NULL)"


def open_issues(store: Store, limit: int = 500) -> list[dict[str, Any]]:
    return store.query(f"SELECT f.* FROM fills f WHERE f.state != 'open' AND f.handled_at IS "
                       f"NULL AND {ISSUE} ORDER BY {FILL_ORDER} DESC LIMIT ?", (limit,))


def handled_issues(store: Store, limit: int = 20) -> list[dict[str, Any]]:
    return store.query(f"SELECT f.* FROM fills f WHERE f.handled_at IS NOT NULL AND {ISSUE} "
                       "ORDER BY f.handled_at DESC LIMIT ?", (limit,))


def mark_handled(store: Store, record_id: str, by: str) -> bool:
    """An open overfill or override marked handled; False when there is none such (any more).

    handled_at/handled_by are outside the record's hash (station.store.chain): `station verify`
    still passes afterwards.
    """
    with store.transaction() as conn:
        return conn.execute(f"UPDATE fills AS f SET handled_at = ?, handled_by = ? WHERE "
                            f"record_id = ? AND state != 'open' AND handled_at IS NULL AND "
                            f"{ISSUE}", (time.time(), by, record_id)).rowcount > 0


# --- block list and outbox -------------------------------------------------------------------
def blocklist(store: Store) -> list[dict[str, Any]]:
    return store.query("SELECT key, reason, added_at, added_by FROM blocklist ORDER BY added_at "
                       "DESC")


def outbox_retry(store: Store, record_id: str) -> bool:
    """A dead record pending again (as `station outbox retry`); False when it is not dead."""
    with store.transaction() as conn:
        return conn.execute("UPDATE outbox SET state = 'pending', next_at = 0 WHERE record_id "
                            "= ? AND state = 'dead'", (record_id,)).rowcount > 0


# --- device health ---------------------------------------------------------------------------
def health(store: Store, rigs: list[str], now: float | None = None) -> list[dict[str, Any]]:
    """Per rig: connected, last heartbeat, current fault, last error event and recent events."""
    now = time.time() if now is None else now
    live = {r["rig"]: r for r in store.query("SELECT rig, at, state FROM rig_live")}
    marks = ", ".join("?" * len(ERROR_EVENTS))
    out = []
    for rig in rigs:
        row = live.get(rig)
        state = json.loads(row["state"]) if row else {}
        errors = store.query(f"SELECT at, event, detail FROM rig_events WHERE rig = ? AND "
                             f"event IN ({marks}) ORDER BY id DESC LIMIT 1", (rig, *ERROR_EVENTS))
        events = store.query("SELECT at, event, detail FROM rig_events WHERE rig = ? "
                             "ORDER BY id DESC LIMIT 8", (rig,))
        beat = state.get("heartbeat_at")
        stale = row is None or now - row["at"] > STALE_S
        shows = hmi.screen(state, stale=stale)
        out.append({"rig": rig, "stale": stale, "screen": {"zh": shows.headline, "en": shows.en},
                    "connected": bool(state.get("connected")), "fault": state.get("fault"),
                    "phase": state.get("phase"), "operator": state.get("operator"),
                    "heartbeat_age_s": None if beat is None else max(0.0, now - beat),
                    "heartbeat_at": local(beat),
                    "last_error": ({**errors[0], "at": local(errors[0]["at"])} if errors
                                   else None),
                    "events": [{**e, "at": local(e["at"])} for e in events]})
    return out


# --- the record chain's head -----------------------------------------------------------------
def chain_head(store: Store) -> dict[str, Any] | None:
    """The hash chain's newest entry, read in one indexed query (never verified here: that
    walks the whole chain; `station verify` and `station doctor` do it). None: no records yet,
    or a store from before the chain that the daemon has not upgraded yet."""
    try:
        top = chain.newest(store.conn)
    except sqlite3.OperationalError as err:
        if "no such table" in str(err):
            return None
        raise StoreError(f"store read failed: {err}") from err
    except sqlite3.Error as err:
        raise StoreError(f"store read failed: {err}") from err
    if top is None:
        return None
    return {"seq": top.seq, "hash": top.hash, "short": top.short, "kind": top.kind,
            "ref": top.ref, "at": local(top.at)}
