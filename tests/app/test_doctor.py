"""`station doctor` passes on a healthy station and fails on each broken thing, one at a time."""

import email.utils
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from simulators import city as city_sim
from simulators.harness import RigSpec, SimStation, wait_for
from station.app import doctor
from station.app.daemon import links_path
from station.app.startup import FIRST_START
from station.core.fills import local
from station.core.model import Decision, Reading, Verdict
from station.store import chain, retention
from station.store.db import Store

RIGS = (RigSpec("rig-01", 1), RigSpec("rig-02", 2))


def statuses(checks):
    return {c.name: c.status for c in checks}


def failures(checks):
    return {c.name: c.detail for c in checks if c.status == "FAIL"}


@pytest.fixture
def parts(tmp_path):
    """City, rig and scanner simulators and a config, but no daemon (nothing holds a port)."""
    st = SimStation(tmp_path, RIGS)
    st.city.start()
    st.rig_sim.start()
    for scanner in st.scanners.values():
        scanner.start()
    st.write_config()
    (st.store_path.parent / FIRST_START).touch()  # as make install leaves the state folder
    yield st
    st.stop()


def doctor_of(st, extra=""):
    if extra:
        st.write_config(extra)
    return doctor.run(str(st.config_path))


def test_healthy_station_with_its_daemon_running(tmp_path):
    st = SimStation(tmp_path, RIGS).start()
    try:
        stats = Path(links_path(str(st.store_path)))  # the daemon's links, for doctor
        wait_for(lambda: stats.is_file() and len(json.loads(stats.read_text())["links"][0][
            "units"]) == 2, 15, "the daemon's link stats")
        run = subprocess.run([sys.executable, "-m", "station", "doctor", "--config",
                              str(st.config_path)], capture_output=True, text=True, timeout=60)
    finally:
        st.stop()
    assert run.returncode == 0, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    *lines, nobody = lines  # the harness configures no [[web.users]]: a warning, not a failure
    assert nobody.startswith("WARN  setup") and "no [[web.users]]" in nobody, run.stdout
    assert [line.split()[0] for line in lines] == ["PASS"] * 12, run.stdout
    names = [line[6:30].strip() for line in lines]
    assert names == ["config", "store", "chain", "rig rig-01", "rig rig-02",
                     f"link tcp://127.0.0.1:{st.rig_sim.port}"[:24],
                     "reader rig-01-reader1", "reader rig-02-reader1", "city", "clock", "disk",
                     "blocklist"]
    assert "in use (daemon running?)" in lines[6] and "integrity ok" in lines[1]
    assert "2 rig(s)" in lines[5] and "heartbeat gap max" in lines[5]
    assert "token obtained" in lines[8]


def test_link_stats_of_the_running_daemon(tmp_path):
    """An overloaded line and late heartbeats are warnings naming the rigs; a file the daemon
    has not refreshed for LINK_STATS_STALE_S is no running daemon (no line)."""
    store = str(tmp_path / "station.db")
    unit = {"sent": 90, "late": 0, "max_gap_s": 0.98, "unfed": False}
    link = {"endpoint": "rtu:///dev/ttyS1", "overloaded": True, "poll_stretch": 1.5,
            "overloads": 1, "busy": 0.91, "units": {"rig-01": unit,
                                                    "rig-02": {**unit, "late": 3}}}
    Path(links_path(store)).write_text(json.dumps({"at": 1000.0, "links": [link]}))
    (check,) = doctor.check_links(store, now=1001.0)
    assert check.status == "WARN" and check.name == "link rtu:///dev/ttyS1"
    assert "overloaded" in check.detail and "rig-02: 3" in check.detail
    assert "rig-01" not in check.detail.split("late heartbeats")[1].split(";")[0]
    healthy = {**link, "overloaded": False, "units": {"rig-01": unit}}
    Path(links_path(store)).write_text(json.dumps({"at": 1000.0, "links": [healthy]}))
    assert [c.status for c in doctor.check_links(store, now=1001.0)] == ["PASS"]
    assert doctor.check_links(store, now=1000.0 + doctor.LINK_STATS_STALE_S + 1) == []


