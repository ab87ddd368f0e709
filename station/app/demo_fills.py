"""The demo's second part: whole fills at rig-01, the mass climbing, and delivery to the city."""

from __future__ import annotations

import time
from dataclasses import dataclass

from simulators.dataset import demo_cylinders, qr_url
from simulators.harness import SimStation, wait_for
from station.store import outbox
from station.store.db import Store
from station.today import station_today

FLOW_G_PER_S = 10000
BAR = 24


@dataclass(frozen=True)
class Fill:
    cylinder: str  # key in the demo dataset
    note: str
    expect: str  # post-fill check
    overshoot_g: int = 0
    remove_at_kg: float | None = None  # take the cylinder off mid-fill at this net mass


FILLS = (
    Fill("valid", "a normal fill", "ok"),
    Fill("valid_partner", "the valve closed late: +0.9 kg", "overfill", overshoot_g=900),
    Fill("special_23t0", "settled low: -0.8 kg", "underfill", overshoot_g=-800),
    Fill("by_table", "cylinder taken off mid-fill", "interrupted", remove_at_kg=6.0),
)


def bar(net_g: int, target_g: int) -> str:
    done = max(0, min(BAR, round(BAR * net_g / max(target_g, 1))))
    return "█" * done + "░" * (BAR - done)


def watch(station: SimStation, fill: Fill, tare_g: int, target_g: int) -> None:
    """Print the mass as it climbs; take the cylinder off when the step says so."""
    model = station.rig_sim.rig(1)
    shown = -1.0
    while True:
        snap = model.snapshot()
        net = snap["gross_g"] - tare_g
        if time.monotonic() - shown >= 0.3:
            print(f"    rig-01 {bar(net, target_g)} {net / 1000:5.2f} / {target_g / 1000:.2f} kg",
                  flush=True)
            shown = time.monotonic()
        if fill.remove_at_kg is not None and net >= fill.remove_at_kg * 1000:
            model.remove_cylinder()
            print("    rig-01 cylinder taken off the scale", flush=True)
            return
        if snap["fill_done"] and snap["stable"]:
            return
        time.sleep(0.05)  # a display refresh, not synchronisation


def play_fills(station: SimStation) -> int:
    """Run the fills; print the records table with delivery state; return the failures."""
    cylinders = demo_cylinders(station_today())
    model = station.rig_sim.rig(1)
    station.remove("rig-01")
    model.flow_g_per_s, model.start_delay_s = FLOW_G_PER_S, 0.3
    results = []
    for fill in FILLS:
        rec = cylinders[fill.cylinder]
        tare_g = round(rec.get("tare_kg", 15.0) * 1000)
        model.set_overshoot(fill.overshoot_g)
        station.place("rig-01", tare_g)
        print(f"\n  {rec['id']}: {fill.note}", flush=True)
        decision = station.scan("rig-01", qr_url(rec["info_code"]))
        watch(station, fill, tare_g, round(rec.get("fill_capacity_kg", 14.5) * 1000))
        results.append((fill, station.wait_fill("rig-01", decision["id"])))
        station.remove("rig-01")
    store = Store(str(station.store_path), readonly=True)
    try:
        wait_for(lambda: not outbox.pending_count(store), 15, "the records delivered")
        return table(station, results, outbox.states(store))
    finally:
        store.close()


def table(station: SimStation, results: list, sync: dict[str, str]) -> int:
    """The fills played and their outbox state (record id → state)."""
    at_city = {f["record_id"] for f in station.city.fillings}
    print("\n  record     cylinder    net kg  target  check        sync       at the city")
    failures = 0
    for fill, row in results:
        ok = (row["post_check"] or "").startswith(fill.expect)
        failures += not ok
        state = sync.get(row["record_id"], "-")
        net = "-" if row["net_g"] is None else f"{row['net_g'] / 1000:.2f}"
        print(f"  …{row['record_id'][-8:]}  {row['cylinder_id']:<11} {net:>6}  "
              f"{row['target_g'] / 1000:6.2f}  {row['post_check'] or '-':<12} {state:<10} "
              f"{'yes' if row['record_id'] in at_city else 'no'}"
              + ("" if ok else f"   expected {fill.expect}"), flush=True)
    print(f"\n  {len(at_city)} fill records at the city simulator, each once "
          f"({sum(station.city.submissions.values())} submissions).")
    return failures
