"""Scale: N rigs on one daemon, each filling a cylinder every PERIOD s (a carousel's pace).

Runs the real daemon (`station run`) against the simulators on loopback: one controller (Modbus
TCP server) per 12 rigs, a scanner pty per rig, the city simulator. Each rig's cycle: a cylinder
is placed, scanned, granted, filled by the controller (auto start 2 s after the permit, 400 g/s),
taken off. Prints a table: scan-to-permit percentiles, the daemon's CPU share of one core and its
resident memory over the window, fill outcomes and delivery at the city.

Usage: python bench/scale.py RIGS [MINUTES] [PERIOD_S]     e.g. python bench/scale.py 72 10
"""

from __future__ import annotations

import collections
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from simulators.dataset import cylinder, demo_dataset, qr_url
from simulators.harness import OPERATORS, RigSpec, SimStation, wait_for
from station.today import station_today

PER_CONTROLLER = 12
EMPTY_G = 15200  # the dataset's tare: an empty cylinder
TICK = os.sysconf("SC_CLK_TCK")


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def cpu_s(pid: int | str) -> float:
    """User + system CPU seconds of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def rss_mib(pid: int | str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Carousel(threading.Thread):
    """One rig's operator: place, scan, wait for the controller to finish, take off; repeat."""

    def __init__(self, st: SimStation, rig: str, first_at: float, period: float, end: float,
                 codes: collections.deque[str]):
        super().__init__(daemon=True, name=f"carousel-{rig}")
        self.st, self.rig, self.at, self.period, self.end = st, rig, first_at, period, end
        self.codes = codes
        self.latencies_ms: list[float] = []
        self.problems: list[str] = []
        self.stop = threading.Event()

    def run(self) -> None:
        model, scanner = self.st.model(self.rig), self.st.scanners[self.rig]
        while self.at < self.end and not self.stop.is_set():
            self.stop.wait(max(0.0, self.at - time.monotonic()))  # the carousel's pace
            model.place_cylinder(EMPTY_G)
            try:
                snap = wait_for(lambda: (s := model.snapshot())["stable"] and s, 5,
                                "a stable scale", every=0.02)
                grants = snap["permit_grants"]
                sent = time.monotonic()
                scanner.send(qr_url(self.codes.popleft()))
                wait_for(lambda g=grants: model.snapshot()["permit_grants"] > g, 10, "the permit",
                         every=0.02)
                self.latencies_ms.append((model.snapshot()["granted_at"] - sent) * 1000)
                wait_for(lambda: (s := model.snapshot())["fill_done"] and not s["valve_open"]
                         and s["stable"], self.period, "the fill done", every=0.2)
            except TimeoutError as err:
                self.problems.append(f"{self.rig} at {time.monotonic() - self.end:+.0f}s: {err}")
            model.remove_cylinder()
            self.at += self.period


