"""The city simulator keeps contracts/city-api.md's envelope under any input (issue 16): crafted
bodies, other methods, unknown paths, a GET with a body on a keep-alive connection."""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import socket

import pytest

from simulators.city_api import PATHS


def envelope(answer: http.client.HTTPResponse) -> dict:
    """The answer's body as the contract's envelope (asserts its shape)."""
    assert answer.getheader("Content-Type", "").startswith("application/json")
    doc = json.loads(answer.read())
    assert isinstance(doc, dict) and isinstance(doc.get("code"), str), doc
    assert isinstance(doc.get("message", ""), str)
    return doc


def call(sim, method: str, path: str, body: bytes | None = None,
         headers: dict | None = None) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", sim.port, timeout=5)
    try:
        conn.request(method, path, body=body,
                     headers={"Content-Type": "application/json; charset=utf-8"} | (headers or {}))
        answer = conn.getresponse()
        return answer.status, envelope(answer)
    finally:
        conn.close()


def token(sim, city_data) -> str:
    cred = city_data["credentials"][0]
    ts, nonce = int(__import__("time").time()), "n-" + str(id(sim))
    msg = f'{cred["unit_code"]}\n{cred["app_key"]}\n{ts}\n{nonce}'
    sign = hmac.new(cred["app_secret"].encode(), msg.encode(), hashlib.sha256).hexdigest()
    _, env = call(sim, "POST", PATHS.token, json.dumps(
        {"unit_code": cred["unit_code"], "app_key": cred["app_key"], "timestamp": ts,
         "nonce": nonce, "sign": sign}).encode())
    assert env["code"] == "200", env
    return json.loads(env["data"])["token"]


NESTED = b"[" * 100_000 + b"]" * 100_000


@pytest.mark.parametrize("path, body", [
    (PATHS.query, b'{"\\ud800": "x"}'),  # a lone surrogate in a key
    (PATHS.query, b'{"id": "\\ud800"}'),
    (PATHS.token, b'{"unit_code": "u", "app_key": "k", "timestamp": 1, "nonce": "\\ud800",'
                  b' "sign": "00"}'),
    (PATHS.query, NESTED),
    (PATHS.query, b'{"id": ' + NESTED + b"}"),
    (PATHS.query, b'{"user_unit_name": "x", "page": ' + b"9" * 5000 + b"}"),
    (PATHS.token, b'{"unit_code": "u", "app_key": "k", "timestamp": 1' + b"0" * 400 + b','
                  b' "nonce": "n", "sign": "00"}'),
    (PATHS.token, b'{"unit_code": "u", "app_key": "k", "timestamp": 1e400, "nonce": "n",'
                  b' "sign": "00"}'),
    (PATHS.query, b'{"id": NaN}'),
    (PATHS.query, b"\xff\xfe not utf-8"),
    (PATHS.query, b""),
    (PATHS.query, b"[]"),
])
def test_a_body_it_cannot_use_gets_a_400_envelope(city_sim, city_data, path, body):
    auth = {"Authorization": f"Bearer {token(city_sim, city_data)}"}
    status, env = call(city_sim, "POST", path, body, auth)
    assert env["code"] in ("400", "401"), env  # refused, answered, the connection kept
    if path == PATHS.query:
        assert env["code"] == "400"


def test_a_signed_token_call_with_a_huge_timestamp_is_refused_in_an_envelope(city_sim,
                                                                             city_data):
    cred = city_data["credentials"][0]
    ts = 10**400
    msg = f'{cred["unit_code"]}\n{cred["app_key"]}\n{ts}\nhuge'
    sign = hmac.new(cred["app_secret"].encode(), msg.encode(), hashlib.sha256).hexdigest()
    body = (f'{{"unit_code": "{cred["unit_code"]}", "app_key": "{cred["app_key"]}", '
            f'"timestamp": {ts}, "nonce": "huge", "sign": "{sign}"}}').encode()
    status, env = call(city_sim, "POST", PATHS.token, body)
    assert env["code"] in ("400", "401") and "token" not in (env.get("data") or "")


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH", "OPTIONS", "BREW"])
def test_other_methods_get_a_405_envelope(city_sim, method):
    status, env = call(city_sim, method, PATHS.query, b"{}")
    assert status == 405 and env["code"] == "405"


def test_head_gets_a_405_without_a_body(city_sim):
    conn = http.client.HTTPConnection("127.0.0.1", city_sim.port, timeout=5)
    try:
        conn.request("HEAD", PATHS.query)
        answer = conn.getresponse()
        assert answer.status == 405 and answer.read() == b""
        conn.request("GET", "/_sim/state")  # the connection is still in step
        assert conn.getresponse().status == 200
    finally:
        conn.close()


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_an_unknown_path_gets_a_404_envelope(city_sim, method):
    status, env = call(city_sim, method, "/api/v1/nothing-here", b"{}")
    assert status == 404 and env["code"] == "404"


def test_a_get_with_a_body_keeps_the_keep_alive_connection_in_step(city_sim):
    smuggled = b"POST /api/v1/auth/token HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"
    conn = http.client.HTTPConnection("127.0.0.1", city_sim.port, timeout=5)
    try:
        conn.request("GET", "/nothing", body=smuggled)  # one request, with Content-Length
        first = conn.getresponse()
        assert first.status == 404 and envelope(first)["code"] == "404"
        conn.request("GET", "/_sim/state")  # same connection: answered, not the smuggled POST
        second = conn.getresponse()
        assert second.status == 200 and "requests" in json.loads(second.read())
    finally:
        conn.close()
    assert city_sim.requests[PATHS.token] == 0


def test_a_chunked_body_is_refused_and_the_connection_closed(city_sim):
    s = socket.create_connection(("127.0.0.1", city_sim.port), timeout=5)
    s.sendall(b"POST /api/v1/cylinders/query HTTP/1.1\r\nHost: x\r\n"
              b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n")
    answer = http.client.HTTPResponse(s)
    answer.begin()
    try:
        assert answer.status == 400 and json.loads(answer.read())["code"] == "400"
        assert s.recv(1) == b""  # closed: the chunks are never read as a request
    finally:
        s.close()


def test_a_malformed_request_line_gets_an_envelope(city_sim):
    s = socket.create_connection(("127.0.0.1", city_sim.port), timeout=5)
    s.sendall(b"POST /api/v1/cylinders/query HTTP/9.9\r\n\r\n")
    answer = http.client.HTTPResponse(s)
    answer.begin()
    try:
        assert answer.status >= 400 and json.loads(answer.read())["code"].isdigit()
    finally:
        s.close()


def test_a_handler_exception_is_answered_with_a_500_envelope(city_sim, monkeypatch):
    def broken(*_args):
        raise KeyError("a bug in the simulator")

    monkeypatch.setattr(city_sim, "handle", broken)
    status, env = call(city_sim, "POST", PATHS.query, b"{}")
    assert status == 500 and env["code"] == "500"
