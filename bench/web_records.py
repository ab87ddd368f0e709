"""`station web` page load times on a big store: 300,000 fills and 1,000,000 decisions.

`python bench/web_records.py [FILLS] [DECISIONS]`. Builds the fixture with executemany (the
fills and outbox rows of bench/store_commit.py, one permit per fill and refusals spread between
them up to DECISIONS, one in 50 of an unregistered tag; the city cache of every cylinder),
serves it in this process on 127.0.0.1 and GETs each page REPEAT times with a signed-in session
after one warm-up: the median and max of the server's own handling time (routing, SQL, HTML)
and the median of the whole request over loopback. The manager's home page, a cylinder's page
and the searches (issue 16) are asked SEARCH_REPEAT times.
"""

from __future__ import annotations

import http.client
import os
import platform
import re
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import store_commit  # noqa: E402
from store_commit import OPERATORS, RIGS, big_rows, fs_type  # noqa: E402

from station import config  # noqa: E402
from station.store.db import FILL_COLUMNS, Store  # noqa: E402
from station.web.auth import hash_password  # noqa: E402
from station.web.server import make_server  # noqa: E402

FILLS = 300_000
DECISIONS = 1_000_000
DAYS = 365
CHUNK = 25_000
REPEAT = 5
SEARCH_REPEAT = 21
PASSWORD = "bench-password"
REASONS = ("SCRAPPED", "INSPECTION_OVERDUE", "NOT_REGISTERED", "FOREIGN_UNIT", "CITY_UNAVAILABLE")


