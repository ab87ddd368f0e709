"""The fill cycle state machine, pure: status samples in, actions out, one test per path."""

from dataclasses import replace

from drivers.rig import RigStatus
from station.core.fillcycle import (
    Closed,
    FillContext,
    FillCycle,
    Grant,
    Lamps,
    Limits,
    Opened,
    Refused,
    Withdraw,
)

IDLE = RigStatus(permit=False, lamp_green=False, lamp_red=False, buzzer=False, valve_open=False,
                 cylinder_present=False, estop=False, fill_done=False, gross_g=0, stable=True,
                 overload=False, scale_fault=False, fault_code=0)
ON_SCALE = replace(IDLE, cylinder_present=True, gross_g=15200)
PERMITTED = replace(ON_SCALE, permit=True, lamp_green=True)
FILLING = replace(PERMITTED, valve_open=True, stable=False, gross_g=20000)
DONE = replace(ON_SCALE, fill_done=True, gross_g=29700, stable=False)
LIMITS = Limits(permit_timeout_s=120, tolerance_g=500, max_residual_g=500)


def ctx(**over):
    base = dict(record_id="r1", decision_id=1, cylinder_id="CYL-1", info_code="X1", tag="X1",
                medium="G13", operator="张三", source="city", tare_g=15200, target_g=14500)
    return FillContext(**(base | over))


def run(samples, limits=LIMITS, context=None):
    """Feed (status, mono, wall) samples to an accepted cycle; return the cycle and actions."""
    cycle = FillCycle(limits)
    cycle.accept(context or ctx(accepted_at=0.0))
    actions = []
    for status, t in samples:
        actions += cycle.step(status, t, 1_800_000_000 + t)
    return cycle, actions


def closed(actions):
    return [a for a in actions if isinstance(a, Closed)]


def test_normal_fill():
    cycle, actions = run([(ON_SCALE, 1), (PERMITTED, 2), (FILLING, 3),
                          (DONE, 10), (replace(DONE, stable=True, gross_g=29750), 11)])
    assert isinstance(actions[0], Opened) and actions[1] == Grant(15200, 14500)
    [end] = closed(actions)
    assert not end.cancelled and end.ctx.post_check == "ok" and end.ctx.net_g == 14550
    assert end.ctx.end_reason == "done" and end.ctx.prefill_g == 15200
    assert end.ctx.started_at == 1_800_000_003 and end.ctx.ended_at == 1_800_000_010
    assert Lamps(True, False, False) in actions
    assert cycle.phase == "ended"
    _, after = cycle, cycle.step(IDLE, 20, 0)  # taken off the scale: lamps out, idle
    assert after == [Lamps(False, False)] and cycle.phase == "idle"


def test_overfill_is_red_with_buzzer():
    _, actions = run([(ON_SCALE, 1), (FILLING, 2), (DONE, 9),
                      (replace(DONE, stable=True, gross_g=15200 + 14500 + 501), 10)])
    [end] = closed(actions)
    assert end.ctx.post_check == "overfill" and actions[-1] == Lamps(False, True, True)


def test_underfill_is_a_warning():
    _, actions = run([(ON_SCALE, 1), (FILLING, 2), (DONE, 9),
                      (replace(DONE, stable=True, gross_g=15200 + 14500 - 501), 10)])
    [end] = closed(actions)
    assert end.ctx.post_check == "underfill" and actions[-1] == Lamps(True, False, True)


def test_within_tolerance_is_ok():
    _, actions = run([(ON_SCALE, 1), (FILLING, 2), (DONE, 9),
                      (replace(DONE, stable=True, gross_g=15200 + 14500 + 500), 10)])
    assert closed(actions)[0].ctx.post_check == "ok"


def test_removal_mid_fill_is_interrupted_with_the_last_mass():
    removed = replace(IDLE, permit=True, gross_g=0)
    _, actions = run([(ON_SCALE, 1), (FILLING, 2), (replace(FILLING, gross_g=22000), 3),
                      (removed, 4)])
    [end] = closed(actions)
    assert end.ctx.post_check == "interrupted" and end.ctx.end_reason.startswith("cylinder removed; mass last seen")
    assert end.ctx.gross_g == 22000 and end.ctx.net_g == 22000 - 15200
    assert Withdraw("cylinder removed") in actions


def test_estop_mid_fill_is_interrupted():
    estop = replace(ON_SCALE, estop=True, gross_g=21000)
    _, actions = run([(ON_SCALE, 1), (FILLING, 2), (estop, 3)])
    [end] = closed(actions)
    assert end.ctx.end_reason == "ESTOP" and end.ctx.post_check.startswith("interrupted")