def run(rigs: int, minutes: float, period: float) -> None:
    today = station_today()
    cycles = int(minutes * 60 / period) + 2
    dataset = demo_dataset(today)
    fresh = [cylinder(100000 + i, today) for i in range(rigs * cycles)]
    dataset["cylinders"] += fresh
    codes = collections.deque(c["info_code"] for c in fresh)
    specs = tuple(RigSpec(f"rig-{i + 1:02d}", unit_id=i % PER_CONTROLLER + 1,
                          controller=i // PER_CONTROLLER) for i in range(rigs))
    work = Path(tempfile.mkdtemp(prefix=f"bench-scale-{rigs}-"))
    st = SimStation(work, specs, dataset=dataset, watchdog_ms=3000, poll_ms=200,
                    rig_options={"start_delay_s": 2.0, "flow_g_per_s": 400})
    st.start()
    try:
        for spec in specs:
            st.badge(spec.id, OPERATORS[0][1])
        pid = st.daemon.pid
        first_decision = st.last_id()
        t0, cpu0, sim_cpu0 = time.monotonic(), cpu_s(pid), cpu_s("self")
        end = t0 + minutes * 60
        drivers = [Carousel(st, s.id, t0 + period * i / rigs, period, end, codes)
                   for i, s in enumerate(specs)]
        for d in drivers:
            d.start()
        rss = [rss_mib(pid)]
        while time.monotonic() < end:
            time.sleep(1.0)  # sampling memory once a second (a benchmark, not a test)
            rss.append(rss_mib(pid))
        wall, cpu, sim_cpu = (time.monotonic() - t0, cpu_s(pid) - cpu0,
                              cpu_s("self") - sim_cpu0)
        for d in drivers:
            d.join(period + 30)
        wait_for(lambda: not st.rows("SELECT 1 FROM fills WHERE state = 'open'"), 60,
                 "every fill closed")
        fills = st.rows("SELECT post_check, state FROM fills WHERE decision_id > ?",
                        first_decision)
        wait_for(lambda: not st.rows("SELECT 1 FROM outbox WHERE state != 'delivered'"), 120,
                 "every record delivered")
        decisions = st.rows("SELECT permit, latency_ms FROM decisions WHERE id > ?",
                            first_decision)
        at_city = [x["record_id"] for x in st.city.fillings]
        trips = sum(st.model(s.id).snapshot()["watchdog_trips"] for s in specs)
        integrity = st.db.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        st.stop()
    lat = [x for d in drivers for x in d.latencies_ms]
    inside = [d["latency_ms"] for d in decisions]
    problems = [p for d in drivers for p in d.problems]
    outcomes = collections.Counter(f["post_check"] or f["state"] for f in fills)
    print(f"scale: {rigs} rigs on one daemon ({len(st.rig_sims)} controllers), a cylinder every "
          f"{period:.0f} s per rig, {wall / 60:.1f} min window, on {platform.node()} "
          f"({os.cpu_count()} cores, Python {platform.python_version()})\n")
    rows = [
        ("cylinders filled", f"{len(fills)} ({len(fills) / wall * 3600:.0f}/h); "
                             + ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items()))),
        ("refusals / decisions", f"{sum(1 for d in decisions if not d['permit'])} / "
                                 f"{len(decisions)}"),
        ("scan-to-permit ms: median / p95 / p99 / max",
         f"{statistics.median(lat):.1f} / {pct(lat, 95):.1f} / {pct(lat, 99):.1f} / "
         f"{max(lat):.1f}" if lat else "-"),
        ("daemon latency_ms: median / p99 / max",
         f"{statistics.median(inside):.1f} / {pct(inside, 99):.1f} / {max(inside):.1f}"
         if inside else "-"),
        ("daemon CPU, % of one core", f"{cpu / wall * 100:.1f}"),
        ("daemon CPU per rig, % of one core", f"{cpu / wall * 100 / rigs:.2f}"),
        ("simulators + drivers CPU, % of one core", f"{sim_cpu / wall * 100:.1f}"),
        ("daemon RSS MiB: start / max / end", f"{rss[0]:.1f} / {max(rss):.1f} / {rss[-1]:.1f}"),
        ("controller watchdog trips", str(trips)),
        ("records at the city: unique / duplicates",
         f"{len(set(at_city))} / {len(at_city) - len(set(at_city))}"),
        ("PRAGMA integrity_check", integrity),
        ("problems", "; ".join(problems[:5]) or "none"),
    ]
    print("| measure | value |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")
    print("\nscan-to-permit: from the reading's bytes written into the scanner pty to the "
          "controller's FILL_PERMIT grant (the simulator's clock).\ndaemon latency_ms: from the "
          "line's terminator to the decision committed (before the permit write).")
    if problems or len(at_city) != len(set(at_city)) or integrity != "ok":
        sys.exit(1)


def main() -> None:
    rigs = int(sys.argv[1]) if len(sys.argv) > 1 else 12
    minutes = float(sys.argv[2]) if len(sys.argv) > 2 else 10.0
    period = float(sys.argv[3]) if len(sys.argv) > 3 else 90.0
    run(rigs, minutes, period)


if __name__ == "__main__":
    main()
