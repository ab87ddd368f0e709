"""The sync worker against the city simulator over HTTP, with a real SQLite outbox."""

import json
import random
import time

import pytest

from station.city.client import CityClient
from station.city.sync import SyncWorker, backoff_s
from station.config import CityConfig, SyncConfig
from station.core.fills import new_record_id
from station.store.db import Store

UNIT = "重庆测试充装站"


def record(cid="C001", **over):
    body = {"record_id": new_record_id(), "medium_code": "G13", "operator": "张三",
            "fill_date": "2026-11-24", "filling_unit_name": UNIT, "id": cid,
            "fill_started_at": "2026-11-24 09:15:02", "fill_ended_at": "2026-11-24 09:16:40",
            "net_mass_kg": 14.52, "rig_id": "rig-01", "pre_check": "ok", "post_check": "ok"}
    return body | over


def add(store, body):
    """A closed fill's outbox entry, as the rig loop writes it."""
    fill = {"record_id": body["record_id"], "rig": "rig-01", "medium": "G13", "source": "city",
            "tare_g": 15000, "target_g": 14500, "cylinder_id": body.get("id")}
    store.close_fill(fill, body)
    return body["record_id"]


@pytest.fixture
def setup(city_sim, city_data, tmp_path):
    cred = city_data["credentials"][0]
    cfg = CityConfig(base_url=city_sim.url, app_key=cred["app_key"],
                     app_secret=cred["app_secret"], connect_timeout_s=0.3, read_timeout_s=0.5,
                     decision_deadline_s=1.0)
    client = CityClient(cfg, cred["unit_code"])
    store = Store(str(tmp_path / "s.db"))
    worker = SyncWorker(str(tmp_path / "s.db"), client,
                        SyncConfig(rate_per_s=0, submit_timeout_s=1.0), rng=random.Random(7))
    yield city_sim, store, worker
    client.close()


def drain(worker, store, limit=50):
    """Run the worker's steps in this thread until nothing is due now."""
    for _ in range(limit):
        if worker.step(store) > 0:
            return


def outbox(store):
    return {r["record_id"]: r for r in store.query("SELECT * FROM outbox ORDER BY id")}


def test_city_down_then_up_delivers_every_record_once_in_order(setup):
    sim, store, worker = setup
    sim.set_faults(status=503)
    ids = [add(store, record()) for _ in range(5)]
    drain(worker, store)
    assert all(r["state"] == "pending" for r in outbox(store).values())
    first = outbox(store)[ids[0]]
    assert first["attempts"] == 1 and "503" in first["last_error"]
    assert [r["attempts"] for r in outbox(store).values()][1:] == [0] * 4  # in order: waits
    sim.clear_faults()
    with store.transaction() as conn:  # `station sync --now`
        conn.execute("UPDATE outbox SET next_at = 0")
    drain(worker, store)
    assert [f["record_id"] for f in sim.fillings] == ids
    assert all(sim.submissions[i] == 1 for i in ids)
    rows = outbox(store)
    assert all(r["state"] == "delivered" and r["trace_id"] for r in rows.values())


def test_409_for_our_own_record_counts_as_delivered(setup):
    sim, store, worker = setup
    body = record()
    rid = add(store, body)
    worker.city.submit_filling(body)  # sent once before: a crash after sending, before marking
    drain(worker, store)
    row = outbox(store)[rid]
    assert row["state"] == "delivered" and sim.submissions[rid] == 2 and len(sim.fillings) == 1


def test_400_goes_dead_stays_dead_and_is_kept(setup):
    sim, store, worker = setup
    bad = add(store, record(operator="张三李四王五赵六钱七孙"))  # 11 characters
    good = add(store, record())
    drain(worker, store)
    rows = outbox(store)
    assert rows[bad]["state"] == "dead" and "400" in rows[bad]["last_error"]
    assert rows[good]["state"] == "delivered"  # a dead record does not block the others
    drain(worker, store)
    assert outbox(store)[bad]["state"] == "dead" and sim.submissions[bad] == 1


