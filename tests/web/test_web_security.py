"""The log-in and the server under the LAN attacks of issue 16: parallel guesses, name spraying,
one address guessing many names, CR/LF and tabs in `next=`, slow clients, a failing accept."""

from __future__ import annotations

import errno
import http.client
import json
import os
import re
import select
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlencode

import pytest
from support import wait_until
from webtools import HASHES, PASSWORDS

from station import config
from station.config import WebConfig, WebUser
from station.store.db import Store
from station.web import auth, server
from station.web.app import WebApp
from station.web.server import WebServer

ENV = {"STATION_APP_SECRET": "s3cret"}


def config_text(store: Path, max_failed: int = 3) -> str:
    users = "".join(f'[[web.users]]\nname = "{n}"\npassword_hash = "{h}"\n'
                    for n, h in HASHES.items())
    return (
        '[station]\nunit_name = "重庆渝北燃气有限公司"\nunit_code = "91500112MA5U8XXX0X"\n'
        f'store = "{store}"\n[qr]\nhosts = ["qr.cqtzsb.example"]\n'
        '[city]\nbase_url = "http://127.0.0.1:9"\napp_key = "k"\n'
        '[[rigs]]\nid = "rig-01"\nmedium = "G13"\nmodbus = "tcp://127.0.0.1:1502"\n'
        f'[web]\nport = 0\nmax_failed_logins = {max_failed}\nlockout_minutes = 5\n' + users)


@pytest.fixture
def cfg_path(tmp_path):
    store = tmp_path / "station.db"
    Store(str(store)).close()
    path = tmp_path / "station.toml"
    path.write_text(config_text(store), encoding="utf-8")
    return path


def serving(cfg_path: Path, **kw: object) -> WebServer:
    srv = WebServer(WebApp(config.load(cfg_path, env=ENV)), "127.0.0.1", 0, **kw)
    threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05},
                     daemon=True).start()
    return srv


@pytest.fixture
def site(cfg_path):
    srv = serving(cfg_path)
    yield srv
    srv.shutdown()
    srv.server_close()


def guard(max_failed: int = 5, users: int = 1) -> auth.LoginGuard:
    names = ["manager"] + [f"user{i}" for i in range(1, users)]
    return auth.LoginGuard(WebConfig(max_failed_logins=max_failed, lockout_minutes=5, users=tuple(
        WebUser(n, HASHES["manager"]) for n in names)))


class Spy:
    """Wraps verify_password: how many checks ran, and the most at once."""

    def __init__(self, monkeypatch):
        self.calls = self.active = self.most = 0
        self.lock = threading.Lock()
        real = auth.verify_password

        def spy(password: str, stored: str) -> bool:
            with self.lock:
                self.calls += 1
                self.active += 1
                self.most = max(self.most, self.active)
            try:
                return real(password, stored)
            finally:
                with self.lock:
                    self.active -= 1

        monkeypatch.setattr(auth, "verify_password", spy)


def in_parallel(n: int, fn) -> list:
    start, out = threading.Barrier(n), [None] * n

    def run(i: int) -> None:
        start.wait()
        out[i] = fn(i)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return out


# --- the lock-out ----------------------------------------------------------------------------------
def test_thirty_parallel_guesses_get_at_most_the_limit_checked_and_the_name_stays_locked(
        monkeypatch):
    g, spy = guard(max_failed=5), Spy(monkeypatch)
    results = in_parallel(30, lambda i: g.attempt("manager", f"guess-{i}"))
    assert not any(r.ok for r in results)
    assert spy.calls <= 5, f"{spy.calls} passwords checked with a limit of 5"
    assert g.locked_for("manager") > 290  # no late failure undid the lock
    assert not g.attempt("manager", PASSWORDS["manager"]).ok  # even the right one, unchecked
    assert spy.calls <= 5


def test_password_checks_at_once_are_capped(monkeypatch):
    g, spy = guard(max_failed=5, users=12), Spy(monkeypatch)
    in_parallel(12, lambda i: g.attempt("manager" if i == 0 else f"user{i}", "wrong"))
    assert spy.calls == 12
    assert spy.most <= auth.MAX_HASHES


def test_a_right_password_still_signs_in_below_the_limit():
    g = guard(max_failed=3)
    assert not g.attempt("manager", "wrong").ok
    assert g.attempt("manager", PASSWORDS["manager"]).ok
    for _ in range(2):  # the success reset the count: two more failures do not lock
        assert g.attempt("manager", "wrong").locked_s == 0


