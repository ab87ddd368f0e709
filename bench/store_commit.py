"""Store commit latency (decision, open fill, close fill), fsyncs per scan and per fill against
a floor of one durable commit (counted with strace), and `station records` on a big store.

`python bench/store_commit.py [N]`; `--fsyncs-only` prints only the fsync counts."""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from simulators.dataset import STATION_UNIT, demo_cylinders, qr_url  # noqa: E402
from station.city.lookup import tag_key  # noqa: E402
from station.core import fills  # noqa: E402
from station.core.fillcycle import FillContext  # noqa: E402
from station.core.model import Decision, Reading, Verdict  # noqa: E402
from station.store.db import FILL_COLUMNS, Store  # noqa: E402
from station.store.records import select_fills  # noqa: E402
from station.today import station_today

BIG = 1_000_000
FALLBACK = 200_000
BUILD_BUDGET_S = 60.0
CHUNK = 50_000
DAYS = 1000  # the big store's history: ~1,000 fills a day over ~2.7 years
RIGS = ("rig-01", "rig-02", "rig-03")
OPERATORS = ("张三", "李四", "王五", "赵六", "钱七", "孙八", "周九", "吴十", "郑一", "冯二")
CYLINDER_POOL = 60_000
TZ8 = 8 * 3600  # Asia/Shanghai has no DST


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def fs_type(path: str) -> str:
    """The file system type of the mount holding path (from /proc/mounts)."""
    best, kind = "", "?"
    real = os.path.realpath(path)
    for line in Path("/proc/mounts").read_text().splitlines():
        parts = line.split()
        mount = parts[1]
        if (real == mount or real.startswith(mount.rstrip("/") + "/")) and len(mount) > len(best):
            best, kind = mount, parts[2]
    return f"{kind} at {best}"


def bare_fsync_ms(folder: Path, n: int = 200) -> list[float]:
    """os.fsync after a small write to a file in the store's folder."""
    path = folder / "fsync.probe"
    times = []
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for i in range(n):
            os.pwrite(fd, f"{i:08d}\n".encode() * 12, (i % 64) * 108)
            t = time.perf_counter()
            os.fsync(fd)
            times.append((time.perf_counter() - t) * 1000)
    finally:
        os.close(fd)
        path.unlink()
    return times


def commit_latencies(store: Store, n: int) -> dict[str, list[float]]:
    """The rig loop's three durable writes per fill, in its order, each timed alone."""
    cyl = [c for k, c in demo_cylinders(station_today()).items()
           if k in ("valid", "valid_partner", "special_23t0", "rfid", "due_soon")]
    out: dict[str, list[float]] = {"decision": [], "open": [], "close": []}

    def timed(key: str, call: Callable[[], Any]) -> Any:
        t = time.perf_counter()
        result = call()
        out[key].append((time.perf_counter() - t) * 1000)
        return result

    for i in range(n):
        c = cyl[i % len(cyl)]
        reading = Reading(raw=qr_url(c["info_code"]), kind="qr_url", value=c["info_code"],
                          reader="rig-01-reader1")
        tare = round(c.get("tare_kg", 15.2) * 1000)
        verdict = Verdict(permit=True, cylinder_id=c["id"], tare_g=tare, target_g=14500,
                          warnings=("INSPECTION_DUE_SOON",) if i % 10 == 0 else ())
        decision = Decision(at=datetime.now(UTC), rig_id="rig-01", reading=reading,
                            verdict=verdict, source="city", cache_age_s=None,
                            latency_ms=4.3 + (i % 5) * 0.1, operator="张三")
        key = tag_key(reading)
        decision_id = timed("decision", lambda d=decision, r=c, k=key:
                            store.record_decision(d, r, k))
        now = time.time()
        ctx = FillContext(record_id=fills.new_record_id(now), decision_id=decision_id,
                          cylinder_id=c["id"], info_code=c["info_code"], tag=c["info_code"],
                          medium=c["medium_code"], operator="张三", source="city",
                          tare_g=tare, target_g=14500, prefill_g=tare + 40, permitted_at=now)
        timed("open", lambda x=ctx: store.open_fill(fills.row(x, "rig-01")))
        ctx.started_at, ctx.ended_at = now + 0.4, now + 95.0
        ctx.gross_g, ctx.end_reason, ctx.post_check = tare + 14520, "done", "ok"
        row = fills.row(ctx, "rig-01")
        payload = fills.submission(row, STATION_UNIT)
        timed("close", lambda r=row, p=payload: store.close_fill(r, p))
    return out


FSYNC_N = 200  # scans (or fills) per counted child process


