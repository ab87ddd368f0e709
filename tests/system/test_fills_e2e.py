"""Whole fills end to end: the daemon runs the fill cycle on the rig simulator and delivers."""

import csv
import io
import json
import subprocess
import sys

import pytest

from simulators.dataset import STATION_UNIT, demo_cylinders, qr_url
from simulators.harness import OPERATORS, RigSpec, SimStation, wait_for
from station.today import station_today

CYL = demo_cylinders(station_today())
VALID = qr_url(CYL["valid"]["info_code"])  # tare 15.2 kg, fill capacity 14.5 kg
TARE_G, TARGET_G = 15200, 14500


@pytest.fixture
def station(tmp_path):
    """One rig whose start button is pressed 0.1 s after the permit; 20 kg/s (0.7 s a fill)."""
    st = SimStation(tmp_path, (RigSpec("rig-01", 1),), watchdog_ms=900,
                    rig_options={"start_delay_s": 0.1, "flow_g_per_s": 20000},
                    rig_keys={"permit_timeout_s": 1.5}).start()
    st.badge("rig-01", OPERATORS[0][1])
    yield st
    st.stop()


def fill(st, reading=VALID, gross=TARE_G):
    st.place("rig-01", gross)
    d = st.scan("rig-01", reading)
    assert d["permit"] == 1
    return d, st.wait_fill("rig-01", d["id"])


def test_normal_fill_is_recorded_and_delivered_once(station):
    d, f = fill(station)
    assert f["state"] == "closed" and f["post_check"] == "ok" and f["end_reason"] == "done"
    assert abs(f["net_g"] - TARGET_G) <= 500 and f["prefill_g"] == TARE_G
    assert f["cylinder_id"] == "CYL-000001" and f["operator"] == "张三"
    assert f["decision_id"] == d["id"] and f["source"] == "city" and f["pre_check"] == "ok"
    assert f["started_at"] <= f["ended_at"]
    wait_for(lambda: (c := station.coils("rig-01"))["lamp_green"] and not c["permit"], 2,
             "green lamp, permit gone")
    wait_for(lambda: station.city.fillings, 5, "the record at the city")
    [sent] = station.city.fillings
    assert sent["record_id"] == f["record_id"] and sent["id"] == "CYL-000001"
    assert sent["operator"] == "张三" and sent["filling_unit_name"] == STATION_UNIT
    assert sent["medium_code"] == "G13" and sent["net_mass_kg"] == round(f["net_g"] / 1000, 2)
    assert len(sent["fill_started_at"]) == 19 and sent["fill_date"] == f["fill_date"]
    row = wait_for(lambda: station.rows("SELECT * FROM outbox WHERE state = 'delivered'"), 5,
                   "delivered")
    assert row[0]["trace_id"] and station.city.submissions[f["record_id"]] == 1
    station.remove("rig-01")
    wait_for(lambda: not any(station.coils("rig-01").values()), 3, "lamps out after removal")


def test_the_previous_cylinders_latch_never_ends_the_next_fill(station):
    """FILL_DONE clears 0, 10, 100 and 250 ms after the permit write (rig-modbus.md): every
    fill is one whole fill, none a 0.00 kg underfill."""
    model = station.rig_sim.rig(1)
    model.start_delay_s = 0.4  # the start button after the slowest latch has cleared
    for n, latch_s in enumerate((0.0, 0.01, 0.1, 0.25)):
        model.latch_clear_s = latch_s
        cylinder = ("valid", "valid_partner", "due_soon", "special_23t0")[n]
        _, f = fill(station, qr_url(CYL[cylinder]["info_code"]))
        assert (f["post_check"], f["end_reason"]) == ("ok", "done"), (latch_s, f)
        assert abs(f["net_g"] - TARGET_G) <= 500 and f["started_at"] is not None
        station.remove("rig-01")
    assert model.snapshot()["valve_openings"] == 4
    wait_for(lambda: len(station.city.fillings) == 4, 10, "four records at the city")


def test_a_clamped_filling_head_is_no_fill_and_the_fill_after_it_is_whole(station):
    model = station.rig_sim.rig(1)
    model.start_delay_s = None  # the operator clamps the head on, then presses start
    station.place("rig-01")
    d = station.scan("rig-01", VALID)
    wait_for(lambda: station.coils("rig-01")["permit"], 5, "the permit")
    model.clamp_head(150)
    since = station.last_id("rig_events")
    wait_for(lambda: station.live("rig-01").get("gross_g") == TARE_G + 150, 5,
             "the daemon to weigh the clamped head")
    assert station.coils("rig-01")["permit"]
    assert station.rows("SELECT * FROM rig_events WHERE id > ? AND event = 'permit_withdrawn'",
                        since) == []
    model.press_start()
    f = station.wait_fill("rig-01", d["id"])
    assert f["state"] == "closed" and f["end_reason"] == "done" and f["post_check"] == "ok"


