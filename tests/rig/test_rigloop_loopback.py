"""The real RigLoop in-process on a loopback rig controller: decisions, grants and fill records.

The harness (tests/rig/loopback.py) runs the loop's own tasks over the simulator's RigModel on a
clock the test moves, a real SQLite store and a stubbed city; the test waits for polls.
"""

from loopback import EMPTY_G, TARGET_G, play


def test_scan_decision_grant_fill_record(tmp_path):
    async def scenario(rig):
        await rig.scan_onto_a_cylinder()
        decision = rig.rows("SELECT * FROM decisions")[-1]
        assert (decision["permit"], decision["cylinder_id"], decision["source"]) == \
            (1, "CYL-1", "city")
        opened = rig.rows("SELECT * FROM fills")
        assert [r["state"] for r in opened] == ["open"]  # committed before the permit
        assert (rig.model.tare_g, rig.model.target_net_g) == (EMPTY_G, TARGET_G)
        await rig.run_for(2.0)  # start button after 0.5 s, ~0.7 s of flow, 0.3 s to settle
        await rig.until("the fill record", lambda: rig.rows(
            "SELECT 1 FROM fills WHERE state = 'closed'"))

    rig = play(tmp_path, scenario)
    (fill,) = rig.rows("SELECT * FROM fills")
    assert (fill["cylinder_id"], fill["operator"], fill["source"]) == ("CYL-1", "张三", "city")
    assert fill["net_g"] == TARGET_G and fill["post_check"].startswith("ok")
    assert fill["decision_id"] == rig.rows("SELECT id FROM decisions")[-1]["id"]
    (sent,) = rig.rows("SELECT * FROM outbox")
    assert sent["record_id"] == fill["record_id"] and sent["state"] == "pending"
    assert rig.model.permit_grants == 1 and rig.model.valve_openings == 1


def test_a_refusal_grants_nothing(tmp_path):
    async def scenario(rig):
        await rig.scan_onto_a_cylinder(wait_for_permit=False)
        await rig.until("the decision", lambda: rig.rows("SELECT 1 FROM decisions"))
        await rig.controller.sampled(3)
        assert not rig.coil("fill_permit") and rig.coil("lamp_red")

    rig = play(tmp_path, scenario, outcome="not_found")
    (decision,) = rig.rows("SELECT * FROM decisions")
    assert (decision["permit"], decision["reason"]) == (0, "NOT_REGISTERED")
    assert rig.model.permit_grants == 0
    assert rig.rows("SELECT * FROM fills") == [] and rig.rows("SELECT * FROM outbox") == []


def test_removal_cancels_the_unused_permit(tmp_path):
    async def scenario(rig):
        await rig.scan_onto_a_cylinder()
        rig.model.remove_cylinder(now=rig.clock())
        await rig.until("the cancelled row", lambda: rig.rows(
            "SELECT 1 FROM fills WHERE state != 'open'"))
        await rig.until("the cycle back to idle", lambda: rig.loop.cycle.phase == "idle")

    rig = play(tmp_path, scenario, start_delay_s=None)  # nobody presses start
    (fill,) = rig.rows("SELECT * FROM fills")
    assert fill["state"] == "cancelled" and fill["net_g"] is None
    assert rig.rows("SELECT * FROM outbox") == []
    assert rig.model.permit_grants == 1 and rig.model.valve_openings == 0
    assert not rig.coil("fill_permit")


def test_a_lost_controller_is_reconnected(tmp_path):
    """A link that fails mid-run: rig_lost once, retried, then rig_connected; fills go on."""
    async def scenario(rig):
        rig.controller.down = True
        await rig.until("lost", lambda: rig.loop.state.connected is False)
        await rig.controller.sampled(2)  # two reconnects refused (the backoff between them)
        assert rig.loop.state.connected is False
        rig.controller.down = False
        await rig.until("reconnected", lambda: rig.loop.state.connected is True)
        await rig.scan_onto_a_cylinder()

    rig = play(tmp_path, scenario)
    events = [r["event"] for r in rig.rows("SELECT event FROM rig_events")]
    assert events[:4] == ["rig_connected", "rig_lost", "rig_connected", "permit_granted"]
