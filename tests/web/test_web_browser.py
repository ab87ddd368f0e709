"""The web pages in a real headless Chromium, against a whole station on simulators.

One SimStation (the real daemon) and one `station web` process serve every test here: the
operator screen follows refusals and fills within a second; managers log in, filter, export CSV,
mark an overfill handled; forged posts, wrong passwords and anonymous visitors are kept out.
"""

from __future__ import annotations

import csv
import http.client
import io
import os
import shutil
import sqlite3
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from webtools import PASSWORDS, WebProcess, web_config

from simulators.dataset import demo_cylinders, qr_url
from simulators.harness import OPERATORS, RigSpec, SimStation, wait_for
from station.core import hmi
from station.core.texts import REASONS
from station.store import chain
from station.store.records import COLUMNS
from station.today import station_today
from station.web.texts import csv_headers

CYL = demo_cylinders(station_today())
TARE_G = 15200
REPO = Path(__file__).resolve().parents[2]
SCREEN_COPY = REPO / "bench" / "screens" / "operator-screen.png"


@pytest.fixture(scope="module")
def station(tmp_path_factory):
    """One rig, an operator on shift, an ok fill and an overfill already recorded."""
    st = SimStation(tmp_path_factory.mktemp("web-station"), (RigSpec("rig-01", 1),),
                    watchdog_ms=900, rig_options={"start_delay_s": 0.1, "flow_g_per_s": 20000},
                    extra_config=web_config(max_failed=3, lockout_minutes=5)).start()
    try:
        st.badge("rig-01", OPERATORS[0][1])
        st.ok_fill = fill(st, "valid")
        st.rig_sim.rig(1).set_overshoot(800)
        st.overfill = fill(st, "valid_partner", overfill=True)
        st.rig_sim.rig(1).set_overshoot(0)
        assert (st.ok_fill["post_check"], st.overfill["post_check"]) == ("ok", "overfill")
        yield st
    finally:
        st.stop()


def fill(st: SimStation, name: str, overfill: bool = False) -> dict:
    """One whole fill of a demo cylinder at rig-01; the cylinder is taken off afterwards. With
    `overfill`, the daemon's picture must first show the overfill state (station.core.hmi)."""
    st.place("rig-01", TARE_G)
    d = st.scan("rig-01", qr_url(CYL[name]["info_code"]))
    assert d["permit"] == 1, d
    f = st.wait_fill("rig-01", d["id"])
    if overfill:  # (the browser's overfill screen: test_operator_screen.py, from this picture)
        wait_for(lambda: hmi.screen(st.live("rig-01")).state == "overfill", 3, "overfill")
        screen = hmi.screen(st.live("rig-01"))
        assert screen.headline == "超装 — 请主管处理" and screen.detail.startswith("超出 0.")
        wait_for(lambda: (c := st.coils("rig-01"))["lamp_red"] and not c["lamp_green"], 2,
                 "the red lamp with the overfill screen")
    take_off(st)
    return f


def take_off(st: SimStation) -> None:
    """Take the cylinder off and wait until the daemon saw it go (the lamps go out)."""
    st.remove("rig-01")
    wait_for(lambda: not any(st.coils("rig-01").values()), 5, "the lamps out after removal")


@pytest.fixture(scope="module")
def web(station):
    proc = WebProcess(station.config_path)
    yield proc
    assert proc.stop() == 0, proc.log()


@pytest.fixture
def context(browser, web):
    ctx = browser.new_context(base_url=web.url, viewport={"width": 1280, "height": 800},
                              accept_downloads=True)
    yield ctx
    ctx.close()


def log_in(page, name: str = "manager", password: str | None = None) -> None:
    page.goto("/login")
    page.fill("input[name=name]", name)
    page.fill("input[name=password]", PASSWORDS[name] if password is None else password)
    page.click("button[type=submit]")


def body_data(page, key: str) -> str:
    return page.evaluate(f"() => document.body.dataset.{key} || ''")


# --- the operator screen -----------------------------------------------------------------------
def screen_page(context):
    page = context.new_page()
    page.goto("/rig/rig-01")
    page.wait_for_function("() => document.body.dataset.mode && document.body.dataset.mode "
                           "!== 'offline'", polling=20, timeout=5000)
    return page


def wait_state(page, state: str, timeout_ms: int = 3000) -> None:
    page.wait_for_function("(s) => document.body.dataset.state === s", arg=state, polling=20,
                           timeout=timeout_ms)