def test_unused_permit_expires_without_a_record():
    cycle, actions = run([(ON_SCALE, 1), (PERMITTED, 2), (PERMITTED, 1_800_000_000 + 200)])
    [end] = closed(actions)
    assert end.cancelled and end.ctx.end_reason == "permit unused: expired"
    assert Withdraw("permit unused: expired") in actions and cycle.phase == "idle"


def test_permit_expiry_follows_the_monotonic_clock_through_wall_clock_steps():
    cycle = FillCycle(LIMITS)
    cycle.accept(ctx(accepted_at=0.0))
    cycle.step(ON_SCALE, 1, 1_800_000_000)  # granted
    assert cycle.step(PERMITTED, 2, 1_800_000_000 + 86400) == []  # stepped a day forward
    assert cycle.phase == "permitted"
    actions = cycle.step(PERMITTED, 122, 1_800_000_000 - 86400)  # a day back: expires on time
    assert Withdraw("permit unused: expired") in actions and cycle.phase == "idle"


def test_a_sample_torn_by_the_removal_does_not_become_the_record():
    """Presence read before the cylinder left, mass after: present on a scale reading 0 g."""
    torn = replace(ON_SCALE, stable=True, gross_g=0, fill_done=True)
    gone = replace(IDLE, fill_done=True)
    _, actions = run([(ON_SCALE, 1), (FILLING, 2), (replace(FILLING, gross_g=29650), 3),
                      (replace(DONE, gross_g=29700), 4), (torn, 5), (gone, 6)])
    [end] = closed(actions)
    assert end.ctx.gross_g == 29700 and end.ctx.post_check == "ok"  # the last whole sample


def test_a_torn_sample_is_no_pre_fill_mass():
    torn = replace(ON_SCALE, gross_g=0)
    cycle, actions = run([(torn, 1)])
    assert actions == [] and cycle.phase == "accepted"
    _, actions = cycle, cycle.step(ON_SCALE, 2, 0)
    assert actions[1] == Grant(15200, 14500) and cycle.ctx.prefill_g == 15200


def test_removal_before_the_valve_opened_cancels():
    cycle, actions = run([(ON_SCALE, 1), (PERMITTED, 2), (IDLE, 3)])
    assert closed(actions)[0].cancelled and Withdraw("cylinder removed") in actions
    assert cycle.phase == "idle"


def test_accepted_waits_for_a_stable_cylinder_then_expires():
    cycle, actions = run([(IDLE, 1), (replace(ON_SCALE, stable=False), 2)])
    assert actions == [] and cycle.phase == "accepted"
    cycle, actions = run([(IDLE, 1), (IDLE, 121)])
    assert cycle.phase == "idle" and actions == [Lamps(False, False)]


def test_residual_is_noted_or_refused():
    heavy = replace(ON_SCALE, gross_g=15200 + 800)
    _, actions = run([(heavy, 1)])
    assert isinstance(actions[1], Grant) and actions[0].ctx.pre_check == "residual 0.80 kg"
    _, actions = run([(heavy, 1)], limits=replace(LIMITS, refuse_residual=True))
    assert isinstance(actions[0], Refused) and not any(isinstance(a, Grant) for a in actions)


def test_watchdog_before_the_valve_opened_cancels_and_shows_red():
    cycle, actions = run([(ON_SCALE, 1), (PERMITTED, 2), (ON_SCALE, 3)])
    [end] = closed(actions)
    assert end.cancelled and actions[-1] == Lamps(False, True)
    assert cycle.phase == "ended"


def test_unstable_scale_is_recorded_after_the_settle_timeout():
    _, actions = run([(ON_SCALE, 1), (FILLING, 2), (DONE, 9), (replace(DONE, gross_g=29700), 30)])
    assert closed(actions)[0].ctx.post_check == "ok (scale not stable)"


def test_a_just_filled_cylinder_gets_no_second_permit_until_it_leaves_the_scale():
    cycle, _ = run([(ON_SCALE, 1), (FILLING, 2), (DONE, 9),
                    (replace(DONE, stable=True, gross_g=29700), 10)])
    cycle.reset()  # the next tag is read while the full cylinder still stands there
    cycle.accept(ctx(record_id="r2", accepted_at=11.0))
    full = replace(ON_SCALE, gross_g=29700)
    assert cycle.step(full, 12, 0) == [] and cycle.phase == "accepted"
    cycle.step(IDLE, 13, 0)  # taken off: the verdict was for the cylinder that stood there
    assert cycle.phase == "idle"
    actions = cycle.step(ON_SCALE, 14, 0)  # the next cylinder needs a reading of its own
    assert not any(isinstance(a, Grant) for a in actions)


def test_a_verdict_is_void_when_its_cylinder_leaves_before_the_permit():
    cycle = FillCycle(LIMITS)
    cycle.accept(ctx(accepted_at=0.0, judged_g=15200))
    cycle.step(replace(ON_SCALE, stable=False), 1, 0)  # weighed, then wobbling
    assert cycle.step(IDLE, 2, 0) == [Lamps(False, False)] and cycle.phase == "idle"
    assert not any(isinstance(a, Grant) for a in cycle.step(ON_SCALE, 3, 0))


