"""The manager's pages of issue 16, in process over real HTTP on loopback: the home page, every
decision findable (decisions page, one search box, a cylinder's page), audited actions chained,
Chinese throughout, the printable day report. Each test is a "Why" bullet of the issue."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from test_web_pages import HOSTILE, Client, csrf_of, fill_row, site  # noqa: F401 (fixture)

from station.core.model import Decision, Reading, Verdict
from station.store import backup, chain, retention, stats
from station.store.db import Store
from station.today import LOCAL_TZ, station_today

HOST = "qr.cqtzsb.example"
RECORD = {"id": "CYL-000105", "info_code": "500112CQ0000000105", "product_no": "123456789012",
          "user_unit_name": "重庆渝北燃气有限公司", "medium_code": "G13", "status": "在用",
          "next_inspection_date": "2029-03"}


def decide(store: Store, tag: str, permit: bool, reason: str | None = None,
           cylinder: str | None = None, record: dict | None = None, rig: str = "rig-01",
           at: datetime | None = None, kind: str = "qr_url") -> int:
    raw = f"https://{HOST}/c/{tag}" if kind == "qr_url" else tag
    reading = Reading(raw=raw, kind=kind, value=tag, reader=f"{rig}-reader1")
    return store.record_decision(
        Decision(at=at or datetime.now(UTC), rig_id=rig, reading=reading,
                 verdict=Verdict(permit=permit, reason=reason, cylinder_id=cylinder),
                 source="city", cache_age_s=None, latency_ms=3.5, operator="张三"),
        city_record=record, tag_key=f"info_code:{tag}" if record else None)


@pytest.fixture
def manager(site):  # noqa: F811
    """The site, with one cylinder known to the city (cached), a fill and an override of it,
    a refused unregistered tag; signed in."""
    client, store_path, cfg = site
    store = Store(str(store_path))
    decide(store, RECORD["info_code"], True, cylinder=RECORD["id"], record=RECORD)
    store.close_fill(fill_row(20, cylinder_id=RECORD["id"], info_code=RECORD["info_code"]),
                     {"record_id": "0190-0020"})
    store.close_fill(fill_row(21, cylinder_id=RECORD["id"], info_code=RECORD["info_code"],
                              override_by="王主管", override_reason="主管现场核验后放行"),
                     {"record_id": "0190-0021"})
    decide(store, "500112CQ9999999999", False, "NOT_REGISTERED")
    store.close()
    assert client.login()[0] == 303
    return client, store_path, cfg


def card(page: str, ident: str) -> tuple[str, str, str]:
    """A home-page card: (its class, its link, its number)."""
    found = re.search(rf'<div class="([^"]+)" id="{ident}"><a href="([^"]+)"><span class="n">'
                      r'([^<]*)</span>', page)
    assert found, ident
    return found.group(1), found.group(2).replace("&amp;", "&"), found.group(3)


# --- 1. the home page ---------------------------------------------------------------------------
def test_log_in_lands_on_the_home_page(site):  # noqa: F811
    client, _, _ = site
    page = client.get("/login")[2]
    assert 'name="next" value="/home"' in page  # was /records: the list, not a dashboard
    status, headers, _ = client.request("POST", "/login", {
        "csrf": csrf_of(page), "name": "manager", "password": "correct horse battery"})
    assert (status, headers["location"]) == (303, "/home")
    status, _, home = client.get("/home")
    assert status == 200 and "今日概览" in home


def test_home_shows_today_at_a_glance_each_number_a_link(manager):
    client, store_path, _ = manager
    store = Store(str(store_path), readonly=True)
    (day,) = stats.daily(store, station_today(), station_today())
    store.close()
    page = client.get("/home")[2]
    today = station_today().isoformat()
    assert card(page, "c-fills") == ("card", f"/records?from={today}&to={today}",
                                     str(day.fills))
    assert card(page, "c-refusals")[1:] == (
        f"/decisions?from={today}&to={today}&verdict=refuse", str(day.refused))
    assert card(page, "c-issues") == ("card alarm", "/issues", "3")  # overfill, 2 overrides
    assert card(page, "c-dead") == ("card alarm", "/outbox", "1")
    assert card(page, "c-pending") == ("card", "/records?sync=pending", "5")
    assert "未登记气瓶（疑似黑气瓶）" in page and "reason=NOT_REGISTERED" in page
    assert re.search(r'id="down-rigs">rig-02</td>', page)  # never published: down
    assert "chain-head" in page  # the chain head under it


def test_pending_records_past_backlog_warn_h_are_flagged(manager):
    client, store_path, _ = manager
    assert "超过 24 小时未上报" not in client.get("/home")[2]
    store = Store(str(store_path))
    with store.transaction() as conn:
        conn.execute("UPDATE outbox SET created_at = ? WHERE state = 'pending'",
                     (time.time() - 72.2 * 3600,))
    store.close()
    page = client.get("/home")[2]
    assert card(page, "c-pending")[0] == "card alarm"
    assert "超过 24 小时未上报，请检查与市平台的连接" in page and "最早一条已等待 72.2 小时" in page


def test_navigation_carries_count_badges(manager):
    client, _, _ = manager
    page = client.get("/records")[2]
    assert '<a href="/issues">待处理 <span class="badge bad" data-n="3">3</span></a>' in page
    assert '<a href="/outbox">上报队列 <span class="badge bad" data-n="1">1</span></a>' in page
    client.post("/act", {"action": "handle", "target": "0190-0005", "note": "已复称",
                         "confirm": "1", "csrf": csrf_of(page)})
    assert 'data-n="2">2</span></a>' in client.get("/records")[2]


def test_the_last_backup_and_its_result_are_on_the_home_page(manager, tmp_path):
    client, store_path, _ = manager
    assert '<p class="bad" id="backup">尚无备份记录</p>' in client.get("/home")[2]
    folder = tmp_path / "usb"
    folder.mkdir()
    done = backup.backup(str(store_path), folder)
    page = client.get("/home")[2]
    assert re.search(r'<p id="backup" data-ok="1"><span class="ok">成功</span> · [0-9-]+ '
                     r'[0-9:]+ · ' + re.escape(str(done.path)), page)
    with pytest.raises(backup.BackupError):
        backup.backup(str(store_path), tmp_path / "not-mounted")
    page = client.get("/home")[2]
    assert '<span class="bad">失败</span>' in page and "is the USB stick mounted?" in page


def test_readers_down_on_the_home_page(manager):
    client, store_path, _ = manager
    store = Store(str(store_path))
    store.publish("rig-01", {"connected": True, "phase": "idle", "heartbeat_at": time.time(),
                             "readers": {"rig-01-reader1": False, "rig-01-cam": True,
                                         "rig-01-rfid": None}})
    store.close()
    page = client.get("/home")[2]
    assert 'id="down-readers">rig-01/rig-01-reader1</td>' in page
    assert 'id="down-rigs">rig-02</td>' in page


# --- 2. every decision findable ---------------------------------------------------------------
def test_a_black_cylinder_refusal_is_traced_to_its_tag_and_time(manager):
    client, store_path, _ = manager
    page = client.get("/decisions?reason=NOT_REGISTERED")[2]
    assert 'data-n="1"' in page and "500112CQ9999999999" in page
    assert f"https://{HOST}/c/500112CQ9999999999" in page  # what was read
    assert datetime.now(LOCAL_TZ).strftime("%Y-%m-%d") in page
    refused = client.get("/decisions?verdict=refuse")[2]
    assert re.search(r'id="n-decisions" data-n="4"', refused)  # 2 scrapped, overdue, black
    assert 'data-n="0"' in client.get("/decisions?rig=rig-02")[2]
    assert 'data-n="5"' in client.get("/decisions?operator=%E5%BC%A0%E4%B8%89")[2]
    yesterday = (station_today() - timedelta(days=1)).isoformat()
    assert 'data-n="0"' in client.get(f"/decisions?from={yesterday}&to={yesterday}")[2]
    assert "已忽略无效的筛选条件：reason" in client.get("/decisions?reason=BOGUS")[2]


@pytest.mark.parametrize("typed", [
    "CYL-000105", "cyl-000105", "ＣＹＬ－０００１０５", " cyl‐000105\u3000", "000105",
    "500112cq0000000105", "500112CQ0000000105", "123456789012",
    f"https://{HOST}/c/500112CQ0000000105", f"https://{HOST.upper()}/q?code=500112cq0000000105",
    "0000000105",
])
def test_the_search_takes_any_form_a_person_has(manager, typed):
    client, _, _ = manager
    status, headers, _ = client.request("GET", "/search?q=" + quote(typed))
    assert status == 303, typed
    assert parse_qs(urlsplit(headers["location"]).query) == {"id": ["CYL-000105"]}


def test_a_search_that_finds_nothing_or_a_bare_tag_says_so(manager):
    client, _, _ = manager
    assert "没有找到与之相符的气瓶或标签" in client.get("/search?q=ZZZ-404")[2]
    page = client.get("/search?q=" + quote("500112cq9999999999"))[2]
    assert "未关联气瓶的标签" in page and "/decisions?cylinder=500112CQ9999999999" in page
    assert HOSTILE not in client.get("/search?q=" + quote(HOSTILE))[2]


def test_the_search_normaliser():
    from station.core.keys import search_key

    assert search_key("ＣＹＬ－０００１０５").exact[0] == "CYL-000105"
    assert search_key(f"https://{HOST}/c/500112cq0000000105", (HOST,)).exact[0] == \
        "500112CQ0000000105"
    assert search_key("https://elsewhere.example/c/abc-1").exact[0] == "ABC-1"
    assert search_key("ab").partial == "" and search_key("abc").partial == "ABC"
    assert search_key("\u3000 ").exact == () and search_key("a\x00b").exact == ()


def test_a_cylinder_page_shows_its_whole_history(manager):
    client, store_path, _ = manager
    store = Store(str(store_path))
    store.block("500112CQ0000000105", "钢印不清", "cli")
    store.close()
    page = client.get("/cylinder?id=cyl-000105")[2]
    assert "气瓶 CYL-000105" in page
    city = page[page.index('id="city-record"'):page.index('id="blocked"')]
    assert "2029-03" in city and "G13 液化石油气" in city and "重庆渝北燃气有限公司" in city
    assert "<td>下次检验</td>" in city and "next_inspection_date" not in city
    assert "500112CQ0000000105: 钢印不清" in page
    fills = page[page.index('id="fills"'):page.index('id="decisions"')]
    assert "0190-0020" in fills and "0190-0021" in fills and "王主管: 主管现场核验后放行" in fills
    assert "待上报" in fills and "合格" in fills
    decisions = page[page.index('id="decisions"'):]
    assert "允许充装" in decisions and "(1)" in page[page.index('id="decisions"'):][:80]
    assert client.get("/cylinder?id=" + quote("123456789012"))[2].count("0190-0021") >= 1


# --- 3. audited actions ---------------------------------------------------------------------
def test_removing_a_block_entry_asks_for_a_note_and_is_chained(manager):
    client, store_path, _ = manager
    page = client.get("/blocklist")[2]
    assert "/confirm?action=unblock&amp;target=CYL-000099" in page
    token = csrf_of(page)
    status, body = client.post("/blocklist/remove", {"key": "CYL-000099", "csrf": token})
    assert status == 200 and 'id="confirm"' in body  # one click removes nothing
    status, body = client.post("/act", {"action": "unblock", "target": "CYL-000099",
                                        "note": "  ", "confirm": "1", "csrf": token})
    assert status == 400 and "请填写备注后再确认" in body
    store = Store(str(store_path), readonly=True)
    assert "CYL-000099" in store.blocklist()
    store.close()
    assert client.post("/act", {"action": "unblock", "target": "CYL-000099",
                                "note": "市平台确认已修复", "confirm": "1", "csrf": token}) == (
        303, "/blocklist?msg=unblocked")
    store = Store(str(store_path))
    assert "CYL-000099" not in store.blocklist()
    (act,) = store.query("SELECT * FROM manager_actions")
    assert (act["user"], act["action"], act["target"], act["note"], act["done"]) == (
        "manager", "unblock", "CYL-000099", "市平台确认已修复", 1)
    assert chain.newest(store.conn).kind == "action"
    assert retention.verify(store.conn)[0] == []  # `station verify` still passes
    with store.transaction() as conn:
        conn.execute("UPDATE manager_actions SET note = 'nothing to see'")
    assert retention.verify(store.conn)[0] == [f"action {act['id']} (chain entry "
                                               f"{chain.head(store.conn).seq}) edited"]
    store.close()
    shown = client.get("/blocklist")[2]
    assert "移除禁充" in shown and "nothing to see" in shown and "manager" in shown


def test_handled_and_retried_show_who_when_and_the_note(manager):
    client, _, _ = manager
    token = csrf_of(client.get("/issues")[2])
    confirm = client.get("/confirm?action=handle&target=0190-0005")[2]
    assert "将记录 0190-0005 标记为已处理" in confirm and 'name="note"' in confirm
    assert client.post("/act", {"action": "handle", "target": "0190-0005", "note": "复称合格",
                                "confirm": "1", "csrf": token}) == (303, "/issues?msg=handled")
    issues = client.get("/issues")[2]
    handled = issues[issues.index("最近处理"):]
    assert "0190-0005" in handled and "manager" in handled and "复称合格" in handled
    client.post("/act", {"action": "retry", "target": "0190-0003", "note": "已补正",
                         "confirm": "1", "csrf": token})
    outbox = client.get("/outbox")[2]
    assert "重新上报" in outbox and "已补正" in outbox
    assert client.get("/confirm?action=drop&target=x")[0] == 404


# --- 4. Chinese throughout --------------------------------------------------------------------
def test_states_checks_and_events_are_chinese_and_english_on_request(manager):
    client, _, _ = manager
    records = client.get("/records")[2]
    assert '<td class="bad" data-check="overfill">超装</td>' in records
    assert '<td class="ok" data-check="ok">合格</td>' in records
    assert not re.search(r">(ok|overfill|cancelled)<", records)
    assert '<option value="overfill">超装</option>' in records
    refusals = client.get("/refusals")[2]
    assert "<th>代码</th>" in refusals and "<th>code</th>" not in refusals
    health = client.get("/health")[2]
    assert "<td>空闲</td>" in health and "工位已连接" in health
    assert not re.search(r">(idle|rig_lost|rig_connected|permit_granted)<", health)
    english = client.get("/records?lang=en")[2]
    assert '<td class="ok" data-check="ok">ok</td>' in english
    assert "rig connected" in client.get("/health")[2]  # the cookie keeps English


def test_a_printable_day_report(manager):
    client, _, _ = manager
    today = station_today().isoformat()
    page = client.get(f"/report?day={today}")[2]
    assert f"充装日报 {today}" in page and "@media print" in page
    assert "0190-0020" in page and "按工位" in page and "按充装人员" in page
    assert "打印时间" in page
    other = client.get("/report?day=2001-01-01")[2]
    assert "0190-0020" not in other and "充装日报 2001-01-01" in other


def test_a_fills_photo_is_on_its_cylinder_page_and_served_to_managers_only(manager):
    """Issue 17: the photo taken at the grant, beside its record on the cylinder page."""
    import http.client
    import sqlite3

    from station.store.photos import PhotoStore

    client, store_path, _ = manager
    jpeg = b"\xff\xd8\xff\xe0" + b"\x21" * 500 + b"\xff\xd9"
    photo = PhotoStore(store_path.parent / "photos", 10**6).save("0190-0020", jpeg)
    with sqlite3.connect(store_path) as conn:
        conn.execute("UPDATE fills SET photo_sha256 = ? WHERE record_id = '0190-0020'",
                     (photo.sha256,))
    page = client.get("/cylinder?id=cyl-000105")[2]
    fills = page[page.index('id="fills"'):page.index('id="decisions"')]
    assert 'src="/photo?record=0190-0020"' in fills and fills.count('class="photo"') == 1

    def raw(path, cookies=True):
        conn = http.client.HTTPConnection("127.0.0.1", client.port, timeout=10)
        head = {"Cookie": "; ".join(f"{k}={v}" for k, v in client.cookies.items())} \
            if cookies else {}
        conn.request("GET", path, headers=head)
        answer = conn.getresponse()
        out = answer.status, answer.getheader("Content-Type"), answer.read()
        conn.close()
        return out

    assert raw("/photo?record=0190-0020") == (200, "image/jpeg", jpeg)
    assert raw("/photo?record=0190-0020", cookies=False)[0] == 303  # signed out: log in first
    assert raw("/photo?record=0190-9999")[0] == 404
    assert raw("/photo?record=" + quote("../station.db"))[0] == 404
