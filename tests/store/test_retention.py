"""Retention: only old records the city already has go; the hash chain still verifies."""

import sqlite3
from datetime import datetime, timedelta

import pytest
from records_maker import Records

from station.store import retention
from station.store.db import Store
from station.today import LOCAL_TZ

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=LOCAL_TZ)
OLD = NOW - timedelta(days=3 * 365)
YOUNG = NOW - timedelta(days=200)


@pytest.fixture
def store(tmp_path):
    store = Store(str(tmp_path / "s.db"))
    r = Records(store)
    ids = {"old_delivered": r.fill(OLD), "old_pending": r.fill(OLD, delivery="pending"),
           "old_dead": r.fill(OLD, delivery="dead"), "old_cancelled": r.fill(OLD, cancelled=True),
           "young": r.fill(YOUNG)}
    r.decision(OLD, permit=False, reason="SCRAPPED")
    r.decision(YOUNG, permit=False, reason="SCRAPPED")
    store.rig_event("rig-01", "rig_lost", "test")
    store.ids = ids
    yield store
    store.close()


def fills(store):
    return {r["record_id"] for r in store.query("SELECT record_id FROM fills")}


def test_cutoff_is_local_midnight_years_back():
    assert retention.cutoff(NOW, 2) == datetime(2024, 6, 15, tzinfo=LOCAL_TZ)
    leap = datetime(2028, 2, 29, 10, tzinfo=LOCAL_TZ)
    assert retention.cutoff(leap, 2) == datetime(2026, 2, 28, tzinfo=LOCAL_TZ)


def test_only_old_delivered_or_cancelled_records_go(store):
    ids = store.ids
    before = store.value("SELECT count(*) FROM decisions")
    p = retention.prune(store, 2, now=NOW)
    assert (p.fills, p.outbox, p.kept_undelivered) == (2, 1, 2)
    assert p.decisions == 3  # the two pruned fills' permits and the old refusal
    assert p.cutoff == "2024-06-15"
    assert fills(store) == {ids["old_pending"], ids["old_dead"], ids["young"]}
    assert store.value("SELECT count(*) FROM decisions") == before - 3
    kept = store.query("SELECT d.id FROM decisions d JOIN fills f ON f.decision_id = d.id")
    assert len(kept) == 3  # every kept fill keeps its decision
    assert store.value("SELECT count(*) FROM outbox WHERE state != 'delivered'") == 2
    assert store.value("SELECT count(*) FROM outbox WHERE record_id = ?",
                       (ids["old_delivered"],)) == 0


def test_dry_run_counts_and_deletes_nothing(store):
    rows = store.value("SELECT count(*) FROM decisions")
    p = retention.prune(store, 2, dry_run=True, now=NOW)
    assert (p.fills, p.decisions) == (2, 3)
    assert len(fills(store)) == 5 and store.value("SELECT count(*) FROM decisions") == rows


def test_a_longer_period_keeps_everything(store):
    p = retention.prune(store, 5, now=NOW)
    assert (p.fills, p.decisions, p.outbox) == (0, 0, 0) and len(fills(store)) == 5


def test_chain_still_verifies_but_a_deletion_behind_our_back_does_not(store, tmp_path):
    retention.prune(store, 2, now=NOW)
    problems, pruned = retention.verify(store.conn)
    assert problems == [] and pruned == 5
    other = sqlite3.connect(tmp_path / "s.db")
    with other:
        other.execute("DELETE FROM fills WHERE record_id = ?", (store.ids["young"],))
    other.close()
    problems, _ = retention.verify(store.conn)
    assert len(problems) == 1 and store.ids["young"] in problems[0] and "deleted" in problems[0]


def test_small_batches_delete_the_same_rows_and_the_chain_still_verifies(store):
    """Each batch its own write transaction (the daemon waits at most one batch for the lock):
    the outcome is that of one transaction."""
    r = Records(store)
    for _ in range(5):
        r.decision(OLD, permit=False, reason="SCRAPPED")
    p = retention.prune(store, 2, now=NOW, batch=2)
    assert (p.fills, p.outbox, p.decisions, p.rig_events) == (2, 1, 8, 0)
    assert p.batches >= 5  # 2 fills in one batch, 8 decisions in four
    assert fills(store) == {store.ids["old_pending"], store.ids["old_dead"], store.ids["young"]}
    assert len(store.query("SELECT d.id FROM decisions d JOIN fills f ON f.decision_id = d.id"
                           )) == 3
    problems, pruned = retention.verify(store.conn)
    assert problems == [] and pruned == 10
