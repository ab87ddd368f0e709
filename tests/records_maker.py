"""Builds a store with known decisions and fills through the Store's own methods (chained)."""

from __future__ import annotations

from datetime import datetime, timedelta

from station.core.fills import new_record_id
from station.core.model import Decision, Reading, Verdict
from station.store.db import Store
from station.today import LOCAL_TZ

READING = Reading(raw="https://qr/c/X1", kind="qr_url", value="X1", reader="s1")


class Records:
    def __init__(self, store: Store):
        self.store = store

    def decision(self, at: datetime, permit: bool = True, reason: str | None = None,
                 cylinder: str = "CYL-1") -> int:
        verdict = Verdict(permit=permit, reason=None if permit else reason, cylinder_id=cylinder)
        return self.store.record_decision(Decision(
            at=at, rig_id="rig-01", reading=READING, verdict=verdict, source="city",
            cache_age_s=None, latency_ms=3.0, operator="张三"))

    def fill(self, at: datetime, *, post_check: str = "ok", cancelled: bool = False,
             override_by: str | None = None, delivery: str = "delivered",
             lag_s: float = 10.0) -> str:
        """A fill started at `at`, ended a minute later; its outbox row in state `delivery`."""
        decision_id = self.decision(at - timedelta(seconds=5))
        start = at.timestamp()
        record_id = new_record_id(start)
        row = {"record_id": record_id, "decision_id": decision_id, "rig": "rig-01",
               "cylinder_id": "CYL-1", "info_code": "X1", "tag": "X1", "medium": "G13",
               "operator": "张三", "source": "city", "tare_g": 15200, "target_g": 14500,
               "prefill_g": 15200, "permitted_at": start - 2,
               "fill_date": at.astimezone(LOCAL_TZ).date().isoformat(),
               "override_by": override_by, "override_reason": "主管" if override_by else None}
        self.store.open_fill(row)
        if cancelled:
            self.store.close_fill({**row, "pre_check": "ok"}, None)
            return record_id
        ended = start + 60
        closed = {**row, "started_at": start, "ended_at": ended, "gross_g": 29700,
                  "net_g": 14500, "pre_check": "ok", "post_check": post_check,
                  "end_reason": "done"}
        self.store.close_fill(closed, {"record_id": record_id})
        with self.store.transaction() as conn:
            conn.execute("UPDATE outbox SET state = ?, delivered_at = ? WHERE record_id = ?",
                         (delivery, ended + lag_s if delivery == "delivered" else None,
                          record_id))
        return record_id