def test_eviction_never_forgets_a_locked_name(monkeypatch):
    monkeypatch.setattr(auth, "MAX_TRACKED_NAMES", 4)
    g = guard(max_failed=2)
    g._dummy = HASHES["clerk"]  # unknown names checked cheaply (the test's pace only)
    for _ in range(2):
        g.attempt("manager", "wrong")
    assert g.locked_for("manager") > 0
    for i in range(20):  # spraying names fills the table many times over
        g.attempt(f"spray{i}", "wrong")
    assert g.locked_for("manager") > 290
    assert not g.attempt("manager", PASSWORDS["manager"]).ok


def test_a_table_full_of_locked_names_refuses_new_names_unchecked(monkeypatch):
    monkeypatch.setattr(auth, "MAX_TRACKED_NAMES", 3)
    g = guard(max_failed=1)
    g._dummy = HASHES["clerk"]
    for name in ("a", "b", "c"):
        g.attempt(name, "wrong")
    spy = Spy(monkeypatch)
    refused = g.attempt("manager", PASSWORDS["manager"])
    assert not refused.ok and refused.locked_s > 0 and spy.calls == 0  # fail closed


def test_one_address_is_locked_after_many_names():
    g = guard(max_failed=2)  # per address: 2 × ADDRESS_FACTOR
    g._dummy = HASHES["clerk"]
    limit = 2 * auth.ADDRESS_FACTOR
    for i in range(limit):
        g.attempt(f"name{i}", "wrong", "10.0.0.5")
    refused = g.attempt("manager", PASSWORDS["manager"], "10.0.0.5")
    assert not refused.ok and refused.locked_s > 290
    assert g.attempt("manager", PASSWORDS["manager"], "10.0.0.6").ok  # another tablet


def test_the_server_passes_the_client_address_to_the_limit(site, monkeypatch):
    site.app.guard._dummy = HASHES["clerk"]
    client = Client(site.server_address[1])
    limit = 3 * auth.ADDRESS_FACTOR  # max_failed_logins = 3
    for i in range(limit):
        status, _ = client.login(f"guesser{i}", "wrong")
        assert status == (401 if i < limit - 1 else 429), i  # the limit-th failure locks
    status, _ = client.login("manager", PASSWORDS["manager"])
    assert status == 429


# --- next= ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("target, expected", [
    ("/records?day=2026-01-02&rig=rig-01", "/records?day=2026-01-02&rig=rig-01"),
    ("/records\r\nSet-Cookie: injected=1; Path=/", "/home"),
    ("/\t/evil.example", "/home"),
    ("/ /evil.example", "/home"),
    ("//evil.example", "/home"),
    ("/\\evil.example", "/home"),
    ("/records\\x", "/home"),
    ("/记录", "/home"),
    ("/records\x00", "/home"),
    ("/records\x7f", "/home"),
    ("https://evil.example/", "/home"),
    ("javascript:alert(1)", "/home"),
    (" /records", "/home"),
    ("", "/home"),
])
def test_next_is_only_a_plain_path(target, expected):
    assert WebApp.safe_next(target) == expected


@pytest.mark.parametrize("nxt", ["/records\r\nSet-Cookie: injected=1; Path=/",
                                 "/\t/evil.example"])
def test_signing_in_with_a_crafted_next_lands_on_a_safe_location(site, nxt):
    client = Client(site.server_address[1])
    status, headers = client.login("manager", PASSWORDS["manager"], nxt)
    assert status == 303
    assert headers["location"] == "/home"  # the manager's home page
    assert "injected" not in client.cookies


def test_a_header_with_cr_lf_is_never_sent(site, monkeypatch):
    """Behind safe_next: whatever reaches a header with a line break is a 500, not a split."""
    monkeypatch.setattr(WebApp, "safe_next", staticmethod(lambda target: target or "/"))
    client = Client(site.server_address[1])
    status, _ = client.login("manager", PASSWORDS["manager"],
                             "/records\r\nSet-Cookie: injected=1; Path=/")
    assert status == 500
    assert "injected" not in client.cookies


