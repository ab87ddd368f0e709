"""Finding things for the manager's pages: records and decisions by filter, search, a cylinder.

The filters are the CLI's (station.store.records.fill_where); a search takes what a person
typed through station.core.keys.search_key (the one normaliser) and looks up every exact form
by index before it scans for a fragment.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from typing import Any

from station.core.keys import SearchKey, typed_key
from station.store.db import Store
from station.store.records import FILL_ORDER, SELECT_FILLS, fill_where, shape
from station.store.stats import epoch_range

SEARCH_LIMIT = 50  # cylinders or tags listed for one search
RECORD_KEYS = ("info_code", "rfid_uid", "product_no")  # a city record's keys a reader gives


# --- fill records ------------------------------------------------------------------------------
def records_page(store: Store, flt: Any, page: int, size: int) -> tuple[list[dict[str, Any]],
                                                                        int]:
    """One page (1-based) of matching fill records, newest first, and how many match in all;
    `flt` has the attributes fill_where reads (the web's RecordFilter, the CLI's arguments)."""
    where, params = fill_where(flt)
    join = "LEFT JOIN outbox o ON o.record_id = f.record_id " if flt.sync else ""
    total = int(store.value(f"SELECT count(*) FROM fills f {join}WHERE {where}", tuple(params)))
    rows = store.query(f"{SELECT_FILLS}{where} ORDER BY {FILL_ORDER} DESC LIMIT ? OFFSET ?",
                       (*params, size, (page - 1) * size))
    return [shape(r) for r in rows], total


def records_all(store: Store, flt: Any, batch: int = 1000) -> Iterator[dict[str, Any]]:
    """Every matching fill record, oldest first, a batch at a time (the CSV export)."""
    where, params = fill_where(flt)
    cur = store.conn.execute(f"{SELECT_FILLS}{where} ORDER BY {FILL_ORDER}", params)
    cols = [c[0] for c in cur.description]
    while rows := cur.fetchmany(batch):
        for r in rows:
            yield shape(dict(zip(cols, r, strict=True)))


# --- decisions ---------------------------------------------------------------------------------
def decision_where(f: Any) -> tuple[str, list[Any]]:
    """The WHERE clause for the decisions page's filters: date_from, date_to (local days,
    yyyy-mm-dd), rig, operator (names as typed: keys.typed_key), reason (a rule code), verdict
    ("permit" or "refuse"), cylinder (a SearchKey: its exact forms as cylinder id or tag)."""
    where: list[str] = []
    params: list[Any] = []
    if f.date_from or f.date_to:
        first = date.fromisoformat(f.date_from or "2000-01-01")
        last = date.fromisoformat(f.date_to or "9999-12-30")
        start, end = epoch_range(first, last)
        where.append("at >= ? AND at < ?")
        params += [start, end]
    for column, value, kind in (("rig", f.rig, "name"), ("operator", f.operator, "name"),
                                ("reason", f.reason, "code")):
        if value:
            where.append(f"{column} = ?")
            params.append(typed_key(value, kind))
    if f.verdict:
        where.append("permit = ?")
        params.append(1 if f.verdict == "permit" else 0)
    key: SearchKey | None = f.cylinder
    if key is not None and key.exact:
        marks = ", ".join("?" * len(key.exact))
        where.append(f"(cylinder_id IN ({marks}) OR tag IN ({marks}))")
        params += [*key.exact, *key.exact]
    return " AND ".join(where) or "1", params


def decisions_page(store: Store, flt: Any, page: int, size: int
                   ) -> tuple[list[dict[str, Any]], int]:
    """One page (1-based) of matching decisions, newest first, and how many match in all."""
    where, params = decision_where(flt)
    total = int(store.value(f"SELECT count(*) FROM decisions WHERE {where}", tuple(params)))
    rows = store.query(f"SELECT * FROM decisions WHERE {where} ORDER BY id DESC LIMIT ? "
                       "OFFSET ?", (*params, size, (page - 1) * size))
    return rows, total


# --- search ------------------------------------------------------------------------------------
def search(store: Store, key: SearchKey, limit: int = SEARCH_LIMIT) -> dict[str, Any]:
    """The cylinders and the bare tags (read, never tied to a cylinder) a search finds:
    {"cylinders": [{"cylinder_id", "matched"}], "tags": [{"tag", "n", "last_at"}]}; exact forms
    by index first, then (nothing exact found) a fragment inside cached ids and keys, record ids,
    fill and decision keys."""
    found: dict[str, str] = {}
    tags: list[dict[str, Any]] = []
    if key.exact:
        _exact(store, key.exact, found)
        tags = _bare_tags(store, list(key.exact), found)
    if not found and not tags and key.partial:
        _partial(store, key.partial, found, limit)
        tags = _bare_tags(store, None, found, key.partial, limit)
    cylinders = [{"cylinder_id": c, "matched": m} for c, m in list(found.items())[:limit]]
    return {"cylinders": cylinders, "tags": tags[:limit]}


def _exact(store: Store, forms: tuple[str, ...], found: dict[str, str]) -> None:
    marks = ", ".join("?" * len(forms))
    for row in store.query(f"SELECT id FROM cylinders WHERE id IN ({marks})", forms):
        found.setdefault(row["id"], "id")
    keys = [f"{k}:{form}" for k in (*RECORD_KEYS, "id") for form in forms]
    for row in store.query(f"SELECT key, cylinder_id FROM tag_index WHERE key IN "
                           f"({', '.join('?' * len(keys))})", tuple(keys)):
        found.setdefault(row["cylinder_id"], row["key"].split(":", 1)[0])
    for column in ("cylinder_id", "info_code", "tag", "record_id"):
        for row in store.query(f"SELECT DISTINCT cylinder_id FROM fills WHERE {column} IN "
                               f"({marks}) AND cylinder_id IS NOT NULL LIMIT 20", forms):
            found.setdefault(row["cylinder_id"], column)
    for column in ("cylinder_id", "tag"):
        for row in store.query(f"SELECT DISTINCT cylinder_id FROM decisions WHERE {column} IN "
                               f"({marks}) AND cylinder_id IS NOT NULL LIMIT 20", forms):
            found.setdefault(row["cylinder_id"], column)


def _partial(store: Store, fragment: str, found: dict[str, str], limit: int) -> None:
    like = "%" + fragment.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    for row in store.query("SELECT id FROM cylinders WHERE id LIKE ? ESCAPE '\\' LIMIT ?",
                           (like, limit)):
        found.setdefault(row["id"], "id")
    for row in store.query("SELECT key, cylinder_id FROM tag_index WHERE key LIKE ? ESCAPE '\\' "
                           "LIMIT ?", (f"%:{like}", limit)):
        found.setdefault(row["cylinder_id"], row["key"].split(":", 1)[0])
    if not found:  # cylinders never cached (a store restored without its cache)
        for row in store.query("SELECT DISTINCT cylinder_id FROM fills WHERE cylinder_id LIKE ? "
                               "ESCAPE '\\' LIMIT ?", (like, limit)):
            found.setdefault(row["cylinder_id"], "cylinder_id")


def _bare_tags(store: Store, forms: list[str] | None, found: dict[str, str], fragment: str = "",
               limit: int = SEARCH_LIMIT) -> list[dict[str, Any]]:
    """Tags read at a rig but never tied to a cylinder (refused: not registered, foreign…)."""
    if forms is not None:
        marks = ", ".join("?" * len(forms))
        rows = store.query(f"SELECT tag, count(*) AS n, max(at) AS last_at FROM decisions "
                           f"WHERE tag IN ({marks}) AND cylinder_id IS NULL GROUP BY tag",
                           tuple(forms))
    else:
        like = "%" + fragment.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        rows = store.query("SELECT tag, count(*) AS n, max(at) AS last_at FROM decisions "
                           "WHERE cylinder_id IS NULL AND tag IN (SELECT DISTINCT tag FROM "
                           "decisions WHERE cylinder_id IS NULL AND tag LIKE ? ESCAPE '\\' "
                           "LIMIT ?) GROUP BY tag", (like, limit))
    return rows


# --- one cylinder --------------------------------------------------------------------------
def cylinder(store: Store, cylinder_id: str, limit: int = 500) -> dict[str, Any]:
    """Everything the station knows of one cylinder: its city record as last seen (the cache:
    record dict and fetched_at, epoch s; None: never cached), its keys (id, the record's
    information code, RFID UID and product number, and every tag cached for it), its decisions
    (newest first, by id or by any of its keys) and fill records with their delivery state
    (newest first, shaped as station.store.records.shape)."""
    rows = store.query("SELECT record, fetched_at FROM cylinders WHERE id = ?", (cylinder_id,))
    record = json.loads(rows[0]["record"]) if rows else None
    keys = [cylinder_id]
    if record:
        keys += [record[k] for k in RECORD_KEYS if isinstance(record.get(k), str) and record[k]]
    keys += [r["key"].split(":", 1)[1] for r in store.query(
        "SELECT key FROM tag_index WHERE cylinder_id = ?", (cylinder_id,))]
    keys = list(dict.fromkeys(keys))
    marks = ", ".join("?" * len(keys))
    decisions = store.query(f"SELECT * FROM decisions WHERE cylinder_id = ? UNION SELECT * FROM "
                            f"decisions WHERE tag IN ({marks}) ORDER BY id DESC LIMIT ?",
                            (cylinder_id, *keys, limit))
    fills = store.query(f"{SELECT_FILLS}f.state != 'open' AND (f.cylinder_id = ? OR f.info_code "
                        f"IN ({marks})) ORDER BY {FILL_ORDER} DESC LIMIT ?",
                        (cylinder_id, *keys, limit))
    raw = {r["record_id"]: r for r in fills}
    return {"cylinder_id": cylinder_id, "record": record,
            "fetched_at": rows[0]["fetched_at"] if rows else None, "keys": keys,
            "decisions": decisions,
            "fills": [shape(r) | {"handled_at": raw[r["record_id"]]["handled_at"],
                                  "handled_by": raw[r["record_id"]]["handled_by"],
                                  "photo": bool(raw[r["record_id"]].get("photo_sha256"))}
                      for r in fills]}


def blocked(block: dict[str, str], keys: list[str]) -> list[tuple[str, str]]:
    """The block-list entries (key, reason) that match any of a cylinder's keys, as the rules
    match them (Store.blocklist(): every row, and its normalised form)."""
    return [(k, block[k]) for k in dict.fromkeys(typed_key(k, "code") for k in keys)
            if k in block]
