"""The operator's checklists in the fill cycle: no permit before the pre-fill answer, a defect
refuses, a question left open lapses, and a post-fill answer completes the record (never lost)."""

from dataclasses import replace

from test_fillcycle import DONE, FILLING, IDLE, LIMITS, ON_SCALE, PERMITTED, closed, ctx

from station.core.checklist import Answer as Reply
from station.core.checklist import CheckItem, Question, judge
from station.core.fillcycle import FillCycle, Grant, Refused

PRE = (CheckItem("guard", "护罩、手轮齐全完好"), CheckItem("paint", "漆色清晰", refuses=False))
POST = (CheckItem("leak_valve", "瓶阀处无泄漏"),)
ASKING = replace(LIMITS, ask_pre=True, ask_post=True, answer_within_s=60)
WALL = 1_800_000_000
SETTLED = replace(DONE, stable=True, gross_g=29750)


def outcome(stage, not_ok=(), items=PRE):
    q = Question(stage, "rig-01", "CYL-1", 1, "t", items)
    return judge(q, Reply(stage, "rig-01", "CYL-1", 1, "t", frozenset(not_ok)))


def accepted(limits=ASKING):
    cycle = FillCycle(limits)
    cycle.accept(ctx(accepted_at=0.0))
    return cycle


def step(cycle, status, t):
    return cycle.step(status, t, WALL + t)


def grants(actions):
    return [a for a in actions if isinstance(a, Grant)]


def test_no_permit_until_the_pre_fill_checklist_is_answered_all_ok():
    cycle = accepted()
    assert cycle.question == "pre"
    assert grants(step(cycle, ON_SCALE, 1) + step(cycle, ON_SCALE, 30)) == []
    assert cycle.answer("pre", outcome("pre"), "张三", 31) == []
    assert cycle.question == "" and grants(step(cycle, ON_SCALE, 32)) == [Grant(15200, 14500)]
    assert cycle.ctx.pre_check == "ok" and cycle.ctx.checks["pre"]["by"] == "张三"


def test_a_refusing_defect_refuses_the_fill_and_names_the_item():
    cycle = accepted()
    step(cycle, ON_SCALE, 1)
    [refused] = cycle.answer("pre", outcome("pre", {"guard", "paint"}), "张三", 5)
    assert isinstance(refused, Refused) and refused.reason == "CHECK_DEFECT"
    assert "护罩" in refused.why and "漆色" not in refused.why  # paint does not refuse
    assert cycle.phase == "ended" and cycle.ctx.pre_check == "ok; defect:guard,paint"
    assert grants(step(cycle, ON_SCALE, 6)) == []


def test_a_non_refusing_defect_is_recorded_and_the_permit_follows():
    cycle = accepted()
    assert cycle.answer("pre", outcome("pre", {"paint"}), "张三", 2) == []
    assert grants(step(cycle, ON_SCALE, 3)) and cycle.ctx.pre_check == "ok; defect:paint"


def test_a_question_left_open_lapses_and_never_holds_a_permit():
    cycle = accepted()
    assert grants(step(cycle, ON_SCALE, 59)) == []
    [refused] = step(cycle, ON_SCALE, 61)
    assert isinstance(refused, Refused) and refused.reason == "CHECK_LAPSED"
    assert cycle.question == "" and cycle.answer("pre", outcome("pre"), "张三", 62) == []
    assert grants(step(cycle, ON_SCALE, 63)) == []


def test_the_cylinder_leaving_during_the_checklist_voids_the_verdict():
    cycle = accepted()
    step(cycle, ON_SCALE, 1)
    step(cycle, IDLE, 2)
    assert cycle.phase == "idle" and cycle.question == ""


def fill_to_settled(cycle):
    cycle.answer("pre", outcome("pre"), "张三", 0.5)
    actions = []
    for status, t in ((ON_SCALE, 1), (PERMITTED, 2), (FILLING, 3), (DONE, 10), (SETTLED, 11)):
        actions += step(cycle, status, t)
    return actions


def test_the_record_waits_for_the_post_fill_answer_and_carries_it():
    cycle = accepted()
    assert closed(fill_to_settled(cycle)) == [] and cycle.question == "post"
    assert cycle.result is not None  # the screen shows the result meanwhile
    [end] = cycle.answer("post", outcome("post", {"leak_valve"}, POST), "张三", 20)
    assert end.ctx.post_check == "ok; defect:leak_valve" and not end.cancelled
    assert end.ctx.checks["post"]["not_ok"] == ["leak_valve"]
    assert step(cycle, SETTLED, 21) == []  # closed once


def test_an_unanswered_post_fill_question_never_loses_the_record():
    for finish in (lambda c: step(c, IDLE, 30),                  # the cylinder taken off
                   lambda c: step(c, SETTLED, 11 + 61),          # the deadline
                   lambda c: c.preempt("another reading"),       # a new reading
                   lambda c: c.stop("SIGTERM", WALL + 40)):      # the station stops
        cycle = accepted()
        fill_to_settled(cycle)
        [end] = closed(finish(cycle))
        assert end.ctx.post_check == "ok" and "not answered" in end.ctx.checks["post"]["unanswered"]
        assert not end.cancelled


def test_a_cylinder_removed_before_settling_closes_at_once_saying_the_check_was_not_asked():
    cycle = accepted()
    cycle.answer("pre", outcome("pre"), "张三", 0.5)
    for status, t in ((ON_SCALE, 1), (PERMITTED, 2), (FILLING, 3), (DONE, 10)):
        step(cycle, status, t)
    [end] = closed(step(cycle, IDLE, 11))
    assert cycle.question == "" and "unanswered" in end.ctx.checks["post"]


def test_off_asks_nothing():
    cycle = accepted(LIMITS)
    assert cycle.question == "" and grants(step(cycle, ON_SCALE, 1))


def test_a_fill_recovered_after_a_crash_keeps_its_pre_fill_answers():
    """The open row carried the pre-fill check (committed before the permit): a restart's
    record keeps it instead of a plain "ok"."""
    from test_fillcycle import open_row

    row = open_row(started_at=WALL + 1.0) | {
        "pre_check": "ok; defect:paint",
        "checks": '{"pre": {"by": "张三", "not_ok": ["paint"], "refused": []}}'}
    full = replace(ON_SCALE, fill_done=True, gross_g=15200 + 14500)
    end = FillCycle(ASKING).recover(row, full, WALL + 50)
    assert end.ctx.pre_check == "ok; defect:paint"
    assert end.ctx.checks["pre"]["not_ok"] == ["paint"] and end.ctx.post_check == "ok"
