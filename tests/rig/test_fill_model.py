"""Model-based test: the real rig loop driving the simulated controller through random days.

A hypothesis state machine plays scans, cylinders placed and removed, the start button, ESTOP,
crashes (kill -9 or a hang) and restarts against the real RigLoop (tests/rig/loopback.Stepped:
its link, intake, decider, actuator and ledger on a real SQLite file) over the simulator's pure
RigModel behind the loopback controller (the controller's physics and watchdog, on a clock the
test moves). Invariants: the permit is set only for a fill whose open row was committed first,
while the daemon holds it (or for at most the watchdog period after the daemon stopped
heartbeating); every valve opening ends in exactly one record that is not a cancellation —
every opening that moved gas, that is: an opening of no time (start, then ESTOP at once) moves
none, and no controller reports it; each record has one outbox entry.

Two deliberate breakages this test catches (tried by hand, see the rig split's report):
writing the permit before its open row is committed (RigLoop.execute), and a restart that does
not recover the open rows a crash left (Ledger.recover).
The fill cycle's timeouts (permit expiry, settling) follow the real monotonic clock and do not
run out here; tests/core/test_fillcycle.py covers them.
"""

import contextlib
import functools
import os
import shutil
import sqlite3
import tempfile
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from loopback import QR, Stepped

from drivers.loopback_rig import ManualClock
from simulators.rig_model import RigModel
from station.core.fillcycle import MASS_NOISE_G
from station.store.db import Store

TARE, WATCHDOG_S = 15000, 3.0
# the store's files in memory where there is a tmpfs: hundreds of stores, each commit synced
EXAMPLES = int(os.environ.get("FILL_MODEL_EXAMPLES", "100"))  # (a deeper run: 1000)
SCRATCH = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
# a restart that found the cylinder on the scale without a gain: a valve open for no time at
# all between the crash and the restart cannot be told from none
NO_GAIN = "station restarted: the valve was never seen open"


def recorded(fills: dict) -> int:
    """Fills recorded (not cancelled), and restarts that could not tell an opening of no time
    from none (cancelled for no gain)."""
    return sum(r["state"] == "closed" or (r["state"] == "cancelled" and r["end_reason"] == NO_GAIN)
               for r in fills.values())


@functools.cache
def empty_store() -> Path:
    """A store with its schema and nothing else, made once per test session."""
    path = Path(tempfile.mkdtemp(prefix="fill-model-store-", dir=SCRATCH)) / "station.db"
    Store(str(path)).close()
    return path


