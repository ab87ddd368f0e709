"""Scan-to-permit latency: bytes into the scanner pty → FILL_PERMIT set at the rig controller.

Runs the real daemon (`station run`) against the simulators on loopback and prints a table:
median, p99 and max over N scans each, for a city lookup, a city lookup over a slow link, and a
decision from the cache while the city is down. Usage: python bench/scan_to_permit.py [N]
"""

from __future__ import annotations

import itertools
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from simulators.dataset import demo_cylinders, qr_url
from simulators.harness import OPERATORS, RigSpec, SimStation, wait_for
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


def line(name: str, outside: list[float], inside: list[float]) -> str:
    return (f"| {name:<34} | {len(outside):>4} | {statistics.median(outside):7.2f} | "
            f"{pct(outside, 99):7.2f} | {max(outside):7.2f} | {statistics.median(inside):7.2f} |")


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    cyl = demo_cylinders(station_today())
    codes = itertools.cycle([cyl[k]["info_code"]
                             for k in ("valid", "valid_partner", "special_23t0", "by_table")])
    work = Path(tempfile.mkdtemp(prefix="bench-scan-"))
    station = SimStation(work, (RigSpec("rig-01", 1),), offline_recheck_s=3600,
                         rig_options={"start_delay_s": None}).start()
    try:
        station.badge("rig-01", OPERATORS[0][1])
        station.place("rig-01")  # an empty cylinder on the scale: each verdict grants at once
        measure(station, codes, 8)  # warm up: token, connections, caches
        rows = [line("city lookup (loopback)", *measure(station, codes, n))]
        station.city.set_faults(latency_ms=50)
        rows.append(line("city lookup, +50 ms link", *measure(station, codes, max(n // 2, 50))))
        station.city.set_faults(latency_ms=0, status=503)
        measure(station, codes, 1)  # the first reading of the outage waits the deadline
        rows.append(line("cache (city down, recheck open)", *measure(station, codes, n)))
    finally:
        station.stop()
    print(f"scan-to-permit on {platform.node()} ({platform.machine()}, Python "
          f"{platform.python_version()}), daemon + simulators on loopback\n")
    print("| path                               |    n | median  |   p99   |   max   | daemon* |")
    print("|------------------------------------|------|---------|---------|---------|---------|")
    print("\n".join(rows))
    print("\nms from the reading's bytes written into the scanner pty to FILL_PERMIT set at the "
          "rig controller (simulator's grant counter).\n* daemon: median latency_ms it recorded, "
          "from the line's terminator to the decision committed (before the permit write).")


if __name__ == "__main__":
    main()