def test_operator_screen_turns_red_with_the_reason_within_a_second_of_a_refused_scan(
        station, context):
    page = screen_page(context)
    before = body_data(page, "decision")
    station.place("rig-01", TARE_G)  # the scrapped cylinder stands on the scale
    t0 = time.perf_counter()
    station.scanners["rig-01"].send(qr_url(CYL["scrapped"]["info_code"]))
    page.wait_for_function(
        "(before) => document.body.dataset.state === 'refused' && "
        "document.body.dataset.decision !== before", arg=before, polling=20, timeout=3000)
    elapsed = time.perf_counter() - t0
    print(f"scan → operator screen red: {elapsed * 1000:.0f} ms")
    assert elapsed < 1.0, f"the screen turned red {elapsed:.2f} s after the scan"
    assert page.text_content("#detail") == REASONS["SCRAPPED"].zh == "气瓶已报废"
    assert page.text_content("#headline") == "禁止充装"
    assert page.text_content("#cylinder") == CYL["scrapped"]["id"]
    assert page.text_content("#operator") == OPERATORS[0][0]
    r, g, b = page.evaluate("() => getComputedStyle(document.body).backgroundColor"
                            ".match(/\\d+/g).map(Number)")
    assert r > 150 and g < 60 and b < 60, (r, g, b)  # red (#c0211b, give or take colour management)
    [d] = station.rows("SELECT * FROM decisions WHERE id = ?", int(body_data(page, "decision")))
    assert d["reason"] == "SCRAPPED" and d["permit"] == 0
    station.remove("rig-01")  # the refusal was for the cylinder that stood there: cleared
    wait_state(page, "idle")
    assert page.text_content("#headline") == "请扫描气瓶标签" and not page.is_visible("#facts")
    take_off(station)


def test_operator_screen_shows_the_mass_climbing_during_a_fill(station, context, tmp_path,
                                                               capsys):
    model = station.rig_sim.rig(1)
    model.flow_g_per_s = 4000  # 14.5 kg in ~3.6 s
    page = screen_page(context)
    try:
        station.place("rig-01", TARE_G)
        d = station.scan("rig-01", qr_url(CYL["due_soon"]["info_code"]))
        assert d["permit"] == 1
        page.wait_for_function("() => Number(document.body.dataset.net) > 1000", polling=20,
                               timeout=5000)
        first_net, first_text = int(body_data(page, "net")), page.text_content("#mass")
        page.wait_for_function("(n) => Number(document.body.dataset.net) > n + 1000",
                               arg=first_net, polling=20, timeout=5000)
        second_net, second_text = int(body_data(page, "net")), page.text_content("#mass")
        assert first_text != second_text and second_net > first_net
        assert first_text.endswith("/ 14.50 kg")
        assert body_data(page, "state") == "filling"
        assert page.text_content("#headline") == "正在充装"
        assert "即将到期检验" in page.text_content("#warnings")  # the due-soon warning
        width = page.evaluate("() => parseFloat(document.getElementById('fill').style.width)")
        assert 0 < width < 100
        shot = save_screenshot(page, tmp_path)
        with capsys.disabled():
            print(f"\noperator screen screenshot: {shot} (copy: {SCREEN_COPY})")
        station.wait_fill("rig-01", d["id"])
        wait_state(page, "done_ok")
        assert page.text_content("#headline") == "充装完成"
        station.remove("rig-01")  # the cylinder leaves: the verdict with it, never left green
        wait_state(page, "idle")
    finally:
        model.flow_g_per_s = 20000
        take_off(station)


def test_an_unused_permit_clears_from_the_screen_when_the_cylinder_leaves(station, context):
    """The stale-verdict case: permitted, then taken off without a fill: not green any more."""
    model = station.rig_sim.rig(1)
    model.start_delay_s = None  # nobody presses start
    page = screen_page(context)
    try:
        station.place("rig-01", TARE_G)
        station.scan("rig-01", qr_url(CYL["valid"]["info_code"]))
        wait_state(page, "permitted")
        assert page.text_content("#detail") == "请按启动按钮"
        station.remove("rig-01")
        wait_state(page, "idle")
        assert body_data(page, "mode") == "idle" and page.text_content("#cylinder") == "-"
        station.place("rig-01", TARE_G)  # another cylinder, not scanned: still no verdict
        wait_for(lambda: station.live("rig-01").get("present"), 3, "the daemon to see it")
        assert body_data(page, "state") == "idle"
    finally:
        model.start_delay_s = 0.1
        take_off(station)


