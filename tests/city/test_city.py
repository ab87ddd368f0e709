"""The city client against a running CitySimulator over real HTTP on 127.0.0.1."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import threading
import time
import uuid

import pytest
import requests
from support import wait_until

from simulators.city import CitySimulator
from station.city.client import CityClient
from station.config import CityConfig, CityPaths
from station.errors import CityError

P = CityPaths()
JPEG = base64.b64encode(b"\xff\xd8\xff\xe0" + b"\x00" * 64 + b"\xff\xd9").decode()




def make_client(sim: CitySimulator, data: dict, clock=time.time, **over) -> CityClient:
    cred = data["credentials"][0]
    kw = {"base_url": sim.url, "app_key": cred["app_key"], "app_secret": cred["app_secret"],
          "connect_timeout_s": 0.5, "read_timeout_s": 2.0, "decision_deadline_s": 3.0}
    kw.update(over)
    return CityClient(CityConfig(**kw), cred["unit_code"], clock=clock)


@pytest.fixture
def client(city_sim, city_data):
    c = make_client(city_sim, city_data)
    yield c
    c.close()


def raw_post(sim: CitySimulator, path: str, body: dict, token: str | None = None) -> dict:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    resp = requests.post(sim.url + path, json=body, headers=headers, timeout=5)
    return resp.json()


def signed(cred: dict, ts: int, nonce: str) -> dict:
    text = f"{cred['unit_code']}\n{cred['app_key']}\n{ts}\n{nonce}".encode()
    sign = hmac.new(cred["app_secret"].encode(), text, hashlib.sha256).hexdigest()
    return {"unit_code": cred["unit_code"], "app_key": cred["app_key"], "timestamp": ts,
            "nonce": nonce, "sign": sign}


def filling(record_id: str | None = None, **over) -> dict:
    rec = {"record_id": record_id or str(uuid.uuid4()), "medium_code": "G13", "operator": "张三",
           "fill_date": "2026-11-24", "filling_unit_name": "重庆测试充装站", "id": "C001",
           "fill_started_at": "2026-11-24 09:15:02", "fill_ended_at": "2026-11-24 09:16:40",
           "net_mass_kg": 14.52, "rig_id": "rig-01", "pre_check": "ok", "post_check": "ok"}
    rec.update(over)
    return rec


# ---- token ------------------------------------------------------------------------------------
def test_token_obtained_once_and_reused(city_sim, client):
    first = client.query({"info_code": "ICC001"})
    second = client.query({"qr_url": "https://qr.example/c/ICC001"})
    assert first.outcome == second.outcome == "found"
    assert first.items[0]["id"] == second.items[0]["id"] == "C001"
    assert client.token() == client.token()
    assert city_sim.requests[P.token] == 1
    assert city_sim.requests[P.query] == 2


def test_expired_tokens_cost_one_401_then_success(city_sim, client):
    assert client.query({"id": "C001"}).outcome == "found"
    city_sim.expire_tokens()
    reply = client.query({"id": "C001"})
    assert reply.outcome == "found"
    assert reply.attempts == 2
    assert city_sim.requests[P.token] == 2
    assert city_sim.requests[P.query] == 3


def test_token_renewed_before_expiry_and_after_server_side_expiry(city_data):
    client_now, sim_now = [1_800_000_000.0], [1_800_000_000.0]
    sim = CitySimulator(city_data, token_ttl_s=100, clock=lambda: sim_now[0]).start()
    client = make_client(sim, city_data, clock=lambda: client_now[0], token_margin_s=10)
    try:
        assert client.query({"id": "C001"}).outcome == "found"
        client_now[0] += 89  # still outside the margin: reuse
        sim_now[0] += 89
        assert client.query({"id": "C001"}).outcome == "found"
        assert sim.requests[P.token] == 1
        client_now[0] += 2  # inside the margin: a new token before the old one expires
        sim_now[0] += 2
        reply = client.query({"id": "C001"})
        assert (reply.outcome, reply.attempts, sim.requests[P.token]) == ("found", 1, 2)
        sim_now[0] += 150  # the city's clock runs ahead: it expires our token first
        reply = client.query({"id": "C001"})
        assert (reply.outcome, reply.attempts, sim.requests[P.token]) == ("found", 2, 3)
    finally:
        client.close()
        sim.stop()


def test_concurrent_first_queries_share_one_token(city_sim, client):
    replies: list = []
    threads = [threading.Thread(target=lambda: replies.append(client.query({"id": "C001"})))
               for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert [r.outcome for r in replies] == ["found"] * 8
    assert city_sim.requests[P.token] == 1


def test_wrong_secret_is_transient_and_never_shows_the_secret(city_sim, city_data, caplog):
    secret = "wrong-secret-7f3a9c"
    bad = make_client(city_sim, city_data, app_secret=secret)
    caplog.set_level(logging.DEBUG, logger="station.city")
    try:
        reply = bad.query({"id": "C001"})
        with pytest.raises(CityError) as err:
            bad.token()
    finally:
        bad.close()
    assert reply.outcome == "transient"
    assert reply.code == "401"
    assert "credentials" in reply.message
    assert secret not in reply.message and secret not in str(err.value)
    assert secret not in caplog.text
    assert err.value.transient is False
    assert city_sim.requests[P.token] == 2  # one per call: a refused signature is not retried
    assert city_sim.requests[P.query] == 0


def test_logs_carry_neither_token_nor_secret(city_sim, city_data, client, caplog):
    caplog.set_level(logging.DEBUG)
    city_sim.expire_tokens()
    assert client.query({"id": "C001"}).outcome == "found"
    city_sim.expire_tokens()
    assert client.query({"id": "C001"}).outcome == "found"
    token = client.token()
    assert "token" in caplog.text  # the transitions are logged ...
    assert token not in caplog.text  # ... but never the token itself
    assert city_data["credentials"][0]["app_secret"] not in caplog.text


# ---- envelope and outcomes --------------------------------------------------------------------
def test_data_as_string_and_as_object_both_parsed(city_sim, client):
    token = client.token()
    wire = raw_post(city_sim, P.query, {"rfid_uid": "e2801160600002084c1a2b3c"}, token)
    assert isinstance(wire["data"], str)
    as_string = client.query({"rfid_uid": "E2801160600002084C1A2B3C"})
    city_sim.set_faults(data_as_object=True)
    wire = raw_post(city_sim, P.query, {"id": "C002"}, token)
    assert isinstance(wire["data"], dict)
    as_object = client.query({"rfid_uid": "E2801160600002084C1A2B3C"})
    assert as_string.outcome == as_object.outcome == "found"
    assert as_string.items == as_object.items
    assert as_object.items[0]["id"] == "C002"


def test_nothing_found_is_not_found(city_sim, client):
    reply = client.query({"info_code": "NO-SUCH-CODE"})
    assert (reply.outcome, reply.code, reply.attempts) == ("not_found", "404", 1)


def test_other_units_cylinder_is_refused(city_sim, client):
    reply = client.query({"info_code": "ICC003"})
    assert (reply.outcome, reply.code) == ("refused", "403")


def test_invalid_query_is_not_retried(city_sim, client):
    reply = client.query({"info_code": "ICC001", "id": "C001"})
    assert (reply.outcome, reply.code) == ("invalid", "400")
    assert city_sim.requests[P.query] == 1


@pytest.mark.parametrize("status, outcome", [(400, "invalid"), (403, "refused"),
                                             (404, "not_found")])
def test_definitive_http_statuses_are_not_retried(city_sim, client, status, outcome):
    client.token()
    city_sim.set_faults(status=status, paths=["/cylinders/query"])
    reply = client.query({"id": "C001"})
    assert (reply.outcome, reply.code) == (outcome, str(status))
    assert city_sim.requests[P.query] == 1


def test_http_401_gets_one_new_token_only(city_sim, client):
    client.token()
    city_sim.set_faults(status=401, paths=["/cylinders/query"])
    reply = client.query({"id": "C001"})
    assert (reply.outcome, reply.code) == ("transient", "401")
    assert city_sim.requests[P.query] == 2
    assert city_sim.requests[P.token] == 2


@pytest.mark.parametrize("fault", [{"status": 503}, {"status": 502}, {"error_rate": 1.0},
                                   {"reset": True}, {"garbage": True}],
                         ids=["503", "502", "500", "reset", "garbage"])
def test_transient_trouble_is_retried_within_the_deadline(city_sim, client, fault):
    client.token()
    city_sim.set_faults(count=2, paths=["/cylinders/query"], **fault)
    start = time.monotonic()
    reply = client.query({"id": "C001"}, deadline_s=3.0)
    assert reply.outcome == "found"
    assert reply.attempts == 3
    assert city_sim.requests[P.query] == 3
    assert time.monotonic() - start < 3.0


def test_lasting_garbage_is_transient(city_sim, client):
    client.token()
    city_sim.set_faults(garbage=True, paths=["/cylinders/query"])
    start = time.monotonic()
    reply = client.query({"id": "C001"}, deadline_s=1.0)
    assert reply.outcome == "transient"
    assert "not JSON" in reply.message
    assert city_sim.requests[P.query] >= 2
    assert time.monotonic() - start < 1.5


def test_items_that_are_not_objects_are_transient(city_sim, client, monkeypatch):
    original = city_sim.handle

    def handle(path, authorization, raw):
        status, code, message, data = original(path, authorization, raw)
        if path == P.query:
            data = {"total": 1, "items": ["C001"]}
        return status, code, message, data

    monkeypatch.setattr(city_sim, "handle", handle)
    reply = client.query({"id": "C001"}, deadline_s=0.5)
    assert reply.outcome == "transient"
    assert "cylinder objects" in reply.message


def test_hang_returns_transient_within_the_deadline(city_sim, client):
    city_sim.set_faults(hang=True)  # the token request hangs too: it must stay inside the budget
    start = time.monotonic()
    reply = client.query({"id": "C001"}, deadline_s=1.0)
    elapsed = time.monotonic() - start
    assert reply.outcome == "transient"
    assert "timed out" in reply.message
    assert elapsed < 1.0 + 0.5


def test_hang_blocks_neither_other_requests_nor_stop(city_data):
    sim = CitySimulator(city_data).start()
    sim.set_faults(hang=True)
    errors: list[Exception] = []

    def hanging_call():
        try:
            requests.post(sim.url + P.query, json={"id": "C001"}, timeout=10)
        except requests.RequestException as err:
            errors.append(err)

    caller = threading.Thread(target=hanging_call)
    caller.start()
    try:
        assert wait_until(lambda: sim.requests[P.query] == 1)
        state = requests.get(sim.url + "/_sim/state", timeout=2).json()
        assert state["faults"]["hang"] is True
    finally:
        start = time.monotonic()
        sim.stop()
        stop_s = time.monotonic() - start
        caller.join(timeout=5)
    assert stop_s < 2.0
    assert not caller.is_alive() and len(errors) == 1


def test_retry_after_is_honoured(city_sim, client):
    client.token()
    city_sim.set_faults(status=429, retry_after_s=1, count=1, paths=["/fillings/submit"])
    start = time.monotonic()
    reply = client.submit_filling(filling())
    elapsed = time.monotonic() - start
    assert reply.outcome == "ok"
    assert reply.attempts == 2
    assert reply.retry_after_s == 1.0
    assert elapsed >= 1.0


def test_retry_after_beyond_the_deadline_gives_up_at_once(city_sim, client):
    client.token()
    city_sim.set_faults(status=503, retry_after_s=30, paths=["/cylinders/query"])
    start = time.monotonic()
    reply = client.query({"id": "C001"}, deadline_s=2.0)
    assert reply.outcome == "transient"
    assert reply.retry_after_s == 30.0
    assert city_sim.requests[P.query] == 1
    assert time.monotonic() - start < 0.5


# ---- filling submission -----------------------------------------------------------------------
def test_filling_submitted_once_then_duplicate(city_sim, client):
    record = filling()
    first = client.submit_filling(record)
    second = client.submit_filling(record)
    assert first.outcome == "ok"
    assert first.data["record_id"] == record["record_id"]
    assert second.outcome == "duplicate" and second.code == "409"
    assert second.data == first.data
    assert [f["record_id"] for f in city_sim.fillings] == [record["record_id"]]
    assert city_sim.submissions[record["record_id"]] == 2
    trail = raw_post(city_sim, P.trace, {"id": "C001"}, client.token())
    assert trail["code"] == "200"
    assert [n["node"] for n in json.loads(trail["data"])["items"]] == ["充装"]


def test_operator_name_of_eleven_characters_is_invalid(city_sim, client):
    reply = client.submit_filling(filling(operator="张" * 11))
    assert (reply.outcome, reply.code) == ("invalid", "400")
    assert "operator" in reply.message
    assert city_sim.requests[P.submit] == 1
    assert city_sim.fillings == []


@pytest.mark.parametrize("over", [{"medium_code": "G21"}, {"filling_unit_name": "站" * 101},
                                  {"id": "C" * 51}, {"record_id": "r" * 65},
                                  {"fill_date": "2026-13-01"}, {"operator": ""}])
def test_bad_filling_fields_are_invalid(city_sim, client, over):
    reply = client.submit_filling(filling(**over))
    assert reply.outcome == "invalid"
    assert city_sim.fillings == []


def test_submission_survives_a_lost_answer(city_sim, client):
    client.token()
    city_sim.set_faults(reset=True, count=1, paths=["/fillings/submit"])
    record = filling()
    assert client.submit_filling(record).outcome == "ok"
    assert len(city_sim.fillings) == 1


# ---- tag binding, inspections, trace, auth rules of the simulator ------------------------------
def test_bind_tag(city_sim, client):
    ok = client.bind_tag({"id": "C001", "tagging": "RFID标签", "qr_url": None,
                          "rfid_uid": "aabbccdd", "stamp_photos": [JPEG]})
    assert (ok.outcome, ok.data) == ("ok", {"info_code": "ICC001"})
    assert client.query({"rfid_uid": "AABBCCDD"}).items[0]["id"] == "C001"
    taken = client.bind_tag({"id": "C001", "tagging": "RFID标签",
                             "rfid_uid": "E2801160600002084C1A2B3C", "stamp_photos": [JPEG]})
    assert (taken.outcome, taken.code) == ("duplicate", "409")
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 16).decode()
    for photos in ([], [JPEG] * 5, [png], ["not base64!"]):
        bad = client.bind_tag({"id": "C001", "tagging": "二维码", "qr_url": "https://qr.example/c/X",
                               "stamp_photos": photos})
        assert bad.outcome == "invalid", photos
    big = base64.b64encode(b"\xff\xd8" + b"\x00" * (2 * 1024 * 1024)).decode()
    too_big = client.bind_tag({"id": "C001", "tagging": "二维码",
                               "qr_url": "https://qr.example/c/X", "stamp_photos": [big]})
    assert too_big.outcome == "invalid"


def test_scrapping_inspection_and_trace_order(city_sim, client):
    assert client.submit_filling(filling()).outcome == "ok"
    body = {"record_id": "insp-1", "inspection_date": "2026-11-25", "inspection_body": "某检验所",
            "next_inspection_date": "2030-11", "conclusion": "不合格", "type": "报废处置",
            "id": "C001"}
    assert raw_post(city_sim, P.inspections, body, client.token())["code"] == "200"
    assert raw_post(city_sim, P.inspections, body, client.token())["code"] == "409"
    assert city_sim.cylinder("C001")["status"] == "报废"
    assert client.query({"id": "C001"}).items[0]["next_inspection_date"] == "2030-11"
    trail = raw_post(city_sim, P.trace, {"id": "C001"}, client.token())
    assert [n["node"] for n in json.loads(trail["data"])["items"]] == ["充装", "检验"]


def test_simulator_auth_rules(city_sim, city_data):
    cred = city_data["credentials"][0]
    now = int(time.time())
    assert raw_post(city_sim, P.token, signed(cred, now, "n-1"))["code"] == "200"
    assert raw_post(city_sim, P.token, signed(cred, now, "n-1"))["code"] == "401"  # replay
    assert raw_post(city_sim, P.token, signed(cred, now - 400, "n-2"))["code"] == "401"
    forged = dict(signed(cred, now, "n-3"), sign="0" * 64)
    assert raw_post(city_sim, P.token, forged)["code"] == "401"
    assert raw_post(city_sim, P.query, {"id": "C001"})["code"] == "401"
    assert raw_post(city_sim, P.query, {"id": "C001"}, token="made-up")["code"] == "401"


def test_simulator_query_conditions(city_sim, client):
    product = {"product_no": "PC001", "manufacturer": "某某气瓶制造厂"}
    assert client.query(product).outcome == "found"
    assert client.query({"product_no": "PC001"}).outcome == "found"
    assert client.query(dict(product, manufacturer="别的厂")).outcome == "not_found"
    page = client.query({"user_unit_name": "重庆测试燃气有限公司", "page": 1, "page_size": 500})
    assert {c["id"] for c in page.items} == {"C001", "C002"}
    assert client.query({"user_unit_name": "x", "page_size": 501}).outcome == "invalid"
    assert client.query({}).outcome == "invalid"
    assert client.query({"manufacturer": "某某气瓶制造厂"}).outcome == "invalid"


def test_faults_over_http(city_sim, client):
    client.token()
    resp = requests.post(city_sim.url + "/_sim/faults", json={"status": 503, "count": 1},
                         timeout=2)
    assert resp.status_code == 200 and resp.json()["faults"]["status"] == 503
    bad = requests.post(city_sim.url + "/_sim/faults", json={"no_such_fault": 1}, timeout=2)
    assert bad.status_code == 400
    assert client.query({"id": "C001"}).attempts == 2
    state = requests.get(city_sim.url + "/_sim/state", timeout=2).json()
    assert state["faults"]["status"] is None
    assert state["requests"][P.query] == 2
    requests.post(city_sim.url + "/_sim/faults", json={"expire_tokens": True}, timeout=2)
    assert client.query({"id": "C001"}).attempts == 2