def scan_calls(store: Store, i: int, *, grant: bool) -> dict[str, Any]:
    """The store calls of one scan of a good cylinder up to its permit, cache path, in the rig
    loop's order (station/rig/loop.py); `grant`: the decision and the open fill row in one
    transaction (Store.record_grant) instead of two. Returns the open fill row."""
    c = demo_cylinders(station_today())["valid"]
    reading = Reading(raw=qr_url(c["info_code"]), kind="qr_url", value=c["info_code"],
                      reader="rig-01-reader1")
    key = tag_key(reading)
    store.operator_on_shift("rig-01")
    store.take_for_binding("rig-01", reading.reader, reading.raw, 30.0)
    store.blocklist()
    store.cached(key)
    store.city_refusal(key)
    store.last_fill_at(c["id"])
    store.blocklist()
    tare = round(c.get("tare_kg", 15.2) * 1000)
    verdict = Verdict(permit=True, cylinder_id=c["id"], tare_g=tare, target_g=14500)
    decision = Decision(at=datetime.now(UTC), rig_id="rig-01", reading=reading, verdict=verdict,
                        source="cache", cache_age_s=60.0, latency_ms=4.3, operator="张三")
    now = time.time()
    ctx = FillContext(record_id=fills.new_record_id(now), decision_id=None,
                      cylinder_id=c["id"], info_code=c["info_code"], tag=c["info_code"],
                      medium=c["medium_code"], operator="张三", source="cache",
                      tare_g=tare, target_g=14500, prefill_g=tare + 40, permitted_at=now)
    if grant:
        ctx.decision_id = store.record_grant(decision, fills.row(ctx, "rig-01"), c, key)
    else:
        ctx.decision_id = store.record_decision(decision, c, key)
        store.open_fill(fills.row(ctx, "rig-01"))
    store.rig_event("rig-01", "permit_granted", c["id"])
    return {"ctx": ctx, "cylinder": c}


def fill_calls(store: Store, i: int, *, grant: bool) -> None:
    """One whole fill: the scan to its permit, the valve opening, the end and the record."""
    scan = scan_calls(store, i, grant=grant)
    ctx, now = scan["ctx"], time.time()
    store.fill_started(ctx.record_id, now + 0.4)
    ctx.started_at, ctx.ended_at = now + 0.4, now + 95.0
    ctx.gross_g, ctx.end_reason, ctx.post_check = ctx.tare_g + 14520, "done", "ok"
    store.rig_event("rig-01", "permit_withdrawn", "target reached")
    row = fills.row(ctx, "rig-01")
    store.close_fill(row, fills.submission(row, STATION_UNIT))


def fsync_child(scenario: str, n: int, path: str) -> None:
    """Run `n` of a scenario on a fresh store (run under strace by fsync_counts)."""
    if scenario == "floor":  # one small insert and one durable commit: the least a decision costs
        import sqlite3

        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("CREATE TABLE IF NOT EXISTS t (a INTEGER PRIMARY KEY, b TEXT)")
        for i in range(n):
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO t (b) VALUES (?)", (f"decision {i}",))
            conn.execute("COMMIT")
        conn.close()
        return
    store = Store(path)
    grant = scenario.endswith("+grant") and hasattr(store, "record_grant")
    calls = fill_calls if scenario.startswith("fill") else scan_calls
    for i in range(n):
        calls(store, i, grant=grant)
    store.close()


def fsyncs(scenario: str, n: int, work: Path) -> int:
    """fsync + fdatasync calls of a child running `n` of a scenario (strace -f -c)."""
    db = work / f"fsync-{scenario.replace('+', '-')}-{n}.db"
    out = subprocess.run(["strace", "-f", "-c", "-e", "trace=fsync,fdatasync", sys.executable,
                          __file__, "--fsync-child", scenario, str(n), str(db)],
                         capture_output=True, text=True, check=True)
    for f in work.glob(db.name + "*"):
        f.unlink()
    return sum(int(m.group(1)) for m in
               re.finditer(r"^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)(?:\s+\d+)?\s+f(?:data)?sync$",
                           out.stderr, re.M))


def fsync_counts(work: Path, n: int = FSYNC_N) -> list[tuple[str, float]] | None:
    """Per-operation fsyncs: (count with n) − (count with 0) over n, floor first."""
    if shutil.which("strace") is None:
        return None
    rows = []
    for scenario in ("floor", "scan", "scan+grant", "fill", "fill+grant"):
        rows.append((scenario, (fsyncs(scenario, n, work) - fsyncs(scenario, 0, work)) / n))
    return rows


