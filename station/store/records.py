"""Managers' views of the store: fill records with filters (table, JSON, CSV) and the outbox."""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any

from station.config import StationConfig
from station.core.fills import local
from station.core.keys import typed_key
from station.errors import StationError
from station.store import outbox
from station.store.db import Store

COLUMNS = ("record_id", "fill_date", "started", "ended", "rig", "operator", "cylinder_id",
           "info_code", "medium", "tare_kg", "prefill_kg", "net_kg", "target_kg", "pre_check",
           "post_check", "end_reason", "source", "override_by", "override_reason", "sync",
           "attempts", "last_error", "trace_id")


SELECT_FILLS = ("SELECT f.*, o.state AS sync, o.attempts, o.last_error, o.trace_id FROM fills f "
                "LEFT JOIN outbox o ON o.record_id = f.record_id WHERE ")
FILL_ORDER = "coalesce(f.started_at, f.permitted_at)"


def fill_where(f: Any) -> tuple[str, list[Any]]:
    """The WHERE clause for the managers' filters (CLI arguments or the web page's filter:
    date_from, date_to, rig, operator, cylinder, check, sync, override).

    Typed keys are normalised by keys.typed_key: rig and operator as names (NFKC, trimmed),
    the cylinder as a code (also upper-cased), matched as typed or normalised.
    """
    where, params = ["f.state != 'open'"], []
    rig = typed_key(f.rig, "name") if f.rig else f.rig
    operator = typed_key(f.operator, "name") if f.operator else f.operator
    for column, value in (("f.fill_date >=", f.date_from), ("f.fill_date <=", f.date_to),
                          ("f.rig =", rig), ("f.operator =", operator)):
        if value:
            where.append(f"{column} ?")
            params.append(value)
    if f.cylinder:
        forms = [typed_key(f.cylinder, "name"), typed_key(f.cylinder, "code")]
        where.append("(f.cylinder_id IN (?, ?) OR f.info_code IN (?, ?) OR f.tag IN (?, ?))")
        params += forms * 3
    if f.check == "defect":  # the operator's post-fill checklist found an item not OK
        where.append("f.post_check LIKE '%defect:%'")
    elif f.check:
        where.append("f.post_check LIKE ?")
        params.append(f.check + "%")
    if f.sync:
        where.append("o.state IS NULL" if f.sync == "none" else "o.state = ?")
        params += [] if f.sync == "none" else [f.sync]
    if f.override:
        where.append("f.override_by IS NOT NULL")
    return " AND ".join(where), params


def select_fills(store: Store, args: argparse.Namespace) -> list[dict[str, Any]]:
    """Fill rows joined with their delivery state, filtered as the manager asked."""
    where, params = fill_where(args)
    newest = store.query(f"{SELECT_FILLS}{where} ORDER BY {FILL_ORDER} DESC LIMIT ?",
                         (*params, args.limit))  # the newest `limit`, shown oldest first
    return [shape(r) for r in reversed(newest)]


def kg(grams: int | None) -> float | None:
    return None if grams is None else round(grams / 1000, 2)


def shape(r: dict[str, Any]) -> dict[str, Any]:
    return {"record_id": r["record_id"], "fill_date": r["fill_date"],
            "started": local(r["started_at"] or r["permitted_at"]), "ended": local(r["ended_at"]),
            "rig": r["rig"], "operator": r["operator"], "cylinder_id": r["cylinder_id"],
            "info_code": r["info_code"], "medium": r["medium"], "tare_kg": kg(r["tare_g"]),
            "prefill_kg": kg(r["prefill_g"]), "net_kg": kg(r["net_g"]),
            "target_kg": kg(r["target_g"]), "pre_check": r["pre_check"],
            "post_check": r["post_check"] or ("cancelled" if r["state"] == "cancelled" else None),
            "end_reason": r["end_reason"], "source": r["source"], "override_by": r["override_by"],
            "override_reason": r["override_reason"], "sync": r["sync"] or "none",
            "attempts": r["attempts"], "last_error": r["last_error"], "trace_id": r["trace_id"]}


