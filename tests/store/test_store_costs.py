"""The store's costs per poll and per scan: operators on shift from memory, every per-poll and
per-scan query by index on a store with a history, one commit for a grant, no write lock for
a scan that needs none (issue 15 items 3 and 4)."""

import re
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from station.core.model import Decision, Reading, Verdict
from station.errors import StoreError
from station.store.db import FILL_COLUMNS, Store

ROOT = Path(__file__).resolve().parents[2]
READING = Reading(raw="https://qr/c/X1", kind="qr_url", value="X1", reader="s1")
RECORD = {"id": "CYL-1", "info_code": "X1", "product_no": "118230000001", "status": "在用"}
HISTORY = 100_000


def decision(permit=True):
    verdict = Verdict(permit=permit, reason=None if permit else "SCRAPPED", cylinder_id="CYL-1",
                      tare_g=15200, target_g=14500)
    return Decision(at=datetime.now(UTC), rig_id="rig-01", reading=READING, verdict=verdict,
                    source="city", cache_age_s=None, latency_ms=3.2, operator="张三")


def fill_row(record_id="R-1"):
    return {"record_id": record_id, "rig": "rig-01", "cylinder_id": "CYL-1", "medium": "G13",
            "source": "city", "tare_g": 15200, "target_g": 14500, "permitted_at": time.time()}


@pytest.fixture
def store(tmp_path):
    s = Store(str(tmp_path / "s.db"))
    yield s
    s.close()


def with_history(store: Store) -> Store:
    """100,000 operator events over 72 rigs and 100,000 decisions, each by one executemany."""
    rigs = [f"rig-{i:02d}" for i in range(72)]
    with store.transaction() as conn:
        conn.executemany("INSERT INTO operator_events (at, rig, operator, event, via) VALUES "
                         "(?, ?, ?, ?, 'badge')",
                         ((i, rigs[i % 72], f"op{i % 9}", "login" if i % 2 else "logout")
                          for i in range(HISTORY)))
        conn.executemany("INSERT INTO decisions (at, local_time, rig, reading, kind, tag, "
                         "cylinder_id, permit, source, latency_ms) VALUES (?, '', ?, '', "
                         "'qr_url', ?, ?, 1, 'city', 1.0)",
                         ((i, rigs[i % 72], f"C{i}", f"CYL-{i % 5000}") for i in range(HISTORY)))
        conn.executemany("INSERT INTO tag_index (key, cylinder_id, at) VALUES (?, ?, 0)",
                         ((f"info_code:C{i}", f"CYL-{i}") for i in range(5000)))
    return store


def test_a_login_by_another_process_is_seen_at_the_next_call(store):
    assert store.operator_on_shift("rig-01") is None
    subprocess.run([sys.executable, "-c", "import sys; from station.store.db import Store; "
                    "Store(sys.argv[1]).operator_event('rig-01', '李四', 'login', 'cli')",
                    store.path], check=True, cwd=ROOT)
    assert store.operator_on_shift("rig-01") == "李四"
    other = Store(store.path)  # another connection: the web, or the CLI in-process
    other.operator_event("rig-01", "李四", "logout", "web")
    other.operator_event("rig-02", "王五", "login", "web")
    assert store.operator_on_shift("rig-01") is None
    assert store.operators_on_shift() == {"rig-02": "王五"}
    other.close()


def test_the_daemons_own_badge_is_seen_at_once_and_a_rewritten_table_is_reread(store):
    store.operator_event("rig-01", "张三", "login", "badge:s1")
    assert store.operator_on_shift("rig-01") == "张三"
    store.operator_event("rig-01", "张三", "logout", "badge:s1")
    assert store.operator_on_shift("rig-01") is None
    store.operator_event("rig-03", "赵六", "login", "badge:s1")
    with sqlite3.connect(store.path) as other:  # a technician deletes the newest events
        other.execute("DELETE FROM operator_events WHERE id >= 2")
    assert store.operators_on_shift() == {"rig-01": "张三"}  # as event 1 left it


def traced(store: Store, call) -> list[str]:
    """The SQL one call ran, on both of the store's connections, parameters bound."""
    seen: list[str] = []
    conns = [c for c in (store.conn, store._live) if c is not None]
    for conn in conns:
        conn.set_trace_callback(seen.append)
    try:
        call()
    finally:
        for conn in conns:
            conn.set_trace_callback(None)
    return seen


def test_operators_on_shift_costs_one_pragma_per_call_however_long_the_history(store):
    with_history(store)
    assert store.operator_on_shift("rig-01") == "op1"  # rig-01: events 1, 73, …: logins
    assert traced(store, lambda: store.operator_on_shift("rig-01")) == ["PRAGMA data_version"]
    with sqlite3.connect(store.path) as other:
        other.execute("INSERT INTO operator_events (at, rig, operator, event) VALUES "
                      "(1, 'rig-01', 'op1', 'logout')")
    sql = traced(store, lambda: store.operator_on_shift("rig-01"))
    assert store.operator_on_shift("rig-01") is None
    assert len(sql) == 3 and "id > 100000" in sql[2]  # data_version, max(id), the new event