def print_fsyncs(rows: list[tuple[str, float]] | None, n: int = FSYNC_N) -> None:
    if rows is None:
        print("\nfsyncs: strace not installed, not counted")
        return
    floor = rows[0][1] or 1.0
    names = {"floor": "floor: one insert, one durable commit (bare sqlite3)",
             "scan": "scan to permit: record_decision, open_fill, rig_event",
             "scan+grant": "scan to permit: record_grant (decision + open fill), rig_event",
             "fill": "whole fill: scan, fill_started, close_fill, rig events",
             "fill+grant": "whole fill with record_grant"}
    print(f"\nfsyncs (fsync + fdatasync, strace -f -c, {n} per run less a run of 0)\n")
    print("| operation | fsyncs each | × floor |")
    print("|---|---:|---:|")
    for scenario, count in rows:
        print(f"| {names[scenario]} | {count:.2f} | {count / floor:.2f} |")


def shanghai(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(epoch + TZ8))


def big_rows(first: int, count: int, total: int, t0: float) -> tuple[list[tuple], list[tuple]]:
    """Fills first..first+count of `total` spread over DAYS days from t0, and their outbox."""
    step = DAYS * 86400 / total
    fill_rows, outbox_rows = [], []
    for i in range(first, first + count):
        permitted = t0 + i * step
        rid = fills.new_record_id(permitted)
        n = (i * 7919) % CYLINDER_POOL
        cid, info = f"CYL-{n:06d}", f"500112CQ{n:010d}"
        rig, op = RIGS[i % 3], OPERATORS[i % len(OPERATORS)]
        cancelled = i % 33 == 0
        tare = 15000 + (n % 9) * 100
        started, ended = permitted + 0.5, permitted + 96.0
        gross = None if cancelled else tare + 14500 + (i % 11) * 20 - 100
        fill_date = shanghai(permitted if cancelled else started)[:10]
        fill_rows.append((
            rid, i + 1, rig, "cancelled" if cancelled else "closed", cid, info, info, "G13",
            op, "city", None, tare, 14500, tare + 40, gross,
            None if gross is None else gross - tare, "ok",
            None if cancelled else "ok", "cylinder removed" if cancelled else "done",
            permitted, None if cancelled else started, ended, fill_date, None, None))
        if cancelled:
            continue
        net = (gross - tare) / 1000
        payload = (f'{{"record_id": "{rid}", "medium_code": "G13", "operator": "{op}", '
                   f'"fill_date": "{fill_date}", "filling_unit_name": "{STATION_UNIT}", '
                   f'"id": "{cid}", "fill_started_at": "{shanghai(started)}", '
                   f'"fill_ended_at": "{shanghai(ended)}", "net_mass_kg": {net:.2f}, '
                   f'"rig_id": "{rig}", "pre_check": "ok", "post_check": "ok"}}')
        pending = i >= total - 100
        outbox_rows.append((rid, payload, "pending" if pending else "delivered",
                            0 if pending else 1, ended + 1, ended + 1,
                            None if pending else ended + 1.8,
                            None if pending else f"T{rid.replace('-', '')}"))
    return fill_rows, outbox_rows


