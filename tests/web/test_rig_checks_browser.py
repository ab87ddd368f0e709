"""The checklist at the rig's screen in the browser (Debian's Chromium): one tap 全部合格, a
refusing defect marked and sent, the post-fill leak check; each answer reaches the store bound
to its question, at tablet sizes with nothing off screen."""

import pytest
from test_operator_screen import BASE, SIZES, serve, shot
from test_operator_screen import put as put_aged

from station.core.checklist import DEFAULT_POST, DEFAULT_PRE
from station.store import answers
from station.store.db import Store

OK = {"decision_id": 41, "permit": True, "code": "OK", "cylinder_id": "CYL-1"}


def question(stage, items, token):
    return {"stage": stage, "decision_id": 41, "cylinder_id": "CYL-1", "token": token,
            "items": [{"key": i.key, "label": i.label, "required": i.required} for i in items]}


def put(store_path, picture):
    put_aged(store_path, picture, -3600)  # (fresh for the whole test)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    folder = tmp_path_factory.mktemp("rig-checks-browser")
    server, url, store_path = serve(folder)
    yield url, store_path, folder
    server.shutdown()
    server.server_close()


def taken(store_path):
    return [a for _, a in answers.take(Store(str(store_path)), "rig-01")]


def open_screen(browser, url, size="1280x800"):
    width, height = SIZES[size]
    ctx = browser.new_context(viewport={"width": width, "height": height})
    page = ctx.new_page()
    page.goto(url + "/rig/rig-01")
    page.wait_for_selector("#checks:not(.hidden) .item", timeout=3000)
    return ctx, page


def sent(page):
    page.wait_for_function("() => document.getElementById('checks-status').textContent"
                           ".startsWith('已提交')", polling=20, timeout=3000)


@pytest.mark.parametrize("size", ["1280x800", "800x1280"])
def test_all_ok_in_one_tap_with_every_item_on_screen(browser, site, size):
    url, store_path, folder = site
    put(store_path, {**BASE, "phase": "accepted", "present": True, "verdict": OK,
                     "question": question("pre", DEFAULT_PRE, f"tok-{size}")})
    ctx, page = open_screen(browser, url, size)
    try:
        assert page.text_content("#headline") == "请完成充装前检查"
        labels = page.eval_on_selector_all("#checks-items .item", "els => els.map(e => "
                                           "[e.textContent, e.getBoundingClientRect().bottom])")
        assert [t for t, _ in labels] == [i.label for i in DEFAULT_PRE]
        assert all(bottom <= SIZES[size][1] for _, bottom in labels), labels  # none hidden
        assert page.evaluate("() => document.documentElement.scrollWidth <= innerWidth")
        shot(page, folder, f"checking-{size}")
        page.click("#checks-all")
        sent(page)
        [answer] = taken(store_path)
        assert (answer.token, answer.not_ok, answer.by) == (f"tok-{size}", frozenset(), "张三")
    finally:
        ctx.close()


def test_a_defect_marked_and_sent(browser, site):
    url, store_path, _ = site
    put(store_path, {**BASE, "phase": "accepted", "present": True, "verdict": OK,
                     "question": question("pre", DEFAULT_PRE, "tok-defect")})
    ctx, page = open_screen(browser, url)
    try:
        page.click("#checks-items .item[data-key=valve_type]")
        assert page.get_attribute("#checks-items .item[data-key=valve_type]",
                                  "data-mark") == "not_ok"
        page.click("#checks-send")
        sent(page)
        [answer] = taken(store_path)
        assert answer.not_ok == {"valve_type"} and answer.stage == "pre"
    finally:
        ctx.close()


def test_the_post_fill_leak_check_after_the_fill(browser, site):
    url, store_path, folder = site
    result = {"check": "ok", "net_g": 14480, "target_g": 14500, "record_id": "r-1"}
    put(store_path, {**BASE, "phase": "ended", "present": True, "verdict": OK,
                     "result": result, "net_g": 14480, "target_g": 14500,
                     "question": question("post", DEFAULT_POST, "tok-post")})
    ctx, page = open_screen(browser, url)
    try:
        assert page.text_content("#headline") == "充装完成"
        assert "检漏" in page.text_content("#checks-title")
        page.click("#checks-items .item[data-key=leak_seam]")
        shot(page, folder, "post-check-1280x800")
        page.click("#checks-send")
        sent(page)
        [answer] = taken(store_path)
        assert (answer.stage, answer.not_ok) == ("post", {"leak_seam"})
    finally:
        ctx.close()
