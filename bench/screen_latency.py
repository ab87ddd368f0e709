"""Scan → operator screen, and overfill → operator screen, in the real browser.

Runs the real daemon (`station run`) on the simulators, `station web`, and Debian's Chromium
(Playwright) showing /rig/rig-01, and prints median and max over N runs of:
- a scan (bytes into the scanner pty) until the page shows that scan's verdict (alternately a
  refusal and a permit, each for the cylinder standing on the scale);
- the end of an overfill (the fill record's `ended_at`, when the daemon saw the valve shut) until
  the page shows 超装 — 请主管处理.
Usage: python bench/screen_latency.py [N]   (N ≥ 20; default 20)
"""

from __future__ import annotations

import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "web"))

from webtools import CHROMIUM, CHROMIUM_ARGS, WebProcess, web_config  # noqa: E402

from simulators.dataset import demo_cylinders, qr_url  # noqa: E402
from simulators.harness import OPERATORS, RigSpec, SimStation, wait_for  # noqa: E402
from station.today import station_today  # noqa: E402

CYL = demo_cylinders(station_today())
TARE_G = 15200


def take_off(st: SimStation) -> None:
    st.remove("rig-01")
    wait_for(lambda: not any(st.coils("rig-01").values()), 5, "lamps out")


def scans(st: SimStation, page, n: int) -> list[float]:
    out = []
    model = st.rig_sim.rig(1)
    model.start_delay_s = None  # nobody presses start: the permit stays unused
    for i in range(n):
        st.place("rig-01", TARE_G)
        name = "scrapped" if i % 2 == 0 else "valid"
        before = page.evaluate("() => document.body.dataset.decision || ''")
        time.sleep(random.uniform(0, 0.3))  # a scan at any moment of the page's poll cycle
        t0 = time.perf_counter()
        st.scanners["rig-01"].send(qr_url(CYL[name]["info_code"]))
        page.wait_for_function("(b) => (document.body.dataset.decision || '') !== b", arg=before,
                               polling="raf", timeout=5000)
        out.append((time.perf_counter() - t0) * 1000)
        take_off(st)
        page.wait_for_function("() => document.body.dataset.state === 'idle'", polling=20,
                               timeout=5000)
    return out


def overfills(st: SimStation, page, n: int) -> list[float]:
    out = []
    model = st.rig_sim.rig(1)
    model.start_delay_s, model.flow_g_per_s = 0.05, 40000
    model.set_overshoot(800)
    names = ["valid", "valid_partner", "due_soon", "special_23t0"]
    for i in range(n):
        st.place("rig-01", TARE_G)
        d = st.scan("rig-01", qr_url(CYL[names[i % len(names)]]["info_code"]))
        page.wait_for_function("(d) => document.body.dataset.state === 'overfill' && "
                               "document.body.dataset.decision === String(d)", arg=d["id"],
                               polling="raf", timeout=10000)
        seen = time.time()
        f = st.wait_fill("rig-01", d["id"])
        assert f["post_check"].startswith("overfill"), f
        out.append((seen - f["ended_at"]) * 1000)
        take_off(st)
        page.wait_for_function("() => document.body.dataset.state === 'idle'", polling=20,
                               timeout=5000)
    model.set_overshoot(0)
    return out


def row(what: str, ms: list[float]) -> str:
    return (f"| {what} | {len(ms)} | {statistics.median(ms):.0f} | {max(ms):.0f} | "
            f"{min(ms):.0f} |")


def main() -> None:
    n = max(20, int(sys.argv[1]) if len(sys.argv) > 1 else 20)
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        st = SimStation(Path(tmp), (RigSpec("rig-01", 1),), watchdog_ms=900,
                        rig_options={"start_delay_s": None, "flow_g_per_s": 40000},
                        extra_config=web_config()).start()
        web = WebProcess(st.config_path)
        try:
            st.badge("rig-01", OPERATORS[0][1])
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1280, "height": 800})
                page.goto(web.url + "/rig/rig-01")
                page.wait_for_function("() => document.body.dataset.state === 'idle'",
                                       polling=20, timeout=10000)
                scan_ms = scans(st, page, n)
                over_ms = overfills(st, page, n)
                browser.close()
        finally:
            web.stop()
            st.stop()
    print(f"# operator screen latency ({platform.python_version()}, {platform.machine()}, "
          f"daemon poll {st.poll_ms} ms, page poll 300 ms)")
    print("| from → the page shows it | runs | median ms | max ms | min ms |")
    print("|---|---|---|---|---|")
    print(row("scan → verdict on screen", scan_ms))
    print(row("overfill (valve shut) → 超装 on screen", over_ms))


if __name__ == "__main__":
    main()
