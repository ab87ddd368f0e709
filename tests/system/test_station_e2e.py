"""End to end: simulators here, `station run` as a subprocess, readings typed into scanner ptys."""

import json
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import pytest

from simulators.dataset import demo_cylinders, qr_url
from simulators.harness import OPERATORS, RigSpec, SimStation, wait_for
from station.app.demo import reading_at, setup_station, steps
from station.today import station_today

BADGE = OPERATORS[0][1]
TODAY = station_today()
CYL = demo_cylinders(TODAY)


@pytest.fixture(scope="module")
def demo_station(tmp_path_factory):
    station = setup_station(tmp_path_factory.mktemp("e2e"))
    yield station
    station.stop()


@pytest.fixture
def station(tmp_path):
    """One rig, short watchdog, a cylinder's start button never pressed by itself."""
    st = SimStation(tmp_path, (RigSpec("rig-01", 1),), watchdog_ms=900,
                    rig_options={"start_delay_s": None}).start()
    st.badge("rig-01", BADGE)
    st.place("rig-01")
    yield st
    st.stop()


def test_every_reason_code_refuses_and_the_valid_cylinder_is_permitted(demo_station):
    seen = set()
    for step in steps():
        d = reading_at(demo_station, step)
        coils = demo_station.coils(step.rig)
        got = d["reason"] or "OK" + (f"+{d['warnings']}" if d["warnings"] else "")
        assert got == step.expect, (step.note, d)
        assert coils["permit"] == bool(d["permit"]), (step.note, coils)
        assert coils["lamp_green"] == bool(d["permit"]) and coils["lamp_red"] != bool(d["permit"])
        seen.add(d["reason"])
    from station.core.texts import REASONS

    assert set(REASONS) <= seen
    cached = demo_station.rows("SELECT * FROM decisions WHERE source = 'cache'")
    assert cached and all(r["cache_age_s"] is not None for r in cached)


def test_hostile_readings_are_escaped_in_the_log_and_never_reach_the_city(demo_station):
    before = dict(demo_station.city.requests)
    d = demo_station.scan("rig-01", "https://qr.cqtzsb.example/c/A1\x1b[2J\u202eX")
    assert d["reason"] == "TAG_FOREIGN"
    assert demo_station.city.requests == before
    def logged():
        text = demo_station.log_path.read_text(encoding="utf-8")
        return text if "\\x1b[2J\\u202eX" in text else None
    log = wait_for(logged, 5, "the decision logged")
    bad = [line for line in log.splitlines() if "\x1b" in line]
    assert not bad  # (the decision is logged just after its commit: waited for)


def test_killed_daemon_leaves_no_permit_beyond_the_watchdog(station):
    d = station.scan("rig-01", qr_url(CYL["valid"]["info_code"]))
    assert d["permit"] == 1 and station.coils("rig-01")["permit"]
    station.daemon.send_signal(signal.SIGKILL)
    killed = time.monotonic()
    wait_for(lambda: not station.coils("rig-01")["permit"], 5, "the watchdog to drop the permit")
    assert time.monotonic() - killed < 0.9 + 0.5
    assert station.rig_sim.rig(1).snapshot()["watchdog_trips"] == 1


def test_hung_daemon_leaves_no_permit_beyond_the_watchdog(station):
    station.scan("rig-01", qr_url(CYL["valid"]["info_code"]))
    assert station.coils("rig-01")["permit"]
    station.daemon.send_signal(signal.SIGSTOP)
    try:
        wait_for(lambda: not station.coils("rig-01")["permit"], 5, "the watchdog")
    finally:
        station.daemon.send_signal(signal.SIGCONT)


def test_sigterm_withdraws_the_permit_before_exit(tmp_path):
    st = SimStation(tmp_path, watchdog_ms=30000, rig_options={"start_delay_s": None}).start()
    try:
        st.badge("rig-01", BADGE)
        st.place("rig-01")
        assert st.scan("rig-01", qr_url(CYL["valid"]["info_code"]))["permit"]
        assert st.stop_daemon(signal.SIGTERM) == 0
        assert not st.coils("rig-01")["permit"]  # the 30 s watchdog cannot have done it
        assert st.rig_sim.rig(1).snapshot()["watchdog_trips"] == 0
        assert "event=station_stopped" in st.log_tail()
    finally:
        st.stop()


