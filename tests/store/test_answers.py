"""Checklist answers from the rig's screen: queued by the web, taken once by the daemon."""

import pytest

from station.core.checklist import Answer
from station.store import answers
from station.store.db import Store


@pytest.fixture
def store(tmp_path):
    return Store(str(tmp_path / "s.db"))


def ans(rig="rig-01", **over):
    base = {"stage": "pre", "rig": rig, "cylinder_id": "C001", "decision_id": 7,
            "token": "t0k", "not_ok": frozenset({"guard", "dent"}), "by": "张三"}
    return Answer(**(base | over))


def test_an_answer_crosses_the_store_whole_and_is_taken_once(store, tmp_path):
    web = Store(str(tmp_path / "s.db"))  # the web process: its own connection
    first = answers.post(web, ans())
    answers.post(web, ans(rig="rig-02"))
    taken = answers.take(store, "rig-01")
    assert [(i, a) for i, a in taken] == [(first, ans())]
    assert answers.take(store, "rig-01") == []          # never twice
    assert [a.rig for _, a in answers.take(store, "rig-02")] == ["rig-02"]


def test_what_became_of_an_answer_is_kept_for_its_decision(store):
    one = answers.post(store, ans())
    two = answers.post(store, ans(token="old"))
    answers.take(store, "rig-01")
    answers.settle(store, one, "taken")
    answers.settle(store, two, "refused: token does not match the open question")
    rows = answers.of_decision(store, 7)
    assert [(r["id"], r["outcome"]) for r in rows] == [
        (one, "taken"), (two, "refused: token does not match the open question")]
    assert rows[0]["not_ok"] == "dent,guard" and rows[0]["taken_at"] is not None
