"""What the pages show, read from the store: live rig state, records, refusals, issues, health."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from station.core import hmi
from station.core.codes import MEDIA
from station.core.fills import local
from station.store import browse, overview
from station.store.db import Store
from station.store.records import fill_where
from station.today import LOCAL_TZ
from station.web import texts

STALE_S = 3.0  # the daemon republishes at least every second; older than this is not live
PAGE_SIZE = 50
CHECKS = ("ok", "overfill", "underfill", "interrupted", "defect")
SYNCS = ("pending", "delivered", "dead", "none")
DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


# --- the operator screen ---------------------------------------------------------------------
MODES = {"green": "ok", "red": "refused", "amber": "warn", "blue": "filling", "grey": "idle",
         "dark": "offline"}


def rig_screen(store: Store | None, rig: str, now: float | None = None) -> dict[str, Any]:
    """The operator screen's picture of one rig: its state (station.core.hmi, the same function the
    daemon lights the lamps from) and the facts of its current verdict. `store` None: the
    store cannot be read (the screen says so and keeps asking)."""
    now = time.time() if now is None else now
    at, live = overview.live_one(store, rig) if store else (None, {})
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
        "question": question_shown(live.get("question")),
    }


def question_shown(q: Any) -> dict[str, Any] | None:
    """The checklist the daemon asks at this rig (station.core.checklist.Question as published),
    only its plain fields: the screen builds its buttons from them."""
    if not isinstance(q, dict) or q.get("stage") not in ("pre", "post"):
        return None
    items = [{"key": str(i.get("key")), "label": str(i.get("label")),
              "required": bool(i.get("required", True))}
             for i in q.get("items") or [] if isinstance(i, dict)][:30]
    return {"stage": q["stage"], "decision_id": q.get("decision_id"),
            "cylinder_id": q.get("cylinder_id"), "token": q.get("token"), "items": items}


MASS_STATES = ("filling", "settling", "done_ok", "overfill", "underfill", "interrupted",
               "permitted")


def _medium(code: Any) -> str | None:
    if not isinstance(code, str) or not code:
        return None
    return f"{code} {MEDIA[code]}" if code in MEDIA else code


def read_common(f: Any, q: dict[str, str]) -> Any:
    """The filters every list page shares, read into `f` (a filter with date_from, date_to,
    rig, operator, page and an `invalid` list): days as yyyy-mm-dd (else named invalid), rig
    and operator cut to 64 characters, the page a positive number (else 1)."""
    for key, attr in (("from", "date_from"), ("to", "date_to")):
        value = q.get(key, "").strip()
        if value and not DATE.fullmatch(value):
            f.invalid.append(key)
        elif value:
            setattr(f, attr, value)
    f.rig, f.operator = q.get("rig", "").strip()[:64], q.get("operator", "").strip()[:64]
    page = q.get("page", "1")
    f.page = int(page) if page.isdigit() and 0 < int(page) < 10**6 else 1
    return f


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
        f = read_common(cls(invalid=[]), q)
        f.cylinder = q.get("cylinder", "").strip()[:200]
        for key, allowed in (("check", CHECKS), ("sync", SYNCS)):
            value = q.get(key, "")
            if value and value not in allowed:
                f.invalid.append(key)
            elif value:
                setattr(f, key, value)
        f.override = q.get("override", "") in ("1", "on", "true")
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
    return browse.records_page(store, flt, flt.page, PAGE_SIZE)


def records_all(store: Store, flt: RecordFilter) -> Iterator[dict[str, Any]]:
    """Every matching record, oldest first (the CSV export)."""
    return browse.records_all(store, flt)


# --- refusals by reason and day ----------------------------------------------------------------
def refusals_by_day(store: Store, days: int, today: datetime | None = None
                    ) -> tuple[list[str], dict[str, dict[str, int]]]:
    """The last `days` local dates (oldest first) and reason → date → refusals."""
    today = today or datetime.now(LOCAL_TZ)
    first = (today - timedelta(days=days - 1)).replace(hour=0, minute=0, second=0, microsecond=0)
    dates = [(first + timedelta(days=i)).date().isoformat() for i in range(days)]
    counts: dict[str, dict[str, int]] = {}
    for r in overview.refusals_since(store, first.timestamp()):
        if r["day"] in dates:
            counts.setdefault(r["reason"] or "?", {})[r["day"]] = int(r["n"])
    return dates, counts


# --- device health ---------------------------------------------------------------------------
def health(store: Store, rigs: list[str], now: float | None = None) -> list[dict[str, Any]]:
    """Per rig: connected, last heartbeat, current fault, last error event and recent events."""
    now = time.time() if now is None else now
    lives = overview.live(store)
    out = []
    for rig in rigs:
        row = lives.get(rig)
        state = row["state"] if row else {}
        errors = overview.rig_events(store, rig, errors_only=True, limit=1)
        events = overview.rig_events(store, rig)
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
    """The hash chain's newest entry (station.store.overview.chain_head), shaped for pages."""
    top = overview.chain_head(store)
    if top is None:
        return None
    return {"seq": top.seq, "hash": top.hash, "short": top.short, "kind": top.kind,
            "ref": top.ref, "at": local(top.at)}


def devices_down(store: Store, rigs: Any, now: float | None = None) -> dict[str, list[str]]:
    """The configured rigs whose controller is not connected or whose daemon is silent (no
    picture newer than STALE_S), and the readers their daemon reports as lost (its picture's
    `readers`: reader id → connected, as the daemon reports them; a reader never opened yet,
    None, is not down):
    {"rigs": [rig id], "readers": ["rig id/reader id"]}."""
    now = time.time() if now is None else now
    lives = overview.live(store)
    out: dict[str, list[str]] = {"rigs": [], "readers": []}
    for rig in rigs:
        row = lives.get(rig.id)
        if row is None or now - row["at"] > STALE_S or not row["state"].get("connected"):
            out["rigs"].append(rig.id)
        readers = (row or {}).get("state", {}).get("readers") or {}
        out["readers"] += [f"{rig.id}/{r}" for r, up in sorted(readers.items()) if up is False]
    return out
