"""The web pages over real HTTP on loopback, against a real store file (no browser, no daemon).

The store holds hand-made records with hostile text in them; the server runs in this process on
an ephemeral port. Covers what the browser tests do not: escaping everywhere, the outbox retry,
health, the refusal chart, the language switch, sign-out, the records filters against the CLI's.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlencode

import pytest
from webtools import HASHES, PASSWORDS

from station import config
from station.core.fills import local
from station.core.model import Decision, Reading, Verdict
from station.errors import ConfigError
from station.store.db import Store
from station.store.records import select_fills
from station.today import LOCAL_TZ
from station.web import operator, views
from station.web.auth import verify_password
from station.web.server import make_server

HOSTILE = '<script>alert(1)</script>'
HOSTILE_OP = '"><img src=x onerror=alert(2)>'
ENV = {"STATION_APP_SECRET": "s3cret"}


def config_text(store: Path, **web: object) -> str:
    keys = {"port": 0, "max_failed_logins": 3, "lockout_minutes": 5} | web
    users = "".join(f'[[web.users]]\nname = "{n}"\npassword_hash = "{h}"\n'
                    for n, h in HASHES.items())
    return (
        '[station]\nunit_name = "重庆渝北燃气有限公司"\nunit_code = "91500112MA5U8XXX0X"\n'
        f'store = "{store}"\n[qr]\nhosts = ["qr.cqtzsb.example"]\n'
        '[city]\nbase_url = "http://127.0.0.1:9"\napp_key = "k"\n'
        '[[rigs]]\nid = "rig-01"\nmedium = "G13"\nmodbus = "tcp://127.0.0.1:1502"\n'
        '[[rigs]]\nid = "rig-02"\nmedium = "G13"\nmodbus = "tcp://127.0.0.1:1502"\nunit_id = 2\n'
        "[web]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in keys.items()) + users)


def fill_row(n: int, **over: object) -> dict:
    now = time.time() - 3600 + n * 60
    row = {"record_id": f"0190-{n:04d}", "decision_id": n, "rig": "rig-01" if n % 2 else "rig-02",
           "cylinder_id": f"CYL-{n:06d}", "info_code": f"500112CQ{n:010d}", "tag": f"T{n}",
           "medium": "G13", "operator": "张三" if n % 3 else "李四", "source": "city",
           "tare_g": 15200, "target_g": 14500, "prefill_g": 15240, "gross_g": 29700,
           "net_g": 14500, "pre_check": "ok", "post_check": "ok", "end_reason": "done",
           "permitted_at": now, "started_at": now + 1, "ended_at": now + 60,
           "fill_date": datetime.fromtimestamp(now + 1, LOCAL_TZ).date().isoformat()}
    return row | over


def refusal(store: Store, reason: str, cylinder: str = "CYL-000006") -> None:
    reading = Reading(raw=f"https://qr.cqtzsb.example/c/{cylinder}", kind="qr_url", value=cylinder,
                      reader="rig-01-reader1")
    store.record_decision(Decision(at=datetime.now(UTC), rig_id="rig-01", reading=reading,
                                   verdict=Verdict(permit=False, reason=reason,
                                                   cylinder_id=cylinder),
                                   source="city", cache_age_s=None, latency_ms=4.0,
                                   operator="张三"))


@pytest.fixture
def site(tmp_path):
    """A store with fills (one overfill, one hostile override), refusals, live state; a server."""
    store_path = tmp_path / "station.db"
    store = Store(str(store_path))
    for n in range(1, 8):
        over = {}
        if n == 5:
            over = {"post_check": "overfill", "net_g": 15300}
        if n == 6:
            over = {"cylinder_id": HOSTILE, "operator": HOSTILE_OP, "override_by": "王主管",
                    "override_reason": HOSTILE}
        row = fill_row(n, **over)
        store.close_fill(row, None if n == 7 else {"record_id": row["record_id"]})
    with store.transaction() as conn:
        conn.execute("UPDATE outbox SET state = 'dead', last_error = ? WHERE record_id = ?",
                     (f"400 E_FIELD: {HOSTILE}", "0190-0003"))
        conn.execute("UPDATE outbox SET state = 'delivered' WHERE record_id IN (?, ?)",
                     ("0190-0001", "0190-0002"))
    for reason in ("SCRAPPED", "SCRAPPED", "INSPECTION_OVERDUE"):
        refusal(store, reason)
    store.publish("rig-01", {"connected": True, "fault": None, "phase": "idle",
                             "operator": HOSTILE_OP, "permit": False, "present": False,
                             "verdict": {"decision_id": 3, "permit": False, "code": "SCRAPPED",
                                         "cylinder_id": HOSTILE, "medium": "G13",
                                         "next_inspection": "2029-01", "warnings": []},
                             "heartbeat_at": time.time()})
    store.rig_event("rig-01", "rig_lost", f"connection refused {HOSTILE}")
    store.rig_event("rig-01", "rig_connected", "")
    store.block("CYL-000099", HOSTILE, "cli")
    store.close()
    cfg_path = tmp_path / "station.toml"
    cfg_path.write_text(config_text(store_path), encoding="utf-8")
    cfg = config.load(cfg_path, env=ENV)
    server = make_server(cfg)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    yield Client(server.server_address[1]), store_path, cfg
    server.shutdown()
    server.server_close()


class Client:
    """http.client with a cookie jar of one site."""

    def __init__(self, port: int):
        self.port, self.cookies = port, {}

    def request(self, method: str, path: str, form: dict | None = None,
                headers: dict | None = None) -> tuple[int, dict, str]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        head = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())} | (headers or {})
        body = None
        if form is not None:
            body = urlencode(form)
            head["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            conn.request(method, path, body=body, headers=head)
            answer = conn.getresponse()
            text = answer.read().decode("utf-8")
            for name, value in answer.getheaders():
                if name.lower() == "set-cookie":
                    key, _, rest = value.partition("=")
                    val = rest.split(";")[0]
                    if "Max-Age=0" in value:
                        self.cookies.pop(key, None)
                    else:
                        self.cookies[key] = val
            return answer.status, {k.lower(): v for k, v in answer.getheaders()}, text
        finally:
            conn.close()

    def get(self, path: str) -> tuple[int, dict, str]:
        return self.request("GET", path)

    def login(self, name: str = "manager", password: str | None = None) -> tuple[int, str]:
        _, _, page = self.get("/login")
        status, headers, text = self.request("POST", "/login", {
            "csrf": csrf_of(page), "name": name,
            "password": PASSWORDS[name] if password is None else password, "next": "/records"})
        return status, headers.get("location", text)

    def post(self, path: str, form: dict) -> tuple[int, str]:
        status, headers, text = self.request("POST", path, form)
        return status, headers.get("location", text)


def csrf_of(page: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', page).group(1)


# --- escaping ------------------------------------------------------------------------------------
def test_hostile_text_is_escaped_on_every_page(site):
    client, _, _ = site
    assert client.login()[0] == 303
    for path in ("/records", "/issues", "/outbox", "/blocklist", "/health", "/rig/rig-01",
                 "/records?cylinder=" + HOSTILE.replace("<", "%3C").replace(">", "%3E")):
        status, headers, page = client.get(path)
        assert status == 200, path
        assert HOSTILE not in page and "<img src=x" not in page, path
        assert "default-src 'none'" in headers["content-security-policy"]
        assert not re.search(r'(src|href)="(https?:)?//', page), path  # no external asset
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in client.get("/issues")[2]
    _, _, screen = client.get("/rig/rig-01")
    assert "\\u003cscript\\u003e" in screen  # inside the page's JSON, not markup
    _, _, api = client.get("/api/rig/rig-01")
    assert json.loads(api)["cylinder_id"] == HOSTILE  # JSON is data: the page sets textContent


def test_csv_neutralises_formulas_and_carries_a_bom(site, tmp_path):
    client, store_path, _ = site
    client.login()
    store = Store(str(store_path))
    store.close_fill(fill_row(9, cylinder_id="=HYPERLINK(\"http://x\")", operator="@SUM(1)"),
                     None)
    store.close()
    status, headers, text = client.get("/records.csv?cylinder=%3DHYPERLINK(%22http%3A%2F%2Fx%22)")
    assert status == 200 and headers["content-disposition"].startswith("attachment")
    assert text.startswith("\ufeff记录号,充装日期,开始时间,")  # Chinese headings by default
    assert "'=HYPERLINK" in text and "'@SUM(1)" in text
    english = client.get("/records.csv?lang=en&cylinder=%3DHYPERLINK(%22http%3A%2F%2Fx%22)")[2]
    assert english.startswith("\ufeffrecord_id,fill_date,started,")


# --- the records filters are the CLI's ----------------------------------------------------------
@pytest.mark.parametrize("query", [
    {}, {"rig": "rig-01"}, {"operator": "李四"}, {"check": "overfill"}, {"sync": "dead"},
    {"sync": "none"}, {"sync": "pending"}, {"override": "1"}, {"cylinder": "CYL-000002"},
    {"cylinder": "500112CQ0000000004"}, {"rig": "rig-02", "operator": "张三"},
])
def test_records_filters_select_what_station_records_selects(site, query):
    _, store_path, _ = site
    store = Store(str(store_path), readonly=True)
    flt = views.RecordFilter.from_query(query)
    args = argparse.Namespace(date_from=flt.date_from or None, date_to=flt.date_to or None,
                              rig=flt.rig or None, operator=flt.operator or None,
                              cylinder=flt.cylinder or None, check=flt.check or None,
                              sync=flt.sync or None, override=flt.override, limit=10**6)
    cli = [r["record_id"] for r in select_fills(store, args)]
    assert [r["record_id"] for r in views.records_all(store, flt)] == cli
    page, total = views.records_page(store, flt)
    assert total == len(cli) and [r["record_id"] for r in page] == cli[::-1][:views.PAGE_SIZE]
    store.close()


def test_records_page_filters_and_pages(site, monkeypatch):
    client, _, _ = site
    client.login()
    _, _, page = client.get("/records?check=overfill")
    assert "0190-0005" in page and "0190-0001" not in page
    monkeypatch.setattr(views, "PAGE_SIZE", 3)
    _, _, first = client.get("/records")
    _, _, second = client.get("/records?page=2")
    assert "0190-0007" in first and "0190-0007" not in second and "0190-0004" in second
    assert 'rel="next"' in first and 'rel="prev"' in second
    _, _, bad = client.get("/records?from=yesterday&check=boom")
    assert "已忽略无效的筛选条件：from, check" in bad


# --- the managers' writes ---------------------------------------------------------------------
def test_a_dead_letter_shows_the_citys_message_and_is_sent_again(site):
    client, store_path, _ = site
    client.login()
    _, _, page = client.get("/outbox")
    assert "0190-0003" in page and "400 E_FIELD: &lt;script&gt;" in page
    assert re.search(r"<td class=\"num\">1</td>", page)  # one dead
    assert client.post("/outbox/retry", {"record_id": "0190-0003"})[0] == 403  # no token
    status, confirm = client.post("/outbox/retry", {"record_id": "0190-0003",
                                                    "csrf": csrf_of(page)})
    assert status == 200 and 'id="confirm"' in confirm  # one click only asks
    status, where = client.post("/act", {"action": "retry", "target": "0190-0003",
                                         "note": "字段已由市平台修正", "confirm": "1",
                                         "csrf": csrf_of(page)})
    assert (status, where) == (303, "/outbox?msg=retried")
    store = Store(str(store_path), readonly=True)
    assert store.query("SELECT state, next_at FROM outbox WHERE record_id = '0190-0003'") == [
        {"state": "pending", "next_at": 0}]
    store.close()
    assert client.post("/outbox/retry", {"record_id": "0190-0003", "csrf": csrf_of(page),
                                         "note": "again", "confirm": "1"}) == (
        303, "/outbox?msg=retry_gone")
    assert "没有这条被拒收的记录" in client.get("/outbox?msg=retry_gone")[2]


def test_an_override_is_marked_handled_once(site):
    client, store_path, _ = site
    client.login()
    page = client.get("/issues")[2]
    assert "0190-0005" in page and "0190-0006" in page and "0190-0001" not in page
    form = {"record_id": "0190-0006", "csrf": csrf_of(page), "note": "已核实", "confirm": "1"}
    assert client.post("/issues/handle", form) == (303, "/issues?msg=handled")
    assert client.post("/issues/handle", form) == (303, "/issues?msg=handled_gone")
    assert client.post("/issues/handle", form | {"record_id": "0190-0001"}) == (
        303, "/issues?msg=handled_gone")  # an ordinary fill is not an issue
    store = Store(str(store_path), readonly=True)
    rows = store.query("SELECT record_id, handled_by FROM fills WHERE handled_at IS NOT NULL")
    assert rows == [{"record_id": "0190-0006", "handled_by": "manager"}]
    store.close()


def test_health_shows_connection_heartbeat_and_last_error(site):
    client, _, _ = site
    client.login()
    page = client.get("/health")[2]
    rig1 = page[page.index('data-rig="rig-01"'):page.index('data-rig="rig-02"')]
    assert '<td class="ok">是</td>' in rig1 and "秒前" in rig1
    assert "工位断开: connection refused &lt;script&gt;" in rig1  # the event in Chinese
    assert "rig_lost" not in rig1.replace('data-event="rig_lost"', "")
    rig2 = page[page.index('data-rig="rig-02"'):]
    assert "无实时数据" in rig2 and "从未" in rig2
    assert "<td>控制程序无响应</td>" in rig2  # what its operator screen shows, from station.core.hmi
    assert "<td>控制程序无响应</td>" not in rig1


def newest_chain_row(store_path: Path) -> tuple[int, str, float]:
    """The chain table's newest row, and its record's time (here: a decision's)."""
    store = Store(str(store_path), readonly=True)
    try:
        (row,) = store.query("SELECT c.seq, c.hash, c.kind, d.at FROM chain c JOIN decisions d "
                             "ON d.id = CAST(c.ref AS INTEGER) ORDER BY c.seq DESC LIMIT 1")
    finally:
        store.close()
    assert row["kind"] == "decision"
    return row["seq"], row["hash"], row["at"]


def test_health_and_every_manager_page_show_the_chain_head(site):
    client, store_path, _ = site
    assert "记录链头" not in client.get("/login")[2]  # not before log-in
    client.login()
    seq, full, at = newest_chain_row(store_path)
    page = client.get("/health")[2]
    section = page[page.index('<section id="chain"'):]
    assert re.search(r'<section id="chain" data-seq="(\d+)" data-hash="([0-9a-f]+)"',
                     section).groups() == (str(seq), full[:16])
    assert f'<td class="num">{seq}</td>' in section
    assert f'<code title="{full}">{full[:16]}</code>' in section
    assert local(at) in section and "不校验整条链" in section
    for path in ("/records", "/issues", "/outbox", "/blocklist", "/health", "/refusals"):
        footer = client.get(path)[2].split("<footer>")[1]
        assert footer.startswith(f'<span id="chain-head" data-seq="{seq}" data-hash="'
                                 f'{full[:16]}">记录链头：#{seq} <code title="{full}">'
                                 f'{full[:16]}</code> · {local(at)}</span>'), path
    store = Store(str(store_path))
    refusal(store, "STOPPED")  # the daemon records another decision: the head moves on
    store.close()
    seq2, full2, at2 = newest_chain_row(store_path)
    assert seq2 == seq + 1 and full2 != full
    english = client.get("/records?lang=en")[2]
    assert (f'Record chain head: #{seq2} <code title="{full2}">{full2[:16]}</code> · '
            f'{local(at2)}') in english
    assert f'data-hash="{full2[:16]}"' in client.get("/health")[2]


def test_the_chain_head_of_an_empty_store(tmp_path):
    store_path = tmp_path / "station.db"
    Store(str(store_path)).close()
    cfg_path = tmp_path / "station.toml"
    cfg_path.write_text(config_text(store_path), encoding="utf-8")
    server = make_server(config.load(cfg_path, env=ENV))
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                     daemon=True).start()
    try:
        client = Client(server.server_address[1])
        client.login()
        page = client.get("/health")[2]
        assert '<span id="chain-head">记录链头：尚无记录</span>' in page
        assert '<section id="chain"><h2>防篡改记录链</h2><p class="muted">尚无记录</p>' in page
    finally:
        server.shutdown()
        server.server_close()


