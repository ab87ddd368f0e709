"""The city as real deployments answer it (issue 13): proxy pages, GBK, integer codes, trickles
and huge bodies, each from a small misbehaving server on 127.0.0.1, against every city call."""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest
from citytoml import write_city_config

from simulators.city_misbehaving import (
    MisbehavingCity,
    gbk,
    html,
    huge,
    integer_code,
    trickle,
    trickle_headers,
)
from station.app import cli, doctor
from station.city.client import CityClient
from station.city.lookup import LookupService, tag_key
from station.city.sync import SyncWorker
from station.config import CityConfig, SyncConfig
from station.core.fills import new_record_id
from station.core.model import Decision, Reading, Verdict
from station.errors import CityError
from station.store.db import Store

DEADLINE = 0.3  # every call's budget here: short, so that the suite stays quick
MARGIN = 0.25  # what a call may overrun its deadline by (thread wake-ups on a loaded box)
QUERY, SUBMIT, TOKEN, BIND = ("/cylinders/query", "/fillings/submit", "/auth/token",
                              "/tags/bind")
READING = Reading(raw="ICC001", kind="info_code", value="ICC001", reader="s1")
UNKNOWN = Reading(raw="NO-SUCH", kind="info_code", value="NO-SUCH", reader="s1")
TRICKLE = trickle(0.05)  # far inside any read timeout, forever on the whole answer


def record(**over) -> dict:
    body = {"record_id": new_record_id(), "medium_code": "G13", "operator": "张三",
            "fill_date": "2026-11-24", "filling_unit_name": "重庆测试充装站", "id": "C001",
            "fill_started_at": "2026-11-24 09:15:02", "fill_ended_at": "2026-11-24 09:16:40",
            "net_mass_kg": 14.52, "rig_id": "rig-01", "pre_check": "ok", "post_check": "ok"}
    return body | over


def add(store: Store, body: dict) -> str:
    """A closed fill's outbox entry, as the rig loop writes it."""
    fill = {"record_id": body["record_id"], "rig": "rig-01", "medium": "G13", "source": "city",
            "tare_g": 15000, "target_g": 14500, "cylinder_id": body.get("id")}
    store.close_fill(fill, body)
    return body["record_id"]


def outbox(store: Store) -> dict:
    return {r["record_id"]: r for r in store.query("SELECT * FROM outbox ORDER BY id")}


@pytest.fixture
def bad(city_data):
    city = MisbehavingCity(city_data).start()
    yield city
    city.stop()


def client_of(city, data, **over) -> CityClient:
    cred = data["credentials"][0]
    kw = {"base_url": city.url, "app_key": cred["app_key"], "app_secret": cred["app_secret"],
          "connect_timeout_s": 0.3, "read_timeout_s": 2.0, "decision_deadline_s": DEADLINE}
    return CityClient(CityConfig(**(kw | over)), cred["unit_code"])


@pytest.fixture
def client(bad, city_data):
    c = client_of(bad, city_data)
    yield c
    c.close()


def timed(fn, *args, **kw):
    start = time.monotonic()
    out = fn(*args, **kw)
    return out, time.monotonic() - start


def lookups_of(client, store, workers=2) -> LookupService:
    return LookupService(client, store, ThreadPoolExecutor(workers), DEADLINE)


def decide(store, reading, answer):
    """Record a decision as the rig loop does: the cache learns (or forgets) what it implies."""
    d = Decision(datetime.now(UTC), "rig-01", reading, Verdict(permit=False, reason="X"), "city",
                 None, 1.0, None)
    store.record_decision(d, answer.city_record, tag_key(reading), answer.forget_tag,
                          answer.remember)


# ---- 1. only the envelope is the city's word ----------------------------------------------------
@pytest.mark.parametrize("status", [403, 404])
def test_proxy_page_on_query_is_no_answer_and_keeps_the_cache(bad, client, tmp_path, status):
    store = Store(str(tmp_path / "s.db"))
    lookups = lookups_of(client, store)
    first = asyncio.run(lookups.lookup(READING))
    assert first.lookup.outcome == "found"
    decide(store, READING, first)
    bad.behave[QUERY] = html(status)
    reply = client.query({"info_code": "ICC001"})
    assert (reply.outcome, reply.code) == ("transient", None)
    assert f"HTTP {status}" in reply.message and "not the city's envelope" in reply.message
    answer = asyncio.run(lookups.lookup(READING))
    assert answer.lookup.outcome == "unavailable"  # never NOT_REGISTERED nor FOREIGN_UNIT
    assert answer.lookup.source == "cache" and answer.lookup.record["id"] == "C001"
    assert not answer.forget_tag and answer.remember is None
    decide(store, READING, answer)
    assert store.cached(tag_key(READING)) is not None  # a real outage after still finds it
    assert store.city_refusal(tag_key(READING)) is None


