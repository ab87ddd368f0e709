"""The local store: versioned schema, durable decisions with their cache update, clock trust."""

import sqlite3
from datetime import UTC, datetime, timedelta

from station.core.model import Decision, Reading, Verdict
from station.store.db import MIGRATIONS, Store

READING = Reading(raw="https://qr/c/X1\x1b[2J", kind="qr_url", value="X1", reader="s1")
RECORD = {"id": "CYL-1", "info_code": "X1", "product_no": "118230000001", "status": "在用"}


def decision(at, permit=True, cylinder="CYL-1"):
    verdict = Verdict(permit=permit, reason=None if permit else "SCRAPPED", cylinder_id=cylinder)
    return Decision(at=at, rig_id="rig-01", reading=READING, verdict=verdict, source="city",
                    cache_age_s=None, latency_ms=3.2, operator="张三")


def test_schema_version_and_pragmas(tmp_path):
    store = Store(str(tmp_path / "s.db"))
    assert store.conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    store.close()
    again = Store(str(tmp_path / "s.db"))  # reopening migrates nothing twice
    assert again.integrity_ok()


def test_decision_is_durable_with_its_cache_entry(tmp_path):
    path = str(tmp_path / "s.db")
    store = Store(path)
    now = datetime.now(UTC)
    store.record_decision(decision(now), RECORD, "info_code:X1")
    other = sqlite3.connect(path)  # another connection sees it: committed, not buffered
    row = other.execute("SELECT rig, permit, reading, operator FROM decisions").fetchone()
    assert row == ("rig-01", 1, "https://qr/c/X1\\x1b[2J", "张三")
    record, fetched = store.cached("info_code:X1")
    assert record == RECORD and abs(fetched - now.timestamp()) < 1
    assert store.cached("product_no:118230000001")[0]["id"] == "CYL-1"
    assert store.last_permit_at("CYL-1") == now.timestamp()


def test_definitive_not_found_forgets_the_tag(tmp_path):
    store = Store(str(tmp_path / "s.db"))
    now = datetime.now(UTC)
    store.record_decision(decision(now), RECORD, "info_code:X1")
    store.record_decision(decision(now, permit=False, cylinder=None), None, "info_code:X1",
                          forget_tag=True)
    assert store.cached("info_code:X1") is None


def test_the_newest_record_time_survives_a_restart(tmp_path):
    """What the clock watch compares a clock without the city against (clockwatch.py)."""
    path = str(tmp_path / "s.db")
    store = Store(path)
    now = datetime.now(UTC)
    store.record_decision(decision(now - timedelta(hours=1)))
    store.record_decision(decision(now))
    store.record_decision(decision(now - timedelta(hours=2)))  # a clock stepped back meanwhile
    assert store.newest_at == now.timestamp()
    store.close()
    assert Store(path).newest_at == now.timestamp()


def test_operator_shift_survives_restart(tmp_path):
    path = str(tmp_path / "s.db")
    store = Store(path)
    store.operator_event("rig-01", "张三", "login", "badge")
    store.operator_event("rig-02", "李四", "login", "badge")
    store.operator_event("rig-02", "李四", "logout", "badge")
    store.close()
    assert Store(path).operators_on_shift() == {"rig-01": "张三"}


def test_blocklist(tmp_path):
    store = Store(str(tmp_path / "s.db"))
    store.block("CYL-9", "钢印不清", "王主管")
    assert store.blocklist() == {"CYL-9": "钢印不清"}
    assert store.unblock("CYL-9") and not store.unblock("CYL-9")


def test_not_found_forgets_every_key_of_the_cylinder(tmp_path):
    store = Store(str(tmp_path / "s.db"))
    now = datetime.now(UTC)
    store.record_decision(decision(now), RECORD, "info_code:X1")
    assert store.cached("product_no:118230000001") is not None
    store.record_decision(decision(now, permit=False, cylinder=None), None, "info_code:X1",
                          forget_tag=True)
    assert store.cached("product_no:118230000001") is None


def test_read_errors_are_store_errors(tmp_path):
    import pytest

    from station.errors import StoreError

    store = Store(str(tmp_path / "s.db"))
    store.conn.execute("DROP TABLE blocklist")
    with pytest.raises(StoreError):
        store.blocklist()


def test_the_operator_on_shift_is_each_rigs_last_event_found_by_index(tmp_path):
    store = Store(str(tmp_path / "s.db"))
    for rig, name, event in (("rig-01", "张三", "login"), ("rig-02", "李四", "login"),
                             ("rig-01", "张三", "logout"), ("rig-01", "王五", "login"),
                             ("rig-02", "李四", "logout")):
        store.operator_event(rig, name, event, via="badge")
    assert store.operator_on_shift("rig-01") == "王五"
    assert store.operator_on_shift("rig-02") is None and store.operator_on_shift("rig-09") is None
    assert store.operators_on_shift() == {"rig-01": "王五"}
    plan = store.conn.execute("EXPLAIN QUERY PLAN SELECT operator, event FROM operator_events "
                              "WHERE rig = ? ORDER BY id DESC LIMIT 1", ("rig-01",)).fetchall()
    assert "operator_events_rig" in str(plan)  # per poll, per rig: never a scan of the table
