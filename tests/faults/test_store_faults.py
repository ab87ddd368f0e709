"""The disk full or the store unwritable, under the real daemon: no fill is judged without its
decision committed, a fill record the store refuses is held in memory (no new fill meanwhile)
and committed once the store takes it again, without a restart; nothing lost, nothing twice at
the city, the store intact. Each test runs on a real ENOSPC (a full tmpfs, where this process
may mount one) and on EFBIG (RLIMIT_FSIZE of the daemon, unprivileged): the main trial on both,
the others on the real one where this process may mount, else on EFBIG. The long campaign
(tests/faults/run_campaign.py) runs the trial many times over."""

import random
import re
import socket
import time
from contextlib import contextmanager

import pytest
from store_faults import (
    ERRORS,
    LogMark,
    can_mount,
    integrity,
    mechanism_for,
    mount_tmpfs,
    trial_disk_full,
    unmount,
)

from simulators.dataset import demo_cylinders, qr_url
from simulators.harness import OPERATORS, RigSpec, SimStation, wait_for
from station.core.texts import reason_text
from station.today import station_today

CYL = demo_cylinders(station_today())


WATCHDOG_MS = 900
MECHANISMS = ["enospc", "efbig"]


@contextmanager
def running_station(tmp_path, mechanism):
    """The station with its store on a 4 MB tmpfs (enospc) or logging through a pipe (efbig);
    the tmpfs always unmounted after."""
    if mechanism == "enospc" and not can_mount():
        pytest.skip("cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN); efbig runs")
    store_dir = mount_tmpfs(tmp_path / "store", 4) if mechanism == "enospc" else None
    st = SimStation(tmp_path, (RigSpec("rig-01", 1),), watchdog_ms=WATCHDOG_MS, deadline_s=0.5,
                    rig_options={"start_delay_s": 0.05, "flow_g_per_s": 30000},
                    extra_config="[sync]\nrate_per_s = 0\nbackoff_cap_s = 1\n"
                                 "submit_timeout_s = 1\n",
                    store_dir=store_dir, log_pipe=mechanism == "efbig")
    try:
        st.start()
        st.badge("rig-01", OPERATORS[0][1])
        assert mechanism_for(st).name == mechanism
        yield st
    finally:
        st.stop()
        if store_dir is not None:
            unmount(store_dir)


def best() -> str:
    return "enospc" if can_mount() else "efbig"


@pytest.fixture(params=MECHANISMS)
def either(request, tmp_path):
    with running_station(tmp_path, request.param) as st:
        yield st


@pytest.fixture
def station(tmp_path):
    with running_station(tmp_path, best()) as st:
        yield st


@pytest.fixture
def watched(tmp_path, monkeypatch):
    """The station under a systemd-like notify socket with WatchdogSec=1 (a ping every 0.5 s)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify.sock"))
    sock.settimeout(0.2)
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify.sock"))
    monkeypatch.setenv("WATCHDOG_USEC", "1000000")
    try:
        with running_station(tmp_path, best()) as st:
            yield st, sock
    finally:
        sock.close()


def fill_under_way(st):
    """A slow fill started: the controller's model and the decision."""
    model = st.rig_sim.rig(1)
    model.flow_g_per_s = 4000
    st.place("rig-01")
    d = st.scan("rig-01", qr_url(CYL["valid"]["info_code"]))
    wait_for(lambda: model.snapshot()["valve_open"], 10, "the valve open")
    return model, d


def check_trial(out, mechanism):
    assert out["mechanism"] == mechanism
    assert out["refused_scans"] == 2 and out["held"]
    assert out["permit_on_while_unwritable"] == 0
    assert ERRORS[mechanism] in out["sqlite_error"], out["sqlite_error"]
    assert out["screen_reason"] == reason_text("STORE_FAULT").zh == "记录存储故障，禁止充装"
    assert out["records"] == out["delivered_once"] == 2
    assert out["fills_closed"] == out["valve_openings"] == 2
    assert out["integrity"] == "ok" and out["chain_problems"] == []


