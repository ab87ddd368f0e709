"""Managers' numbers per day: fills, refusals by reason, overrides, overfills, delivery lag."""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from station.errors import StationError
from station.store.db import Store
from station.today import LOCAL_TZ, station_today


@dataclass
class Day:
    """One local (Asia/Shanghai) day's numbers."""

    date: str
    fills: int = 0  # closed fill records (ok, overfill, underfill, interrupted)
    overfills: int = 0
    underfills: int = 0
    interrupted: int = 0
    cancelled: int = 0  # permits withdrawn unused
    overrides: int = 0  # permits a supervisor gave after a refusal
    permits: int = 0
    refusals: dict[str, int] = field(default_factory=dict)  # reason → count
    delivered: int = 0
    lag_median_s: float | None = None  # fill end → delivered to the city
    lag_max_s: float | None = None

    @property
    def refused(self) -> int:
        return sum(self.refusals.values())


def parse_day(text: str | None, what: str) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError as err:
        raise StationError(f"{what} {text!r}: want a date as yyyy-mm-dd") from err


def day_range(date_from: str | None, date_to: str | None,
              default_days: int | None = 30) -> tuple[date, date]:
    """The inclusive local days asked for; without --from, the last `default_days` days."""
    today = station_today()
    last = parse_day(date_to, "--to") or today
    first = parse_day(date_from, "--from")
    if first is None:
        if default_days is None:
            raise StationError("--from is required")
        first = last - timedelta(days=default_days - 1)
    if first > last:
        raise StationError(f"--from {first} is after --to {last}")
    return first, last


def epoch_range(first: date, last: date) -> tuple[float, float]:
    """[start of `first`, start of the day after `last`) in epoch seconds, station time."""
    start = datetime(first.year, first.month, first.day, tzinfo=LOCAL_TZ)
    end = datetime(last.year, last.month, last.day, tzinfo=LOCAL_TZ) + timedelta(days=1)
    return start.timestamp(), end.timestamp()


def local_day(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, LOCAL_TZ).date().isoformat()


def daily(store: Store, first: date, last: date) -> list[Day]:
    """Every day from first to last (days without records included), oldest first."""
    days = {(first + timedelta(days=i)).isoformat(): Day((first + timedelta(days=i)).isoformat())
            for i in range((last - first).days + 1)}
    start, end = epoch_range(first, last)
    for d in store.query("SELECT at, permit, reason FROM decisions WHERE at >= ? AND at < ?",
                         (start, end)):
        day = days.get(local_day(d["at"]))
        if day is None:
            continue
        if d["permit"]:
            day.permits += 1
        else:
            reason = d["reason"] or "UNKNOWN"
            day.refusals[reason] = day.refusals.get(reason, 0) + 1
    lags: dict[str, list[float]] = {}
    for f in store.query(
            "SELECT f.fill_date, f.state, f.post_check, f.override_by, f.ended_at, "
            "o.state AS sync, o.delivered_at FROM fills f LEFT JOIN outbox o "
            "ON o.record_id = f.record_id WHERE f.state != 'open' AND f.fill_date >= ? "
            "AND f.fill_date <= ?", (first.isoformat(), last.isoformat())):
        day = days.get(f["fill_date"])
        if day is not None:
            _count_fill(day, f, lags)
    for key, values in lags.items():
        days[key].lag_median_s = round(statistics.median(values), 3)
        days[key].lag_max_s = round(max(values), 3)
    return list(days.values())


def _count_fill(day: Day, f: dict[str, Any], lags: dict[str, list[float]]) -> None:
    day.overrides += f["override_by"] is not None
    if f["state"] == "cancelled":
        day.cancelled += 1
        return
    day.fills += 1
    check = f["post_check"] or ""
    day.overfills += check.startswith("overfill")
    day.underfills += check.startswith("underfill")
    day.interrupted += check.startswith("interrupted")
    if f["sync"] == "delivered" and f["delivered_at"] is not None:
        day.delivered += 1
        if f["ended_at"] is not None:
            lags.setdefault(day.date, []).append(max(0.0, f["delivered_at"] - f["ended_at"]))


def as_json(days: list[Day]) -> str:
    return json.dumps([asdict(d) | {"refused": d.refused} for d in days], ensure_ascii=False,
                      indent=1)


def table(days: list[Day]) -> str:
    """A fixed-width table, one line a day, refusal reasons spelled out at the end."""
    head = (f"{'date':<10}  {'fills':>5} {'over':>4} {'under':>5} {'intr':>4} {'canc':>4} "
            f"{'ovrd':>4} {'permit':>6} {'refused':>7} {'deliv':>5} {'lag med':>8} "
            f"{'lag max':>8}  refusals by reason")
    lines = [head]
    for d in days:
        reasons = ", ".join(f"{r} {n}" for r, n in sorted(d.refusals.items(),
                                                          key=lambda kv: (-kv[1], kv[0])))
        lines.append(f"{d.date:<10}  {d.fills:>5} {d.overfills:>4} {d.underfills:>5} "
                     f"{d.interrupted:>4} {d.cancelled:>4} {d.overrides:>4} {d.permits:>6} "
                     f"{d.refused:>7} {d.delivered:>5} {_secs(d.lag_median_s):>8} "
                     f"{_secs(d.lag_max_s):>8}  {reasons or '-'}")
    return "\n".join(lines)


def _secs(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"