def plan(conn: sqlite3.Connection, sql: str) -> list[str]:
    return [r[3] for r in conn.execute("EXPLAIN QUERY PLAN " + sql)]


def full_scans(store: Store, statements: list[str]) -> list[tuple[str, str]]:
    """(statement, plan step) for every step that reads a whole table: a SCAN that is neither
    of a CTE nor through an index, nor the newest row by its primary key (ORDER BY it, LIMIT
    1, no sort: one row read, the chain's tail). The block list is read whole by design."""
    bad = []
    for sql in statements:
        if not sql.lstrip().upper().startswith(("SELECT", "WITH", "UPDATE", "DELETE", "INSERT")):
            continue
        steps = plan(store.conn, sql)
        newest = re.search(r"ORDER BY \w+ (DESC )?LIMIT 1$", sql) and \
            not any("TEMP B-TREE" in step for step in steps)
        for step in steps:
            if step.startswith("SCAN") and "INDEX" not in step and "CONSTANT ROW" not in step \
                    and step not in ("SCAN rigs", "SCAN blocklist") and not newest:
                bad.append((sql, step))
    return bad


def test_every_per_poll_and_per_scan_query_uses_an_index_on_a_store_with_history(store):
    """The calls station/rig/loop.py makes per poll (operator, manual entries, picture) and
    per scan (bind request, block list, cache, remembered refusal, last fill, the decision
    and its fill, events), on 100,000 operator events and 100,000 decisions."""
    with_history(store)
    store.publish("rig-01", {"phase": "idle"})  # opens the quick connection
    store.operator_on_shift("rig-01")
    with sqlite3.connect(store.path) as other:  # the next call re-reads the shifts
        other.execute("INSERT INTO operator_events (at, rig, operator, event) VALUES "
                      "(1, 'rig-01', 'op1', 'login')")

    def poll():
        store.operator_on_shift("rig-01")
        store.take_manual_entries("rig-01")
        store.publish("rig-01", {"phase": "idle", "n": 1})

    def scan():
        store.take_for_binding("rig-01", "s1", READING.raw, 30.0)
        store.blocklist()
        store.cached("info_code:X1")
        store.cached_by_id("CYL-1")
        store.city_refusal("info_code:X1")
        store.last_fill_at("CYL-1")
        store.last_permit_at("CYL-1")
        store.record_decision(decision(False), None, "info_code:X1", forget_tag=True,
                              refusal=("not_found", "unknown"))
        decision_id = store.record_grant(decision(), fill_row(), RECORD, "info_code:X1")
        store.rig_event("rig-01", "permit_granted", "CYL-1")
        store.fill_started("R-1", time.time())
        row = {k: fill_row().get(k) for k in FILL_COLUMNS} | {"decision_id": decision_id}
        store.close_fill(row, {"record_id": "R-1"})

    statements = traced(store, poll) + traced(store, scan)
    assert any("operator_events WHERE id >" in s for s in statements)
    assert any("tag_index WHERE cylinder_id" in s for s in statements)
    assert full_scans(store, statements) == []
    with sqlite3.connect(":memory:") as bare:  # the check itself sees a full scan
        bare.execute("CREATE TABLE t (a)")
        assert [s for s in plan(bare, "SELECT * FROM t WHERE a = 1")] == ["SCAN t"]


def test_a_grant_commits_the_decision_and_its_open_fill_together(store):
    decision_id = store.record_grant(decision(), fill_row(), RECORD, "info_code:X1")
    other = sqlite3.connect(store.path)  # committed: another connection sees both
    assert other.execute("SELECT decision_id, state FROM fills").fetchall() == \
        [(decision_id, "open")]
    assert other.execute("SELECT permit FROM decisions WHERE id = ?",
                         (decision_id,)).fetchone() == (1,)
    assert store.cached("info_code:X1")[0] == RECORD
    with pytest.raises(StoreError):  # the fill row cannot go in: neither does the decision
        store.record_grant(decision(), fill_row(), RECORD, "info_code:X1")
    assert other.execute("SELECT count(*) FROM decisions").fetchone() == (1,)
    other.close()


def test_a_scan_with_no_bind_request_takes_no_write_lock(store):
    """Another process holding the write lock does not hold up (or fail) such a scan."""
    store.conn.execute("PRAGMA busy_timeout=100")
    holder = sqlite3.connect(store.path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        assert store.take_for_binding("rig-01", "s1", "code", 30.0) is False
        with pytest.raises(StoreError):  # what the old path (a write transaction) met
            store.enter_manually("rig-01", "X1", "cli")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    request = store.bind_request("rig-01", "CYL-1")
    assert store.take_for_binding("rig-01", "s1", "code", 30.0) is True
    assert store.bind_reading(request) == ("s1", "code")


def test_rig_events_are_not_durable_commits_of_the_decision_connection(store):
    changes = store.conn.total_changes
    store.rig_event("rig-01", "rig_lost", "test")
    assert store.conn.total_changes == changes  # written on the quick connection
    assert store.query("SELECT rig, event FROM rig_events") == [
        {"rig": "rig-01", "event": "rig_lost"}]