def test_retry_after_is_respected(setup):
    sim, store, worker = setup
    sim.set_faults(status=429, retry_after_s=30, count=1)
    rid = add(store, record())
    before = time.time()
    drain(worker, store)
    row = outbox(store)[rid]
    assert row["state"] == "pending" and row["next_at"] >= before + 30
    assert worker.step(store) > 1  # not due: the worker waits instead of sending


def test_override_fill_without_id_is_resolved_by_tag(setup):
    sim, store, worker = setup
    body = record(cid=None) | {"_resolve": {"info_code": "ICC001", "tag": "ICC001"}}
    rid = add(store, body)
    drain(worker, store)
    assert outbox(store)[rid]["state"] == "delivered"
    assert sim.fillings[0]["id"] == "C001" and "_resolve" not in sim.fillings[0]
    assert json.loads(outbox(store)[rid]["payload"])["id"] == "C001"


def test_backoff_is_full_jitter_capped_and_honours_retry_after():
    rng = random.Random(1)
    waits = [backoff_s(n, 300, None, rng) for n in range(20)]
    assert all(0 <= w <= min(300, 2**n) for n, w in enumerate(waits))
    assert max(waits[12:]) > 60  # it does grow
    assert backoff_s(0, 300, 45, rng) == 45
    assert backoff_s(3, 300, 1000, rng) == 300


def test_old_backlog_is_warned_once_and_recovery_once(setup, caplog):
    sim, store, worker = setup
    worker.cfg = SyncConfig(rate_per_s=0, submit_timeout_s=1.0, backlog_warn_h=1)
    sim.set_faults(status=503)
    rid = add(store, record())
    with store.transaction() as conn:
        conn.execute("UPDATE outbox SET created_at = ? WHERE record_id = ?",
                     (time.time() - 2 * 3600, rid))
    with caplog.at_level("INFO", logger="station.sync"):
        for _ in range(3):
            worker.step(store)
            with store.transaction() as conn:
                conn.execute("UPDATE outbox SET next_at = 0")
        sim.clear_faults()
        drain(worker, store)
        worker.step(store)
    messages = [r.getMessage() for r in caplog.records]
    assert sum("event=backlog_old" in m for m in messages) == 1
    assert sum("event=backlog_recovered" in m for m in messages) == 1


def test_a_code_outside_the_contract_goes_dead_instead_of_blocking_the_queue(setup):
    sim, store, worker = setup
    sim.set_faults(status=413, paths=("/api/v1/fillings/submit",))
    first, second = add(store, record()), add(store, record())
    drain(worker, store)
    rows = outbox(store)
    for rid in (first, second):  # each tried once, kept as dead: the queue moved on
        assert rows[rid]["state"] == "dead" and "413" in rows[rid]["last_error"]
        assert rows[rid]["attempts"] == 1


def test_the_worker_thread_outlives_a_failure(setup):
    sim, store, worker = setup

    class Flaky:
        """The real client, failing once with an error nobody planned for."""

        def __init__(self, city):
            self.city, self.failed = city, False

        def submit_filling(self, body, deadline_s=10.0):
            if not self.failed:
                self.failed = True
                raise RuntimeError("boom")
            return self.city.submit_filling(body, deadline_s)

        def query(self, condition, deadline_s=None):
            return self.city.query(condition, deadline_s)

    worker.city = Flaky(worker.city)
    rid = add(store, record())
    worker.start()
    try:
        worker.wake()
        deadline = time.monotonic() + 15
        while outbox(store)[rid]["state"] != "delivered" and time.monotonic() < deadline:
            worker.wake()
            time.sleep(0.05)  # polling the store for the outcome, with a deadline
        assert outbox(store)[rid]["state"] == "delivered" and worker.is_alive()
    finally:
        worker.stop()
        worker.join(5)


def test_a_retry_set_before_the_clock_was_stepped_back_is_due_at_once(setup):
    sim, store, worker = setup
    rid = add(store, record())
    with store.transaction() as conn:  # a failure while the clock read a day ahead
        conn.execute("UPDATE outbox SET attempts = 1, next_at = ?", (time.time() + 86400,))
    drain(worker, store)
    assert outbox(store)[rid]["state"] == "delivered" and sim.submissions[rid] == 1
