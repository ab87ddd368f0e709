"""The cylinder on the scale is the cylinder judged: its mass, and readings bound to it (e2e)."""

import pytest

from simulators.dataset import demo_cylinders, qr_url
from simulators.harness import OPERATORS, RigSpec, SimStation, wait_for
from station.today import station_today

CYL = demo_cylinders(station_today())
VALID = qr_url(CYL["valid"]["info_code"])  # a stamped 15.2 kg tare, 14.5 kg target
NEIGHBOUR_UID = "E2801160600002084C1A2B99"  # a tag on the next cylinder, in the same field


@pytest.fixture
def station(tmp_path):
    st = SimStation(tmp_path, (RigSpec("rig-01", 1, rfid=True),),
                    rig_options={"start_delay_s": None}, rig_keys={"hold_reading_s": 1.0}).start()
    yield st
    st.stop()


def sees(st, present):
    wait_for(lambda: st.live("rig-01").get("present") is present, 5,
             f"the daemon to see the scale {'occupied' if present else 'empty'}")


def test_a_light_cylinder_wearing_a_heavier_records_tag_gets_no_permit(station):
    station.badge("rig-01", OPERATORS[0][1])
    station.place("rig-01", 6500)
    d = station.scan("rig-01", VALID)
    assert (d["permit"], d["reason"], d["cylinder_id"]) == (0, "MASS_MISMATCH", "CYL-000001")
    assert "gross 6.50 kg" in d["detail"] and "tare 15.20 kg" in d["detail"]
    assert not station.coils("rig-01")["permit"]
    assert station.rows("SELECT * FROM fills") == []  # no fill row: nothing was permitted
    station.remove("rig-01")
    station.place("rig-01", 29800)  # one already full
    d = station.scan("rig-01", VALID, settle=True)
    assert (d["permit"], d["reason"]) == (0, "CYLINDER_FULL")


def test_a_scan_before_the_cylinder_is_put_down_waits_for_it_or_is_refused(station):
    station.badge("rig-01", OPERATORS[0][1])
    since = station.last_id()
    station.scanners["rig-01"].send(VALID)  # scanned, then put down within hold_reading_s
    station.place("rig-01")
    d = station.wait_decision("rig-01", since)
    assert d["permit"] == 1 and d["cylinder_id"] == "CYL-000001"
    wait_for(lambda: station.coils("rig-01")["permit"], 5, "the permit")
    station.remove("rig-01")
    assert not station.coils("rig-01")["permit"]
    d = station.scan("rig-01", VALID)  # nothing comes within hold_reading_s: void, refused
    assert (d["permit"], d["reason"]) == (0, "NO_CYLINDER")
    station.place("rig-01")
    sees(station, True)
    assert not station.coils("rig-01")["permit"]  # the void scan never permits it
    assert station.last_id() == d["id"]


def test_a_cylinder_swapped_under_its_permit_loses_it(station):
    station.badge("rig-01", OPERATORS[0][1])
    station.place("rig-01")
    d = station.scan("rig-01", VALID)
    wait_for(lambda: station.coils("rig-01")["permit"], 5, "the permit")
    station.model("rig-01").place_cylinder(9000)  # another, lighter one, without a gap
    wait_for(lambda: not station.coils("rig-01")["permit"], 5, "the permit withdrawn")
    wait_for(lambda: station.rows("SELECT state FROM fills WHERE decision_id = ?", d["id"])
             == [{"state": "cancelled"}], 5, "the unused permit's row cancelled")
    refused = station.wait_decision("rig-01", d["id"])
    assert (refused["permit"], refused["reason"]) == (0, "MASS_MISMATCH")