def build(store: Store, total: int, decisions_total: int = 0) -> float:
    """total fills over DAYS days (newest yesterday), their outbox rows and decisions: one
    permit per fill and refusals between them up to decisions_total (at least one per ten
    fills); then the city cache of every cylinder."""
    fill_sql = (f"INSERT INTO fills ({', '.join(FILL_COLUMNS)}) VALUES "
                f"({', '.join('?' * len(FILL_COLUMNS))})")
    outbox_sql = ("INSERT INTO outbox (record_id, payload, state, attempts, next_at, created_at, "
                  "delivered_at, trace_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
    decision_sql = ("INSERT INTO decisions (at, local_time, rig, reader, operator, reading, kind, "
                    "tag, cylinder_id, permit, reason, source, latency_ms) VALUES "
                    "(?, ?, ?, ?, ?, ?, 'qr_url', ?, ?, ?, ?, 'city', 4.2)")
    t0 = time.time() - DAYS * 86400
    start = time.perf_counter()
    store_commit.DAYS = DAYS  # big_rows spreads the fills over this many days
    refusals = max(total // 10, decisions_total - total)
    per_fill = refusals / total
    made = 0
    for first in range(0, total, CHUNK):
        fills, boxes = big_rows(first, min(CHUNK, total - first), total, t0)
        decisions = []
        for i, f in enumerate(fills):
            at, info, cid = f[19], f[5], f[4]
            local = time.strftime("%Y-%m-%dT%H:%M:%S.000+08:00", time.gmtime(at + 8 * 3600))
            decisions.append((at - 2, local, f[2], f"{f[2]}-reader1", f[8], info, info, cid,
                              1, None))
            while made < (first + i + 1) * per_fill:
                reason = REASONS[made % len(REASONS)]
                black = made % 50 == 0  # an unregistered tag: no cylinder
                tag = f"500112XX{made:010d}" if black else info
                decisions.append((at - 30 - made % 7, local, f[2], f"{f[2]}-reader1", f[8],
                                  tag, tag, None if black else cid, 0,
                                  "NOT_REGISTERED" if black else reason))
                made += 1
        with store.transaction() as conn:
            conn.executemany(fill_sql, fills)
            conn.executemany(outbox_sql, boxes)
            conn.executemany(decision_sql, decisions)
    with store.transaction() as conn:
        conn.execute("UPDATE fills SET post_check = 'overfill' WHERE rowid % 997 = 0 AND "
                     "state = 'closed'")
        cache(conn, time.time() - 3600)
    store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return time.perf_counter() - start


def cache(conn: sqlite3.Connection, at: float) -> None:
    """The city record of every cylinder of the pool, as the daemon caches it."""
    rows, keys = [], []
    for n in range(store_commit.CYLINDER_POOL):
        cid, info, product = f"CYL-{n:06d}", f"500112CQ{n:010d}", f"{100000000000 + n:012d}"
        record = (f'{{"id": "{cid}", "info_code": "{info}", "product_no": "{product}", '
                  f'"medium_code": "G13", "status": "在用", "next_inspection_date": "2029-03"}}')
        rows.append((cid, record, at))
        keys += [(f"info_code:{info}", cid, at), (f"product_no:{product}", cid, at)]
    conn.executemany("INSERT INTO cylinders (id, record, fetched_at) VALUES (?, ?, ?)", rows)
    conn.executemany("INSERT INTO tag_index (key, cylinder_id, at) VALUES (?, ?, ?)", keys)


def write_config(work: Path, store: Path) -> Path:
    path = work / "station.toml"
    rigs = "".join(f'[[rigs]]\nid = "{r}"\nmedium = "G13"\nmodbus = "tcp://127.0.0.1:1502"\n'
                   f"unit_id = {i + 1}\n" for i, r in enumerate(RIGS))
    path.write_text(
        '[station]\nunit_name = "bench"\nunit_code = "X"\n'
        f'store = "{store}"\n[qr]\nhosts = ["qr.example"]\n'
        '[city]\nbase_url = "http://127.0.0.1:9"\napp_key = "k"\n' + rigs +
        '[web]\nport = 0\n[[web.users]]\nname = "bench"\n'
        f'password_hash = "{hash_password(PASSWORD)}"\n', encoding="utf-8")
    return path


class Session:
    """One keep-alive connection with the session cookie, as a browser holds it."""

    def __init__(self, port: int):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.cookie = ""
        page = self.get("/login")[1]
        token = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
        login = self.cookie
        self.conn.request("POST", "/login", urlencode({"csrf": token, "name": "bench",
                                                       "password": PASSWORD}),
                          {"Cookie": login, "Content-Type": "application/x-www-form-urlencoded"})
        answer = self.conn.getresponse()
        answer.read()
        session = [v for k, v in answer.getheaders() if k == "Set-Cookie"
                   and v.startswith("station_session=")]
        if answer.status != 303 or not session:
            raise RuntimeError(f"log-in failed: {answer.status}")
        self.cookie = session[0].split(";")[0]

    def get(self, path: str) -> tuple[int, str, int]:
        self.conn.request("GET", path, headers={"Cookie": self.cookie} if self.cookie else {})
        answer = self.conn.getresponse()
        body = answer.read()
        for k, v in answer.getheaders():
            if k == "Set-Cookie" and not self.cookie:
                self.cookie = v.split(";")[0]
        return answer.status, body.decode("utf-8"), len(body)


def main() -> None:
    total = int(sys.argv[1]) if len(sys.argv) > 1 else FILLS
    decisions_total = int(sys.argv[2]) if len(sys.argv) > 2 else DECISIONS
    work = Path(tempfile.mkdtemp(prefix="bench-web-"))
    os.environ.setdefault("STATION_APP_SECRET", "bench")
    try:
        store_path = work / "station.db"
        store = Store(str(store_path))
        build_s = build(store, total, decisions_total)
        counts = {t: store.value(f"SELECT count(*) FROM {t}") for t in ("fills", "decisions")}
        store.close()
        size_mib = sum(f.stat().st_size for f in work.glob("station.db*")) / 2**20
        cfg = config.load(write_config(work, store_path))
        server = make_server(cfg)
        handled: list[float] = []
        real = server.app.handle

        def timed(req):  # the server's own time for one request, without the socket
            t = time.perf_counter()
            try:
                return real(req)
            finally:
                handled.append((time.perf_counter() - t) * 1000)

        server.app.handle = timed
        threading.Thread(target=server.serve_forever, daemon=True).start()
        session = Session(server.server_address[1])
        last_page = -(-(total - total // 33) // 50)
        newest = time.strftime("%Y-%m-%d", time.gmtime(time.time() + 8 * 3600 - 86400))
        month = time.strftime("%Y-%m-%d", time.gmtime(time.time() + 8 * 3600 - 30 * 86400))
        pages = [
            ("/records (no filter, newest 50)", "/records"),
            ("/records rig-02, last 30 days", f"/records?rig=rig-02&from={month}&to={newest}"),
            ("/records --check overfill", "/records?check=overfill"),
            ("/records --sync pending", "/records?sync=pending"),
            ("/records --cylinder CYL-000042", "/records?cylinder=CYL-000042"),
            ("/records --operator, page 100",
             "/records?" + urlencode({"operator": OPERATORS[1], "page": 100})),
            (f"/records last page ({last_page})", f"/records?page={last_page}"),
            ("/records.csv rig-02, last 30 days", f"/records.csv?rig=rig-02&from={month}"
                                                  f"&to={newest}"),
            ("/issues (open overfills)", "/issues"),
            ("/refusals (14 days)", "/refusals"),
            ("/refusals?days=90", "/refusals?days=90"),
            ("/outbox", "/outbox"),
            ("/health", "/health"),
            ("/api/rig/rig-01 (operator screen poll)", "/api/rig/rig-01"),
        ]
        asked = SEARCH_REPEAT
        manager = [
            ("/home (today at a glance)", "/home"),
            ("/cylinder?id=CYL-000042", "/cylinder?id=CYL-000042"),
            ("/search?q=cyl-000042 (exact, lower case)", "/search?q=cyl-000042"),
            ("/search?q=QR URL", "/search?" + urlencode(
                {"q": "https://qr.example/c/500112cq0000000042"})),
            ("/search?q=ＣＹＬ－０１２３４ (full width, partial)", "/search?" + urlencode(
                {"q": "ＣＹＬ－０１２３４"})),
            ("/search?q=000042 (partial)", "/search?q=000042"),
            ("/search?q=unregistered tag", "/search?q=500112XX0000000050"),
            ("/decisions (newest 50)", "/decisions"),
            ("/decisions?reason=NOT_REGISTERED", "/decisions?reason=NOT_REGISTERED"),
            ("/decisions?verdict=refuse, rig-02, 30 days",
             f"/decisions?verdict=refuse&rig=rig-02&from={month}&to={newest}"),
            ("/report (yesterday)", f"/report?day={newest}"),
        ]
        results = []
        for name, path, repeat in ([(n, p, REPEAT) for n, p in pages]
                                   + [(n, p, asked) for n, p in manager]):
            session.get(path)  # warm-up
            server_ms, total_ms, size = [], [], 0
            for _ in range(repeat):
                handled.clear()
                t = time.perf_counter()
                status, _, size = session.get(path)
                total_ms.append((time.perf_counter() - t) * 1000)
                server_ms.append(handled[-1])
                if status not in (200, 303):
                    raise RuntimeError(f"{path}: HTTP {status}")
            results.append((name, server_ms, total_ms, size))
        server.shutdown()
        server.server_close()
    finally:
        for f in work.iterdir():
            f.unlink()
        work.rmdir()

    print(f"station web on {platform.node()} ({platform.machine()}, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}), store in "
          f"{tempfile.gettempdir()} ({fs_type(tempfile.gettempdir())})\n")
    print("| page | GETs | server median ms | server max ms | GET median ms (loopback) | bytes |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, server_ms, total_ms, size in results:
        print(f"| {name} | {len(server_ms)} | {statistics.median(server_ms):.1f} | "
              f"{max(server_ms):.1f} | {statistics.median(total_ms):.1f} | {size:,} |")
    print(f"\nfixture: {counts['fills']:,} fills (1 in 33 cancelled, 1 in 997 an overfill), "
          f"{counts['decisions']:,} decisions (a permit per fill, the rest refusals) over "
          f"{DAYS} days, {store_commit.CYLINDER_POOL:,} cylinders cached, "
          f"{len(RIGS)} rigs, built by executemany in {build_s:.1f} s ({size_mib:.0f} MiB).")
    print(f"each page: one warm-up, then {REPEAT} GETs ({SEARCH_REPEAT} for the manager's "
          "home, cylinder, search, decisions and report pages) on one keep-alive "
          "connection with a signed-in session; 'server' = WebApp.handle (SQL + HTML, a fresh "
          "read-only store connection per request), 'GET' = the whole request over loopback "
          "(the CSV streams its rows, so its server time is only the start).")


if __name__ == "__main__":
    main()
