"""Every operator-screen state in the real browser at the three tablet/phone sizes.

The pictures are written into a real store's rig_live table as the daemon writes them, and the
real web server serves them: what is checked is what the page makes of each state (headline,
colour, the mass while filling, no English but the small line, nothing cut or overflowing).
Screenshots go to the test's folder; with STATION_SCREENSHOTS=1 also to bench/screens/hmi/
(the committed copies)."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import sqlite3
import threading
import time
from pathlib import Path

import pytest
from webtools import HASHES, WebProcess

from station import config
from station.core.hmi import STATES
from station.core.texts import SCREENS
from station.store.db import Store
from station.web.server import make_server

REPO = Path(__file__).resolve().parents[2]
SHOTS = REPO / "bench" / "screens" / "hmi"
SIZES = {"1280x800": (1280, 800), "800x1280": (800, 1280), "390x844": (390, 844)}

OK = {"decision_id": 41, "permit": True, "code": "OK", "cylinder_id": "CYL-000001",
      "medium": "G13", "next_inspection": "2029-05-01", "warnings": []}
NO = {**OK, "decision_id": 42, "permit": False, "code": "SCRAPPED", "cylinder_id": "CYL-000004"}
BASE = {"connected": True, "operator": "张三", "phase": "idle", "present": False,
        "estop": False, "overload": False, "scale_fault": False, "store_fault": False}


def ended(check: str, net: int) -> dict:
    return {"phase": "ended", "verdict": OK, "present": True, "net_g": net, "target_g": 14500,
            "result": {"check": check, "net_g": net, "target_g": 14500, "record_id": "r-1"}}


PICTURES = {  # state → (the picture's changes, how old it is in s)
    "daemon_gone": ({}, 60),
    "controller_lost": ({"connected": False, "fault": "connection refused"}, 0),
    "store_fault": ({"store_fault": True}, 0),
    "estop": ({"estop": True}, 0),
    "scale_overload": ({"overload": True}, 0),
    "scale_fault": ({"scale_fault": True}, 0),
    "filling": ({"phase": "filling", "verdict": OK, "present": True, "net_g": 9320,
                 "target_g": 14500}, 0),
    "settling": ({"phase": "settling", "verdict": OK, "present": True, "net_g": 14480,
                  "target_g": 14500}, 0),
    "done_ok": (ended("ok", 14480), 0),
    "overfill": (ended("overfill", 15300), 0),
    "underfill": (ended("underfill", 13700), 0),
    "interrupted": (ended("interrupted", 6100), 0),
    "permitted": ({"phase": "permitted", "verdict": OK, "present": True, "net_g": 120,
                   "target_g": 14500}, 0),
    "checking": ({"phase": "accepted", "verdict": OK, "present": True, "question": {
        "stage": "pre", "decision_id": 1, "cylinder_id": "CYL-1", "token": "t",
        "items": [{"key": "guard", "label": "护罩、手轮齐全完好", "required": True}]}}, 0),
    "accepted": ({"phase": "accepted", "verdict": OK}, 0),
    "refused": ({"verdict": NO, "present": True}, 0),
    "held": ({"held": "https://qr.cqtzsb.example/c/5001234567890123"}, 0),
    "no_operator": ({"operator": None}, 0),
    "idle": ({}, 0),
}


def config_text(store: Path, web: str = "") -> str:
    users = "".join(f'[[web.users]]\nname = "{n}"\npassword_hash = "{h}"\n'
                    for n, h in HASHES.items())
    return (
        '[station]\nunit_name = "重庆渝北燃气有限公司"\nunit_code = "91500112MA5U8XXX0X"\n'
        f'store = "{store}"\n[qr]\nhosts = ["qr.cqtzsb.example"]\n'
        '[city]\nbase_url = "http://127.0.0.1:9"\napp_key = "k"\nsecret_file = "app_secret"\n'
        '[[rigs]]\nid = "rig-01"\nmedium = "G13"\nmodbus = "tcp://127.0.0.1:1502"\n'
        "[web]\n" + web + users)


def serve(folder: Path, web: str = "", port: int = 0):
    store_path = folder / "station.db"
    if not store_path.exists():
        Store(str(store_path)).close()
    cfg_path = folder / "station.toml"
    (folder / "app_secret").write_text("s3cret\n", encoding="utf-8")
    cfg_path.write_text(config_text(store_path, f"port = {port}\n{web}"), encoding="utf-8")
    server = make_server(config.load(cfg_path, env={}))
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                     daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}", store_path


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hmi-screens")
    server, url, store_path = serve(folder)
    yield url, store_path, folder
    server.shutdown()
    server.server_close()


def put(store_path: Path, picture: dict, age_s: float) -> None:
    """The rig's picture as the daemon publishes it (store.publish), `age_s` old."""
    with sqlite3.connect(store_path) as conn:
        conn.execute("INSERT OR REPLACE INTO rig_live (rig, at, state) VALUES ('rig-01', ?, ?)",
                     (time.time() - age_s, json.dumps(picture, ensure_ascii=False)))


def shot(page, folder: Path, name: str) -> None:
    """Only when the committed copies are being made (STATION_SCREENSHOTS=1): 3.5 s a run."""
    copy = os.environ.get("STATION_SCREENSHOTS") == "1"
    if not copy:
        return
    path = folder / f"{name}.png"
    page.screenshot(path=str(path))
    if copy:
        SHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, SHOTS / path.name)


def test_the_table_covers_every_state():
    assert set(PICTURES) == set(STATES)


