"""The store thread under the real RigLoop (loopback controller): durable before the permit, and a
store that cannot commit delays no poll and grants nothing late."""

import asyncio
import sqlite3
import time

from loopback import play

from station.rig.storethread import StoreThread
from station.store.db import Store


def committed(path, sql, *params):
    """What another connection sees committed now."""
    db = sqlite3.connect(path)
    try:
        return db.execute(sql, params).fetchall()
    finally:
        db.close()


def test_the_decision_and_its_open_row_are_committed_before_the_permit(tmp_path):
    seen = []

    async def scenario(rig):
        grant = rig.controller.grant_permit

        async def witnessed(tare_g, target_g):  # the moment the permit is about to be written
            seen.append((committed(rig.cfg.store, "SELECT id, permit FROM decisions"),
                         committed(rig.cfg.store, "SELECT decision_id, state FROM fills")))
            await grant(tare_g, target_g)
        rig.controller.grant_permit = witnessed
        await rig.scan_onto_a_cylinder()

    rig = play(tmp_path, scenario)
    ((decisions, fills),) = seen
    assert len(decisions) == 1 and decisions[0][1] == 1
    assert fills == [(decisions[0][0], "open")]  # one commit: the decision and its open row
    assert rig.model.permit_grants == 1


def test_a_locked_store_delays_no_poll_and_grants_nothing_late(tmp_path):
    """Another connection holds the write lock: the event loop (every link's heartbeats) runs
    on while the decision waits in the store thread; the scan is refused STORE_FAULT at the deadline, and
    the lock's release later brings no permit."""
    out = {}

    async def ticker(gaps):
        """The event loop's own pulse: the longest it went without running this task."""
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.005)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    async def scenario(rig):
        holder = sqlite3.connect(rig.cfg.store, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        gaps = []
        pulse = asyncio.create_task(ticker(gaps))
        try:
            start = time.monotonic()
            await rig.scan_onto_a_cylinder(wait_for_permit=False)
            await rig.until("the refusal", lambda: (rig.loop.state.shown or {}).get("code")
                            == "STORE_FAULT")
            out["refused_s"] = time.monotonic() - start
            assert rig.coil("lamp_red") and not rig.coil("fill_permit")
        finally:
            pulse.cancel()
            holder.execute("COMMIT")
            holder.close()
        out["longest_gap_s"] = max(gaps)
        await rig.controller.sampled(20)  # the store commits again: the loop polls on
        await rig.loop.writes.idle()

    rig = play(tmp_path, scenario)
    deadline = rig.loop.writes.deadline_s
    assert out["refused_s"] < deadline + 1.0
    assert out["longest_gap_s"] < 0.2  # the event loop never waited on SQLite (it did ~1 s)
    assert rig.model.permit_grants == 0 and not rig.coil("fill_permit")
    assert rig.rows("SELECT * FROM decisions WHERE permit = 1") == []
    assert rig.rows("SELECT * FROM fills") == []


def test_calls_run_in_order_in_one_thread_and_a_passed_deadline_writes_nothing(tmp_path):
    store = Store(str(tmp_path / "s.db"))
    writes = StoreThread(store, deadline_s=0.2)

    async def main():
        threads = await asyncio.gather(*(writes.call(lambda s, n=n: (n, id(s.conn)))
                                         for n in range(5)))
        holder = sqlite3.connect(store.path, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        t0 = time.monotonic()
        try:
            await writes.call("enter_manually", "rig-01", "X1", "during the lock",
                              deadline_s=0.2)
            raised = None
        except Exception as err:  # noqa: BLE001 - the outcome is what the test looks at
            raised = err
        waited = time.monotonic() - t0
        holder.execute("COMMIT")
        holder.close()
        await writes.call("operator_event", "rig-01", "张三", "login", via="test")
        return threads, raised, waited

    try:
        threads, raised, waited = asyncio.run(main())
    finally:
        writes.close()
    assert [n for n, _ in threads] == list(range(5))
    assert len({conn for _, conn in threads}) == 1
    assert threads[0][1] != id(store.conn)  # the thread's own connection, not the loop's
    assert raised is not None and waited < 0.2 + 1.0
    assert store.operator_on_shift("rig-01") == "张三"  # seen by the loop's own connection
    assert store.query("SELECT * FROM manual_entries") == []  # refused, never written late
    store.close()
