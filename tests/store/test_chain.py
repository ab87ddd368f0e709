"""Tamper evidence: the hash chain names the first record edited, deleted, reordered or added."""

from datetime import UTC, datetime

import pytest

from station.core.model import Decision, Reading, Verdict
from station.store import chain
from station.store.db import MIGRATIONS, Store

READING = Reading(raw="X1", kind="info_code", value="X1", reader="s1")


@pytest.fixture
def store(tmp_path):
    s = Store(str(tmp_path / "s.db"))
    for n in range(3):
        verdict = Verdict(permit=bool(n % 2), reason=None if n % 2 else "SCRAPPED",
                          cylinder_id=f"CYL-{n}")
        s.record_decision(Decision(datetime.now(UTC), "rig-01", READING, verdict, "city", None,
                                   1.0, "张三"))
    fill = {"record_id": "r1", "rig": "rig-01", "medium": "G13", "source": "city",
            "tare_g": 15000, "target_g": 14500, "net_g": 14400, "post_check": "ok"}
    s.close_fill(fill, {"record_id": "r1"})
    return s


def sql(store, text, *params):
    with store.transaction() as conn:
        conn.execute(text, params)


def test_an_untouched_store_verifies(store):
    assert chain.verify(store.conn) == []
    assert chain.head(store.conn).records == 4


def test_an_edited_decision_is_named(store):
    sql(store, "UPDATE decisions SET permit = 1, reason = NULL WHERE id = 1")
    assert chain.verify(store.conn) == ["decision 1 (chain entry 1) edited"]


def test_a_deleted_fill_is_named(store):
    sql(store, "DELETE FROM fills WHERE record_id = 'r1'")
    assert chain.verify(store.conn) == ["fill r1 (chain entry 4) deleted"]


def test_reordered_or_removed_chain_entries_are_found(store):
    sql(store, "UPDATE chain SET ref = CASE seq WHEN 1 THEN '2' WHEN 2 THEN '1' END "
               "WHERE seq IN (1, 2)")
    problems = chain.verify(store.conn)
    assert problems[0] == "chain entry 1 (decision 2) edited or out of order"
    sql(store, "DELETE FROM chain WHERE seq = 3")
    assert any("chain entries 3…3 deleted" in p for p in chain.verify(store.conn))


def test_a_record_slipped_in_behind_the_station_is_found(store):
    sql(store, "INSERT INTO decisions (at, local_time, rig, reading, kind, permit, source, "
               "latency_ms) VALUES (1, 'x', 'rig-01', 'x', 'qr_url', 1, 'city', 0)")
    assert chain.verify(store.conn) == ["decision 4 is not in the chain (inserted outside the "
                                        "station)"]


def test_marking_an_overfill_handled_is_not_tampering(store):
    sql(store, "UPDATE fills SET handled_at = 1, handled_by = '王主管' WHERE record_id = 'r1'")
    assert chain.verify(store.conn) == []


def test_an_upgraded_store_chains_what_it_already_held(tmp_path):
    import sqlite3

    path = str(tmp_path / "old.db")
    s = Store(path)
    s.record_decision(Decision(datetime.now(UTC), "rig-01", READING, Verdict(permit=True),
                               "city", None, 1.0, None))
    s.close()
    conn = sqlite3.connect(path)
    conn.execute("DELETE FROM chain")
    conn.execute("DROP TABLE chain")
    before_chain = next(i for i, m in enumerate(MIGRATIONS) if "CREATE TABLE chain" in m)
    conn.execute(f"PRAGMA user_version = {before_chain}")
    conn.commit()
    conn.close()
    again = Store(path)
    assert chain.verify(again.conn) == [] and chain.head(again.conn).records == 1


def test_the_newest_entry_is_the_head_with_its_records_time(store, tmp_path):
    top = chain.newest(store.conn)
    seq, full = store.conn.execute("SELECT seq, hash FROM chain ORDER BY seq DESC LIMIT 1"
                                   ).fetchone()
    assert (top.seq, top.hash, top.short, top.kind, top.ref) == (4, full, full[:16], "fill", "r1")
    assert top.at is None  # the fixture's fill carries no times
    sql(store, "UPDATE fills SET permitted_at = 100, started_at = 101")
    assert chain.newest(store.conn).at == 101  # no end: its start
    store.record_decision(Decision(datetime.now(UTC), "rig-01", READING, Verdict(permit=True),
                                   "city", None, 1.0, None))
    top = chain.newest(store.conn)
    assert (top.seq, top.kind, top.ref) == (5, "decision", "4")
    assert top.at == store.value("SELECT at FROM decisions WHERE id = 4")
    assert chain.newest(Store(str(tmp_path / "empty.db")).conn) is None


def test_a_record_committed_while_verify_walks_is_not_taken_for_tampering(store):
    """The daemon keeps committing during a long walk: verify reads one snapshot."""
    daemon = Store(store.path)
    committed = []

    def commit_meanwhile() -> int:
        if not committed:  # once, while verify is inside its first query
            committed.append(daemon.record_decision(Decision(
                datetime.now(UTC), "rig-01", READING, Verdict(permit=True), "city", None, 1.0,
                None)))
        return 0

    store.conn.set_progress_handler(commit_meanwhile, 20)
    try:
        assert chain.verify(store.conn) == []
    finally:
        store.conn.set_progress_handler(None, 0)
    assert committed == [4]
    assert chain.verify(store.conn) == [] and chain.head(store.conn).records == 5
    daemon.close()


def test_a_fill_chained_before_the_checklist_columns_existed_still_verifies():
    """Issue 17 added fills.checks and fills.photo_sha256: NULL, they are not in the digest, so a
    record chained by an older version keeps its digest; set, they are."""
    old = {"record_id": "r9", "net_g": 14400, "post_check": "ok"}
    assert chain.digest("fills", old | {"checks": None, "photo_sha256": None}) == \
        chain.digest("fills", old)
    assert chain.digest("fills", old | {"photo_sha256": "ab" * 32}) != chain.digest("fills", old)


def test_a_fills_photo_hash_and_checklists_are_chained(store):
    fill = {"record_id": "r2", "rig": "rig-01", "medium": "G13", "source": "city",
            "tare_g": 15000, "target_g": 14500, "net_g": 14400, "post_check": "ok",
            "checks": '{"pre": {"not_ok": []}}', "photo_sha256": "ab" * 32}
    store.close_fill(fill, {"record_id": "r2"})
    assert chain.verify(store.conn) == []
    sql(store, "UPDATE fills SET photo_sha256 = ? WHERE record_id = 'r2'", "cd" * 32)
    assert chain.verify(store.conn) == ["fill r2 (chain entry 5) edited"]
    sql(store, "UPDATE fills SET photo_sha256 = ?, checks = NULL WHERE record_id = 'r2'", "ab" * 32)
    assert chain.verify(store.conn) == ["fill r2 (chain entry 5) edited"]
