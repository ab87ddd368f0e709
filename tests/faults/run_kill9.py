"""The long kill -9 campaign: python tests/faults/run_kill9.py [TRIALS] [SEED] [LATCH_MS];
prints a table. LATCH_MS: the controller clears FILL_DONE this long after the permit write."""

import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from kill9 import campaign  # noqa: E402


def main() -> None:
    trials = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    seed = int(sys.argv[2]) if len(sys.argv) > 2 else int(time.time())
    latch_ms = float(sys.argv[3]) if len(sys.argv) > 3 else 0.0
    started = time.monotonic()
    r = campaign(Path(tempfile.mkdtemp(prefix="kill9-")), trials, seed, latch_ms / 1000)
    drops = sorted(r.permit_drop_s)
    print(f"kill -9 campaign: {r.trials} trials, seed {seed}, FILL_DONE cleared {latch_ms:g} ms "
          f"after the permit, {time.monotonic() - started:.0f} s")
    print("| what | value |\n|---|---|")
    for name, value in (
            ("valve openings at the rig", r.valve_openings),
            ("fill records (closed)", r.fills_closed),
            ("permits cancelled unused", r.fills_cancelled),
            ("of the records: cylinder gone at restart, valve never seen (over-report)",
             r.over_reports),
            ("records delivered", r.delivered),
            ("records at the city (unique)", r.at_city),
            ("submissions received by the city (409s included)", r.submissions),
            ("permit gone after kill: median s", f"{statistics.median(drops):.2f}"),
            ("permit gone after kill: max s", f"{drops[-1]:.2f}"),
            ("problems", "; ".join(r.problems) or "none")):
        print(f"| {name} | {value} |")
    sys.exit(1 if r.problems else 0)


if __name__ == "__main__":
    main()