def test_removing_the_cylinder_cancels_an_unused_permit(station):
    model = station.rig_sim.rig(1)
    station.scan("rig-01", qr_url(CYL["valid"]["info_code"]))
    assert station.coils("rig-01")["permit"]
    model.remove_cylinder()
    wait_for(lambda: not station.coils("rig-01")["permit"], 3, "the permit to be cancelled")
    events = wait_for(lambda: station.rows("SELECT detail FROM rig_events "
                                           "WHERE event = 'permit_withdrawn'"), 2, "the event")
    assert events[-1]["detail"] == "cylinder removed"


def test_estop_refuses_and_a_new_reading_withdraws_the_old_permit(station):
    station.scan("rig-01", qr_url(CYL["valid"]["info_code"]))
    assert station.coils("rig-01")["permit"]
    station.rig_sim.rig(1).set_estop(True)
    wait_for(lambda: not station.coils("rig-01")["permit"], 2, "ESTOP to clear the permit")
    d = station.scan("rig-01", qr_url(CYL["valid_partner"]["info_code"]))
    assert d["reason"] == "RIG_FAULT" and not station.coils("rig-01")["permit"]


def test_stopped_controller_is_a_rig_fault_and_a_restarted_one_is_used_again(station):
    station.rig_sim.stop()
    wait_for(lambda: "event=rig_lost rig=rig-01" in station.log_tail(), 5, "rig lost")
    d = station.scan("rig-01", qr_url(CYL["valid"]["info_code"]), settle=False)  # no lamps
    assert d["reason"] == "RIG_FAULT"
    station.rig_sim.start()
    wait_for(lambda: station.rows("SELECT 1 FROM rig_events WHERE event = 'rig_connected' "
                                  "AND id > (SELECT max(id) FROM rig_events WHERE event = "
                                  "'rig_lost')"), 10, "rig reconnected")
    d = station.scan("rig-01", qr_url(CYL["valid_partner"]["info_code"]))
    assert d["permit"] == 1 and station.coils("rig-01")["permit"]


def test_a_permit_left_set_at_start_is_withdrawn(tmp_path):
    st = SimStation(tmp_path, rig_options={"start_delay_s": None})
    st.workdir.mkdir(parents=True, exist_ok=True)
    st.city.start()
    st.rig_sim.start()
    for scanner in st.scanners.values():
        scanner.start()
    st.write_config()
    try:
        from pymodbus.client import ModbusTcpClient

        client = ModbusTcpClient("127.0.0.1", port=st.rig_sim.port)
        client.connect()
        client.write_register(1, 30000, device_id=1)  # a watchdog too long to matter here
        client.write_register(0, 7, device_id=1)  # a heartbeat, as a previous daemon wrote
        assert not client.write_coil(0, True, device_id=1).isError()
        assert st.coils("rig-01")["permit"]
        client.close()
        st.start_daemon()
        wait_for(lambda: not st.coils("rig-01")["permit"], 3, "the stale permit withdrawn")
        assert st.rig_sim.rig(1).snapshot()["watchdog_trips"] == 0
    finally:
        st.stop()


def test_clock_earlier_than_the_newest_record_refuses_until_the_city_vouches(tmp_path):
    st = SimStation(tmp_path, rig_options={"start_delay_s": None})
    st.workdir.mkdir(parents=True, exist_ok=True)
    from station.store.db import Store

    store = Store(str(st.store_path))
    future = (datetime.now(UTC) + timedelta(days=1)).timestamp()
    store.conn.execute("INSERT INTO decisions (at, local_time, rig, reading, kind, permit, "
                       "source, latency_ms) VALUES (?, 'x', 'rig-01', 'x', 'qr_url', 0, "
                       "'none', 0)", (future,))
    store.close()
    st.start()
    try:
        st.badge("rig-01", BADGE)
        st.place("rig-01")
        st.city.set_faults(reset=True)  # no answer, so no Date to compare our clock with
        d = st.scan("rig-01", qr_url(CYL["valid"]["info_code"]))
        assert d["reason"] == "RIG_FAULT" and "earlier than the newest record" in d["detail"]
        st.city.clear_faults()  # its Date vouches for our clock: the record's clock ran ahead
        d = st.scan("rig-01", qr_url(CYL["valid_partner"]["info_code"]))
        assert d["permit"] == 1, d
    finally:
        st.stop()


