"""Per-poll and per-scan store cost on an empty store and on one with a long history.

`python bench/store_history.py [POLLS]`: builds a store holding 100,000 operator events and
1,000,000 decisions (executemany) beside an empty one, then times the store calls a rig's
poll makes (operator on shift, manual entries, the screen's picture) and the reads a scan
makes before its decision, and prints both with their ratio (history ÷ empty: 1.0 is a cost
that does not grow with history). For reference, the query that `operators_on_shift` ran
before it was kept in memory (a GROUP BY over operator_events), timed on both stores.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from station.store.db import Store  # noqa: E402

EVENTS = 100_000
DECISIONS = 1_000_000
RIGS = [f"rig-{i:02d}" for i in range(72)]
OLD_ON_SHIFT = ("SELECT rig, operator, event FROM operator_events WHERE id IN "
                "(SELECT max(id) FROM operator_events GROUP BY rig)")


def build(store: Store) -> float:
    """The history, by executemany; seconds taken."""
    t = time.perf_counter()
    with store.transaction() as conn:
        conn.executemany("INSERT INTO operator_events (at, rig, operator, event, via) VALUES "
                         "(?, ?, ?, ?, 'badge')",
                         ((i, RIGS[i % 72], f"op{i % 9}", "login" if i % 2 else "logout")
                          for i in range(EVENTS)))
        conn.executemany("INSERT INTO decisions (at, local_time, rig, reading, kind, tag, "
                         "cylinder_id, permit, source, latency_ms) VALUES (?, '', ?, '', "
                         "'qr_url', ?, ?, ?, 'city', 1.0)",
                         ((i, RIGS[i % 72], f"C{i % 60000}", f"CYL-{i % 60000:06d}", i % 7 > 0)
                          for i in range(DECISIONS)))
        conn.executemany("INSERT INTO tag_index (key, cylinder_id, at) VALUES (?, ?, 0)",
                         ((f"info_code:C{i}", f"CYL-{i:06d}") for i in range(60000)))
    store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return time.perf_counter() - t


def timed(call: Callable[[int], object], n: int) -> list[float]:
    """µs per call, each timed alone, after 200 warm-up calls."""
    for i in range(200):
        call(i)
    out = []
    for i in range(n):
        t = time.perf_counter()
        call(i)
        out.append((time.perf_counter() - t) * 1e6)
    return out


def poll(store: Store) -> Callable[[int], object]:
    """A rig's poll: its operator and typed entries read, its picture written (the loop writes
    the picture only when it changed: here every poll, the worst case; it also makes the next
    operator read look at what the other connection committed)."""
    def call(i: int) -> None:
        rig = RIGS[i % 72]
        store.operator_on_shift(rig)
        store.take_manual_entries(rig)
        store.publish(rig, {"phase": "idle", "gross_g": i})
    return call


def scan_reads(store: Store) -> Callable[[int], object]:
    """A scan's reads before its decision (bind request, block list, cache, remembered
    refusal, last fill and permit of the cylinder, the operator)."""
    def call(i: int) -> None:
        rig, n = RIGS[i % 72], i % 60000
        store.take_for_binding(rig, "s1", f"C{n}", 30.0)
        store.blocklist()
        store.cached(f"info_code:C{n}")
        store.city_refusal(f"info_code:C{n}")
        store.last_fill_at(f"CYL-{n:06d}")
        store.last_permit_at(f"CYL-{n:06d}")
        store.operator_on_shift(rig)
    return call


def on_shift(store: Store) -> Callable[[int], object]:
    return lambda i: store.operator_on_shift(RIGS[i % 72])


def old_on_shift(store: Store) -> Callable[[int], object]:
    return lambda i: store.query(OLD_ON_SHIFT)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    with tempfile.TemporaryDirectory(prefix="bench-history-") as work:
        empty, full = Store(f"{work}/empty.db"), Store(f"{work}/full.db")
        build_s = build(full)
        rows = []
        for name, make, count in (("per poll: operator, manual entries, picture", poll, n),
                                  ("operator_on_shift alone (no other writer)", on_shift, n),
                                  ("per scan: reads before the decision", scan_reads, n // 4),
                                  ("before: operators_on_shift's GROUP BY (reference)",
                                   old_on_shift, 50)):
            a, b = timed(make(empty), count), timed(make(full), count)
            rows.append((name, count, statistics.median(a), statistics.median(b)))
        empty.close()
        full.close()
    print(f"store with {EVENTS:,} operator events and {DECISIONS:,} decisions (built by "
          f"executemany in {build_s:.1f} s) beside an empty store; median µs per call\n")
    print("| calls | n | empty store µs | with history µs | ratio |")
    print("|---|---:|---:|---:|---:|")
    for name, count, a, b in rows:
        print(f"| {name} | {count} | {a:.1f} | {b:.1f} | {b / a:.2f} |")


if __name__ == "__main__":
    main()