def test_healthy_station_without_its_daemon(parts):
    checks = doctor_of(parts)
    assert not doctor.failed(checks), doctor.render(checks)
    assert "not created yet" in checks[1].detail and "opens" in checks[5].detail
    assert (checks[2].name, checks[2].detail) == ("chain", "no store yet: nothing to verify")


def test_rig_simulator_stopped(parts):
    parts.rig_sim.stop()
    assert failures(doctor_of(parts)).keys() == {"rig rig-01", "rig rig-02"}


def test_city_stopped(parts):
    url = parts.city.url
    parts.city.stop()
    failed = failures(doctor_of(parts))
    assert failed.keys() == {"city", "clock"}
    assert url in failed["city"]


def test_wrong_app_secret(parts):
    (parts.workdir / "app_secret").write_text("not-the-secret\n")
    failed = failures(doctor.run(str(parts.config_path)))
    assert failed.keys() == {"city"} and "credentials" in failed["city"]


def test_store_that_is_not_sqlite(parts):
    parts.store_path.write_bytes(b"this is not a database, it is a shopping list\n" * 200)
    failed = failures(doctor_of(parts))
    assert failed.keys() == {"store"} and "not a database" in failed["store"]


# --- the record chain ------------------------------------------------------------------------
def decide(store, n, at=None, permit=False):
    reading = Reading(raw=f"X{n}", kind="info_code", value=f"X{n}", reader="rig-01-reader1")
    verdict = Verdict(permit=permit, reason=None if permit else "SCRAPPED", cylinder_id=f"C{n}")
    store.record_decision(Decision(at or datetime.now(UTC), "rig-01", reading, verdict, "city",
                                   None, 1.0, "张三"))


def records(path):
    """Three decisions and a fill: the fill is the chain's head."""
    store = Store(str(path))
    for n in range(3):
        decide(store, n)
    ended = time.time() - 5
    store.close_fill({"record_id": "0190-r1", "rig": "rig-01", "medium": "G13",
                      "source": "city", "tare_g": 15000, "target_g": 14500, "net_g": 14400,
                      "post_check": "ok", "started_at": ended - 60, "ended_at": ended},
                     {"record_id": "0190-r1"})
    store.close()


def newest_row(path):
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT seq, hash, kind, ref FROM chain ORDER BY seq DESC "
                            "LIMIT 1").fetchone()
    finally:
        conn.close()


def test_chain_passes_showing_its_head_then_fails_naming_the_edited_row(parts):
    records(parts.store_path)
    checks = doctor_of(parts)
    assert not doctor.failed(checks), doctor.render(checks)
    seq, full, kind, ref = newest_row(parts.store_path)
    assert (seq, kind, ref) == (4, "fill", "0190-r1")
    line = next(c for c in checks if c.name == "chain")
    store = Store(str(parts.store_path), readonly=True)
    ended = store.value("SELECT ended_at FROM fills WHERE record_id = '0190-r1'")
    store.close()
    assert line.status == "PASS" and line.detail.startswith("4 entries verified in ")
    assert line.detail.endswith(f"head #4 {full[:16]} (fill at {local(ended)})"), line.detail
    conn = sqlite3.connect(parts.store_path)
    with conn:
        conn.execute("UPDATE decisions SET permit = 1, reason = NULL WHERE id = 2")
    conn.close()
    failed = failures(doctor_of(parts))
    assert failed.keys() == {"chain"}
    assert failed["chain"].startswith("decision 2 (chain entry 2) edited;"), failed["chain"]


def test_chain_check_names_the_first_of_several_problems(tmp_path):
    path = tmp_path / "station.db"
    records(path)
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("DELETE FROM fills WHERE record_id = '0190-r1'")
        conn.execute("UPDATE decisions SET cylinder_id = 'C9' WHERE id = 1")
    conn.close()
    check = doctor.check_chain(str(path))
    assert check.status == "FAIL"
    assert check.detail.startswith("decision 1 (chain entry 1) edited (and 1 more: station "
                                   "verify); walked 4 entries in "), check.detail


