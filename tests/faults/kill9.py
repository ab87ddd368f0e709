"""The kill -9 campaign: the daemon killed at random points while filling and syncing.

Each trial stands a cylinder on the scale, scans it, lets the fill (and the city's answer to
earlier records) get somewhere, and SIGKILLs the daemon at a random moment; then checks that the
controller's watchdog dropped the permit, and restarts the daemon. At the end the city comes
back and the outbox drains; then every invariant is checked. Used by the test (a short run) and
by `python tests/faults/run_kill9.py N` (a long run that prints a table).
"""

from __future__ import annotations

import random
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

from simulators.dataset import demo_cylinders, qr_url
from simulators.harness import OPERATORS, RigSpec, SimStation, wait_for
from station.rig.loop import OVER_REPORT
from station.today import station_today

WATCHDOG_MS = 600
CITY_MOODS = ({}, {"status": 503}, {"latency_ms": 150}, {"reset": True}, {"hang": True})


@dataclass
class Result:
    trials: int = 0
    permit_drop_s: list[float] = field(default_factory=list)
    valve_openings: int = 0
    fills_closed: int = 0
    fills_cancelled: int = 0
    over_reports: int = 0  # recovered with the cylinder gone, valve never seen: OVER_REPORT
    delivered: int = 0
    at_city: int = 0
    submissions: int = 0
    problems: list[str] = field(default_factory=list)


def start(workdir: Path, latch_clear_s: float = 0.0) -> SimStation:
    """`latch_clear_s`: the controller clears FILL_DONE this long after the permit write."""
    st = SimStation(workdir, (RigSpec("rig-01", 1),), watchdog_ms=WATCHDOG_MS, deadline_s=0.5,
                    rig_options={"start_delay_s": 0.05, "flow_g_per_s": 30000,
                                 "latch_clear_s": latch_clear_s},
                    rig_keys={"permit_timeout_s": 5},
                    extra_config="[sync]\nrate_per_s = 0\nbackoff_cap_s = 1\n"
                                 "submit_timeout_s = 1\n").start()
    st.badge("rig-01", OPERATORS[0][1])
    return st


def trial(st: SimStation, rng: random.Random, codes: list[str], result: Result) -> None:
    st.city.clear_faults()
    st.city.set_faults(**rng.choice(CITY_MOODS))
    st.place("rig-01", 15200)
    st.scanners["rig-01"].send(qr_url(rng.choice(codes)))
    time.sleep(rng.uniform(0, 0.9))  # the kill point: anywhere in judge, fill, record, sync
    st.daemon.send_signal(signal.SIGKILL)
    st.daemon.wait()
    killed = time.monotonic()
    st.daemon = None
    wait_for(lambda: not st.coils("rig-01")["permit"], WATCHDOG_MS / 1000 + 1.0,
             "the watchdog to drop the permit")
    result.permit_drop_s.append(time.monotonic() - killed)
    st.remove("rig-01")
    st.start_daemon()
    result.trials += 1


def finish(st: SimStation, result: Result) -> Result:
    """City back, outbox drained, then every invariant checked."""
    st.city.clear_faults()
    st.db.execute("UPDATE outbox SET next_at = 0 WHERE state = 'pending'")
    st.db.commit()
    wait_for(lambda: not st.rows("SELECT 1 FROM fills WHERE state = 'open'"), 10,
             "no fill left open")
    wait_for(lambda: not st.rows("SELECT 1 FROM outbox WHERE state = 'pending'"), 30,
             "the outbox to drain")
    fills = st.rows("SELECT record_id, state, end_reason FROM fills")
    outbox = {r["record_id"]: r for r in st.rows("SELECT * FROM outbox")}
    closed = {f["record_id"] for f in fills if f["state"] == "closed"}
    city = [f["record_id"] for f in st.city.fillings]
    snap = st.rig_sim.rig(1).snapshot()
    result.valve_openings = snap["valve_openings"]
    result.fills_closed, result.fills_cancelled = len(closed), len(fills) - len(closed)
    result.over_reports = sum((f["end_reason"] or "").startswith(OVER_REPORT) for f in fills)
    result.delivered = sum(r["state"] == "delivered" for r in outbox.values())
    result.at_city, result.submissions = len(city), sum(st.city.submissions.values())
    check = result.problems.append
    if snap["fill_permit"]:
        check("permit left set")
    if result.fills_closed < result.valve_openings:
        check(f"{result.valve_openings} valve openings but {result.fills_closed} fill records")
    if result.fills_closed - result.over_reports > result.valve_openings:
        check(f"{result.fills_closed - result.valve_openings} fill record(s) without a valve "
              f"opening, {result.over_reports} of them said to be possible over-reports")
    if set(outbox) != closed:
        check("a closed fill without its outbox entry, or an entry without its fill")
    if any(r["state"] != "delivered" for r in outbox.values()):
        check("records not delivered: " + str([r["last_error"] for r in outbox.values()
                                                if r["state"] != "delivered"]))
    if len(city) != len(set(city)):
        check("a record stored twice at the city")
    if set(city) != closed:
        check("the city's records differ from the station's")
    if st.db.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
        check("integrity_check failed")
    if max(result.permit_drop_s, default=0) > WATCHDOG_MS / 1000 + 0.5:
        check(f"a permit outlived the watchdog: {max(result.permit_drop_s):.2f} s")
    return result


def campaign(workdir: Path, trials: int, seed: int, latch_clear_s: float = 0.0) -> Result:
    rng = random.Random(seed)
    cyl = demo_cylinders(station_today())
    codes = [cyl[k]["info_code"] for k in ("valid", "valid_partner", "special_23t0", "by_table")]
    st = start(workdir, latch_clear_s)
    result = Result()
    try:
        for _ in range(trials):
            trial(st, rng, codes, result)
        return finish(st, result)
    finally:
        st.stop()