class Station(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="fill-model-", dir=SCRATCH))
        shutil.copy(empty_store(), self.dir / "station.db")  # (its schema made once: faster)
        self.clock = ManualClock(0.0)
        self.model = RigModel(start_delay_s=None, flow_g_per_s=5000, now=0.0)
        self.daemon: Stepped | None = None
        self.beat_at = 0.0
        self.gas_openings = 0  # valve openings that moved gas (more than the scale's noise)
        self.opened_at_gross: int | None = None
        self.last_gross = 0
        self.start()

    @property
    def t(self) -> float:
        return self.clock()

    def start(self):
        self.daemon = Stepped(self.dir, self.model, self.clock, round(WATCHDOG_S * 1000))
        self.daemon.connect()
        self.beat_at = self.t  # (configure wrote the watchdog period: it counts from now)

    @property
    def up(self) -> bool:
        return self.daemon is not None

    def fills(self):
        return {r["record_id"]: r for r in self.daemon_rows("SELECT * FROM fills")}

    def daemon_rows(self, sql):
        if self.daemon is not None:
            return self.daemon.rows(sql)
        # no daemon: the file as the crash left it, read only
        with contextlib.closing(sqlite3.connect(f"file:{self.dir / 'station.db'}?mode=ro",
                                                uri=True)) as conn:
            conn.row_factory = sqlite3.Row
            return [dict(r) for r in conn.execute(sql)]

    # --- rules ----------------------------------------------------------------------------
    @precondition(lambda self: self.up)
    @rule()
    def scan_the_cylinder(self):
        self.daemon.read(QR)

    @rule(extra=st.integers(min_value=0, max_value=3000))
    def place_cylinder(self, extra):
        """A cylinder stands on the scale — never swapped faster than a running daemon polls
        (a person cannot lift one off and put another on within 0.2 s)."""
        if self.model.snapshot(now=self.t)["cylinder_present"]:
            return
        if self.up and self.daemon.loop.cycle.present:
            self.tick(0.2)  # the daemon sees the scale empty first
        self.model.place_cylinder(TARE + extra, now=self.t)

    @rule()
    def remove_cylinder(self):
        self.model.remove_cylinder(now=self.t)

    @rule()
    def press_start(self):
        self.model.press_start(now=self.t)

    @rule(on=st.booleans())
    def estop(self, on):
        self.model.set_estop(on, now=self.t)

    @rule(dt=st.floats(min_value=0.05, max_value=2.0))
    def tick(self, dt):
        """Time passes; a running daemon heartbeats and polls every 0.2 s."""
        end = self.t + dt
        while self.t < end:
            self.clock.advance(min(end, self.t + 0.2) - self.t)
            if self.up:
                self.daemon.poll()
                self.beat_at = self.t
            else:
                self.model.advance(self.t)

    @precondition(lambda self: self.up)
    @rule()
    def crash(self):
        """kill -9 or a hang: nothing heartbeats, nothing observes."""
        self.daemon.close()
        self.daemon = None

    @precondition(lambda self: not self.up)
    @rule()
    def restart(self):
        """A new daemon: permit withdrawn at configure, open rows recovered from the mass."""
        self.start()

    # --- invariants ------------------------------------------------------------------------
    @invariant()
    def track_gas(self):
        """Count the openings that moved gas; an opening of no time moves none (and no
        controller reports one, so no daemon can record it)."""
        snap = self.model.snapshot(now=self.t)
        if snap["valve_open"] and self.opened_at_gross is None:
            self.opened_at_gross = self.last_gross = snap["gross_g"]
        if snap["cylinder_present"] and self.opened_at_gross is not None:
            self.last_gross = max(self.last_gross, snap["gross_g"])
        if not snap["valve_open"] and self.opened_at_gross is not None:
            if self.last_gross - self.opened_at_gross > MASS_NOISE_G:
                self.gas_openings += 1
            self.opened_at_gross = None

    @invariant()
    def records(self):
        """(One reading of the store per step for the three invariants on it.)"""
        fills = self.fills()
        self.permit_only_for_a_committed_fill_the_daemon_holds(fills)
        self.every_valve_opening_is_or_will_be_a_record(fills)
        self.each_record_goes_out_once(fills)

    def permit_only_for_a_committed_fill_the_daemon_holds(self, fills):
        if not self.model.snapshot(now=self.t)["fill_permit"]:
            return
        if self.up:
            cycle = self.daemon.loop.cycle
            assert cycle.holds_permit and cycle.ctx is not None, "a permit the daemon lost"
            assert cycle.ctx.record_id in fills, "a permit without its open row"
        else:
            assert self.t - self.beat_at <= WATCHDOG_S + 0.25, "the watchdog let it live on"

    def every_valve_opening_is_or_will_be_a_record(self, fills):
        cycle = self.daemon.loop.cycle if self.up else None
        running = cycle is None or cycle.busy
        open_rows = sum(r["state"] == "open" for r in fills.values())
        permitted = cycle is not None and cycle.holds_permit and not cycle.busy
        assert self.gas_openings <= recorded(fills) + (open_rows if running else 0) + permitted

    def each_record_goes_out_once(self, fills):
        closed = {rid for rid, r in fills.items() if r["state"] == "closed"}
        outbox = [r["record_id"] for r in self.daemon_rows("SELECT record_id FROM outbox")]
        assert sorted(outbox) == sorted(closed), "a record with no outbox entry, or two"

    def teardown(self):
        try:
            if not self.up:
                self.restart()
            self.model.remove_cylinder(now=self.t)
            self.tick(8.0)
            self.track_gas()
            assert self.gas_openings <= recorded(self.fills())
            rows = self.fills().values()
            assert all(r["state"] != "open" for r in rows), "an open row never closed"
        finally:
            if self.daemon is not None:
                self.daemon.close()
            shutil.rmtree(self.dir, ignore_errors=True)


Station.TestCase.settings = settings(max_examples=EXAMPLES, stateful_step_count=40, deadline=None)
TestFillModel = Station.TestCase