def test_chain_check_accepts_what_retention_pruned(tmp_path):
    path = tmp_path / "station.db"
    store = Store(str(path))
    decide(store, 1, at=datetime.now(UTC) - timedelta(days=3 * 365))
    retention.prune(store, 2)
    assert chain.verify(store.conn) == ["decision 1 (chain entry 1) deleted"]  # the raw walk
    check = doctor.check_chain(str(path))
    assert check.status == "PASS", check.detail
    assert check.detail.endswith(f"head #1 {newest_row(path)[1][:16]} (decision at time unknown: "
                                 "record pruned)"), check.detail
    decide(store, 2)
    at = store.value("SELECT at FROM decisions WHERE id = 2")
    store.close()
    check = doctor.check_chain(str(path))
    assert check.status == "PASS" and check.detail.startswith("2 entries verified")
    assert check.detail.endswith(f"head #2 {newest_row(path)[1][:16]} (decision at "
                                 f"{local(at)})"), check.detail


def test_chain_check_before_any_record(tmp_path):
    path = tmp_path / "station.db"
    assert doctor.check_chain(str(path)) == doctor.Check("chain", "PASS",
                                                         "no store yet: nothing to verify")
    Store(str(path)).close()
    assert doctor.check_chain(str(path)) == doctor.Check("chain", "PASS", "no records yet")
    older = tmp_path / "older.db"
    with sqlite3.connect(older) as conn:  # a store the daemon has not upgraded to the chain yet
        conn.execute("CREATE TABLE decisions (id INTEGER PRIMARY KEY)")
    conn.close()
    check = doctor.check_chain(str(older))
    assert (check.status, "no chain table yet" in check.detail) == ("WARN", True), check


def test_store_read_only(parts):
    Store(str(parts.store_path)).close()
    parts.store_path.chmod(0o444)
    parts.workdir.chmod(0o555)
    cmd = [sys.executable, "-m", "station", "doctor", "--config", str(parts.config_path)]
    if os.geteuid() == 0:  # root writes anywhere unless it gives up the override capability
        assert shutil.which("setpriv")
        cmd = ["setpriv", "--inh-caps=-all", "--bounding-set=-dac_override,-dac_read_search",
               "--", *cmd]
    try:
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    finally:
        parts.workdir.chmod(0o755)
    assert run.returncode == 1, run.stdout + run.stderr
    failed = [line for line in run.stdout.splitlines() if line.startswith("FAIL")]
    assert len(failed) == 1 and "store" in failed[0] and "readonly" in failed[0], run.stdout


def test_disk_space_threshold(parts):
    failed = failures(doctor_of(parts, "\n[doctor]\nmin_free_mb = 10000000\n"))
    assert failed.keys() == {"disk"} and "want 10000000 MB" in failed["disk"]


def test_clock_skew_against_the_city_date(parts, monkeypatch):
    monkeypatch.setattr(city_sim._Handler, "date_time_string", lambda self, ts=None:
                        email.utils.formatdate(time.time() - 600, usegmt=True))
    failed = failures(doctor_of(parts))
    assert failed.keys() == {"clock"}
    skew = re.match(r"our clock is ([\d.]+) s ahead of", failed["clock"])
    assert skew and 598 <= float(skew[1]) <= 601, failed["clock"]
    ok = doctor_of(parts, "\n[doctor]\nmax_clock_skew_s = 3600\n")
    assert statuses(ok)["clock"] == "PASS" and not doctor.failed(ok)


def test_invalid_config_is_one_failure(parts):
    parts.config_path.write_text("[station]\nunit_nmae = 1\n")
    checks = doctor.run(str(parts.config_path))
    assert [(c.name, c.status) for c in checks] == [("config", "FAIL")]


@pytest.mark.parametrize("sent,received,date,skew", [
    (100.2, 100.3, 100, 0.0),  # within the same second
    (100.9, 101.2, 101, 0.0),  # the second turned while we waited
    (170.5, 170.6, 100, 69.5),  # we are ahead
    (40.0, 40.1, 100, -59.9),  # we are behind
])
def test_clock_skew_function(sent, received, date, skew):
    header = email.utils.formatdate(date, usegmt=True)
    assert doctor.clock_skew_s(header, sent, received) == pytest.approx(skew)


@pytest.mark.parametrize("skew,limit,status", [(0.0, 0, "PASS"), (0.5, 0, "FAIL"),
                                               (20, 60, "PASS"), (-40, 60, "WARN"),
                                               (61, 60, "FAIL")])
def test_skew_verdict(skew, limit, status):
    assert doctor.skew_check(skew, limit).status == status