def test_a_cylinder_swapped_between_verdict_and_permit_is_refused():
    cycle = FillCycle(LIMITS)
    cycle.accept(ctx(accepted_at=0.0, judged_g=15200, swap_g=760))
    actions = cycle.step(replace(ON_SCALE, gross_g=6500), 1, 0)
    assert [a.reason for a in actions if isinstance(a, Refused)] == ["MASS_MISMATCH"]
    assert not any(isinstance(a, Grant) for a in actions)


def test_the_swap_tolerance_edge_still_permits():
    cycle = FillCycle(LIMITS)
    cycle.accept(ctx(accepted_at=0.0, judged_g=15200, swap_g=760))
    assert any(isinstance(a, Grant) for a in cycle.step(replace(ON_SCALE, gross_g=14440), 1, 0))


def test_a_cylinder_lighter_while_the_permit_is_held_loses_it():
    cycle = FillCycle(LIMITS)
    cycle.accept(ctx(accepted_at=0.0, judged_g=15200, swap_g=760))
    cycle.step(ON_SCALE, 1, 0)
    assert cycle.phase == "permitted"
    actions = cycle.step(replace(PERMITTED, gross_g=14300), 2, 0)  # 0.9 kg lighter
    assert any(isinstance(a, Withdraw) for a in actions)
    assert closed(actions)[0].cancelled
    assert [a.reason for a in actions if isinstance(a, Refused)] == ["MASS_MISMATCH"]


def test_the_daemon_withdraws_when_the_controller_fails_to_cut_off():
    over = replace(FILLING, gross_g=15200 + 14500 + 501)
    _, actions = run([(ON_SCALE, 1), (FILLING, 2), (over, 3)])
    assert Withdraw("over target: the controller did not cut off") in actions


def test_the_valve_seen_open_is_recorded_once():
    from station.core.fillcycle import Started

    _, actions = run([(ON_SCALE, 1), (FILLING, 2), (replace(FILLING, gross_g=21000), 3)])
    assert sum(isinstance(a, Started) for a in actions) == 1


def test_the_previous_cylinders_latch_does_not_end_the_next_fill():
    """FILL_DONE may still read 1 for a few hundred ms after the permit write (rig-modbus.md)."""
    stale = replace(PERMITTED, fill_done=True)
    cycle, actions = run([(ON_SCALE, 1), (stale, 1.1), (stale, 1.2)])
    assert cycle.phase == "permitted" and not closed(actions)
    actions = cycle.step(PERMITTED, 1.3, 0) + cycle.step(FILLING, 2, 0)
    assert cycle.phase == "filling" and not closed(actions)


def test_a_latch_seen_low_then_high_is_a_fill_the_samples_missed():
    cycle, _ = run([(ON_SCALE, 1), (PERMITTED, 1.1)])
    cycle.step(replace(DONE, permit=False), 1.3, 0)  # valve opened and closed unseen
    assert cycle.phase in ("filling", "settling", "ended")


def test_a_clamped_filling_head_is_not_a_fill():
    head = replace(PERMITTED, gross_g=15200 + 150)
    cycle, actions = run([(ON_SCALE, 1), (head, 2), (head, 3)])
    assert cycle.phase == "permitted" and not any(isinstance(a, Withdraw) for a in actions)
    assert not closed(actions)


def test_a_gain_beyond_a_filling_head_is_a_fill_though_no_sample_saw_the_valve():
    gained = replace(PERMITTED, gross_g=15200 + 1500)
    _, actions = run([(ON_SCALE, 1), (gained, 2)])
    [record] = closed(actions)
    assert not record.cancelled and record.ctx.post_check == "interrupted"


def test_a_hand_pressing_on_the_cylinder_is_not_a_fill():
    """An unstable +1.5 kg for one sample with the valve shut, then the head's +150 g."""
    cycle, actions = run([(ON_SCALE, 1), (PERMITTED, 1.2),
                          (replace(PERMITTED, gross_g=16700, stable=False), 1.4),
                          (replace(PERMITTED, gross_g=15350), 1.6)])
    assert cycle.phase == "permitted"
    assert not closed(actions) and not any(isinstance(a, Withdraw) for a in actions)


def test_an_interrupted_cylinder_may_be_scanned_again_a_done_one_may_not():
    estop = replace(FILLING, estop=True, valve_open=False, permit=False, stable=True)
    cycle, _ = run([(ON_SCALE, 1), (FILLING, 2), (estop, 3), (replace(estop, estop=False), 4)])
    assert not cycle.filled_on_scale
    done, _ = run([(ON_SCALE, 1), (FILLING, 2), (DONE, 9),
                   (replace(DONE, stable=True, gross_g=29700), 10)])
    assert done.filled_on_scale


