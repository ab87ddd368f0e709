"""kill -9 of the daemon at random points while filling and syncing (the short campaign)."""

import os

from kill9 import WATCHDOG_MS, campaign

TRIALS = int(os.environ.get("STATION_KILL9_TRIALS", "12"))  # the long run: run_kill9.py


def test_kill9_campaign(tmp_path):
    result = campaign(tmp_path, TRIALS, seed=int(os.environ.get("STATION_KILL9_SEED", "20261125")),
                      latch_clear_s=0.1)  # FILL_DONE cleared 100 ms after the permit write
    assert result.trials == TRIALS
    assert result.problems == []
    assert result.valve_openings > 0
    assert result.valve_openings <= result.fills_closed <= result.valve_openings + \
        result.over_reports  # every record a valve opening, or said to be a possible one
    assert max(result.permit_drop_s) <= WATCHDOG_MS / 1000 + 0.5
