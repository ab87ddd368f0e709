"""The rig screen's checklist answer over HTTP: queued for the daemon only when it answers the
question on show; stale, replayed, malformed or cross-site answers are refused and change nothing."""

import json
import sqlite3
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest
from test_operator_screen import serve

from station.store import answers
from station.store.db import Store

QUESTION = {"stage": "pre", "decision_id": 41, "cylinder_id": "CYL-1", "token": "tok-41",
            "items": [{"key": "guard", "label": "护罩、手轮齐全完好", "required": True},
                      {"key": "paint", "label": "漆色清晰", "required": False}]}
PICTURE = {"connected": True, "operator": "张三", "phase": "accepted", "present": True,
           "verdict": {"decision_id": 41, "permit": True, "code": "OK", "cylinder_id": "CYL-1"},
           "question": QUESTION}


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    server, url, store_path = serve(tmp_path_factory.mktemp("rig-checks"))
    with sqlite3.connect(store_path) as conn:
        conn.execute("INSERT OR REPLACE INTO rig_live (rig, at, state) VALUES ('rig-01', ?, ?)",
                     (time.time() + 3600, json.dumps(PICTURE, ensure_ascii=False)))
    yield url, store_path
    server.shutdown()
    server.server_close()


def post(url: str, fields: dict, rig: str = "rig-01", origin: str | None = None):
    data = urllib.parse.urlencode(fields).encode()
    req = urllib.request.Request(f"{url}/api/rig/{rig}/checks", data=data, method="POST")
    if origin:
        req.add_header("Origin", origin)
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def fields(**over):
    return {"stage": "pre", "decision_id": "41", "cylinder_id": "CYL-1", "token": "tok-41",
            "not_ok": "", "skipped": ""} | over


def taken(store_path):
    return answers.take(Store(str(store_path)), "rig-01")


def test_the_screen_shows_the_question_and_an_answer_reaches_the_daemon(site):
    url, store_path = site
    with urllib.request.urlopen(f"{url}/api/rig/rig-01", timeout=5) as r:
        state = json.loads(r.read())
    assert state["state"] == "checking" and state["question"]["token"] == "tok-41"
    assert [i["key"] for i in state["question"]["items"]] == ["guard", "paint"]
    status, body = post(url, fields(not_ok="guard", skipped="paint"))
    assert status == 202 and body["id"] > 0
    [(_, answer)] = taken(store_path)
    assert (answer.decision_id, answer.token, answer.by) == (41, "tok-41", "张三")
    assert answer.not_ok == {"guard"} and answer.skipped == {"paint"}


@pytest.mark.parametrize("over, text", [
    ({"token": "tok-40"}, "该检查已结束"),          # replayed from an earlier question
    ({"decision_id": "40"}, "该检查已结束"),
    ({"cylinder_id": "CYL-2"}, "该检查已结束"),      # another cylinder
    ({"stage": "post"}, "该检查已结束"),
    ({"not_ok": "guard;DROP TABLE fills"}, "格式不正确"),
    ({"decision_id": "x"}, "格式不正确"),
    ({"stage": "mid"}, "格式不正确"),
])
def test_an_answer_to_no_question_on_show_is_refused_and_queues_nothing(site, over, text):
    url, store_path = site
    status, body = post(url, fields(**over))
    assert status == 409 and text in body["error"]
    assert taken(store_path) == []


def test_a_cross_site_answer_and_an_unknown_rig_are_refused(site):
    url, store_path = site
    assert post(url, fields(), origin="http://evil.example")[0] == 403
    assert post(url, fields(), rig="rig-99")[0] == 404
    assert taken(store_path) == []
