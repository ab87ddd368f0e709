"""Another process holding the store's write lock longer than the watchdog cuts no fill (issue 15).

A child process opens the daemon's SQLite file and holds its write lock (`BEGIN IMMEDIATE`, as a
technician's `sqlite3` or `station prune` does) for twice the rigs' watchdog while three rigs
fill. The daemon's store calls wait in its store thread; its event loop and the links'
heartbeats run on: no controller's watchdog trips, the fills run to their targets, and their
records are committed once the lock is released, each once. A scan at a fourth rig while the
lock is held is refused within its own deadline and never granted late.
"""

import subprocess
import sys
import time

import pytest

from simulators.dataset import demo_cylinders, qr_url
from simulators.harness import OPERATORS, RigSpec, SimStation, wait_for
from station.today import station_today

CYL = demo_cylinders(station_today())
WATCHDOG_MS = 1500
FILLING = ("rig-01", "rig-02", "rig-03")
KEYS = ("valid", "due_soon", "life_last_month")  # three cylinders the city permits
HOLDER = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=10)
db.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.readline()
db.execute("COMMIT")
print("released", flush=True)
"""


@pytest.fixture
def station(tmp_path):
    """Four rigs on one controller; fills of ~1.5 s (10 kg/s), started 0.1 s after the permit."""
    rigs = tuple(RigSpec(f"rig-0{n}", n) for n in (1, 2, 3, 4))
    st = SimStation(tmp_path, rigs, watchdog_ms=WATCHDOG_MS,
                    rig_options={"start_delay_s": 0.1, "flow_g_per_s": 10000}).start()
    for rig in rigs:
        st.badge(rig.id, OPERATORS[0][1])
    yield st
    st.stop()


def test_a_write_lock_held_past_the_watchdog_cuts_no_fill(station):
    st = station
    decisions = {}
    for n, (rig, key) in enumerate(zip(FILLING, KEYS, strict=True), start=1):
        st.place(rig)  # an empty cylinder: 15.2 kg, each of these three's tare
        st.rig_sim.rig(n).flow_g_per_s = 4000  # slower until the lock is taken
        decisions[rig] = st.scan(rig, qr_url(CYL[key]["info_code"]))
        assert decisions[rig]["permit"] == 1, decisions[rig]
    wait_for(lambda: all(st.rig_sim.rig(n).snapshot()["valve_open"] for n in (1, 2, 3)), 10,
             "the three valves open")
    st.place("rig-04")
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(st.store_path)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        locked_at = time.monotonic()
        for n in (1, 2, 3):
            st.rig_sim.rig(n).flow_g_per_s = 10000  # each fill ends while the lock is held
        # a scan at the fourth rig while the store cannot commit: refused in its own time
        scanned_at = time.monotonic()
        st.scanners["rig-04"].send(qr_url(CYL["valid"]["info_code"]))
        wait_for(lambda: (c := st.coils("rig-04"))["lamp_red"] and not c["lamp_green"], 5,
                 "rig-04 refused")
        refused_s = time.monotonic() - scanned_at
        wait_for(lambda: all(st.rig_sim.rig(n).snapshot()["fill_done"] for n in (1, 2, 3)),
                 10, "the three fills done at their controllers")
        wait_for(lambda: time.monotonic() - locked_at > 2 * WATCHDOG_MS / 1000, 5,
                 "the lock held for two watchdog periods")
        held_s = time.monotonic() - locked_at
        assert st.rows("SELECT * FROM fills WHERE state != 'open'") == []  # nothing committed
    finally:
        holder.communicate("go\n", timeout=10)
    assert held_s > 2 * WATCHDOG_MS / 1000
    assert refused_s < 3.0  # the store's deadline (0.75 s) + grace + the city's lookup
    for n, rig in enumerate(FILLING, start=1):
        f = st.wait_fill(rig, decisions[rig]["id"], timeout=15)
        assert (f["state"], f["post_check"], f["end_reason"]) == ("closed", "ok", "done"), f
        snap = st.rig_sim.rig(n).snapshot()
        assert snap["watchdog_trips"] == 0 and snap["permit_grants"] == 1, (rig, snap)
    records = [f["record_id"] for f in st.rows("SELECT record_id FROM fills")]
    assert len(records) == 3
    wait_for(lambda: sorted(x["record_id"] for x in st.city.fillings) == sorted(records), 20,
             "each record at the city once")
    # the refused scan is never granted late, not even once the store commits again
    released = time.time()
    wait_for(lambda: st.rows("SELECT 1 FROM rig_live WHERE rig = 'rig-04' AND at > ?",
                             released), 5, "rig-04 published after the release")
    assert st.rig_sim.rig(4).snapshot()["permit_grants"] == 0
    assert not st.coils("rig-04")["permit"]
    assert st.rig_sim.rig(4).snapshot()["watchdog_trips"] == 0
    assert "watchdog_withheld" not in st.log_tail(400)