def test_refusals_chart_counts_by_reason_and_day(site):
    client, _, _ = site
    client.login()
    page = client.get("/refusals?days=7")[2]
    svg = page[page.index("<svg"):page.index("</svg>")]
    bars = dict(re.findall(r'data-reason="([A-Z_]+)" data-day="[0-9-]+" data-n="(\d+)"', svg))
    assert bars == {"SCRAPPED": "2", "INSPECTION_OVERDUE": "1"}
    assert "气瓶已报废" in page and page.count('<text x=') >= 7


def test_english_switch_sticks_in_a_cookie(site):
    client, _, _ = site
    client.login()
    status, headers, page = client.get("/records?lang=en")
    assert status == 200 and "Fill records" in page and "station_lang=en" in headers["set-cookie"]
    assert "Open overfills and overrides" in client.get("/issues")[2]  # the cookie
    assert "待处理的超装与主管放行" in client.get("/issues?lang=zh")[2]


def test_sign_out_ends_the_session(site):
    client, _, _ = site
    client.login()
    token = client.cookies["station_session"]
    page = client.get("/records")[2]
    assert client.post("/logout", {"csrf": csrf_of(page)}) == (303, "/login")
    assert "station_session" not in client.cookies
    client.cookies["station_session"] = token  # the old cookie is worth nothing now
    assert client.get("/records")[0] == 303


