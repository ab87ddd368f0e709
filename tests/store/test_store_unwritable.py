"""A store that cannot write: every write is a StoreError and leaves nothing half done; a fill
record is closed once however often it is retried; the operator's text for it."""

import json
import subprocess
import sys
import textwrap

from station.core.texts import FAULTS, REASONS, reason_text
from station.store import chain
from station.store.db import Store

FILL = {"record_id": "r1", "rig": "rig-01", "medium": "G13", "source": "city",
        "tare_g": 15200, "target_g": 14500, "prefill_g": 15200, "permitted_at": 1.0}


def test_a_closed_fill_is_closed_once_however_often_it_is_retried(tmp_path):
    store = Store(str(tmp_path / "s.db"))
    store.open_fill(FILL)
    closed = FILL | {"gross_g": 29700, "net_g": 14500, "post_check": "ok", "end_reason": "done"}
    store.close_fill(closed, {"record_id": "r1"})
    store.close_fill(closed | {"net_g": 1}, {"record_id": "r1"})  # a retry: changes nothing
    assert store.query("SELECT net_g, state FROM fills") == [{"net_g": 14500, "state": "closed"}]
    assert store.value("SELECT count(*) FROM outbox") == 1
    assert store.value("SELECT count(*) FROM chain WHERE kind = 'fill'") == 1
    assert chain.verify(store.conn) == []


# A child process (its own file-size limit would break this one's output capture) opens a
# store, forbids itself to write any file (RLIMIT_FSIZE 0: EFBIG, SIGXFSZ ignored by Python),
# tries the writes the rig loop makes, lifts the limit and tries again.
CHILD = textwrap.dedent("""
    import json, resource, sys
    from station.errors import StoreError
    from station.store.db import Store
    store = Store(sys.argv[1])
    store.open_fill(json.loads(sys.argv[2]))
    store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    fill = json.loads(sys.argv[2]) | {"net_g": 14500, "post_check": "ok"}
    out = {}
    hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, hard))
    try:
        store.close_fill(fill, {"record_id": fill["record_id"]})
    except StoreError as err:
        out["error"] = str(err)
    out["in_transaction"] = store.conn.in_transaction
    out["state_while_refused"] = store.value("SELECT state FROM fills")
    resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))
    store.close_fill(fill, {"record_id": fill["record_id"]})  # the retry, once writable
    out["state"] = store.value("SELECT state FROM fills")
    out["outbox"] = store.value("SELECT count(*) FROM outbox")
    out["integrity"] = store.integrity_ok()
    print(json.dumps(out))
""")


def test_a_write_the_disk_refuses_is_a_store_error_and_a_retry_commits_it(tmp_path):
    done = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path / "s.db"), json.dumps(FILL)],
                          capture_output=True, text=True, check=True, timeout=60)
    out = json.loads(done.stdout)
    assert out == {"error": "store write failed: disk I/O error", "in_transaction": False,
                   "state_while_refused": "open", "state": "closed", "outbox": 1,
                   "integrity": True}


def test_the_store_fault_has_its_chinese_text_but_is_no_rule_reason():
    assert reason_text("STORE_FAULT").zh == "记录存储故障，禁止充装"
    assert "STORE_FAULT" in FAULTS and "STORE_FAULT" not in REASONS