def test_a_lost_controller_is_its_own_screen_and_the_screen_recovers(station, context):
    page = screen_page(context)
    station.rig_sim.stop()
    try:
        wait_state(page, "controller_lost", 10000)
        assert page.text_content("#headline") == "充装设备未连接"
        at = lambda: station.rows("SELECT at FROM rig_live WHERE rig = 'rig-01'")[0]["at"]  # noqa: E731
        first = at()  # the daemon keeps publishing its own liveness while its controller is down
        wait_for(lambda: at() > first, 3, "a newer picture from the daemon")
        assert body_data(page, "state") == "controller_lost"  # not "daemon not responding"
    finally:
        station.rig_sim.restart()
    wait_state(page, "idle", 15000)


def test_a_screen_loaded_while_the_store_was_unreadable_recovers_by_itself(station, context,
                                                                          web):
    """The web server cannot open the store (moved away): the screen says store fault and
    keeps asking; once the store is back it shows the rig again, without a hand."""
    page = context.new_page()
    moved = station.store_path.with_name("station.db.away")
    station.db.close()
    station._db = None
    os.rename(station.store_path, moved)
    try:
        page.goto("/rig/rig-01")
        wait_state(page, "store_fault")
        assert page.text_content("#headline") == "记录存储故障"
    finally:
        os.rename(moved, station.store_path)
    wait_state(page, "idle", 5000)


def save_screenshot(page, tmp_path: Path) -> Path:
    """One picture of the screen mid-fill in the test's folder; with STATION_SCREENSHOTS=1 also
    in bench/screens/ (the copy the README shows), so a test run leaves the checkout clean."""
    shot = tmp_path / "operator-screen.png"
    page.screenshot(path=str(shot))
    assert shot.stat().st_size > 10_000
    if os.environ.get("STATION_SCREENSHOTS") == "1":
        SCREEN_COPY.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, SCREEN_COPY)
    return shot


# --- who may see what ----------------------------------------------------------------------------
def test_operator_screen_needs_no_log_in_but_the_manager_pages_do(context, web):
    page = context.new_page()
    assert page.goto("/rig/rig-01").status == 200
    assert page.text_content("#headline")
    for path in ("/records", "/records.csv?check=ok", "/issues", "/blocklist", "/outbox",
                 "/health", "/refusals"):
        answer = context.request.get(path, max_redirects=0)
        assert answer.status == 303, path
        assert answer.headers["location"].startswith("/login?next="), path
    page.goto("/issues")
    assert urlsplit(page.url).path == "/login"
    for path in ("/issues/handle", "/blocklist/add", "/outbox/retry", "/logout"):
        assert context.request.post(path, form={"record_id": "x"}).status == 403, path
    assert context.request.get("/api/rig/rig-01").json()["rig"] == "rig-01"
    assert context.request.get("/api/rig/nope").status == 404


# --- managers ----------------------------------------------------------------------------------------
def test_manager_logs_in_filters_and_downloads_csv(station, context, web):
    page = context.new_page()
    page.goto("/records")
    assert urlsplit(page.url).path == "/login"
    page.fill("input[name=name]", "manager")
    page.fill("input[name=password]", PASSWORDS["manager"])
    page.click("button[type=submit]")
    assert urlsplit(page.url).path == "/records"
    session = next(c for c in context.cookies() if c["name"] == "station_session")
    assert session["httpOnly"] and session["sameSite"] == "Strict"
    page.select_option("select[name=check]", "overfill")
    page.click("form.filters button[type=submit]")
    assert "check=overfill" in page.url
    table = page.text_content("main table")
    assert station.overfill["record_id"] in table and station.ok_fill["record_id"] not in table
    with page.expect_download() as download:
        page.click("#csv")
    text = Path(download.value.path()).read_text(encoding="utf-8")
    assert text.startswith("\ufeff记录号,")  # a BOM and Chinese headings (Excel)
    english = {zh: key for key, zh in csv_headers(COLUMNS, "zh").items()}
    rows = [{english[k]: v for k, v in r.items()}
            for r in csv.DictReader(io.StringIO(text.removeprefix("\ufeff")))]
    overfills = [r["record_id"] for r in station.rows(  # (the overfill screen's test adds one)
        "SELECT record_id FROM fills WHERE post_check LIKE 'overfill%' ORDER BY rowid")]
    assert station.overfill["record_id"] in overfills
    assert sorted(r["record_id"] for r in rows) == sorted(overfills)
    assert {(r["post_check"], r["operator"]) for r in rows} == {("overfill", OPERATORS[0][0])}

    # The whole export, fetched with the session cookie like any HTTP client would.
    all_rows = get_csv(web.url, "/records.csv?lang=en", f"station_session={session['value']}")
    want = {r["record_id"] for r in station.rows("SELECT record_id FROM fills WHERE "
                                                  "state != 'open'")}
    assert {r["record_id"] for r in all_rows} == want and len(all_rows) == len(want)
    assert get_csv(web.url, "/records.csv", "") is None  # no cookie: no records