def test_two_tags_in_an_rfid_field_are_ambiguous_and_decided_once(station):
    station.badge("rig-01", OPERATORS[0][1])
    station.place("rig-01")
    rfid, since = station.rfids["rig-01"], station.last_id()
    queries = station.city.requests["/api/v1/cylinders/query"]
    rfid.enter(CYL["rfid"]["rfid_uid"])
    rfid.enter(NEIGHBOUR_UID)  # reported in turn with the cylinder's own tag
    sent = rfid.sent
    wait_for(lambda: rfid.sent >= sent + 32, 10, "four seconds of alternating reports")
    rfid.leave()
    rows = station.rows("SELECT permit, reason FROM decisions WHERE id > ?", since)
    # the first tag judged, the second refused; then judged again at most once a dedup_s
    # (3 s: the neighbour's tag may have gone) while both stay in the field
    assert len(rows) <= 3 and rows[-1] == {"permit": 0, "reason": "AMBIGUOUS_TAGS"}
    assert station.city.requests["/api/v1/cylinders/query"] - queries <= 1
    assert not station.coils("rig-01")["permit"]
    grants = station.rows("SELECT * FROM rig_events WHERE event = 'permit_granted'")
    assert len(grants) <= 1


def test_a_badge_beside_a_tag_logs_in_once_and_the_tag_is_judged_once(station):
    station.place("rig-01")
    rfid, since = station.rfids["rig-01"], station.last_id()
    rfid.enter(OPERATORS[0][1])
    wait_for(lambda: station.rows("SELECT * FROM operator_events"), 5, "the log-in")
    rfid.enter(CYL["rfid"]["rfid_uid"])
    sent = rfid.sent
    wait_for(lambda: rfid.sent >= sent + 32, 10, "four seconds of alternating reports")
    rfid.leave()
    events = station.rows("SELECT operator, event FROM operator_events")
    assert events == [{"operator": "张三", "event": "login"}]
    rows = station.rows("SELECT permit, cylinder_id FROM decisions WHERE id > ?", since)
    assert rows == [{"permit": 1, "cylinder_id": "CYL-000016"}]


def test_an_rfid_tag_read_before_the_scale_settles_gets_its_verdict(tmp_path):
    """The tag repeats 8 times a second (faster than the 200 ms poll) while the cylinder swings
    for 1.3 s: the held reading is judged once the scale is stable, not starved."""
    st = SimStation(tmp_path, (RigSpec("rig-01", 1, rfid=True),), poll_ms=200,
                    rig_options={"start_delay_s": None}).start()
    try:
        st.badge("rig-01", OPERATORS[0][1])
        since = st.last_id()
        st.model("rig-01").place_cylinder(15200, settle_s=1.3)
        sees(st, True)
        st.rfids["rig-01"].enter(CYL["rfid"]["rfid_uid"])
        d = st.wait_decision("rig-01", since, timeout=8)
        assert (d["permit"], d["cylinder_id"]) == (1, "CYL-000016")
    finally:
        st.rfids["rig-01"].leave()
        st.stop()


def test_an_override_is_for_the_cylinder_refused_not_the_one_put_down_after(tmp_path):
    st = SimStation(tmp_path, (RigSpec("rig-01", 1),), rig_options={"start_delay_s": None},
                    offline_max_age_h=0).start()  # strict: a cached record is overridable only
    try:
        st.badge("rig-01", OPERATORS[0][1])
        st.place("rig-01")
        assert st.scan("rig-01", VALID)["permit"] == 1  # the city's record, cached
        st.city.set_faults(status=503)
        st.remove("rig-01")
        st.place("rig-01")
        refused = st.scan("rig-01", VALID)
        assert refused["reason"] == "CITY_UNAVAILABLE"
        st.remove("rig-01")
        st.place("rig-01", 15300)  # another cylinder of the same size, never scanned
        sees(st, True)
        since = st.last_id("rig_events")
        st.scanners["rig-01"].send(OPERATORS[2][1])  # the supervisor's badge within 60 s
        [event] = wait_for(lambda: st.rows("SELECT * FROM rig_events WHERE id > ? AND event "
                                           "= 'override_refused'", since), 5, "the refusal")
        assert "no longer the one on the scale" in event["detail"]
        assert st.last_id() == refused["id"] and not st.coils("rig-01")["permit"]
    finally:
        st.stop()
