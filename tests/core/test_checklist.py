"""The checklists: items per medium, answers bound to their question, the record's summary."""

import pytest

from station.core.checklist import (
    DEFAULT_POST,
    DEFAULT_PRE,
    KEY_RE,
    SUMMARY_MAX,
    Answer,
    CheckItem,
    Question,
    items_for,
    judge,
    summary,
    with_measured,
)

ITEMS = (
    CheckItem("guard", "护罩、手轮齐全完好"),
    CheckItem("valve_type", "瓶阀为标准阀"),
    CheckItem("paint", "漆色标志清晰", required=False, refuses=False),
)
Q = Question("pre", "rig-01", "C001", 41, "tok-1", ITEMS)


def answer(**over) -> Answer:
    base = {"stage": "pre", "rig": "rig-01", "cylinder_id": "C001", "decision_id": 41,
            "token": "tok-1"}
    return Answer(**{**base, **over})


def test_the_defaults_cover_the_standards_list_for_lpg_and_nothing_for_other_media():
    keys = {i.key for i in DEFAULT_PRE}
    assert {"guard", "fire_water", "corrosion", "dent", "valve_seat", "tare_mark",
            "valve_type"} <= keys
    assert {i.key for i in DEFAULT_POST} == {"leak_valve", "leak_seam"}
    assert all(KEY_RE.fullmatch(i.key) for i in DEFAULT_PRE + DEFAULT_POST)
    assert len(items_for(DEFAULT_PRE, "G13")) == len(DEFAULT_PRE)
    assert items_for(DEFAULT_PRE, "G01") == ()


def test_all_ok_in_one_tap_is_taken_and_summarised_ok():
    out = judge(Q, answer())
    assert out.taken and out.refused == () and out.summary == "ok"


def test_a_refusing_defect_is_named():
    out = judge(Q, answer(not_ok=frozenset({"valve_type"})))
    assert out.taken and [i.key for i in out.refused] == ["valve_type"]
    assert out.summary == "defect:valve_type"


def test_a_defect_of_a_non_refusing_item_is_recorded_but_does_not_refuse():
    out = judge(Q, answer(not_ok=frozenset({"paint"})))
    assert out.taken and out.refused == () and out.summary == "defect:paint"


@pytest.mark.parametrize("over, why", [
    ({"rig": "rig-02"}, "rig"),
    ({"cylinder_id": "C002"}, "cylinder_id"),
    ({"decision_id": 40}, "decision_id"),        # an answer to an earlier decision: replayed
    ({"token": "tok-0"}, "token"),
    ({"stage": "post"}, "stage"),
    ({"not_ok": frozenset({"wheels"})}, "not asked"),
    ({"skipped": frozenset({"guard"})}, "required"),
    ({"not_ok": frozenset({"paint"}), "skipped": frozenset({"paint"})}, "both"),
])
def test_an_answer_that_does_not_answer_the_open_question_is_not_taken(over, why):
    out = judge(Q, answer(**over))
    assert not out.taken and why in out.why and out.refused == ()


def test_no_open_question_takes_no_answer():
    assert not judge(None, answer()).taken


def test_an_optional_item_may_be_skipped():
    assert judge(Q, answer(skipped=frozenset({"paint"}))).taken


def test_the_summary_fits_its_field_and_counts_what_it_left_out():
    many = tuple(CheckItem(f"item_number_{n:02d}", "x") for n in range(12))
    text = summary(many)
    assert len(text) <= SUMMARY_MAX and text.startswith("defect:item_number_00,")
    assert text.endswith(f",+{12 - text.count('item_number_')}")


@pytest.mark.parametrize("measured, checked, expected", [
    ("ok", "ok", "ok"),
    ("residual 0.40 kg", "ok", "residual 0.40 kg"),
    ("ok", "defect:guard", "ok; defect:guard"),
    ("overfill 0.62 kg", "defect:leak_valve", "overfill 0.62 kg; defect:leak_valve"),
])
def test_measured_and_checked_make_one_text(measured, checked, expected):
    assert with_measured(measured, checked) == expected
