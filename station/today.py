"""The station's one "today": the calendar date and time zone of Asia/Shanghai."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

LOCAL_TZ = ZoneInfo("Asia/Shanghai")  # China Standard Time, UTC+8, no daylight saving


def station_today(now: datetime | None = None) -> date:
    """The station's local date: `now` (timezone-aware) or the wall clock, in Asia/Shanghai.

    Every rule, demo dataset, simulator and test asks this one function: on a month's last
    evening in UTC (16:00–24:00) the host's date is a day behind the station's.
    Raises ValueError when `now` is naive (a naive time has no place on the station's calendar).
    """
    if now is None:
        now = datetime.now(UTC)
    elif now.tzinfo is None:
        raise ValueError("station_today needs a timezone-aware time")
    return now.astimezone(LOCAL_TZ).date()