def test_station_check_judges_one_reading_without_a_rig(demo_station):
    cmd = [sys.executable, "-m", "station", "check", "--config", str(demo_station.config_path)]
    ok = subprocess.run(cmd + [qr_url(CYL["valid"]["info_code"])], capture_output=True,
                        text=True, timeout=30)
    assert ok.returncode == 0 and "PERMIT" in ok.stdout
    bad = subprocess.run(cmd + [qr_url(CYL["scrapped"]["info_code"])], capture_output=True,
                         text=True, timeout=30)
    assert bad.returncode == 1 and "SCRAPPED" in bad.stdout and "气瓶已报废" in bad.stdout


def test_badge_logs_in_and_out_and_the_shift_survives_a_restart(station):
    # The fixture logged 张三 in at rig-01 by badge.
    assert station.scan("rig-01", qr_url(CYL["valid"]["info_code"]))["operator"] == "张三"
    station.stop_daemon()
    station.start_daemon()  # a restart (power cut, update): still on shift
    d = station.scan("rig-01", qr_url(CYL["valid_partner"]["info_code"]))
    assert d["permit"] == 1 and d["operator"] == "张三"
    assert station.badge("rig-01", BADGE)["event"] == "logout"
    d = station.scan("rig-01", qr_url(CYL["valid"]["info_code"]))
    assert d["reason"] == "NO_OPERATOR" and not station.coils("rig-01")["permit"]


def test_manual_entry_at_a_terminal_is_judged_and_recorded_as_manual(station):
    cmd = [sys.executable, "-m", "station", "enter", "--config", str(station.config_path),
           "--rig", "rig-01"]
    since = station.last_id()
    ok = subprocess.run(cmd + [CYL["valid"]["product_no"]], capture_output=True, text=True,
                        timeout=30)
    assert ok.returncode == 0, ok.stderr
    d = station.wait_decision("rig-01", since)
    assert d["permit"] == 1 and d["reader"] == "manual:cli" and d["kind"] == "product_no"
    bad = subprocess.run(cmd + ["12345"], capture_output=True, text=True, timeout=30)
    assert bad.returncode == 1 and "12 digits" in bad.stderr
    assert station.last_id() == d["id"]  # nothing was judged for the bad entry
    # A typed cylinder id (as an IME types it) is looked up as an id, not as an information
    # code: it used to be recorded as NOT_REGISTERED (疑似黑气瓶), a false accusation.
    typed = subprocess.run(cmd + ["cyl－000002 "], capture_output=True, text=True, timeout=30)
    assert typed.returncode == 0 and "CYL-000002 (cylinder id or information code)" in typed.stdout
    d = station.wait_decision("rig-01", d["id"])
    assert (d["permit"], d["kind"], d["cylinder_id"]) == (1, "id_or_code", "CYL-000002"), d
    assert d["reader"] == "manual:cli" and d["source"] == "city"


HOSTILE = [
    ("8 KB", "https://qr.cqtzsb.example/c/" + "A" * 8192, "TAG_UNREADABLE"),
    ("NUL", "https://qr.cqtzsb.example/c/500112CQ0000000001\x00", "TAG_FOREIGN"),
    ("CR inside", b"http://evil.cn/c/1\rX-Evil: 1", "TAG_FOREIGN"),
    ("ANSI", "\x1b[31mhttps://qr.cqtzsb.example/c/500112CQ0000000001", "TAG_FOREIGN"),
    ("U+202E", "https://qr.cqtzsb.example/c/\u202e1000000000QC211005", "TAG_FOREIGN"),
    ("invalid UTF-8", b"https://qr.cqtzsb.example/c/\xc3\x28", "TAG_UNREADABLE"),
    ("foreign host", "https://qr.cqtzsb.example.evil.cn/c/500112CQ0000000001", "TAG_FOREIGN"),
    ("javascript:", "javascript:fetch('//evil')", "TAG_FOREIGN"),
    ("user-info", "https://qr.cqtzsb.example@evil.cn/c/500112CQ0000000001", "TAG_FOREIGN"),
]