@pytest.mark.parametrize("overshoot,check,red", [(800, "overfill", True),
                                                  (-800, "underfill", False)])
def test_overfill_and_underfill(station, overshoot, check, red):
    station.rig_sim.rig(1).set_overshoot(overshoot)
    _, f = fill(station)
    assert f["post_check"] == check and abs(f["net_g"] - (TARGET_G + overshoot)) <= 100
    wait_for(lambda: (c := station.coils("rig-01"))["lamp_red"] == red
             and c["lamp_green"] != red, 2, "the lamps to show the check")


def test_removal_mid_fill_is_an_interrupted_record(station):
    model = station.rig_sim.rig(1)
    model.flow_g_per_s = 2000  # a slower fill: 7 s
    station.place("rig-01")
    d = station.scan("rig-01", VALID)
    wait_for(lambda: model.snapshot()["gross_g"] > TARE_G + 2000, 5, "mass climbing")
    model.remove_cylinder()
    f = station.wait_fill("rig-01", d["id"])
    assert f["post_check"] == "interrupted" and f["end_reason"].startswith("cylinder removed; mass last seen before the removal")
    assert 1000 < f["net_g"] < TARGET_G
    assert not station.coils("rig-01")["permit"]
    wait_for(lambda: station.city.fillings, 5, "the interrupted record at the city")
    assert station.city.fillings[0]["post_check"] == "interrupted"


def test_estop_mid_fill_is_interrupted(station):
    model = station.rig_sim.rig(1)
    model.flow_g_per_s = 2000
    station.place("rig-01")
    d = station.scan("rig-01", VALID)
    wait_for(lambda: model.snapshot()["gross_g"] > TARE_G + 500, 5, "mass climbing")
    model.set_estop(True)
    f = station.wait_fill("rig-01", d["id"])
    assert f["post_check"] == "interrupted" and f["end_reason"] == "ESTOP"
    wait_for(lambda: station.coils("rig-01")["lamp_red"], 2, "the red lamp")


def test_unused_permit_expires(station):
    station.rig_sim.rig(1).start_delay_s = None  # nobody presses start
    station.place("rig-01")
    d = station.scan("rig-01", VALID)
    assert station.coils("rig-01")["permit"]
    f = station.wait_fill("rig-01", d["id"], timeout=5)
    assert f["state"] == "cancelled" and f["end_reason"] == "permit unused: expired"
    assert not station.coils("rig-01")["permit"]
    assert station.rows("SELECT count(*) AS n FROM outbox")[0]["n"] == 0  # not a fill


def test_a_scan_before_the_cylinder_is_put_down_is_judged_once_it_stands(station):
    station.remove("rig-01")
    since = station.last_id()
    station.scanners["rig-01"].send(VALID)
    wait_for(lambda: "event=reading_held" in station.log_path.read_text(encoding="utf-8"), 5,
             "the reading held for the cylinder")
    assert station.last_id() == since  # nothing to weigh yet: no verdict
    station.place("rig-01")
    d = station.wait_decision("rig-01", since)
    assert d["permit"] == 1 and "CYL-000001" == d["cylinder_id"]
    f = station.wait_fill("rig-01", d["id"])
    assert f["post_check"] == "ok" and f["prefill_g"] == TARE_G


def station_cli(st, *args):
    return subprocess.run([sys.executable, "-m", "station", *args, "--config",
                           str(st.config_path)], capture_output=True, text=True, timeout=30)


def supervisor_badge(st, rig="rig-01"):
    """The supervisor's badge at the rig; returns the id of the last rig event before it."""
    since = st.last_id("rig_events")
    st.scanners[rig].send(next(b for _, b, role in OPERATORS if role == "supervisor"))
    return since


def test_supervisor_override_of_city_unavailable_is_recorded_and_delivered(station):
    partner = qr_url(CYL["valid_partner"]["info_code"])
    station.place("rig-01")
    assert station.scan("rig-01", partner)["source"] == "city"  # the city's record, cached
    station.db.execute("UPDATE cylinders SET fetched_at = fetched_at - 73 * 3600")  # 3 days on
    station.db.commit()
    station.city.set_faults(status=503)
    station.remove("rig-01")
    station.place("rig-01")
    refused = station.scan("rig-01", partner)
    assert refused["reason"] == "CITY_UNAVAILABLE" and not station.coils("rig-01")["permit"]
    since = station.last_id()
    supervisor_badge(station)
    d = station.wait_decision("rig-01", since)
    assert d["permit"] == 1 and "override of decision" in d["detail"]
    f = station.wait_fill("rig-01", d["id"])
    assert f["override_by"] == "王主管" and f["override_reason"] and f["post_check"] == "ok"
    assert f["cylinder_id"] == "CYL-000002"
    listed = json.loads(station_cli(station, "records", "--override", "--json").stdout)
    assert [r["record_id"] for r in listed] == [f["record_id"]]
    station.city.clear_faults()
    station_cli(station, "sync", "--now")
    wait_for(lambda: station.city.fillings, 10, "the override fill at the city")
    assert station.city.fillings[0]["id"] == "CYL-000002"