def test_the_citys_own_404_envelope_is_still_definitive(bad, client):
    bad.behave[QUERY] = integer_code()  # the city's answer, code as an integer
    reply = client.query({"info_code": "NO-SUCH"})
    assert (reply.outcome, reply.code) == ("not_found", "404")
    found = client.query({"info_code": "ICC001"})
    assert found.outcome == "found" and found.items[0]["id"] == "C001"


def test_proxy_page_logged_once_with_status_and_first_bytes(bad, client, caplog):
    caplog.set_level(logging.WARNING, logger="station.city")
    client.token()
    bad.behave[QUERY] = html(404)
    for _ in range(3):
        client.query({"info_code": "ICC001"})
    lines = [r.getMessage() for r in caplog.records if "city_not_envelope" in r.getMessage()]
    assert len(lines) == 1
    assert "status=404" in lines[0] and "<html>\\x0d\\x0a<head>" in lines[0]  # escaped


@pytest.mark.parametrize("behaviour", [html(403), html(404)], ids=["403", "404"])
def test_proxy_page_on_submit_never_makes_a_record_dead(bad, client, tmp_path, behaviour):
    store = Store(str(tmp_path / "s.db"))
    worker = SyncWorker(str(tmp_path / "s.db"), client,
                        SyncConfig(rate_per_s=0, submit_timeout_s=DEADLINE),
                        rng=random.Random(1))
    bad.behave[SUBMIT] = behaviour
    rid = add(store, record())
    worker.step(store)
    row = outbox(store)[rid]
    assert row["state"] == "pending" and row["attempts"] == 1
    assert "not the city's envelope" in row["last_error"]
    bad.behave.clear()
    with store.transaction() as conn:
        conn.execute("UPDATE outbox SET next_at = 0")
    worker.step(store)
    assert outbox(store)[rid]["state"] == "delivered"


def test_the_citys_own_403_envelope_on_submit_is_dead(bad, client, tmp_path):
    store = Store(str(tmp_path / "s.db"))
    worker = SyncWorker(str(tmp_path / "s.db"), client, SyncConfig(rate_per_s=0))
    bad.behave[SUBMIT] = gbk()  # the city's own word, in GBK: a 400 for an 11-character name
    rid = add(store, record(operator="张" * 11))
    worker.step(store)
    row = outbox(store)[rid]
    assert row["state"] == "dead" and row["last_error"].startswith("400")


@pytest.mark.parametrize("status", [403, 404])
def test_proxy_page_on_token_is_no_refusal_of_our_credentials(bad, client, status):
    bad.behave[TOKEN] = html(status)
    with pytest.raises(CityError) as err:
        client.token()
    assert err.value.transient is True and "credentials" not in str(err.value)
    reply = client.query({"info_code": "ICC001"})
    assert reply.outcome == "transient" and "credentials" not in reply.message


# ---- 2. charset and types as they come -----------------------------------------------------------
def test_gbk_envelope_is_read(bad, client):
    bad.behave[QUERY] = gbk()
    bad.behave[TOKEN] = gbk()
    assert client.query({"info_code": "NO-SUCH"}).outcome == "not_found"
    found = client.query({"info_code": "ICC001"})
    assert found.outcome == "found"
    assert found.items[0]["user_unit_name"] == "重庆测试燃气有限公司"


def test_gbk_not_found_is_definitive_never_overridable(bad, client, tmp_path):
    bad.behave[QUERY] = gbk()
    answer = asyncio.run(lookups_of(client, Store(str(tmp_path / "s.db"))).lookup(UNKNOWN))
    assert (answer.lookup.outcome, answer.lookup.source) == ("not_found", "city")


def test_integer_codes_on_every_call(bad, client):
    for path in (QUERY, SUBMIT, TOKEN, BIND):
        bad.behave[path] = integer_code()
    assert client.query({"info_code": "NO-SUCH"}).outcome == "not_found"
    assert client.query({"info_code": "ICC003"}).outcome == "refused"
    body = record()
    assert client.submit_filling(body).outcome == "ok"
    assert client.submit_filling(body).outcome == "duplicate"


