"""The long fault campaign: many trials of each fault kind, one station per kind; prints a table.

    python tests/faults/run_campaign.py --trials 20 --city-minutes 1 [--city-trials 5]
        [--seed N] [--kinds sigstop,link_cut,city_5xx] [--outage 0.2 3] [--keep]

Each trial's line goes to stderr as it ends; the Markdown table, then every problem, to stdout.
Exits 1 when any trial found a problem.
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[2]))
from campaign import KINDS, Settings, Trial, run_trial, start  # noqa: E402

COLUMNS = (
    "kind",
    "trials",
    "valve openings",
    "records",
    "delivered unique",
    "duplicates at city",
    "max permit-off time after fault (s)",
    "integrity",
    "fills under fault",
    "409 resubmissions",
    "watchdog trips",
    "faulted fills ended",
    "problems",
)


def _args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--trials", type=int, default=20, help="trials per device fault kind")
    p.add_argument("--city-trials", type=int, help="trials per city fault kind (default: --trials)")
    p.add_argument(
        "--city-minutes",
        type=float,
        default=1.0,
        help="how long each city fault is held while fills go on",
    )
    p.add_argument(
        "--outage",
        type=float,
        nargs=2,
        default=(0.2, 3.0),
        metavar=("MIN", "MAX"),
        help="how long a device fault lasts, seconds (uniform)",
    )
    p.add_argument("--seed", type=int, default=int(time.time()))
    p.add_argument(
        "--kinds", default=",".join(KINDS), help=f"comma-separated, of: {', '.join(KINDS)}"
    )
    p.add_argument("--keep", action="store_true", help="keep the work folders (logs, stores)")
    args = p.parse_args(argv)
    unknown = [k for k in args.kinds.split(",") if k not in KINDS]
    if unknown:
        p.error(f"unknown kind(s): {', '.join(unknown)}")
    return args


def run_kind(kind: str, trials: int, settings: Settings, seed: int, keep: bool) -> list[Trial]:
    workdir = Path(tempfile.mkdtemp(prefix=f"campaign-{kind}-"))
    rng = random.Random(f"{seed}-{kind}")
    results: list[Trial] = []
    st = start(workdir, settings, kind)
    try:
        for n in range(trials):
            trial = run_trial(st, kind, rng, settings)
            results.append(trial)
            off = "-" if trial.permit_off_s is None else f"{trial.permit_off_s:.3f}"
            print(
                f"{kind} #{n + 1}: {trial.moment} openings={trial.openings} "
                f"records={trial.records} delivered={trial.delivered} permit_off_s={off} "
                f"under_fault={trial.under_fault} resubmitted={trial.resubmissions} "
                f"{trial.seconds:.1f}s problems={len(trial.problems)} {trial.notes or ''}",
                file=sys.stderr,
                flush=True,
            )
    finally:
        st.stop()
        if keep or any(t.problems for t in results):
            print(f"{kind}: work folder kept in {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return results


def row(kind: str, trials: list[Trial]) -> list[str]:
    offs = [t.permit_off_s for t in trials if t.permit_off_s is not None]
    problems = Counter(p.split("\n")[0][:120] for t in trials for p in t.problems)
    integrity = Counter(t.integrity for t in trials)
    chain_bad = sum(t.chain != "ok" for t in trials)
    ends = Counter(t.notes["post_check"] for t in trials if "post_check" in t.notes)
    return [
        kind,
        str(len(trials)),
        str(sum(t.openings for t in trials)),
        str(sum(t.records for t in trials)),
        str(sum(t.delivered for t in trials)),
        str(sum(t.duplicates for t in trials)),
        f"{max(offs):.3f}" if offs else "-",
        ("ok" if set(integrity) == {"ok"} else "FAILED")
        + ("" if not chain_bad else f", chain broken ×{chain_bad}"),
        str(sum(t.under_fault for t in trials)),
        str(sum(t.resubmissions for t in trials)),
        str(sum(t.watchdog_trips for t in trials)),
        ", ".join(f"{k} {n}" for k, n in ends.most_common()) or "-",
        "none" if not problems else f"{sum(problems.values())} (see below)",
    ]


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    settings = Settings(outage_s=tuple(args.outage), city_hold_s=args.city_minutes * 60)
    started = time.monotonic()
    results: dict[str, list[Trial]] = {}
    for kind in args.kinds.split(","):
        city = kind.startswith("city_")
        n = (args.city_trials or args.trials) if city else args.trials
        results[kind] = run_kind(kind, n, settings, args.seed, args.keep)
    print(
        f"fault campaign: seed {args.seed}, {args.trials} trials per device kind, "
        f"{args.city_trials or args.trials} per city kind held {args.city_minutes:g} min, "
        f"device outages {args.outage[0]:g}–{args.outage[1]:g} s, watchdog "
        f"{settings.watchdog_ms} ms (bound {settings.permit_bound_s:.3f} s), "
        f"{time.monotonic() - started:.0f} s\n"
    )
    print("| " + " | ".join(COLUMNS) + " |")
    print("|" + "---|" * len(COLUMNS))
    for kind, trials in results.items():
        print("| " + " | ".join(row(kind, trials)) + " |")
    problems = [
        (kind, i + 1, p)
        for kind, trials in results.items()
        for i, t in enumerate(trials)
        for p in t.problems
    ]
    if problems:
        print("\nproblems:")
        for kind, n, p in problems:
            print(f"- {kind} #{n}: {p}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