# --- slow clients -----------------------------------------------------------------------------
def slow_connections(port: int, n: int) -> list[socket.socket]:
    """n connections, each part-way through a request head (slowloris)."""
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(b"GET /rig/rig-01 HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        socks.append(s)
    return socks


def screen_answers(port: int, timeout: float) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", "/api/rig/rig-01")
        answer = conn.getresponse()
        assert json.loads(answer.read())["rig"] == "rig-01"
        return answer.status
    finally:
        conn.close()


def test_slow_clients_past_the_cap_leave_the_operator_screen_answering(cfg_path):
    srv = serving(cfg_path, max_connections=16, request_s=60)  # the deadline plays no part
    try:
        socks = slow_connections(srv.server_address[1], 60)
        assert wait_until(lambda: srv.dropped >= 60 - 16, timeout=5)
        started = time.monotonic()
        assert screen_answers(srv.server_address[1], timeout=3) == 200
        assert time.monotonic() - started < 1.0
        assert srv.open_connections <= 16
    finally:
        for s in socks:
            s.close()
        srv.shutdown()
        srv.server_close()


def test_a_request_trickled_a_byte_at_a_time_is_cut_at_the_deadline(cfg_path):
    srv = serving(cfg_path, request_s=0.5)
    try:
        s = socket.create_connection(("127.0.0.1", srv.server_address[1]), timeout=5)
        started, head, ended = time.monotonic(), b"GET /rig/rig-01 HTTP/1.1\r\nX: " + b"a" * 999, 0.0
        for byte in head:  # a byte every 0.1 s: each read is quick, the request never ends
            try:
                s.sendall(bytes([byte]))
            except OSError:
                ended = time.monotonic()
                break
            readable, _, _ = select.select([s], [], [], 0.1)
            if readable and s.recv(1) == b"":
                ended = time.monotonic()
                break
            if time.monotonic() - started > 5:
                break
        s.close()
        assert ended, "the server kept a request that never ended"
        assert ended - started < 2.0
    finally:
        srv.shutdown()
        srv.server_close()


def test_a_failing_accept_backs_off_instead_of_spinning(cfg_path):
    srv = WebServer(WebApp(config.load(cfg_path, env=ENV)), "127.0.0.1", 0)
    calls = []

    def out_of_fds():
        calls.append(time.monotonic())
        raise OSError(errno.EMFILE, "Too many open files")

    srv._accept = out_of_fds  # the listening socket stays readable: a real client waits
    waiting = socket.create_connection(("127.0.0.1", srv.server_address[1]), timeout=5)
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        assert wait_until(lambda: len(calls) >= 3, timeout=5)
        first = calls[0]
        assert wait_until(lambda: time.monotonic() - first > 1.0, timeout=5)
        assert len([c for c in calls if c - first <= 1.0]) <= 10  # not thousands
    finally:
        srv.shutdown()
        srv.server_close()
        waiting.close()


def test_the_web_process_out_of_descriptors_still_answers_and_does_not_spin(cfg_path):
    """`station web` with 96 descriptors, 150 slow connections: the screen answers and the
    server's CPU stays low (issue 16: EMFILE spun at 100 % and the screens went offline)."""
    code = ("import resource, runpy, sys; resource.setrlimit(resource.RLIMIT_NOFILE, (96, 96)); "
            f"sys.argv = ['station', 'web', '--config', {str(cfg_path)!r}]; "
            "runpy.run_module('station', run_name='__main__')")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, cwd=cfg_path.parent,
                            env=dict(os.environ, **ENV))
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True).start()
    socks: list[socket.socket] = []
    try:
        assert wait_until(lambda: proc.poll() is not None
                          or any("web_ready" in line for line in lines), timeout=20)
        assert proc.poll() is None, lines
        port = int(re.search(r"url=http://127.0.0.1:(\d+)/",
                             next(x for x in lines if "web_ready" in x)).group(1))
        socks = slow_connections(port, 150)
        assert screen_answers(port, timeout=3) == 200
        busy_s = cpu_s(proc.pid)
        wait_until(lambda: False, timeout=1.0)  # one second under attack
        assert cpu_s(proc.pid) - busy_s < 0.5
    finally:
        for s in socks:
            s.close()
        proc.terminate()
        proc.wait(10)


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100  # utime + stime, clock ticks (USER_HZ)


# --- a small client ---------------------------------------------------------------------------
class Client:
    """http.client with a cookie jar of one site."""

    def __init__(self, port: int):
        self.port, self.cookies = port, {}

    def request(self, method: str, path: str, form: dict | None = None
                ) -> tuple[int, dict, str]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        head = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
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
                    self.cookies[key.strip()] = rest.split(";")[0]
            return answer.status, {k.lower(): v for k, v in answer.getheaders()}, text
        finally:
            conn.close()

    def login(self, name: str, password: str, nxt: str = "/records") -> tuple[int, dict]:
        _, _, page = self.request("GET", "/login")
        csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
        status, headers, _ = self.request("POST", "/login", {
            "csrf": csrf, "name": name, "password": password, "next": nxt})
        return status, headers


def test_the_default_cap_leaves_descriptors_for_the_store():
    import resource
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    cap = server.connection_cap()
    assert 8 <= cap <= server.MAX_CONNECTIONS
    assert soft == resource.RLIM_INFINITY or cap <= soft - server.FD_RESERVE or cap == 8
