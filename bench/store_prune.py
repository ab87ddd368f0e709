"""How long `station prune` holds the store's write lock: batches against one transaction.

`python bench/store_prune.py [EXPIRED]`: a store with EXPIRED decisions past retention
(default 800,000, each with its hash-chain entry, as a real store has) and 100,000 young
ones; pruned once in batches of retention.BATCH rows and, on a copy, in one transaction (the
old way). Prints the write transactions taken, the longest time the lock was held and the
whole run's time for both, and the ratio of the longest lock holds.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from station.store import retention  # noqa: E402
from station.store.db import Store  # noqa: E402
from station.today import LOCAL_TZ  # noqa: E402

YOUNG = 100_000


def build(store: Store, expired: int, now: datetime) -> float:
    old = (now - timedelta(days=4 * 365)).timestamp()
    young = (now - timedelta(days=30)).timestamp()
    t = time.perf_counter()
    with store.transaction() as conn:
        conn.executemany("INSERT INTO decisions (id, at, local_time, rig, reading, kind, "
                         "permit, source, latency_ms) VALUES (?, ?, '', 'rig-01', '', "
                         "'qr_url', 0, 'city', 1.0)",
                         ((i + 1, (old if i < expired else young) + i * 0.01)
                          for i in range(expired + YOUNG)))
        conn.executemany("INSERT INTO chain (kind, ref, digest, prev, hash) VALUES "
                         "('decision', ?, 'd', 'p', 'h')",
                         ((str(i + 1),) for i in range(expired + YOUNG)))
    store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return time.perf_counter() - t


def run(path: str, now: datetime, batch: int) -> tuple[retention.Pruned, float]:
    store = Store(path)
    t = time.perf_counter()
    pruned = retention.prune(store, 2, now=now, batch=batch)
    took = time.perf_counter() - t
    store.close()
    return pruned, took


def main() -> None:
    expired = int(sys.argv[1]) if len(sys.argv) > 1 else 800_000
    now = datetime.now(LOCAL_TZ)
    with tempfile.TemporaryDirectory(prefix="bench-prune-") as work:
        store = Store(f"{work}/a.db")
        build_s = build(store, expired, now)
        store.close()
        shutil.copy(f"{work}/a.db", f"{work}/b.db")
        batched, batched_s = run(f"{work}/a.db", now, retention.BATCH)
        whole, whole_s = run(f"{work}/b.db", now, 10**9)
    print(f"{expired:,} expired decisions (+ {YOUNG:,} young, chain entries for all; built in "
          f"{build_s:.1f} s)\n")
    print("| prune | decisions deleted | write transactions | lock held median ms | "
          "longest ms | whole run s |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, p, took in ((f"batches of {retention.BATCH}", batched, batched_s),
                          ("one transaction (before)", whole, whole_s)):
        print(f"| {name} | {p.decisions:,} | {p.batches} | {p.median_lock_ms:.1f} | "
              f"{p.longest_lock_ms:.1f} | {took:.1f} |")
    print(f"\nlongest lock: {batched.longest_lock_ms / whole.longest_lock_ms:.3f} × the one "
          "transaction's")


if __name__ == "__main__":
    main()
