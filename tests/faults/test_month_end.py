"""One "today": the demo's dated cylinders keep their verdicts on every month's last UTC evening."""

import os
import subprocess
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from stepclock import SteppedClock, build

from simulators.dataset import PARTNER_UNIT, STATION_UNIT, demo_cylinders
from station.config import RulesConfig
from station.core.model import Lookup, Reading, RigCondition
from station.core.rules import Policy, judge
from station.today import station_today

ROOT = Path(__file__).resolve().parents[2]
POLICY = Policy(frozenset({STATION_UNIT, PARTNER_UNIT}), RulesConfig())
RIG = RigCondition(rig_id="rig-01", medium="G13", healthy=True, operator="张三",
                   scale_g=15200)  # an empty cylinder of the demo's stamped tare
# Instants where the host's UTC date is a day (and a month) behind Shanghai's, and their twins.
EDGES = [
    datetime(2026, 11, 30, 15, 59, 59, tzinfo=UTC),  # still 30 Nov in Shanghai
    datetime(2026, 11, 30, 16, 0, 0, tzinfo=UTC),  # 1 Dec in Shanghai
    datetime(2026, 12, 31, 16, 30, tzinfo=UTC),  # new year in Shanghai, not in UTC
    datetime(2027, 2, 28, 23, 59, tzinfo=UTC),  # 1 Mar in Shanghai
    datetime(2028, 2, 29, 16, 0, tzinfo=UTC),  # leap day's evening
    datetime(2027, 4, 30, 22, 10, tzinfo=UTC),
]
# The demo's dated cylinders and what the demo expects of them (station/app/demo.py).
EXPECT = {"valid": ("OK", ()), "due_soon": ("OK", ("INSPECTION_DUE_SOON",)),
          "overdue": ("INSPECTION_OVERDUE", ()), "life_exceeded": ("SERVICE_LIFE_EXCEEDED", ()),
          "life_last_month": ("OK", ()), "special_23t0": ("OK", ())}


@pytest.mark.parametrize(("utc", "local"), [
    (datetime(2026, 11, 30, 15, 59, 59, tzinfo=UTC), date(2026, 11, 30)),
    (datetime(2026, 11, 30, 16, 0, 0, tzinfo=UTC), date(2026, 12, 1)),
    (datetime(2026, 12, 31, 23, 0, tzinfo=UTC), date(2027, 1, 1)),
])
def test_station_today_is_shanghais_date(utc, local):
    assert station_today(utc) == local


def test_station_today_refuses_a_naive_time():
    with pytest.raises(ValueError):
        station_today(datetime(2026, 11, 30, 23, 0))


@pytest.mark.parametrize("now", EDGES, ids=lambda d: d.isoformat(timespec="minutes"))
def test_demo_dataset_keeps_its_verdicts_at_month_end(now):
    cylinders = demo_cylinders(station_today(now))
    for name, (reason, warnings) in EXPECT.items():
        reading = Reading(raw=cylinders[name]["info_code"], kind="info_code",
                          value=cylinders[name]["info_code"], reader="s1")
        found = Lookup("found", record=cylinders[name], source="city")
        verdict = judge(reading, RIG, found, POLICY, (), now)
        assert (verdict.reason or "OK", verdict.warnings) == (reason, warnings), name


def test_demo_passes_on_a_months_last_utc_evening(tmp_path):
    lib = build()
    if lib is None:
        pytest.fail("the month-end demo test needs a C compiler (cc) for tests/faults/stepclock.c")
    clock = SteppedClock(lib, tmp_path / "clock-offset")
    clock.step_to(datetime(2027, 4, 30, 22, 10, tzinfo=UTC).timestamp() - time.time())
    env = {**os.environ, **clock.env()}
    out = subprocess.run([sys.executable, "-m", "station", "demo", "--verdicts-only"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert "FAIL" not in out.stdout, out.stdout[-3000:]
    assert out.returncode == 0, out.stderr[-2000:]
    assert "INSPECTION_DUE_SOON" in out.stdout and "INSPECTION_OVERDUE" in out.stdout