def test_disk_full_refuses_holds_the_record_and_resumes_without_restart(either):
    station = either
    out = trial_disk_full(station, random.Random(1), kill=False)
    check_trial(out, mechanism_for(station).name)
    assert out["post_checks"] == ["ok", "ok"]  # the loop lived on: the fill ran to its target
    assert out["submissions"] == 2  # each record sent once: no 409 needed
    log = station.log_tail(400)
    assert "event=fill_records_saved rig=rig-01" in log
    assert "watchdog_withheld" not in log and "rig_loop_died" not in log


def test_killed_while_a_record_is_held_it_is_recovered_as_completed(station):
    out = trial_disk_full(station, random.Random(2), kill=True)
    check_trial(out, mechanism_for(station).name)
    assert out["killed_while_held"] and out["post_checks"][0] == "ok"  # FILL_DONE + the gain
    assert out["permit_drop_s"] is not None and out["permit_drop_s"] <= WATCHDOG_MS / 1000 + 1


def test_a_city_answer_the_store_cannot_take_is_kept_not_sent_again(station):
    st = station
    fault = mechanism_for(st)
    st.place("rig-01")
    d = st.scan("rig-01", qr_url(CYL["valid"]["info_code"]))
    st.city.set_faults(status=503)  # the record waits in the outbox
    f = st.wait_fill("rig-01", d["id"])
    rid = f["record_id"]
    wait_for(lambda: st.rows("SELECT 1 FROM outbox WHERE record_id = ? AND attempts > 0", rid),
             10, "a failed delivery")
    mark = LogMark(st)
    fault.block()
    try:
        st.city.clear_faults()
        wait_for(lambda: rid in [x["record_id"] for x in st.city.fillings], 15,
                 "the record at the city")
        found = mark.wait(r'event=sync_store_failed error=("[^"]*"|\S+)', 15,
                          "the sync worker seeing the store fail")
        assert ERRORS[fault.name] in found.group(1)
        assert st.rows("SELECT state FROM outbox WHERE record_id = ?", rid)[0]["state"] == \
            "pending"
    finally:
        fault.free()
    wait_for(lambda: st.rows("SELECT 1 FROM outbox WHERE record_id = ? AND state = "
                             "'delivered'", rid), 20, "the kept answer committed")
    assert [x["record_id"] for x in st.city.fillings].count(rid) == 1
    assert st.city.submissions[rid] == 1  # kept in memory: not sent again
    assert "event=sync_store_recovered" in mark.text()
    assert integrity(st.store_path) == ("ok", [])


def test_the_daemon_starts_on_a_full_disk_and_refuses_until_space_returns(station):
    st = station
    fault = mechanism_for(st)
    if fault.name != "enospc":
        pytest.skip("a limit set on a running process cannot precede its start")
    st.stop_daemon()
    fault.block()
    try:
        mark = LogMark(st)
        st.start_daemon()  # opens the store, checks it, serves: reads need no space
        st.place("rig-01")
        st.scanners["rig-01"].send(qr_url(CYL["valid"]["info_code"]))
        wait_for(lambda: (c := st.coils("rig-01"))["lamp_red"] and not c["permit"], 15,
                 "the refusal")
        assert re.search(r"event=decision_failed rig=rig-01 error=\S*'store write failed: "
                         r"database or disk is full",
                         mark.text())
    finally:
        fault.free()
    st.remove("rig-01")
    st.place("rig-01")
    assert st.scan("rig-01", qr_url(CYL["valid_partner"]["info_code"]))["permit"] == 1
    assert integrity(st.store_path) == ("ok", [])