def filling_cycle():
    cycle, _ = run([(ON_SCALE, 1), (FILLING, 2), (replace(FILLING, gross_g=21000), 3)])
    return cycle


def test_busy_and_engaged_follow_the_phases():
    cycle = FillCycle(LIMITS)
    assert not cycle.busy and not cycle.engaged
    cycle.accept(ctx(accepted_at=0.0))
    assert not cycle.engaged
    cycle.step(ON_SCALE, 1, 0)
    assert cycle.engaged and not cycle.busy and cycle.holds_permit
    cycle = filling_cycle()
    assert cycle.busy and cycle.engaged


def test_preempt_cancels_an_unused_permit_and_goes_idle():
    cycle, _ = run([(ON_SCALE, 1), (PERMITTED, 2)])
    [end] = cycle.preempt("another reading at the rig")
    assert end.cancelled and end.ctx.end_reason == "another reading at the rig"
    assert cycle.phase == "idle" and cycle.ctx is None


def test_preempt_voids_a_waiting_verdict_without_a_record():
    cycle, _ = run([(IDLE, 1)])
    assert cycle.preempt("another reading") == [] and cycle.phase == "idle"


def test_a_fill_under_way_is_never_preempted_or_abandoned():
    cycle = filling_cycle()
    assert cycle.preempt("another reading") == [] and cycle.phase == "filling"
    assert not cycle.abandon() and cycle.phase == "filling"
    cycle.rig_lost()
    assert cycle.phase == "filling"


def test_rig_lost_voids_only_a_verdict_waiting_for_its_permit():
    cycle, _ = run([(IDLE, 1)])
    cycle.rig_lost()
    assert cycle.phase == "idle"
    cycle, _ = run([(ON_SCALE, 1), (PERMITTED, 2)])
    cycle.rig_lost()
    assert cycle.phase == "permitted"  # the reconnect's sample tells how it ended


def test_stop_records_a_running_fill_interrupted_and_cancels_an_unused_permit():
    [end] = filling_cycle().stop("station stopped", 1_800_000_100)
    assert not end.cancelled and end.ctx.end_reason == "station stopped during the fill"
    assert (end.ctx.post_check, end.ctx.gross_g, end.ctx.ended_at) == \
        ("interrupted", 21000, 1_800_000_100)
    cycle, _ = run([(ON_SCALE, 1), (PERMITTED, 2)])
    [end] = cycle.stop("station stopped", 0)
    assert end.cancelled and end.ctx.end_reason == "station stopped" and cycle.phase == "idle"
    assert FillCycle(LIMITS).stop("station stopped", 0) == []


def open_row(**over):
    row = {k: getattr(ctx(), k) for k in ("record_id", "decision_id", "cylinder_id", "info_code",
                                          "tag", "medium", "operator", "source", "tare_g",
                                          "target_g", "cache_age_s", "override_by",
                                          "override_reason")}
    return row | {"prefill_g": 15200, "permitted_at": 1_800_000_000.0, "started_at": None} | over


def test_recover_cancels_a_permit_provably_unused():
    end = FillCycle(LIMITS).recover(open_row(), ON_SCALE, 1_800_000_050)
    assert end.cancelled and end.ctx.end_reason.endswith("the valve was never seen open")


def test_recover_records_a_cut_off_at_target_as_done():
    full = replace(ON_SCALE, fill_done=True, gross_g=15200 + 14500)
    end = FillCycle(LIMITS).recover(open_row(started_at=1_800_000_001.0), full, 1_800_000_050)
    assert not end.cancelled and end.ctx.end_reason == "done" and end.ctx.post_check == "ok"
    assert end.ctx.net_g == 14500 and end.ctx.ended_at == 1_800_000_050


def test_recover_over_reports_a_cylinder_gone_or_a_small_gain():
    gone = FillCycle(LIMITS).recover(open_row(), IDLE, 0)
    assert not gone.cancelled and gone.ctx.end_reason.endswith("the cylinder was gone")
    assert gone.ctx.post_check == "interrupted" and gone.ctx.gross_g is None
    clamped = FillCycle(LIMITS).recover(open_row(), replace(ON_SCALE, gross_g=15400), 0)
    assert not clamped.cancelled and "gained 0.20 kg" in clamped.ctx.end_reason


def test_result_is_the_fill_just_recorded_while_its_cylinder_stands():
    cycle, _ = run([(ON_SCALE, 1), (FILLING, 2), (DONE, 9),
                    (replace(DONE, stable=True, gross_g=29700), 10)])
    assert cycle.result is cycle.ctx and cycle.result.post_check == "ok"
    cycle.step(IDLE, 11, 0)
    assert cycle.result is None