def test_login_refuses_a_forged_form_and_a_foreign_origin(site):
    client, _, _ = site
    client.get("/login")
    assert client.post("/login", {"name": "manager", "password": PASSWORDS["manager"]})[0] == 403
    page = client.get("/login")[2]
    status, _, _ = client.request("POST", "/login", {
        "csrf": csrf_of(page), "name": "manager", "password": PASSWORDS["manager"]},
        headers={"Origin": "http://evil.example"})
    assert status == 403 and "station_session" not in client.cookies
    assert client.login()[1] == "/records"


def test_api_shows_offline_when_the_daemon_is_silent(site):
    client, store_path, _ = site
    store = Store(str(store_path))
    with store.transaction() as conn:
        conn.execute("UPDATE rig_live SET at = at - 60")
    store.close()
    state = json.loads(client.get("/api/rig/rig-01")[2])
    assert state["mode"] == "offline" and state["headline"]["zh"] == "控制程序无响应"
    assert state["state"] == "daemon_gone" and state["page"] == operator.PAGE_ID  # (reload)
    assert json.loads(client.get("/api/rig/rig-02")[2])["mode"] == "offline"  # never seen
    assert client.get("/api/rig/rig-09")[0] == 404 and client.get("/rig/rig-09")[0] == 404
    assert client.get("/rig/x/rig-01")[0] == 404