def test_a_full_disk_is_no_hang_systemd_keeps_getting_watchdog_pings(watched):
    """A store that cannot commit is handled, not a hang: the rig loop polls on (retrying the
    held record every poll), so systemd's watchdog is pinged past the hang limit and the daemon
    is not restarted (a restart would not free the disk and would lose what is held)."""
    st, sock = watched
    fault = mechanism_for(st)
    hang_limit_s = 3 * WATCHDOG_MS / 1000 + 2.0  # station.rig.liveness.hung_after_s
    model, d = fill_under_way(st)
    mark = LogMark(st)
    fault.block()
    try:
        blocked_at = time.monotonic()
        mark.wait(r"event=fill_not_saved rig=rig-01 ", 30, "the record held")

        def late_ping() -> bool:
            try:
                message = sock.recv(4096).decode()
            except TimeoutError:
                return False
            return message == "WATCHDOG=1" and time.monotonic() - blocked_at > hang_limit_s + 1
        wait_for(late_ping, hang_limit_s + 15, "a watchdog ping past the hang limit")
        assert "watchdog_withheld" not in mark.text()
    finally:
        fault.free()
    f = st.wait_fill("rig-01", d["id"], timeout=20)
    assert f["state"] == "closed" and f["post_check"] == "ok"
    wait_for(lambda: [x["record_id"] for x in st.city.fillings].count(f["record_id"]) == 1, 20,
             "the record at the city")


def test_a_cylinder_whose_fill_row_cannot_be_committed_gets_no_permit(station):
    """Judged, its open fill row refused by the store (a trigger stands in for the fault): the
    decision and the row are one transaction (Store.record_grant), so neither is committed,
    and the permit is never written."""
    st = station
    st.db.execute("CREATE TRIGGER no_fill BEFORE INSERT ON fills "
                  "BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END")
    st.db.commit()
    mark = LogMark(st)
    since = st.last_id()
    try:
        st.place("rig-01")
        st.scanners["rig-01"].send(qr_url(CYL["valid"]["info_code"]))
        wait_for(lambda: (c := st.coils("rig-01"))["lamp_red"] and not c["lamp_green"], 15,
                 "the red lamp")
        assert not st.coils("rig-01")["permit"]
        assert st.rig_sim.rig(1).snapshot()["permit_grants"] == 0
        found = mark.wait(r"event=store_error rig=rig-01 error=(\S+|\"[^\"]*\") "
                          r"action=\"fill refused", 10, "the refusal logged")
        assert "disk I/O error" in found.group(0)
    finally:
        st.db.execute("DROP TRIGGER no_fill")
        st.db.commit()
    assert st.rows("SELECT * FROM decisions WHERE id > ? AND permit = 1", since) == []
    assert st.rows("SELECT * FROM fills") == []
    wait_for(lambda: (st.live("rig-01").get("verdict") or {}).get("code") == "STORE_FAULT", 10,
             "the screen showing the store fault")


def test_stopped_while_a_record_is_held_the_next_start_records_it(station):
    """SIGTERM with the record held: one last try, then the open row stands; the next start
    records the fill as the controller ended it (FILL_DONE latched, the mass gained: done) and
    delivers it once."""
    st = station
    fault = mechanism_for(st)
    model, d = fill_under_way(st)
    mark = LogMark(st)
    fault.block()
    try:
        mark.wait(r"event=fill_not_saved rig=rig-01 ", 30, "the record held")
        assert st.stop_daemon() == 0
        assert "event=fill_not_saved_at_exit rig=rig-01" in mark.text()
    finally:
        fault.free()
    assert st.rows("SELECT state FROM fills WHERE decision_id = ?", d["id"]) == [
        {"state": "open"}]
    st.start_daemon()
    f = st.wait_fill("rig-01", d["id"])
    assert (f["post_check"], f["end_reason"]) == ("ok", "done")
    assert f["gross_g"] == model.snapshot()["gross_g"]
    wait_for(lambda: [x["record_id"] for x in st.city.fillings].count(f["record_id"]) == 1, 20,
             "the record at the city")
    assert integrity(st.store_path) == ("ok", [])
