"""The real RigLoop step by step: each of its decisions, grants and fill records, in-process.

tests/rig/loopback.Stepped runs the loop's own code (Link.connect, Link.poll_once,
RigLoop.process, RigLoop.shutdown) to completion over the simulator's RigModel behind the
loopback controller, on a clock the test moves, with a real SQLite store: no tasks, no waiting.
"""


import pytest
from loopback import EMPTY_G, QR, TARGET_G, Stepped

from drivers.loopback_rig import ManualClock
from simulators.rig_model import RigModel

WATCHDOG_S = 3.0


class Station:
    """A rig and its daemon: the model, the clock, and the Stepped loop over them."""

    def __init__(self, tmp_path, outcome="found", flow_g_per_s=5000):
        self.dir, self.clock = tmp_path, ManualClock(0.0)
        self.model = RigModel(start_delay_s=None, flow_g_per_s=flow_g_per_s, now=0.0)
        self.daemon = self.start(outcome)

    def start(self, outcome="found"):
        daemon = Stepped(self.dir, self.model, self.clock, round(WATCHDOG_S * 1000), outcome)
        daemon.connect()
        return daemon

    def run(self, seconds):
        """`seconds` of rig time, the daemon polling every 0.2 s."""
        for _ in range(round(seconds / 0.2)):
            self.clock.advance(0.2)
            self.daemon.poll()

    def place(self, grams=EMPTY_G):
        self.model.place_cylinder(grams, now=self.clock())

    def coil(self, name):
        return self.model.snapshot(now=self.clock())[name]

    def permitted_cylinder(self):
        """An empty cylinder on the scale, its QR code read: permitted."""
        self.place()
        self.run(0.4)
        self.daemon.read(QR)
        assert self.coil("fill_permit"), self.decisions()

    def fills(self):
        return self.daemon.rows("SELECT * FROM fills")

    def decisions(self):
        return self.daemon.rows("SELECT permit, reason, detail FROM decisions ORDER BY id")

    def outbox(self):
        return self.daemon.rows("SELECT record_id FROM outbox")

    def events(self):
        return [r["event"] for r in self.daemon.rows("SELECT event FROM rig_events ORDER BY id")]


@pytest.fixture
def station(tmp_path):
    s = Station(tmp_path)
    yield s
    s.daemon.close()


def test_a_permit_follows_the_committed_open_row_and_fill_done_is_one_record(station):
    station.permitted_cylinder()
    (decision,) = station.decisions()
    assert decision["permit"] == 1
    (row,) = station.fills()
    assert row["state"] == "open" and row["prefill_g"] == EMPTY_G  # committed before the permit
    assert (station.model.tare_g, station.model.target_net_g) == (EMPTY_G, TARGET_G)
    station.model.press_start(now=station.clock())
    station.run(4.0)  # 14.5 kg at 5 kg/s, then the scale settles
    (fill,) = station.fills()
    assert fill["state"] == "closed" and fill["end_reason"] == "done"
    assert fill["post_check"] == "ok" and abs(fill["net_g"] - TARGET_G) <= 500
    assert [r["record_id"] for r in station.outbox()] == [fill["record_id"]]
    assert not station.coil("fill_permit") and station.coil("lamp_green")
    assert station.model.permit_grants == 1 and station.model.valve_openings == 1


def test_a_just_filled_cylinder_is_refused_until_it_leaves_the_scale(station):
    station.permitted_cylinder()
    station.model.press_start(now=station.clock())
    station.run(4.0)
    station.daemon.read(QR)
    assert station.decisions()[-1]["reason"] == "CYLINDER_FULL"
    assert station.model.permit_grants == 1 and len(station.fills()) == 1


@pytest.mark.parametrize(("setup", "data", "reason"), [
    ("logout", QR, "NO_OPERATOR"),
    ("estop", QR, "RIG_FAULT"),
    ("none", b"https://elsewhere.example/c/X1", "TAG_FOREIGN"),
    ("not_found", QR, "NOT_REGISTERED"),
])
def test_a_refusal_is_recorded_shows_red_and_grants_nothing(tmp_path, setup, data, reason):
    station = Station(tmp_path, outcome="not_found" if setup == "not_found" else "found")
    try:
        if setup == "logout":
            station.daemon.store.operator_event("rig-01", "张三", "logout", "test")
        if setup == "estop":
            station.model.set_estop(True, now=station.clock())
        station.place()
        station.run(0.4)
        station.daemon.read(data)
        station.run(0.4)
        assert [(d["permit"], d["reason"]) for d in station.decisions()] == [(0, reason)]
        assert station.model.permit_grants == 0 and station.fills() == []
        assert not station.coil("fill_permit") and station.coil("lamp_red")
    finally:
        station.daemon.close()


