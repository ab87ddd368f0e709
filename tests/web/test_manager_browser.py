"""The manager's pages of issue 16 in Debian's Chromium, in Chinese, at desk and tablet widths:
log-in lands on the home page, the header's search box finds a cylinder typed any way, a block
-list removal asks for a note, the day report prints without the navigation. Screenshots (JPEG,
small) go to the test's folder; with STATION_SCREENSHOTS=1 to bench/screens/manager/ (the
committed copies)."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from test_manager_pages import manager, site  # noqa: F401 (fixtures)
from test_web_pages import PASSWORDS

from station.today import station_today

SCREENS = Path(__file__).resolve().parents[2] / "bench" / "screens" / "manager"
WIDTHS = {"desk": {"width": 1280, "height": 800}, "tablet": {"width": 820, "height": 1180}}


@pytest.fixture
def shots(tmp_path):
    """Where this test's screenshots go."""
    return SCREENS if os.environ.get("STATION_SCREENSHOTS") == "1" else tmp_path


@pytest.fixture
def open_page(browser, manager, shots):  # noqa: F811
    """A page factory: a fresh browser context at a width, signed in through the form."""
    client, _, _ = manager
    contexts = []

    def opened(width: str):
        ctx = browser.new_context(base_url=f"http://127.0.0.1:{client.port}",
                                  viewport=WIDTHS[width], locale="zh-CN")
        contexts.append(ctx)
        page = ctx.new_page()
        page.goto("/login")
        page.fill("input[name=name]", "manager")
        page.fill("input[name=password]", PASSWORDS["manager"])
        page.click("form.login button[type=submit]")
        return page

    opened.shots = shots
    yield opened
    for ctx in contexts:
        ctx.close()


def shot(page, folder: Path, name: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / f"{name}.jpg"), type="jpeg", quality=55, full_page=True)


@pytest.mark.parametrize("width", ["desk", "tablet"])
def test_home_then_a_cylinder_found_from_the_header(open_page, width):
    page = open_page(width)
    assert urlsplit(page.url).path == "/home"  # log-in lands on the home page
    assert page.text_content("h1").startswith("今日概览")
    assert page.text_content("#c-issues .n") == "3"
    assert page.is_visible("#c-dead") and "card alarm" in page.get_attribute("#c-dead", "class")
    assert page.text_content("header a[href='/issues'] .badge") == "3"
    overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 1, f"the home page scrolls sideways by {overflow} px at {width} width"
    shot(page, open_page.shots, f"home-{width}")
    page.fill("header form.search input[name=q]", "ｃｙｌ－０００１０５")  # full width, lower
    page.press("header form.search input[name=q]", "Enter")
    page.wait_for_url("**/cylinder?**")
    assert parse_qs(urlsplit(page.url).query) == {"id": ["CYL-000105"]}
    assert page.text_content("h1") == "气瓶 CYL-000105"
    assert "0190-0021" in page.text_content("h2#fills + table")
    shot(page, open_page.shots, f"cylinder-{width}")


def test_removing_a_block_entry_asks_for_a_note_in_the_browser(open_page):
    page = open_page("desk")
    page.goto("/blocklist")
    page.click("a.act")
    assert urlsplit(page.url).path == "/confirm"
    assert "从禁充名单移除 CYL-000099" in page.text_content("#confirm")
    page.click("#confirm button[type=submit]")  # no note: the browser does not send it
    assert urlsplit(page.url).path == "/confirm"
    page.fill("#confirm textarea[name=note]", "市平台已撤销该瓶的禁充")
    shot(page, open_page.shots, "confirm-desk")
    page.click("#confirm button[type=submit]")
    page.wait_for_url("**/blocklist?msg=unblocked")
    actions = page.text_content("#actions")
    assert "市平台已撤销该瓶的禁充" in actions and "manager" in actions and "移除禁充" in actions
    assert "名单为空" in page.text_content("main")  # its only entry is gone


def test_the_day_report_prints_without_the_navigation(open_page):
    page = open_page("desk")
    page.goto(f"/report?day={station_today().isoformat()}")
    assert page.is_visible("header")
    page.emulate_media(media="print")
    assert not page.is_visible("header") and not page.is_visible("form.filters")
    assert "0190-0020" in page.text_content("main")
    shot(page, open_page.shots, "report-print")