def get_csv(base: str, path: str, cookie: str) -> list[dict] | None:
    url = urlsplit(base)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    try:
        conn.request("GET", path, headers={"Cookie": cookie} if cookie else {})
        answer = conn.getresponse()
        body = answer.read().decode("utf-8-sig")
        if answer.status != 200:
            return None
        assert answer.getheader("Content-Type").startswith("text/csv")
        return list(csv.DictReader(io.StringIO(body)))
    finally:
        conn.close()


def test_manager_marks_an_overfill_handled(station, context):
    page = context.new_page()
    log_in(page)
    page.goto("/issues")
    record = station.overfill["record_id"]
    row = page.locator("main table tr", has_text=record)
    assert row.count() == 1 and "超装" in row.text_content()
    row.locator("a.act").click()  # a confirmation and a note first (issue 16)
    assert urlsplit(page.url).path == "/confirm"
    page.fill("#confirm textarea[name=note]", "复称后确认，已通知客户")
    page.click("#confirm button[type=submit]")
    assert urlsplit(page.url).path == "/issues" and "msg=handled" in page.url
    assert page.text_content(".note") == "已标记为已处理"
    assert page.locator("main table tr", has_text=record).locator("a.act").count() == 0
    assert "复称后确认，已通知客户" in page.text_content("main")
    [f] = station.rows("SELECT handled_at, handled_by FROM fills WHERE record_id = ?", record)
    assert f["handled_by"] == "manager" and f["handled_at"] > 0
    with sqlite3.connect(station.store_path) as conn:
        assert chain.verify(conn) == []  # handling is outside the record's hash


def test_a_forged_post_without_the_csrf_token_is_refused(station, context):
    page = context.new_page()
    log_in(page)
    page.goto("/blocklist")
    assert urlsplit(page.url).path == "/blocklist"  # signed in: the cookie goes with requests
    key = CYL["valid"]["id"]
    assert context.request.post("/blocklist/add", form={"key": key, "reason": "forged"}
                                ).status == 403
    assert context.request.post("/blocklist/add", form={"key": key, "reason": "forged",
                                                        "csrf": "not-the-token"}).status == 403
    assert context.request.post("/issues/handle", form={
        "record_id": station.ok_fill["record_id"]}).status == 403
    assert station.rows("SELECT * FROM blocklist WHERE key = ?", key) == []
    # The page's own form (with its token) works: add, then remove.
    page.fill("input[name=key]", key)
    page.fill("input[name=reason]", "钢印不清 <b>test</b>")
    page.click("form.filters button[type=submit]")
    assert page.text_content(".note") == "已加入禁充名单"
    assert "钢印不清 <b>test</b>" in page.text_content("main table")  # shown as text
    [b] = station.rows("SELECT * FROM blocklist WHERE key = ?", key)
    assert b["added_by"] == "manager"
    page.locator("main table tr", has_text=key).locator("a.act").click()
    page.fill("#confirm textarea[name=note]", "测试完毕")
    page.click("#confirm button[type=submit]")
    assert station.rows("SELECT * FROM blocklist WHERE key = ?", key) == []


def test_a_wrong_password_locks_the_account_out(context, web):
    page = context.new_page()
    for attempt in range(1, 4):
        log_in(page, "clerk", "wrong password")
        assert urlsplit(page.url).path == "/login"
        text = page.text_content(".note")
        assert ("已锁定" in text) == (attempt == 3), (attempt, text)
    log_in(page, "clerk")  # the right password, but locked
    assert urlsplit(page.url).path == "/login" and "已锁定" in page.text_content(".note")
    assert not any(c["name"] == "station_session" for c in context.cookies())
    assert "event=web_login_locked name=clerk" in web.log()
    log_in(page, "manager")  # another account is not affected
    assert urlsplit(page.url).path == "/home"
