"""Decisions and fill records of a date range as one CSV table or one JSON document."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from datetime import date
from typing import Any

from station.store.db import Store
from station.store.records import csv_lines, select_fills
from station.store.stats import epoch_range

DECISION_COLUMNS = ("reader", "reading", "reading_kind", "permit", "reason", "warnings", "detail",
                    "cache_age_s", "latency_ms")
FILL_COLUMNS = ("record_id", "fill_date", "started", "ended", "info_code", "medium", "tare_kg",
                "prefill_kg", "net_kg", "target_kg", "pre_check", "post_check", "end_reason",
                "override_by", "override_reason", "sync", "attempts", "last_error", "trace_id")
# One CSV table for both kinds: `kind` says which; columns of the other kind stay empty.
CSV_COLUMNS = ("kind", "id", "time", "rig", "operator", "cylinder_id", "source",
               *DECISION_COLUMNS, *(c for c in FILL_COLUMNS if c != "record_id"))


def decisions(store: Store, first: date, last: date) -> list[dict[str, Any]]:
    start, end = epoch_range(first, last)
    return store.query("SELECT * FROM decisions WHERE at >= ? AND at < ? ORDER BY id",
                       (start, end))


def fills(store: Store, first: date, last: date) -> list[dict[str, Any]]:
    """Every closed or cancelled fill whose fill date is in the range, oldest first."""
    wanted = argparse.Namespace(date_from=first.isoformat(), date_to=last.isoformat(), rig=None,
                                operator=None, cylinder=None, check=None, sync=None,
                                override=False, limit=-1)  # SQLite: LIMIT -1 is no limit
    return select_fills(store, wanted)


def as_json(store: Store, first: date, last: date) -> str:
    doc = {"from": first.isoformat(), "to": last.isoformat(),
           "decisions": decisions(store, first, last), "fills": fills(store, first, last)}
    return json.dumps(doc, ensure_ascii=False, indent=1)


def as_csv(store: Store, first: date, last: date, headers: dict[str, str] | None = None) -> str:
    """One CSV table (station.store.records.csv_lines: a UTF-8 BOM, `headers` as headings,
    formulas neutralised): the decisions, then the fills."""
    def rows() -> Iterator[dict[str, Any]]:
        for d in decisions(store, first, last):
            yield {**d, "kind": "decision", "reading_kind": d["kind"], "time": d["local_time"]}
        for f in fills(store, first, last):
            yield {**f, "kind": "fill", "id": f["record_id"], "time": f["started"]}
    return "".join(csv_lines(rows(), CSV_COLUMNS, headers))
