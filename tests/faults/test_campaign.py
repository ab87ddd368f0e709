"""The fault campaign, short: each fault kind once, its fault held for seconds, on one station.

`python tests/faults/run_campaign.py` runs the long one (many trials, city faults held for
minutes) and prints a table. Each trial ends with the checks every trial shares (campaign.check).
"""

import os
import random

import pytest
from campaign import KINDS, OWN_STATION, Settings, run_trial, start

SHORT = Settings(outage_s=(0.1, 0.4), city_hold_s=0.0)
SEED = os.environ.get("STATION_CAMPAIGN_SEED", "20261125")


@pytest.fixture(scope="module")
def station(tmp_path_factory):
    st = start(tmp_path_factory.mktemp("campaign"), SHORT)
    yield st
    st.stop()


@pytest.mark.parametrize("kind", [k for k in KINDS if k not in OWN_STATION])  # (those two:
# test_store_faults.py and test_clock_steps.py)
def test_fault_kind(station, kind):
    trial = run_trial(station, kind, random.Random(f"{SEED}-{kind}"), SHORT)
    assert trial.problems == [], trial
    assert trial.openings >= 1 and trial.records == trial.openings, trial
    assert trial.delivered == trial.records and trial.duplicates == 0, trial
    assert trial.integrity == "ok" and trial.chain == "ok", trial
    if trial.permit_off_s is not None:  # the safety bound: not a speed claim
        assert trial.permit_off_s <= SHORT.permit_bound_s, trial
    if kind.startswith("city_"):
        assert trial.under_fault >= 1, trial
