"""The daemon's wall clock stepped back and forward under it (its monotonic clock untouched, as
an NTP step leaves it): fills are refused while the clock is wrong, resume when it is right, and
every fill is still recorded once and delivered once."""

import sqlite3

import pytest
from stepclock import SteppedClock, build

from simulators.dataset import demo_cylinders, qr_url
from simulators.harness import OPERATORS, RigSpec, SimStation, wait_for
from station.store import chain
from station.today import station_today

CYL = demo_cylinders(station_today())
VALID, PARTNER, OTHER = (qr_url(CYL[k]["info_code"])
                         for k in ("valid", "valid_partner", "special_23t0"))
HOUR, DAY = 3600, 86400


@pytest.fixture
def clock(tmp_path):
    lib = build()
    if lib is None:
        pytest.skip("no C compiler to build tests/faults/stepclock.c: apt-get install gcc")
    return SteppedClock(lib, tmp_path / "clock-offset")


@pytest.fixture
def station(tmp_path, clock):
    st = SimStation(tmp_path, (RigSpec("rig-01", 1),), watchdog_ms=900, deadline_s=0.5,
                    rig_options={"start_delay_s": 0.1, "flow_g_per_s": 30000},
                    daemon_env=clock.env(),
                    extra_config="[sync]\nrate_per_s = 0\nbackoff_cap_s = 1\n"
                                 "submit_timeout_s = 1\n").start()
    st.badge("rig-01", OPERATORS[0][1])
    yield st
    st.stop()


def scan_anew(st, reading):
    st.remove("rig-01")
    st.place("rig-01")
    return st.scan("rig-01", reading)


def fill(st, reading):
    d = scan_anew(st, reading)
    assert d["permit"] == 1, d
    return st.wait_fill("rig-01", d["id"])


def all_delivered_once(st, fills):
    wait_for(lambda: not st.rows("SELECT 1 FROM outbox WHERE state != 'delivered'"), 20,
             "every record delivered")
    at_city = [x["record_id"] for x in st.city.fillings]
    assert sorted(at_city) == sorted(f["record_id"] for f in fills)
    assert len(at_city) == len(set(at_city))
    conn = sqlite3.connect(st.store_path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert chain.verify(conn) == []
    finally:
        conn.close()


def test_steps_with_the_city_up(station, clock):
    st = station
    fills = [fill(st, VALID)]  # the city has answered: its Date vouches for our clock
    for offset, reading in ((-HOUR, PARTNER), (DAY, OTHER)):  # (a repeat within 3 s is dropped)
        clock.step_to(offset)
        d = scan_anew(st, reading)
        assert d["permit"] == 0 and d["reason"] == "RIG_FAULT", d
        assert "off the city's" in d["detail"] and not st.coils("rig-01")["permit"]
    clock.step_to(0)  # corrected: the refusals dated a day ahead must not block fills now
    fills.append(fill(st, PARTNER))
    assert "event=clock_reanchored" in st.log_tail(200)

    st.model("rig-01").flow_g_per_s = 2000  # a fill under way when the clock steps
    d = scan_anew(st, VALID)
    wait_for(lambda: st.model("rig-01").snapshot()["valve_open"], 5, "the valve open")
    clock.step_to(2 * HOUR)
    f = st.wait_fill("rig-01", d["id"], timeout=20)
    assert f["post_check"] == "ok" and not st.coils("rig-01")["permit"]
    fills.append(f)
    clock.step_to(0)
    all_delivered_once(st, fills)


def test_stepped_back_with_the_city_down_refuses_until_corrected(station, clock):
    st = station
    fills = [fill(st, VALID), fill(st, PARTNER)]  # now both in the cache
    st.stop_daemon()
    st.city.set_faults(reset=True)  # unreachable: no answer, so no Date either
    clock.step_to(-HOUR)
    st.start_daemon()  # no answer from the city yet: only the newest record to compare with
    d = scan_anew(st, PARTNER)
    assert d["permit"] == 0 and d["reason"] == "RIG_FAULT", d
    assert "earlier than the newest record" in d["detail"]
    assert not st.coils("rig-01")["permit"]
    clock.step_to(0)
    f = fill(st, VALID)
    assert st.rows("SELECT source FROM decisions WHERE id = ?", f["decision_id"]) == \
        [{"source": "cache"}]
    fills.append(f)
    st.city.clear_faults()
    st.db.execute("UPDATE outbox SET next_at = 0 WHERE state = 'pending'")
    st.db.commit()
    all_delivered_once(st, fills)
