"""Scan-to-permit latency: bytes into the scanner pty → FILL_PERMIT set at the rig controller.

Runs the real daemon (`station run`) against the simulators on loopback and prints a table:
median, p99 and max over N scans each, for a city lookup, a city lookup over a slow link, and a
decision from the cache while the city is down; then a floor measured in the same run, against
the same simulators, with the same libraries: pty read → parse → SQLite commit (WAL, FULL) →
write_coil → read back (and the city's query for the city path), nothing else; and the ratio
daemon ÷ floor (medians). Usage: python bench/scan_to_permit.py [N]
"""

from __future__ import annotations

import asyncio
import itertools
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
import tty
from collections.abc import Iterator
from pathlib import Path

from simulators.dataset import demo_cylinders, qr_url
from simulators.harness import OPERATORS, RigSpec, SimStation, wait_for
from simulators.rig import RigSimulator
from station import config as config_mod
from station.city.client import CityClient
from station.core.reading import decode, parse_scan
from station.today import station_today


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def measure(station: SimStation, codes: Iterator[str], n: int) -> tuple[list[float], list[float]]:
    """External latency (ms) to the permit at the controller, and the daemon's own latency_ms."""
    model = station.rig_sim.rig(1)
    outside, inside = [], []
    for i in range(n):
        grants = model.snapshot()["permit_grants"]
        since = station.last_id()
        start = time.perf_counter()
        station.scanners["rig-01"].send(qr_url(next(codes)))  # never the same twice running
        wait_for(lambda g=grants: model.snapshot()["permit_grants"] > g, 10, "permit",
                 every=0.0002)
        outside.append((time.perf_counter() - start) * 1000)
        row = station.wait_decision("rig-01", since)
        if not row["permit"]:
            raise RuntimeError(f"scan {i} refused: {row}")
        inside.append(row["latency_ms"])
    return outside, inside


async def floor_run(station: SimStation, codes: Iterator[str], n: int,
                    city: bool) -> list[float]:
    """The bare work of a scan, timed from the bytes written into a pty to the coil read back
    (ms): os.read on the pty (asyncio's add_reader), decode + parse_scan, with `city` the
    city's query (CityClient, in a thread, as the daemon asks), one INSERT + COMMIT on a WAL
    store with synchronous=FULL, write_coil + read_coils (pymodbus async, the simulator)."""
    from pymodbus.client import AsyncModbusTcpClient

    cfg = config_mod.load(station.config_path)
    client = CityClient(cfg.city, cfg.unit_code) if city else None
    db = sqlite3.connect(station.workdir / "floor.db", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE IF NOT EXISTS d (id INTEGER PRIMARY KEY, at REAL, reading TEXT, "
               "kind TEXT, permit INTEGER)")
    rig = RigSimulator([1], start_delay_s=None).start()  # its own, as busy as the daemon's
    master, slave = os.openpty()
    tty.setraw(slave)  # as the daemon's serial reader sets its port: bytes as they come
    modbus = AsyncModbusTcpClient("127.0.0.1", port=rig.port)
    await modbus.connect()
    loop = asyncio.get_running_loop()
    lines: asyncio.Queue[bytes] = asyncio.Queue()
    buffer = bytearray()

    def readable() -> None:
        buffer.extend(os.read(slave, 4096))
        while b"\r" in buffer:
            end = buffer.index(b"\r")
            lines.put_nowait(bytes(buffer[:end]))
            del buffer[:end + 1]
    loop.add_reader(slave, readable)
    coil = cfg.rigs[0].registers.fill_permit
    out = []
    try:
        for i in range(n + 5):
            start = time.perf_counter()
            os.write(master, qr_url(next(codes)).encode() + b"\r")
            data = await asyncio.wait_for(lines.get(), 5)
            reading = parse_scan(str(decode(data)), cfg.qr_hosts, cfg.qr_allow_http, "s1")
            if client is not None:
                await loop.run_in_executor(None, client.query, reading.query(), 1.5)
            db.execute("INSERT INTO d (at, reading, kind, permit) VALUES (?, ?, ?, 1)",
                       (time.time(), reading.raw, reading.kind))
            await modbus.write_coil(coil, i % 2 == 0, device_id=1)
            back = await modbus.read_coils(coil, count=1, device_id=1)
            if back.isError() or back.bits[0] != (i % 2 == 0):
                raise RuntimeError(f"floor: coil read back {back}")
            if i >= 5:  # (the first few warm the connections up)
                out.append((time.perf_counter() - start) * 1000)
    finally:
        loop.remove_reader(slave)
        os.close(master)
        os.close(slave)
        modbus.close()
        rig.stop()
        db.close()
        if client is not None:
            client.close()
    return out


def floor(station: SimStation, codes: Iterator[str], n: int, city: bool) -> list[float]:
    return asyncio.run(floor_run(station, codes, n, city))


def line(name: str, outside: list[float], inside: list[float]) -> str:
    return (f"| {name:<34} | {len(outside):>4} | {statistics.median(outside):7.2f} | "
            f"{pct(outside, 99):7.2f} | {max(outside):7.2f} | {statistics.median(inside):7.2f} |")


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    cyl = demo_cylinders(station_today())
    codes = itertools.cycle([cyl[k]["info_code"]
                             for k in ("valid", "valid_partner", "special_23t0", "by_table")])
    floor_codes = itertools.cycle([cyl[k]["info_code"] for k in ("valid", "valid_partner")])
    work = Path(tempfile.mkdtemp(prefix="bench-scan-"))
    station = SimStation(work, (RigSpec("rig-01", 1),), offline_recheck_s=3600,
                         rig_options={"start_delay_s": None}).start()
    try:
        station.badge("rig-01", OPERATORS[0][1])
        station.place("rig-01")  # an empty cylinder on the scale: each verdict grants at once
        measure(station, codes, 8)  # warm up: token, connections, caches
        city_path = measure(station, codes, n)
        rows = [line("city lookup (loopback)", *city_path)]
        city_floor = floor(station, floor_codes, n, city=True)
        station.city.set_faults(latency_ms=50)
        rows.append(line("city lookup, +50 ms link", *measure(station, codes, max(n // 2, 50))))
        station.city.set_faults(latency_ms=0, status=503)
        measure(station, codes, 1)  # the first reading of the outage waits the deadline
        cache_path = measure(station, codes, n)
        rows.append(line("cache (city down, recheck open)", *cache_path))
        cache_floor = floor(station, floor_codes, n, city=False)
        rows.append(line("floor: pty→parse→commit→coil", cache_floor, cache_floor))
        rows.append(line("floor: … + the city's query", city_floor, city_floor))
    finally:
        station.stop()
    ratios = [(name, statistics.median(d[0]) / statistics.median(f))
              for name, d, f in (("cache path", cache_path, cache_floor),
                                 ("city path", city_path, city_floor))]
    print(f"scan-to-permit on {platform.node()} ({platform.machine()}, Python "
          f"{platform.python_version()}), daemon + simulators on loopback\n")
    print("| path                               |    n | median  |   p99   |   max   | daemon* |")
    print("|------------------------------------|------|---------|---------|---------|---------|")
    print("\n".join(rows))
    print("\nms from the reading's bytes written into the scanner pty to FILL_PERMIT set at the "
          "rig controller (simulator's grant counter).\n* daemon: median latency_ms it recorded, "
          "from the line's terminator to the decision committed (before the permit write).")
    print("\nratio daemon ÷ floor (medians, same run): " + ", ".join(
        f"{name} {r:.2f}x" for name, r in ratios) + " (target: cache path <= 3x)")


if __name__ == "__main__":
    main()