CSV_FORMULA = ("=", "+", "-", "@", "\t", "\r")  # a cell starting so is a formula to Excel


def csv_lines(rows: Iterable[dict[str, Any]], columns: tuple[str, ...],
              headers: dict[str, str] | None = None) -> Iterator[str]:
    """CSV text a line at a time: first a UTF-8 BOM (Excel then reads the file as UTF-8) with
    the heading line (`headers`: column → heading; default the column names), then one line
    a row; a text cell that a spreadsheet would run as a formula gets a leading `'`."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow([(headers or {}).get(c, c) for c in columns])
    yield "\ufeff" + buf.getvalue()
    for row in rows:
        buf.seek(0)
        buf.truncate()
        writer.writerow(["'" + v if isinstance(v, str) and v.startswith(CSV_FORMULA) else v
                         for v in (row.get(c) for c in columns)])
        yield buf.getvalue()


def print_records(cfg: StationConfig, args: argparse.Namespace,
                  headers: dict[str, str] | None = None) -> int:
    """`station records`: a table, JSON, or CSV (BOM, `headers` as the heading line)."""
    rows = select_fills(Store(cfg.store), args)
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=1))
    elif args.csv:
        sys.stdout.writelines(csv_lines(rows, COLUMNS, headers))
    else:
        for r in rows:
            net = "-" if r["net_kg"] is None else f"{r['net_kg']:.2f}"
            print(f"{r['started'] or '-':19}  {r['rig']:<8} {r['operator'] or '-':<6} "
                  f"{r['cylinder_id'] or '-':<12} {net:>6} kg  {r['post_check'] or '-':<12} "
                  f"{r['sync']:<9} {r['record_id']}")
        print(f"{len(rows)} record(s)", file=sys.stderr)
    if len(rows) >= args.limit:
        print(f"limit reached: these are the newest {args.limit}; narrow with --from/--to or "
              "raise --limit", file=sys.stderr)
    return 0


def outbox_summary(store: Store) -> dict[str, Any]:
    counts = outbox.counts(store)
    oldest = outbox.oldest_pending_at(store)
    last = outbox.last_error(store)
    dead = outbox.dead(store)
    return {"pending": counts.get("pending", 0), "delivered": counts.get("delivered", 0),
            "dead": counts.get("dead", 0), "oldest_pending": local(oldest),
            "oldest_pending_age_h": None if oldest is None else
            round((time.time() - oldest) / 3600, 2), "last_error": last,
            "dead_records": dead}


def print_outbox(cfg: StationConfig) -> int:
    s = outbox_summary(Store(cfg.store))
    print(f"pending {s['pending']}  delivered {s['delivered']}  dead {s['dead']}")
    if s["oldest_pending"]:
        print(f"oldest pending: {s['oldest_pending']} ({s['oldest_pending_age_h']} h)")
    if s["last_error"]:
        e = s["last_error"]
        print(f"last error: {e['record_id']} after {e['attempts']} attempt(s): {e['last_error']}")
    for d in s["dead_records"]:
        print(f"dead: {d['record_id']}  {d['last_error']}   (station outbox retry ID)")
    return 0


def outbox_retry(cfg: StationConfig, record_id: str) -> int:
    """Send a dead record again (after the cause was fixed); it is never deleted."""
    if not outbox.revive(Store(cfg.store), record_id):
        raise StationError(f"no dead record {record_id} in the outbox")
    print(f"{record_id} is pending again")
    return 0


def photo_hashes(store: Store) -> list[tuple[str, str]]:
    """(record_id, photo SHA-256) of every fill record that has a photo (`station verify`)."""
    return [(r["record_id"], r["photo_sha256"]) for r in store.query(
        "SELECT record_id, photo_sha256 FROM fills WHERE photo_sha256 IS NOT NULL")]
