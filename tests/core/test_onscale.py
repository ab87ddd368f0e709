"""Which cylinder a reading belongs to (station/core/onscale.py): placements, holds, sightings."""

from types import SimpleNamespace

from station.core.onscale import Scale


def line(at):
    return SimpleNamespace(at=at)


def placed(at=0.0):
    s = Scale()
    s.sample(False, at)
    s.sample(True, at + 0.1)
    return s


def test_each_placement_counts_once():
    s = Scale()
    for present in (False, True, True, False, True):
        s.sample(present, 0.0)
    assert s.placement == 2


def test_a_tag_is_handled_once_per_placement_however_long_it_stays():
    s = placed()
    assert not s.repeat("rf", "A", 1.0, 3.0, badge=False)
    assert s.repeat("rf", "A", 1.1, 3.0, badge=False)
    assert s.repeat("rf", "A", 100.0, 3.0, badge=False)  # still the same cylinder
    s.sample(False, 101.0)
    s.sample(True, 102.0)  # lifted and put back: a new placement, judged anew
    assert not s.repeat("rf", "A", 102.1, 3.0, badge=False)


def test_alternating_tags_are_each_repeats_of_their_own_sighting():
    s = placed()
    seen = [s.repeat("rf", k, 1.0 + i * 0.05, 3.0, badge=False) for i, k in
            enumerate("ABABABAB")]
    assert seen == [False, False] + [True] * 6


def test_over_an_empty_scale_repeats_slide_with_each_sighting():
    s = Scale()
    s.sample(False, 0.0)
    assert not s.repeat("rf", "A", 1.0, 3.0, badge=False)
    assert s.repeat("rf", "A", 3.5, 3.0, badge=False)  # 2.5 s after its last sighting
    assert not s.repeat("rf", "A", 7.0, 3.0, badge=False)


def test_a_sighting_made_before_the_scale_was_seen_empty_is_not_of_the_next_cylinder():
    s = Scale()
    s.sample(True, 0.0)
    s.sample(False, 5.0)  # sample at 5.0 shows empty: a sighting at 4.9 came before
    assert s.read_while_empty(4.9) and not s.read_while_empty(5.1)


def test_a_badge_toggles_once_while_it_stays_in_the_field():
    s = placed()
    toggles = [not s.repeat("rf", "BADGE", 1.0 + i * 0.25, 3.0, badge=True) for i in range(16)]
    assert sum(toggles) == 1
    s.sample(False, 6.0)  # the cylinder leaves; the badge is still there: no toggle
    assert s.repeat("rf", "BADGE", 6.1, 3.0, badge=True)


def test_two_tags_in_the_field_are_ambiguous_one_is_not():
    s = placed()
    s.repeat("rf", "A", 1.0, 3.0, badge=False)
    assert s.others_in_view("rf", "A", 1.0, 3.0) == []
    s.repeat("rf", "B", 1.2, 3.0, badge=False)
    assert s.others_in_view("rf", "B", 1.2, 3.0) == ["A"]
    assert s.others_in_view("cam", "B", 1.2, 3.0) == []  # another reader's keys differ


def test_a_second_tag_in_the_same_placement_is_ambiguous_however_late():
    s = placed()
    s.repeat("cam", "A", 1.0, 3.0, badge=False)
    assert s.others_in_view("cam", "B", 60.0, 3.0) == ["A"]


def test_a_scanner_reading_over_an_empty_scale_waits_for_the_next_placement():
    s = Scale()
    s.sample(False, 0.0)
    held = s.hold(line(1.0), "r", "scanner", 5.0)
    assert held is not None and held.until == 6.0
    assert s.held_state(stable=False, now=2.0) == "wait"
    s.sample(True, 2.0)
    assert s.held_state(stable=False, now=2.1) == "wait"  # placed, still swinging
    assert s.held_state(stable=True, now=2.5) == "judge"


def test_a_held_reading_is_void_when_no_cylinder_comes():
    s = Scale()
    s.hold(line(1.0), "r", "scanner", 5.0)
    assert s.held_state(stable=False, now=6.1).startswith("void: no cylinder")


def test_a_held_reading_is_void_when_its_cylinder_leaves():
    s = placed()
    s.hold(line(1.0), "r", "scanner", 5.0)  # on the scale, not yet stable
    s.sample(False, 1.5)
    assert s.held_state(stable=False, now=1.6).startswith("void: the cylinder it was read for")


def test_a_held_reading_never_binds_a_second_placement():
    s = Scale()
    s.hold(line(1.0), "r", "scanner", 5.0)
    s.sample(True, 1.5)
    s.sample(False, 2.0)
    s.sample(True, 2.5)
    assert s.held_state(stable=True, now=3.0).startswith("void")


def test_continuous_readers_are_not_held_over_an_empty_scale():
    s = Scale()
    assert s.hold(line(1.0), "r", "camera", 5.0) is None
    assert s.hold(line(1.0), "r", "rfid", 5.0) is None
    assert s.hold(line(1.0), "r", "scanner", 0.0) is None
    assert placed().hold(line(1.0), "r", "camera", 0.0) is not None  # placed, not yet stable


def test_after_a_gap_in_samples_what_stands_there_is_a_new_placement():
    s = placed()
    n = s.placement
    s.link_lost()  # no samples for a while: the cylinder may have been swapped
    s.sample(True, 21.0)
    assert s.placement == n + 1 and s.held is None


def test_a_void_sighting_is_forgotten_and_read_afresh():
    s = placed()
    assert not s.repeat("rf", "A", 0.2, 3.0, badge=False)
    s.bound("rf", "A", 0.2)
    assert s.repeat("rf", "A", 0.3, 3.0, badge=False)
    s.forget("rf", "A")  # its held reading was void (the scale never stood stable)
    assert not s.repeat("rf", "A", 6.0, 3.0, badge=False)


def test_a_tag_refused_for_a_passing_reason_is_judged_again_once_a_window():
    s = placed()
    s.repeat("rf", "A", 1.0, 3.0, badge=False)
    s.bound("rf", "A", 1.0)
    s.retry("rf", "A", 1.0, 3.0)  # refused NO_OPERATOR, say
    assert s.repeat("rf", "A", 2.0, 3.0, badge=False)
    assert not s.repeat("rf", "A", 4.1, 3.0, badge=False)  # judged again
    assert s.repeat("rf", "A", 4.2, 3.0, badge=False)


def test_the_previous_cylinders_tag_does_not_make_the_next_one_ambiguous():
    s = placed()
    s.repeat("rf", "A", 0.5, 3.0, badge=False)
    s.sample(False, 1.5)
    s.sample(True, 2.5)  # the next cylinder, within the window
    assert not s.repeat("rf", "B", 2.6, 3.0, badge=False)
    assert s.others_in_view("rf", "B", 2.6, 3.0) == []


def test_a_scan_binds_to_the_cylinder_that_stood_there_or_the_next_one_put_down():
    s = placed()
    arrived = s.epoch()
    assert s.still_for(arrived)
    s.sample(False, 2.0)
    s.sample(True, 3.0)  # queued behind a slow lookup while A left and B came
    assert not s.still_for(arrived)
    empty = Scale()
    before = empty.epoch()
    empty.sample(True, 1.0)
    assert empty.still_for(before)  # scanned, then put down: the held-reading rule
    empty.sample(False, 2.0)
    empty.sample(True, 3.0)
    assert not empty.still_for(before)