# --- configuration, password hashes, isolation ---------------------------------------------------
def test_web_section_defaults_and_strictness(tmp_path):
    path = tmp_path / "s.toml"
    base = config_text(tmp_path / "x.db").split("[web]")[0]
    path.write_text(base, encoding="utf-8")
    web = config.load(path, env=ENV).web
    assert (web.bind, web.port, web.max_failed_logins, web.users) == ("127.0.0.1", 8080, 5, ())
    for extra, key in [("[web]\nprot = 1\n", "prot"), ("[web]\nport = 70000\n", "port"),
                       ('[[web.users]]\nname = "a"\npassword_hash = "plain"\n', "password_hash"),
                       ("[web]\nmax_failed_logins = 0\n", "max_failed_logins")]:
        path.write_text(base + extra, encoding="utf-8")
        with pytest.raises(ConfigError) as err:
            config.load(path, env=ENV)
        assert err.value.key == key and err.value.section.startswith("web"), extra
    twice = "".join(f'[[web.users]]\nname = "a"\npassword_hash = "{HASHES["manager"]}"\n'
                    for _ in range(2))
    path.write_text(base + twice, encoding="utf-8")
    with pytest.raises(ConfigError, match="appears twice"):
        config.load(path, env=ENV)


def test_hash_password_prints_a_hash_that_verifies():
    run = subprocess.run([sys.executable, "-m", "station", "web", "--hash-password"],
                         input="a long enough secret\n", capture_output=True, text=True,
                         timeout=30)
    assert run.returncode == 0, run.stderr
    stored = run.stdout.strip()
    assert re.fullmatch(config.PASSWORD_HASH, stored)
    assert verify_password("a long enough secret", stored)
    assert not verify_password("a long enough secreT", stored)
    short = subprocess.run([sys.executable, "-m", "station", "web", "--hash-password"],
                           input="short\n", capture_output=True, text=True, timeout=30)
    assert short.returncode == 1 and "at least 8" in short.stderr