LAYOUT = """() => {
  const over = (el) => el.scrollWidth > el.clientWidth + 1;
  const doc = document.documentElement;
  const text = [...document.body.querySelectorAll(
    "#top, #headline, #detail, #warnings, #facts .k, #conn")].filter((el) => el.offsetParent !== null).map((el) => el.innerText)
    .join(" ");
  const ids = [...document.querySelectorAll("#facts .v")].filter((el) => el.offsetParent)
    .map((el) => el.getClientRects().length === 1 && el.offsetHeight < 1.8 *
      parseFloat(getComputedStyle(el).fontSize) * 1.5);
  const mass = document.getElementById("net"), head = document.getElementById("headline");
  return {hscroll: doc.scrollWidth > window.innerWidth, headline: over(head),
          vscroll: doc.scrollHeight > window.innerHeight + 1, text, ids,
          mass: mass.offsetParent ? parseFloat(getComputedStyle(mass).fontSize) : 0,
          head: parseFloat(getComputedStyle(head).fontSize),
          detail: over(document.getElementById("detail"))};
}"""


def test_every_state_in_the_browser_at_every_size(browser, site):
    url, store_path, folder = site
    ctx = browser.new_context(viewport={"width": 1280, "height": 800})
    page = ctx.new_page()
    try:
        for state, (changes, age) in PICTURES.items():
            put(store_path, {**BASE, **changes}, age)
            page.goto(url + "/rig/rig-01")  # (the updates by polling: tests with a station)
            page.wait_for_function("(s) => document.body.dataset.state === s", arg=state,
                                   polling=20, timeout=3000)
            text = SCREENS[state]
            assert page.text_content("#headline") == text.headline, state
            assert page.text_content("#en").startswith(text.en), state
            for size, (width, height) in SIZES.items():
                page.set_viewport_size({"width": width, "height": height})
                check_layout(page, state, size)
                shot(page, folder, f"{state}-{size}")
            page.set_viewport_size({"width": 1280, "height": 800})
        assert page.text_content("#detail") == ""  # idle: nothing left of the verdicts
    finally:
        ctx.close()


def check_layout(page, state: str, size: str) -> None:
    got = page.evaluate(LAYOUT)
    where = (state, size, got)
    assert not got["hscroll"] and not got["headline"] and not got["detail"], where
    assert not got["vscroll"], where
    assert all(got["ids"]), where  # an id on one line, never broken
    assert not re.search(r"[A-Za-z]{4,}", got["text"]), where  # English: the small line only
    if state in ("filling", "settling"):  # the mass: the largest thing on screen
        assert got["mass"] > got["head"], where
        width_pct = page.evaluate("() => parseFloat(document.getElementById('fill').style.width)")
        assert 0 < width_pct <= 100


def test_overfill_says_what_to_do_and_by_how_much(browser, site):
    url, store_path, _ = site
    put(store_path, {**BASE, **ended("overfill", 15300)}, 0)
    ctx = browser.new_context(viewport={"width": 1280, "height": 800})
    page = ctx.new_page()
    try:
        page.goto(url + "/rig/rig-01")
        page.wait_for_function("() => document.body.dataset.state === 'overfill'", polling=20,
                               timeout=3000)
        assert page.text_content("#headline") == "超装 — 请主管处理"
        assert page.text_content("#detail").startswith("超出 0.80 kg")
        assert page.text_content("#mass") == "15.30 / 14.50 kg"
        r, g, b = page.evaluate("() => getComputedStyle(document.body).backgroundColor"
                                ".match(/\\d+/g).map(Number)")
        assert r > 150 and g < 60 and b < 60, (r, g, b)
    finally:
        ctx.close()


def test_the_screen_recovers_by_itself_after_the_web_restarted_and_beeps(browser, tmp_path):
    """station-web stopped (restarted by systemd, upgraded) and started again on its port;
    with [web] screen_sound on, each new alarm shown beeps once (off, the default, the page
    never beeps: `initial.sound` is false)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server, _, store_path = serve(tmp_path, "screen_sound = true\n", port)  # (store, config)
    server.shutdown()
    server.server_close()
    cfg_path = tmp_path / "station.toml"
    web = WebProcess(cfg_path)
    ctx = browser.new_context(viewport={"width": 1280, "height": 800})
    page = ctx.new_page()
    try:
        put(store_path, BASE, 0)
        page.goto(web.url + "/rig/rig-01")
        assert web.stop() == 0
        page.wait_for_function("() => Number(document.body.dataset.fails || 0) >= 2",
                               polling=20, timeout=3000)
        put(store_path, {**BASE, "verdict": NO, "present": True}, 0)
        web = WebProcess(cfg_path)
        page.wait_for_function("() => document.body.dataset.state === 'refused'", polling=20,
                               timeout=3000)
        assert page.text_content("#detail") == "气瓶已报废"
        assert page.evaluate("() => document.body.dataset.beeps || '0'") == "1"
        put(store_path, {**BASE, "verdict": {**NO, "decision_id": 43}, "present": True}, 0)
        page.wait_for_function("() => document.body.dataset.decision === '43'", polling=20,
                               timeout=3000)  # another refusal: another beep
        put(store_path, {**BASE, "phase": "accepted", "verdict": OK}, 0)  # no alarm: no beep
        page.wait_for_function("() => document.body.dataset.state === 'accepted'", polling=20,
                               timeout=3000)
        assert page.evaluate("() => document.body.dataset.beeps || '0'") == "2"
    finally:
        ctx.close()
        web.stop()
