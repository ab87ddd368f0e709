"""RigModel physics as tables with explicit clock values: no server, no sleeping."""

import pytest

from simulators.rig import RigModel, RigSimulator, execute_command, join_u32, split_u32
from station.config import RegisterMap

HB, WD, TARGET, TARE = 0, 1, 2, 4  # default holding addresses
PERMIT = 0


def ready_rig(
    t: float = 0.0,
    *,
    watchdog_ms: int = 3000,
    start_delay_s=None,
    tare_g: int = 15000,
    target_g: int = 14500,
    gross_g: int | None = 15000,
    flow: float = 2000.0,
) -> RigModel:
    """A rig at time t with a fresh heartbeat, tare/target written and (optionally) a cylinder."""
    rig = RigModel(start_delay_s=start_delay_s, flow_g_per_s=flow, now=t)
    rig.write_holding(WD, [watchdog_ms], now=t)
    rig.write_holding(HB, [1], now=t)
    rig.write_holding(TARE, list(split_u32(tare_g)), now=t)
    rig.write_holding(TARGET, list(split_u32(target_g)), now=t)
    if gross_g is not None:
        rig.place_cylinder(gross_g, now=t)
    return rig


def grant(rig: RigModel, t: float) -> bool:
    return rig.write_coils(PERMIT, [True], now=t)[0]


@pytest.mark.parametrize(
    "at, permit, trips",
    [
        (0.1, True, 0),
        (2.999, True, 0),
        (3.0, False, 1),
        (10.0, False, 1),
    ],
)
def test_watchdog_trips_exactly_after_the_period(at, permit, trips):
    rig = ready_rig(0.0, watchdog_ms=3000)
    assert grant(rig, 0.05)
    snap = rig.snapshot(now=at)
    assert (snap["fill_permit"], snap["watchdog_trips"]) == (permit, trips)


def test_a_new_heartbeat_value_resets_the_watchdog_and_a_repeated_one_does_not():
    rig = ready_rig(0.0, watchdog_ms=1000)
    assert grant(rig, 0.0)
    rig.write_holding(HB, [2], now=0.9)  # new value: the period restarts at 0.9
    assert rig.snapshot(now=1.85)["fill_permit"] is True
    rig.write_holding(HB, [2], now=1.85)  # same value: no reset
    snap = rig.snapshot(now=1.9)
    assert snap["fill_permit"] is False and snap["watchdog_trips"] == 1


def test_watchdog_trip_closes_the_valve():
    rig = ready_rig(0.0, watchdog_ms=1000)
    grant(rig, 0.0)
    rig.press_start(now=0.1)
    assert rig.snapshot(now=0.5)["valve_open"] is True
    snap = rig.snapshot(now=1.0)
    assert (snap["valve_open"], snap["fill_permit"], snap["fill_done"]) == (False, False, False)
    assert snap["gross_g"] == 15000 + int(0.9 * 2000)


def test_no_trip_without_a_permit():
    rig = ready_rig(0.0, watchdog_ms=1000)
    assert rig.snapshot(now=100.0)["watchdog_trips"] == 0


@pytest.mark.parametrize("fault", ["estop", "scale_fault", "overload", "stale_heartbeat"])
def test_permit_is_refused(fault):
    rig = ready_rig(0.0, watchdog_ms=1000)
    t = 0.5
    if fault == "estop":
        rig.set_estop(True, now=t)
    elif fault == "scale_fault":
        rig.set_scale_fault(True, now=t)
    elif fault == "overload":
        rig.set_overload(True, now=t)
    else:
        t = 1.0  # heartbeat written at 0.0, watchdog 1 s
    assert grant(rig, t) is False
    snap = rig.snapshot(now=t)
    assert (snap["fill_permit"], snap["permit_grants"]) == (False, 0)


def test_permit_granted_once_estop_released():
    rig = ready_rig(0.0)
    rig.set_estop(True, now=0.1)
    assert grant(rig, 0.2) is False
    rig.set_estop(False, now=0.3)
    assert grant(rig, 0.4) is True


def test_estop_closes_the_valve_and_clears_the_permit():
    rig = ready_rig(0.0)
    grant(rig, 0.0)
    rig.press_start(now=0.0)
    rig.set_estop(True, now=1.0)
    snap = rig.snapshot(now=1.0)
    assert (snap["valve_open"], snap["fill_permit"], snap["fault_code"]) == (False, False, 1)


def test_fill_to_target_latches_fill_done_and_clears_permit():
    rig = ready_rig(
        0.0, start_delay_s=0.5, tare_g=15000, target_g=14500, gross_g=15000, watchdog_ms=60000
    )
    assert grant(rig, 1.0)
    table = [  # (now, valve_open, permit, fill_done, gross_g)
        (1.49, False, True, False, 15000),
        (1.5, True, True, False, 15000),  # the start button, pressed start_delay_s after
        (2.5, True, True, False, 17000),
        (8.74, True, True, False, 15000 + int(7.24 * 2000)),
        (8.75, False, False, True, 29500),  # 14.5 kg at 2 kg/s = 7.25 s
        (20.0, False, False, True, 29500),
    ]
    for now, valve, permit, done, gross in table:
        snap = rig.snapshot(now=now)
        got = (snap["valve_open"], snap["fill_permit"], snap["fill_done"], snap["gross_g"])
        assert got == (valve, permit, done, gross), f"at t={now}"
    assert rig.snapshot(now=20.0)["valve_openings"] == 1