def test_lockout_ends_after_lockout_minutes(monkeypatch):
    from station.config import WebConfig, WebUser
    from station.web import auth

    clock = [1000.0]
    monkeypatch.setattr(auth.time, "monotonic", lambda: clock[0])
    guard = auth.LoginGuard(WebConfig(max_failed_logins=2, lockout_minutes=1,
                                      users=(WebUser("m", HASHES["manager"]),)))
    assert guard.attempt("m", "bad") == auth.Attempt(False)
    assert guard.attempt("m", "bad").locked_s == 60
    clock[0] += 59
    assert not guard.attempt("m", PASSWORDS["manager"]).ok  # still locked
    clock[0] += 2
    assert guard.attempt("m", PASSWORDS["manager"]).ok
    assert guard.attempt("nobody", "x").ok is False  # an unknown name fails like a wrong password


def test_the_web_process_imports_no_device_driver():
    code = ("import sys, station.web.server, station.web.command, station.web.app; "
            "print(' '.join(sorted(sys.modules)))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True, timeout=30).stdout.split()
    devices = [m for m in loaded if m.split(".")[0] in ("pymodbus", "serial", "cv2", "zxingcpp",
                                                        "pyzbar")
               or (m.startswith("drivers.") and m != "drivers.rig")]  # rig: the status type
    assert devices == []


def test_pages_say_503_when_the_store_cannot_be_read(tmp_path):
    cfg_path = tmp_path / "station.toml"
    cfg_path.write_text(config_text(tmp_path / "missing" / "station.db"), encoding="utf-8")
    server = make_server(config.load(cfg_path, env=ENV))
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                     daemon=True).start()
    try:
        client = Client(server.server_address[1])
        status, _, page = client.get("/api/rig/rig-01")
        assert status == 503 and "数据库暂不可用" in page
        assert client.get("/healthz")[0] == 200  # the server itself is fine
    finally:
        server.shutdown()
        server.server_close()