def test_no_override_without_a_cached_record(station):
    station.city.set_faults(status=503)
    station.place("rig-01")
    refused = station.scan("rig-01", qr_url(CYL["offline_uncached"]["info_code"]))
    assert refused["reason"] == "CITY_UNAVAILABLE"
    since = supervisor_badge(station)
    [event] = wait_for(lambda: station.rows("SELECT * FROM rig_events WHERE id > ? AND event = "
                                            "'override_refused'", since), 5, "the refusal")
    assert "no cached city record" in event["detail"]
    assert station.last_id() == refused["id"] and not station.coils("rig-01")["permit"]


def test_what_the_city_refused_stays_refused_through_an_outage(station):
    unknown = qr_url("500112CQ9999999999")
    station.place("rig-01")
    assert station.scan("rig-01", unknown)["reason"] == "NOT_REGISTERED"
    station.city.set_faults(status=503)
    station.remove("rig-01")
    station.place("rig-01")
    again = station.scan("rig-01", unknown)
    assert (again["reason"], again["source"]) == ("NOT_REGISTERED", "cache")
    assert "remembered" in again["detail"]
    since = supervisor_badge(station)  # never overridable: the badge does nothing
    wait_for(lambda: station.rows("SELECT * FROM rig_events WHERE id > ? AND event = "
                                  "'badge_ignored'", since), 5, "the badge ignored")
    assert station.last_id() == again["id"] and not station.coils("rig-01")["permit"]
    assert station.rig_sim.rig(1).snapshot()["valve_openings"] == 0


def test_override_never_fills_a_cylinder_that_does_not_weigh_like_its_type(station):
    uncached = qr_url(CYL["offline_uncached"]["info_code"])
    station.city.set_faults(status=503)
    station.place("rig-01", 6500)  # far lighter than the type table's 15.0 kg LPG tare
    refused = station.scan("rig-01", uncached)
    assert refused["reason"] == "CITY_UNAVAILABLE"
    supervisor = next(b for _, b, role in OPERATORS if role == "supervisor")
    mark = station.log_path.read_text(encoding="utf-8").count("event=override_refused")
    station.scanners["rig-01"].send(supervisor)
    wait_for(lambda: station.log_path.read_text(encoding="utf-8").count(
        "event=override_refused") > mark, 5, "the override refused")
    assert "MASS_MISMATCH" in station.log_path.read_text(encoding="utf-8").split(
        "event=override_refused")[-1].splitlines()[0]
    assert station.last_id() == refused["id"] and not station.coils("rig-01")["permit"]


def test_override_is_refused_for_a_scrapped_cylinder(station):
    station.place("rig-01")
    refused = station.scan("rig-01", qr_url(CYL["scrapped"]["info_code"]))
    assert refused["reason"] == "SCRAPPED"
    supervisor = next(b for _, b, role in OPERATORS if role == "supervisor")
    since = station.last_id("rig_events")
    station.scanners["rig-01"].send(supervisor)  # an override attempt, or nothing
    ignored = wait_for(lambda: station.rows("SELECT * FROM rig_events WHERE id > ? AND "
                                            "event = 'badge_ignored'", since), 5, "the badge")
    assert "overridable refusal" in ignored[0]["detail"]
    assert station.last_id() == refused["id"] and not station.coils("rig-01")["permit"]
    # never a log-in: the operator on shift stays, and the next fill is theirs
    assert [e["operator"] for e in station.rows("SELECT * FROM operator_events")] == ["张三"]
    _, f = fill(station, qr_url(CYL["valid"]["info_code"]), TARE_G)
    assert f["operator"] == "张三"


def test_the_refill_warning_counts_fills_not_unused_permits(station):
    fill(station)
    station.remove("rig-01")
    station.place("rig-01")
    assert station.scan("rig-01", VALID)["warnings"] == "RECENT_REFILL"
    station.rig_sim.rig(1).start_delay_s = None  # nobody presses start: permits go unused
    partner = qr_url(CYL["valid_partner"]["info_code"])
    assert station.scan("rig-01", partner)["permit"] == 1
    station.remove("rig-01")
    station.place("rig-01")
    d = station.scan("rig-01", partner)
    assert d["permit"] == 1 and d["warnings"] is None