def test_a_reading_during_a_fill_is_ignored_and_the_fill_goes_on(station):
    station.permitted_cylinder()
    station.model.press_start(now=station.clock())
    station.run(1.0)
    station.daemon.read(QR)
    assert len(station.decisions()) == 1 and "reading_ignored" in station.events()
    assert station.coil("valve_open") and station.coil("fill_permit")
    station.run(3.0)
    assert [f["state"] for f in station.fills()] == ["closed"]


def test_another_reading_cancels_the_unused_permit_before_its_own(station):
    station.permitted_cylinder()
    first = station.fills()[0]["record_id"]
    station.daemon.read(QR)
    states = {f["record_id"]: (f["state"], f["end_reason"]) for f in station.fills()}
    assert states.pop(first) == ("cancelled", "another reading at the rig")
    assert [s for s, _ in states.values()] == ["open"] and station.coil("fill_permit")
    assert station.model.permit_grants == 2 and station.outbox() == []


def test_a_lighter_cylinder_swapped_in_under_the_permit_is_withdrawn_and_refused(station):
    station.permitted_cylinder()
    station.model.remove_cylinder(now=station.clock())  # faster than a poll: never seen gone
    station.place(EMPTY_G - 3000)
    station.run(0.2)
    assert not station.coil("fill_permit")
    (fill,) = station.fills()
    assert fill["state"] == "cancelled" and "cylinder swapped" in fill["end_reason"]
    assert station.decisions()[-1]["reason"] == "MASS_MISMATCH"
    station.model.press_start(now=station.clock())
    station.run(0.4)
    assert station.model.valve_openings == 0


def test_removal_before_the_start_cancels_and_during_the_fill_records_the_last_mass(station):
    station.permitted_cylinder()
    station.model.remove_cylinder(now=station.clock())
    station.run(0.2)
    assert [(f["state"], f["end_reason"]) for f in station.fills()] == \
        [("cancelled", "cylinder removed")]
    station.permitted_cylinder()
    station.model.press_start(now=station.clock())
    station.run(1.0)
    station.model.remove_cylinder(now=station.clock())
    station.run(0.4)
    fill = station.fills()[-1]
    assert fill["state"] == "closed" and fill["post_check"] == "interrupted"
    assert fill["end_reason"].startswith("cylinder removed; mass last seen")
    assert 3000 <= fill["net_g"] <= 6000 and len(station.outbox()) == 1
    assert not station.coil("fill_permit")


@pytest.mark.parametrize(("flow_g_per_s", "end", "check"), [
    (1000, "station restarted during the fill", "interrupted"),  # the watchdog cut it short
    (5000, "done", "ok"),  # the controller reached the target before its watchdog tripped
])
def test_a_crash_mid_fill_is_recorded_at_the_restart(tmp_path, flow_g_per_s, end, check):
    station = Station(tmp_path, flow_g_per_s=flow_g_per_s)
    station.permitted_cylinder()
    station.model.press_start(now=station.clock())
    station.run(1.0)
    station.daemon.close()  # kill -9: no heartbeat; the controller's watchdog closes the valve
    station.clock.advance(WATCHDOG_S + 0.5)
    assert not station.coil("fill_permit") and not station.coil("valve_open")
    station.daemon = station.start()
    (fill,) = station.fills()
    assert (fill["state"], fill["end_reason"], fill["post_check"]) == ("closed", end, check)
    assert fill["net_g"] > 900 and len(station.outbox()) == 1
    station.daemon.close()


def test_a_crash_before_the_start_is_cancelled_at_the_restart(station):
    station.permitted_cylinder()
    station.daemon.close()
    station.clock.advance(WATCHDOG_S + 0.5)
    station.daemon = station.start()
    (fill,) = station.fills()
    assert fill["state"] == "cancelled" and station.outbox() == []
    assert fill["end_reason"] == "station restarted: the valve was never seen open"


def test_a_permit_the_daemon_does_not_hold_is_withdrawn(station):
    station.place()
    station.run(0.4)
    station.model.write_coils(station.model.map.fill_permit, [True], now=station.clock())
    station.run(0.2)
    assert not station.coil("fill_permit") and "permit_withdrawn" in station.events()


def test_shutdown_mid_fill_withdraws_and_records_it_interrupted(station):
    station.permitted_cylinder()
    station.model.press_start(now=station.clock())
    station.run(1.0)
    station.daemon.aloop.run_until_complete(station.daemon.loop.shutdown())
    assert not station.coil("fill_permit") and not station.coil("valve_open")
    (fill,) = station.fills()
    assert (fill["state"], fill["end_reason"]) == ("closed", "station stopped during the fill")
    assert len(station.outbox()) == 1