def test_station_web_tells_systemd_it_is_ready_and_alive(site, tmp_path):
    _, _, cfg = site
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.settimeout(15)
        env = dict(os.environ, NOTIFY_SOCKET=str(path), WATCHDOG_USEC="200000",
                   STATION_APP_SECRET="s3cret")
        proc = subprocess.Popen([sys.executable, "-m", "station", "web", "--config", cfg.file],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            assert sock.recv(100) == b"READY=1"
            assert sock.recv(100) == b"WATCHDOG=1"  # after answering its own /healthz
            proc.send_signal(signal.SIGTERM)
            messages = [sock.recv(100)]  # a WATCHDOG=1 may still come first
            while messages[-1] != b"STOPPING=1" and len(messages) < 20:
                messages.append(sock.recv(100))
            assert messages[-1] == b"STOPPING=1", messages
            assert proc.wait(10) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_a_block_key_is_normalised_and_one_that_can_never_match_is_refused(site):
    client, store_path, _ = site
    client.login()
    form = {"csrf": csrf_of(client.get("/blocklist")[2]), "reason": "钢印不清"}
    assert client.post("/blocklist/add", form | {"key": "张三的瓶子"}) == (
        303, "/blocklist?msg=block_invalid")
    assert "该编号不可能与任何标签匹配" in client.get("/blocklist?msg=block_invalid")[2]
    assert client.post("/blocklist/add", form | {"key": " cyl－000002"}) == (
        303, "/blocklist?msg=blocked")
    store = Store(str(store_path), readonly=True)
    assert "CYL-000002" in [r["key"] for r in store.blocklist_rows()]
    assert "张三的瓶子" not in store.blocklist()
    store.close()