def test_operator_cli_and_records_filters(station):
    assert station_cli(station, "operator", "logout", "--rig", "rig-01", "张三").returncode == 0
    assert station.scan("rig-01", VALID)["reason"] == "NO_OPERATOR"
    assert station_cli(station, "operator", "login", "--rig", "ｒｉｇ-01 ", "李四\u3000"
                       ).returncode == 0  # as typed: full-width letters, trailing blanks
    _, f = fill(station, qr_url(CYL["valid_partner"]["info_code"]))
    assert f["operator"] == "李四"
    out = station_cli(station, "records", "--operator", "李四", "--csv", "--lang", "en")
    assert out.stdout.startswith("\ufeffrecord_id,")  # a BOM for Excel, English headings
    rows = list(csv.DictReader(io.StringIO(out.stdout.removeprefix("\ufeff"))))
    chinese = station_cli(station, "records", "--operator", "李四", "--csv").stdout
    assert chinese.startswith("\ufeff记录号,充装日期,") and f["record_id"] in chinese
    assert len(rows) == 1 and rows[0]["record_id"] == f["record_id"]
    assert rows[0]["post_check"] == "ok" and rows[0]["operator"] == "李四"
    none = station_cli(station, "records", "--operator", "张三", "--json")
    assert json.loads(none.stdout) == []
    typed = station_cli(station, "records", "--operator", " 李四\u3000", "--cylinder",
                        "cyl－000002", "--json")  # as typed: blanks, an IME hyphen, lower case
    assert [r["record_id"] for r in json.loads(typed.stdout)] == [f["record_id"]]
    wait_for(lambda: station.city.fillings, 5, "delivery")
    outbox = station_cli(station, "outbox")
    assert "delivered 1" in outbox.stdout
    bad = station_cli(station, "operator", "login", "--rig", "rig-01", "无名氏")
    assert bad.returncode == 2 and "not an operator" in bad.stderr


def test_fill_cut_by_a_crash_is_recorded_as_interrupted_after_restart(station):
    model = station.rig_sim.rig(1)
    model.flow_g_per_s = 2000
    station.place("rig-01")
    d = station.scan("rig-01", VALID)
    wait_for(lambda: model.snapshot()["gross_g"] > TARE_G + 1500, 5, "mass climbing")
    station.daemon.kill()  # SIGKILL: power cut, mid-fill
    station.daemon.wait()
    wait_for(lambda: not model.snapshot()["valve_open"], 2, "the watchdog to close the valve")
    assert station.rows("SELECT state FROM fills WHERE decision_id = ?", d["id"])[0]["state"] \
        == "open"
    station.daemon = None
    station.start_daemon()
    f = station.wait_fill("rig-01", d["id"])
    assert f["state"] == "closed" and f["post_check"] == "interrupted"
    assert f["end_reason"] == "station restarted during the fill" and f["net_g"] > 1500
    wait_for(lambda: station.city.fillings, 5, "the interrupted fill at the city")


def test_a_fill_completed_while_the_daemon_was_dead_is_recorded_as_it_ended(station):
    model = station.rig_sim.rig(1)
    model.flow_g_per_s = 40000  # 0.36 s to the target: before the 0.9 s watchdog trips
    station.place("rig-01")
    d = station.scan("rig-01", VALID)
    wait_for(lambda: model.snapshot()["valve_open"], 5, "the valve open")
    station.daemon.kill()  # SIGKILL: the controller carries on to its cut-off
    station.daemon.wait()
    wait_for(lambda: model.snapshot()["fill_done"], 3, "the controller's cut-off at target")
    station.daemon = None
    station.start_daemon()
    f = station.wait_fill("rig-01", d["id"])
    assert (f["state"], f["end_reason"], f["post_check"]) == ("closed", "done", "ok")
    assert abs(f["net_g"] - TARGET_G) <= 500


def test_override_is_refused_when_the_cached_record_fails_another_rule(tmp_path):
    st = SimStation(tmp_path, (RigSpec("rig-01", 1),), offline_max_age_h=0,  # strict offline
                    rig_options={"start_delay_s": None}).start()
    try:
        st.badge("rig-01", OPERATORS[0][1])
        st.place("rig-01")
        scrapped = qr_url(CYL["scrapped"]["info_code"])
        assert st.scan("rig-01", scrapped)["reason"] == "SCRAPPED"  # now in the cache
        st.city.set_faults(status=503)
        refused = st.scan("rig-01", CYL["scrapped"]["product_no"])  # another key: no dedup
        assert refused["reason"] == "CITY_UNAVAILABLE"  # strict: the cache is not used
        supervisor = next(b for _, b, role in OPERATORS if role == "supervisor")
        st.scanners["rig-01"].send(supervisor)
        wait_for(lambda: st.rows("SELECT 1 FROM rig_events WHERE event = 'override_refused'"),
                 5, "the override refused")
        assert st.last_id() == refused["id"] and not st.coils("rig-01")["permit"]
    finally:
        st.stop()
