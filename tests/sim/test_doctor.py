"""`station doctor` passes on a healthy station and fails on each broken thing, one at a time."""

import email.utils
import os
import re
import shutil
import subprocess
import sys
import time

import pytest

from simulators import city as city_sim
from simulators.harness import RigSpec, SimStation
from station import doctor
from station.store import Store

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
    yield st
    st.stop()


def doctor_of(st, extra=""):
    if extra:
        st.write_config(extra)
    return doctor.run(str(st.config_path))


def test_healthy_station_with_its_daemon_running(tmp_path):
    st = SimStation(tmp_path, RIGS).start()
    try:
        run = subprocess.run([sys.executable, "-m", "station", "doctor", "--config",
                              str(st.config_path)], capture_output=True, text=True, timeout=60)
    finally:
        st.stop()
    assert run.returncode == 0, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["PASS"] * 9, run.stdout
    names = [line[6:30].strip() for line in lines]
    assert names == ["config", "store", "rig rig-01", "rig rig-02", "reader rig-01-reader1",
                     "reader rig-02-reader1", "city", "clock", "disk"]
    assert "in use (daemon running?)" in lines[4] and "integrity ok" in lines[1]
    assert "token obtained" in lines[6]


def test_healthy_station_without_its_daemon(parts):
    checks = doctor_of(parts)
    assert not doctor.failed(checks), doctor.render(checks)
    assert "not created yet" in checks[1].detail and "opens" in checks[4].detail


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