def test_target_reached_inside_one_long_step():
    rig = ready_rig(0.0, start_delay_s=0.5, target_g=1000, watchdog_ms=60000)
    grant(rig, 0.0)
    snap = rig.snapshot(now=30.0)  # start at 0.5, done at 1.0, well before the watchdog
    assert (snap["fill_done"], snap["gross_g"], snap["watchdog_trips"]) == (True, 16000, 0)


def test_a_new_permit_clears_the_fill_done_latch():
    rig = ready_rig(0.0, target_g=1000)
    grant(rig, 0.0)
    rig.press_start(now=0.0)
    assert rig.snapshot(now=1.0)["fill_done"] is True
    rig.write_holding(HB, [2], now=1.0)
    assert rig.snapshot(now=1.5)["fill_done"] is True  # latched
    assert grant(rig, 2.0)
    snap = rig.snapshot(now=2.0)
    assert (snap["fill_done"], snap["fill_permit"], snap["permit_grants"]) == (False, True, 2)


def test_removing_the_cylinder_closes_the_valve_and_cancels_the_permit():
    rig = ready_rig(0.0)
    grant(rig, 0.0)
    rig.press_start(now=0.0)
    rig.remove_cylinder(now=1.0)
    snap = rig.snapshot(now=1.0)
    assert (snap["valve_open"], snap["cylinder_present"], snap["fill_permit"]) == (
        False,
        False,
        False,
    )
    assert snap["gross_g"] == 0
    rig.press_start(now=1.1)  # nothing to fill
    assert rig.snapshot(now=1.2)["valve_open"] is False


def test_start_is_not_pressed_without_a_cylinder_and_is_pressed_after_one_is_placed():
    rig = ready_rig(0.0, start_delay_s=0.5, gross_g=None)
    grant(rig, 0.0)
    assert rig.snapshot(now=1.0)["valve_open"] is False
    rig.place_cylinder(15000, now=1.0)
    assert rig.snapshot(now=1.49)["valve_open"] is False
    assert rig.snapshot(now=1.5)["valve_open"] is True


def test_start_delay_none_never_presses():
    rig = ready_rig(0.0, start_delay_s=None)
    grant(rig, 0.0)
    assert rig.snapshot(now=2.0)["valve_open"] is False


def test_scale_is_stable_three_tenths_after_the_valve_closes():
    rig = ready_rig(0.0, target_g=1000)
    assert rig.snapshot(now=0.0)["stable"] is True
    grant(rig, 0.0)
    rig.press_start(now=0.0)
    assert rig.snapshot(now=0.2)["stable"] is False
    assert rig.snapshot(now=0.79)["stable"] is False  # closed at 0.5
    assert rig.snapshot(now=0.8)["stable"] is True
    assert rig.read_words("input", 4, now=0.8)[2] & 1 == 1


@pytest.mark.parametrize(
    "value, words",
    [
        (0, (0, 0)),
        (1, (0, 1)),
        (65535, (0, 65535)),
        (65536, (1, 0)),
        (29500, (0, 29500)),
        (0x12345678, (0x1234, 0x5678)),
        (0xFFFFFFFF, (0xFFFF, 0xFFFF)),
    ],
)
def test_u32_split_high_word_first(value, words):
    assert split_u32(value) == words
    assert join_u32(*words) == value


@pytest.mark.parametrize("value", [-1, 0x100000000])
def test_u32_split_rejects_out_of_range(value):
    with pytest.raises(ValueError):
        split_u32(value)


def test_gross_and_target_registers_carry_u32_high_word_first():
    rig = ready_rig(0.0, gross_g=70000)
    assert rig.read_words("input", 4, now=0.0)[:2] == [1, 4464]  # 70000 = 1 * 65536 + 4464
    rig.write_holding(TARGET, [2, 3], now=0.0)
    assert rig.snapshot(now=0.0)["target_net_g"] == 2 * 65536 + 3


def test_scale_status_and_fault_code_bits():
    rig = ready_rig(0.0)
    rig.set_overload(True, now=0.0)
    rig.set_scale_fault(True, now=0.0)
    words = rig.read_words("input", 4, now=1.0)
    assert (words[2], words[3]) == (0b111, 2)