def build_big(store: Store) -> tuple[int, int, float, str]:
    """Fill the store with BIG fills (or FALLBACK when BIG would take over the budget)."""
    fill_sql = (f"INSERT INTO fills ({', '.join(FILL_COLUMNS)}) VALUES "
                f"({', '.join('?' * len(FILL_COLUMNS))})")
    outbox_sql = ("INSERT INTO outbox (record_id, payload, state, attempts, next_at, created_at, "
                  "delivered_at, trace_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
    store.conn.execute("PRAGMA cache_size=-262144")  # 256 MiB while building
    t0 = time.time() - DAYS * 86400
    start = time.perf_counter()
    total, done, boxed, note = BIG, 0, 0, ""
    while done < total:
        rows, boxes = big_rows(done, min(CHUNK, total - done), total, t0)
        with store.transaction() as conn:
            conn.executemany(fill_sql, rows)
            conn.executemany(outbox_sql, boxes)
        done, boxed = done + len(rows), boxed + len(boxes)
        spent = time.perf_counter() - start
        if total == BIG and done < total and spent / done * BIG > BUILD_BUDGET_S * 1.1:
            # Projected over the budget: stop at FALLBACK (the rows so far keep their dates).
            note = (f"{BIG:,} would take ~{spent / done * BIG:.0f} s to build: "
                    f"used {FALLBACK:,} fills instead")
            total = max(FALLBACK, done)
            if done >= total:
                break
    store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.conn.execute("PRAGMA cache_size=-2000")  # back to SQLite's default
    return done, boxed, time.perf_counter() - start, note


def query_times(store: Store, args: argparse.Namespace, repeat: int = 5
                ) -> tuple[list[float], int]:
    select_fills(store, args)  # warm up
    times, rows = [], 0
    for _ in range(repeat):
        t = time.perf_counter()
        rows = len(select_fills(store, args))
        times.append((time.perf_counter() - t) * 1000)
    return times, rows


def records_args(**over: Any) -> argparse.Namespace:
    """What `station records` passes to select_fills (defaults of its options)."""
    base = {"date_from": None, "date_to": None, "rig": None, "operator": None,
            "cylinder": None, "check": None, "sync": None, "override": False, "limit": 1000}
    return argparse.Namespace(**(base | over))


def plan(store: Store, args: argparse.Namespace) -> str:
    """EXPLAIN QUERY PLAN of select_fills' statement, details joined."""
    captured: list[tuple[str, tuple]] = []
    real = store.query

    def capture(sql: str, params: tuple = ()) -> list[dict[str, Any]]:
        captured.append((sql, params))
        return []

    store.query = capture  # type: ignore[method-assign]
    try:
        select_fills(store, args)
    finally:
        store.query = real  # type: ignore[method-assign]
    sql, params = captured[0]
    return "; ".join(r[3] for r in store.conn.execute("EXPLAIN QUERY PLAN " + sql, params))


def main() -> None:
    if sys.argv[1:2] == ["--fsync-child"]:
        fsync_child(sys.argv[2], int(sys.argv[3]), sys.argv[4])
        return
    work = Path(tempfile.mkdtemp(prefix="bench-store-"))
    if sys.argv[1:2] == ["--fsyncs-only"]:
        try:
            print_fsyncs(fsync_counts(work))
        finally:
            shutil.rmtree(work)
        return
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    try:
        counted = fsync_counts(work)
        store = Store(str(work / "commit.db"))
        mode = store.conn.execute("PRAGMA journal_mode").fetchone()[0]
        sync = store.conn.execute("PRAGMA synchronous").fetchone()[0]
        lat = commit_latencies(store, n)
        store.close()
        fsync = bare_fsync_ms(work)

        big = Store(str(work / "big.db"))
        count, boxed, build_s, note = build_big(big)
        size_mib = sum(f.stat().st_size for f in work.glob("big.db*")) / 2**20
        big_lat = commit_latencies(big, min(n, 500))
        newest = station_today() - timedelta(days=1)
        queries = [
            ("rig-02, last 30 days (the brief's query)",
             records_args(rig="rig-02", date_from=(newest - timedelta(days=29)).isoformat(),
                          date_to=newest.isoformat())),
            ("rig-02, last 365 days",
             records_args(rig="rig-02", date_from=(newest - timedelta(days=364)).isoformat(),
                          date_to=newest.isoformat())),
            ("no filter (plain `station records`)", records_args()),
            ("--cylinder CYL-000042", records_args(cylinder="CYL-000042")),
            ("--sync pending", records_args(sync="pending")),
        ]
        results = [(name, *query_times(big, args), plan(big, args)) for name, args in queries]
        big.close()
    finally:
        for f in work.iterdir():
            f.unlink()
        work.rmdir()

    print(f"store commits on {platform.node()} ({platform.machine()}, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}, SQLite {sqlite_version()}), store in "
          f"{tempfile.gettempdir()} ({fs_type(tempfile.gettempdir())}), "
          f"journal_mode={mode}, synchronous={sync} (2 = FULL)\n")
    print("| operation | n | median ms | p99 ms | max ms | rows |")
    print("|---|---:|---:|---:|---:|---:|")

    def line(name: str, values: list[float], rows: str = "") -> None:
        print(f"| {name} | {len(values)} | {statistics.median(values):.3f} | "
              f"{pct(values, 99):.3f} | {max(values):.3f} | {rows} |")

    line("(a) Store.record_decision (+ cylinder cache), new store", lat["decision"])
    line("(b) Store.open_fill, new store", lat["open"])
    line("(c) Store.close_fill + outbox entry, new store", lat["close"])
    line(f"(b) open_fill, store with {count:,} fills", big_lat["open"])
    line(f"(c) close_fill, store with {count:,} fills", big_lat["close"])
    for name, times, rows, _ in results:
        line(f"(d) select_fills {name}, {count:,} fills, limit 1000", times, str(rows))
    line("bare os.fsync, small file, same folder", fsync)
    print(f"\nfixture: {count:,} fills (+ {boxed:,} outbox rows, 100 pending) "
          f"over {DAYS} days, 3 rigs, built by executemany in {build_s:.1f} s "
          f"({size_mib:.0f} MiB after checkpoint)" + (f"; {note}" if note else "") + ".")
    print("(a)–(c): one fill at a time in the rig loop's order (decision → open → close), each "
          "call timed alone; (d): median of 5 after one warm-up (page cache warm); "
          "rows = rows returned.")
    print_fsyncs(counted)
    print("\nquery plans (d):")
    for name, _, _, qplan in results:
        print(f"- {name}: {qplan}")


def sqlite_version() -> str:
    import sqlite3

    return sqlite3.sqlite_version


if __name__ == "__main__":
    main()