# ---- 3. a whole-call deadline that holds ---------------------------------------------------------
def _query(c: CityClient):
    return c.query({"info_code": "ICC001"}).outcome


def _submit(c: CityClient):
    return c.submit_filling(record(), deadline_s=DEADLINE).outcome


def _bind(c: CityClient):
    return c.bind_tag({"id": "C001", "tagging": "RFID标签", "rfid_uid": "AABB",
                       "stamp_photos": ["/9j/2Q=="]}, deadline_s=DEADLINE).outcome


def _token(c: CityClient):
    try:
        c.token()
    except CityError as err:
        return "transient" if err.transient else "refused"
    return "ok"


CALLS = {"query": (_query, QUERY), "submit": (_submit, SUBMIT), "bind": (_bind, BIND),
         "token": (_token, TOKEN)}


@pytest.mark.parametrize("call", CALLS)
@pytest.mark.parametrize("behaviour", [TRICKLE, huge(50 * 2**20, say_length=False)],
                         ids=["trickle", "50MB"])
def test_every_call_ends_by_its_deadline(bad, city_data, call, behaviour):
    fn, path = CALLS[call]
    c = client_of(bad, city_data, max_reply_bytes=1 * 2**20)
    try:
        if path != TOKEN:
            c.token()
        bad.behave[path] = behaviour
        outcome, took = timed(fn, c)
    finally:
        c.close()
    assert outcome == "transient"
    assert took < DEADLINE + MARGIN, f"{call} took {took:.2f} s"


def test_huge_body_with_its_length_is_refused_before_reading(bad, client):
    client.token()
    bad.behave[QUERY] = huge(50 * 2**20, say_length=True)
    reply, took = timed(client.query, {"info_code": "ICC001"})
    assert reply.outcome == "transient" and "52428800 bytes refused" in reply.message
    assert took < DEADLINE + MARGIN


def test_check_and_doctor_end_by_their_deadlines(bad, city_data, tmp_path, capsys):
    config = _config(tmp_path, bad.url)
    bad.behave[QUERY] = TRICKLE
    bad.behave[TOKEN] = TRICKLE
    bad.behave["/"] = trickle_headers(0.05)  # doctor's clock check: a HEAD
    start = time.monotonic()
    with pytest.raises(SystemExit) as exited:
        cli.main(["check", "--config", str(config), "ICC001"])
    took = time.monotonic() - start
    assert exited.value.code == 1 and "CITY_UNAVAILABLE" in capsys.readouterr().out
    assert took < DEADLINE + MARGIN + 0.3  # + loading the config and opening the store
    from station import config as config_mod

    cfg = config_mod.load(str(config))
    check, took = timed(doctor.check_city, cfg)
    assert check.status == "FAIL" and "timed out" in check.detail
    assert took < DEADLINE + MARGIN
    clock, took = timed(doctor.check_clock, cfg)
    assert clock.status == "FAIL" and took < DEADLINE + MARGIN


def test_trickled_lookups_never_exhaust_the_pool(bad, client, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="station.city")
    store = Store(str(tmp_path / "s.db"))
    lookups = LookupService(client, store, ThreadPoolExecutor(4), DEADLINE)
    client.token()
    bad.behave[QUERY] = TRICKLE

    async def many(n):
        return await asyncio.gather(*(lookups.lookup(READING) for _ in range(n)))

    answers, took = timed(asyncio.run, many(8))  # twice the pool, all trickled
    assert [a.lookup.outcome for a in answers] == ["unavailable"] * 8
    assert took < DEADLINE + MARGIN
    bad.behave.clear()  # the city recovers: the very next reading reaches it
    answers = asyncio.run(many(3))
    assert [a.lookup.source for a in answers] == ["city"] * 3
    messages = [r.getMessage() for r in caplog.records]
    assert sum("city_unreachable" in m for m in messages) == 1
    assert sum("city_reachable" in m for m in messages) == 1  # back


def test_a_stuck_call_frees_its_thread(bad, client):
    client.token()
    bad.behave[QUERY] = TRICKLE
    before = threading.active_count()
    client.query({"info_code": "ICC001"})
    assert threading.active_count() <= before  # no timer or reader left behind


def _config(tmp_path: Path, url: str) -> Path:
    return write_city_config(tmp_path, url, f"connect_timeout_s = 0.3\nread_timeout_s = 2.0\n"
                             f"decision_deadline_s = {DEADLINE}\nprobe_deadline_s = {DEADLINE}\n")