def test_configured_addresses_are_used():
    regs = RegisterMap(
        fill_permit=10,
        valve_open=7,
        gross_g=20,
        scale_status=22,
        fault_code=23,
        heartbeat=30,
        watchdog_ms=31,
        target_net_g=32,
        tare_g=34,
    )
    rig = RigModel(registers=regs, start_delay_s=None, now=0.0)
    rig.write_holding(30, [5], now=0.0)
    rig.place_cylinder(123, now=0.0)
    assert rig.write_coils(10, [True], now=0.1) == [True]
    assert rig.read_bits("coils", 11, now=0.1)[10] is True
    assert rig.read_words("input", 24, now=0.1)[20:22] == [0, 123]


def filled_rig(overshoot_g: int) -> RigModel:
    """Target 1000 g at 2000 g/s from gross 15000, started at 0: the valve closes at t=0.5."""
    rig = ready_rig(0.0, target_g=1000, watchdog_ms=60000)
    rig.set_overshoot(overshoot_g, now=0.0)
    grant(rig, 0.0)
    rig.press_start(now=0.0)
    return rig


@pytest.mark.parametrize("overshoot", [250, -180, 0, 1, -1])
def test_overshoot_moves_the_gross_mass_after_the_close_and_then_the_scale_is_stable(overshoot):
    rig = filled_rig(overshoot)
    closed = rig.snapshot(now=0.5)
    assert (closed["valve_open"], closed["fill_done"], closed["stable"]) == (False, True, False)
    assert closed["gross_g"] == 16000  # closed exactly at tare + target
    settling = [rig.snapshot(now=t) for t in (0.6, 0.7, 0.79)]
    assert not any(s["stable"] for s in settling)
    grosses = [16000] + [s["gross_g"] for s in settling]
    assert grosses == sorted(grosses, reverse=overshoot < 0)  # moves one way only
    if abs(overshoot) >= 100:
        assert 0 < abs(settling[1]["gross_g"] - 16000) < abs(overshoot)  # partly there
    for t in (0.8, 5.0):
        snap = rig.snapshot(now=t)
        assert (snap["stable"], snap["gross_g"]) == (True, 15000 + 1000 + overshoot), t
    words = rig.read_words("input", 4, now=5.0)
    assert (join_u32(words[0], words[1]), words[2] & 1) == (16000 + overshoot, 1)


def test_overshoot_arrives_only_after_a_close_at_target():
    rig = ready_rig(0.0, target_g=1000, watchdog_ms=60000)
    rig.set_overshoot(300, now=0.0)
    grant(rig, 0.0)
    rig.press_start(now=0.0)
    rig.set_estop(True, now=0.25)  # closed early by the emergency stop: no valve-lag overshoot
    assert rig.snapshot(now=2.0)["gross_g"] == 15500


def test_removing_the_cylinder_while_settling_ends_the_overshoot():
    rig = filled_rig(400)
    rig.remove_cylinder(now=0.6)
    assert rig.snapshot(now=2.0)["gross_g"] == 0
    rig.place_cylinder(15000, now=2.0)
    assert rig.snapshot(now=3.0)["gross_g"] == 15000


def test_set_overshoot_applies_to_the_next_fill_and_wants_whole_grams():
    rig = filled_rig(0)
    rig.set_overshoot(-50, now=0.6)  # after this close: no effect on it
    assert rig.snapshot(now=1.0)["gross_g"] == 16000
    rig.remove_cylinder(now=1.0)
    rig.place_cylinder(15000, now=1.0)
    rig.write_holding(HB, [2], now=1.0)
    assert grant(rig, 1.0)
    rig.press_start(now=1.0)
    snap = rig.snapshot(now=2.0)
    assert (snap["gross_g"], snap["overshoot_g"], snap["stable"]) == (15950, -50, True)
    with pytest.raises(ValueError):
        rig.set_overshoot(1.5)


def test_overshoot_is_a_model_option_and_an_underfill_never_goes_below_zero():
    rig = RigModel(start_delay_s=None, overshoot_g=-5000, now=0.0)
    rig.write_holding(HB, [1], now=0.0)
    rig.write_holding(TARGET, list(split_u32(1000)), now=0.0)
    rig.place_cylinder(0, now=0.0)
    assert grant(rig, 0.0)
    rig.press_start(now=0.0)
    assert rig.snapshot(now=2.0)["gross_g"] == 0
    assert rig.read_words("input", 2, now=2.0) == [0, 0]


def test_overshoot_command_sets_one_rig():
    sim = RigSimulator([1, 2])  # never started: the commands only touch the models
    reply = execute_command(sim, "overshoot 2 120")
    assert "unit=2 " in reply and "overshoot_g=120" in reply
    assert (sim.rig(1).overshoot_g, sim.rig(2).overshoot_g) == (0, 120)
    assert execute_command(sim, "overshoot 2 -35").endswith("overshoot_g=-35")
    assert execute_command(sim, "overshoot 2").startswith("error: overshoot: missing argument")
    assert execute_command(sim, "overshoot 2 lots").startswith("error:")
    assert "overshoot UNIT GRAMS" in execute_command(sim, "help")