@pytest.mark.parametrize("name,payload,reason", HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_payloads_are_refused_without_a_city_query(demo_station, name, payload, reason):
    before = dict(demo_station.city.requests)
    since = demo_station.last_id()
    d = demo_station.scan("rig-01", payload)
    assert d["reason"] == reason and not d["permit"]
    if name == "CR inside":  # a CR ends a line: the rest is a second reading, refused too
        rest = wait_for(lambda: demo_station.rows("SELECT * FROM decisions WHERE id > ?",
                                                  since)[1:], 5, "the second reading")
        assert rest[0]["reason"] == "TAG_UNREADABLE"
    assert demo_station.city.requests == before
    assert not demo_station.coils("rig-01")["permit"]


def test_live_state_for_screens_follows_the_verdict_and_the_mass(station):
    d = station.scan("rig-01", qr_url(CYL["scrapped"]["info_code"]))

    def live():
        rows = station.rows("SELECT state FROM rig_live WHERE rig = 'rig-01'")
        return json.loads(rows[0]["state"]) if rows else None

    shown = wait_for(lambda: (s := live()) and s["verdict"] and
                     s["verdict"]["decision_id"] == d["id"] and s, 2, "the verdict on screen")
    assert shown["verdict"]["code"] == "SCRAPPED" and shown["verdict"]["zh"] == "气瓶已报废"
    assert shown["operator"] == "张三" and shown["connected"] and shown["present"]
    assert shown["gross_g"] == 15200


# --- issue 10, step 5: what people type is normalised once; readings keep their shape --------
def station_cli(st, command, *args):
    """`station COMMAND --config … ARGS` as a technician runs it."""
    return subprocess.run([sys.executable, "-m", "station", command, "--config",
                           str(st.config_path), *args], capture_output=True, text=True,
                          timeout=30)


def test_block_list_keys_are_normalised_to_what_a_reading_gives(demo_station):
    typed = {"cyl-000002": "valid_partner", "CYL－000014": "special_23t0",  # IME hyphen
             "CYL-000015 ": "by_table"}
    try:
        for key, name in typed.items():
            out = station_cli(demo_station, "blocklist", "add", key, "--reason", "测试")
            assert out.returncode == 0 and f"blocked {CYL[name]['id']} " in out.stdout, out
            d = demo_station.scan("rig-01", qr_url(CYL[name]["info_code"]))
            assert d["reason"] == "BLOCKLISTED" and d["cylinder_id"] == CYL[name]["id"], d
    finally:
        for name in typed.values():
            station_cli(demo_station, "blocklist", "remove", CYL[name]["id"])
    assert demo_station.scan("rig-01", qr_url(CYL["valid_partner"]["info_code"]))["permit"]


def test_a_block_key_that_can_never_match_is_refused_and_not_stored(demo_station):
    before = station_cli(demo_station, "blocklist", "list").stdout
    for key, why in (("张三的瓶子", "other than ASCII"), ("CYL 000001", "ASCII letters"),
                     ("https://qr.cqtzsb.example/c/../../admin", "not a city QR code URL")):
        out = station_cli(demo_station, "blocklist", "add", key, "--reason", "测试")
        assert out.returncode == 2 and "can never match a reading" in out.stderr, out
        assert why in out.stderr, out.stderr
    assert station_cli(demo_station, "blocklist", "list").stdout == before


def test_block_rows_typed_before_normalisation_block_or_are_reported(demo_station):
    from station.app import doctor

    with sqlite3.connect(demo_station.store_path) as conn:  # as an older version stored them
        conn.executemany("INSERT INTO blocklist VALUES (?, '旧记录', 0, NULL)",
                         [("cyl-000017 ",), ("张三的瓶子",)])
    conn.close()
    try:
        d = demo_station.scan("rig-01", qr_url(CYL["life_last_month"]["info_code"]))
        assert d["reason"] == "BLOCKLISTED"
        listed = station_cli(demo_station, "blocklist", "list").stdout
        assert "张三的瓶子\t旧记录\t(never matches:" in listed
        assert "cyl-000017 \t旧记录\n" in listed
        check = doctor.check_blocklist(str(demo_station.store_path))
        assert check.status == "WARN" and "'张三的瓶子'" in check.detail
        assert "cyl-000017" not in check.detail
    finally:
        assert station_cli(demo_station, "blocklist", "remove", "CYL-000017").returncode == 0
        assert station_cli(demo_station, "blocklist", "remove", "张三的瓶子").returncode == 0
    assert doctor.check_blocklist(str(demo_station.store_path)).status == "PASS"


@pytest.mark.parametrize("typed", ["CYL-000001", " cyl－000001\u3000"])
def test_station_check_looks_a_typed_cylinder_id_up_as_an_id(demo_station, typed):
    out = station_cli(demo_station, "check", typed)  # was NOT_REGISTERED: a false accusation
    assert out.returncode == 0 and "PERMIT" in out.stdout and "cylinder=CYL-000001" in out.stdout
    assert "(id_or_code)" in out.stdout


def test_a_scanned_cylinder_id_stays_an_information_code(demo_station):
    d = demo_station.scan("rig-01", CYL["valid"]["id"])  # a scanner's reading: as it says
    assert d["kind"] == "info_code" and d["reason"] == "NOT_REGISTERED"


@pytest.mark.parametrize("payload,reason", [
    ("https://qr.cqtzsb.example/c/../../admin", "TAG_FOREIGN"),
    ("https://qr.cqtzsb.example/c/./500112CQ0000000001", "TAG_FOREIGN"),
    ("５００１２３４５６７８９", "TAG_UNREADABLE"),
])
def test_dot_segments_and_full_width_digits_never_reach_the_city(demo_station, payload, reason):
    before = dict(demo_station.city.requests)
    d = demo_station.scan("rig-01", payload)
    assert d["reason"] == reason and demo_station.city.requests == before


def test_a_bom_or_eci_escape_before_a_scanned_url_is_stripped(demo_station):
    for prefix, name in ((b"\xef\xbb\xbf", "valid"), (b"\\000026", "valid_partner"),
                         (b"]Q2\\000026\xef\xbb\xbf", "valid")):
        d = demo_station.scan("rig-01", prefix + qr_url(CYL[name]["info_code"]).encode())
        assert d["permit"] == 1 and d["cylinder_id"] == CYL[name]["id"], (prefix, d)


# --- issue 10, step 6: one daemon per store ---------------------------------------------------
def test_a_second_daemon_on_the_same_store_exits_75_and_changes_nothing(station):
    d = station.scan("rig-01", qr_url(CYL["valid"]["info_code"]))
    [live] = wait_for(lambda: station.rows("SELECT * FROM fills WHERE state = 'open'"), 5,
                      "the open fill row of the permit")
    assert d["permit"] == 1 and station.coils("rig-01")["permit"]
    wait_for(lambda: station.rows("SELECT 1 FROM rig_events WHERE event = 'permit_granted'"), 5,
             "the grant's event written (the first daemon quiet)")
    first = station.daemon.pid
    before = {t: station.last_id(t) for t in ("decisions", "rig_events", "operator_events")}
    grants = station.model("rig-01").snapshot()["permit_grants"]
    second = subprocess.run([sys.executable, "-m", "station", "run", "--config",
                             str(station.config_path)], capture_output=True, text=True,
                            timeout=30, cwd=station.workdir)
    assert second.returncode == 75, second.stderr
    assert f"already running (pid {first})" in second.stderr
    assert "rig_connected" not in second.stderr and "station_ready" not in second.stderr
    # The first daemon's live fill is untouched: no interrupted record, the permit still set.
    assert station.rows("SELECT * FROM fills") == [live]
    assert {t: station.last_id(t) for t in before} == before
    assert station.coils("rig-01")["permit"] and station.daemon.poll() is None
    assert station.model("rig-01").snapshot()["permit_grants"] == grants
    # Killed with -9, the first one's lock goes with it: a new daemon starts and recovers.
    station.stop_daemon(signal.SIGKILL)
    station.start_daemon()
    [fill] = wait_for(lambda: station.rows("SELECT * FROM fills WHERE state != 'open'"), 10,
                      "the fill recorded as interrupted by the new daemon")
    assert fill["record_id"] == live["record_id"] and fill["post_check"] == "interrupted"
    assert (station.workdir / "station.db.lock").read_text().strip() == str(station.daemon.pid)

