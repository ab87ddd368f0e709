"""`station demo`: the station on simulators, a scan sequence, and a table of what it decided."""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from station.core.texts import reason_text
from station.store.db import Store
from station.today import station_today


@dataclass(frozen=True)
class Step:
    rig: str
    reading: str | bytes
    expect: str  # reason code, or OK / OK+WARNING
    note: str
    # an action on the simulators first: city_down, city_up, or weigh:G (the rig's cylinder
    # swapped for one of G grams; weigh:0 takes it off)
    before: str = ""
    via: str = "scanner"  # or rfid: the tags (joined by "+") held in the RFID reader's field


def steps() -> list[Step]:
    from simulators.dataset import demo_cylinders, qr_url

    cylinders = demo_cylinders(station_today())
    c = {k: v["info_code"] for k, v in cylinders.items()}
    q = qr_url
    return [
        Step("rig-01", q(c["valid"]), "OK", "valid cylinder, city lookup"),
        Step("rig-01", q(c["valid_partner"]), "OK", "a unit the station fills for"),
        Step("rig-01", q(c["due_soon"]), "OK+INSPECTION_DUE_SOON", "inspection due this month"),
        Step("rig-01", q(c["valid"]), "OK", "same cylinder again: its permit went unused, "
             "so no refill warning"),
        Step("rig-01", c["special_23t0"], "OK", "bare information code, 23T0 at 19 years"),
        Step("rig-01", cylinders["life_last_month"]["product_no"], "OK",
             "12-digit traceable number, at its last month of service life"),
        Step("rig-02", q(c["valid"]), "NO_OPERATOR", "nobody logged in at rig-02"),
        Step("rig-03", q(c["valid"]), "RIG_FAULT", "emergency stop pressed at rig-03"),
        Step("rig-01", b"\xff\xfe\x9c garbage \x00", "TAG_UNREADABLE", "not UTF-8 text"),
        Step("rig-01", "https://qr.evil.example/c/500112CQ0000000001", "TAG_FOREIGN",
             "forged label: foreign host"),
        Step("rig-01", "javascript:alert(1)", "TAG_FOREIGN", "hostile QR payload"),
        Step("rig-01", q(c["blocklisted"]), "BLOCKLISTED", "manager blocked this cylinder"),
        Step("rig-01", q("500112CQ9999999999"), "NOT_REGISTERED", "unknown: black cylinder?"),
        Step("rig-01", q(c["bad_record"]), "BAD_RECORD", "city record malformed"),
        Step("rig-01", q(c["no_registration"]), "NO_USE_REGISTRATION", "no registration cert"),
        Step("rig-01", q(c["scrapped"]), "SCRAPPED", "status 报废"),
        Step("rig-01", q(c["stopped"]), "STOPPED", "status 停用"),
        Step("rig-01", q(c["foreign_unit"]), "FOREIGN_UNIT", "another unit's cylinder"),
        Step("rig-01", q(c["wrong_medium"]), "WRONG_MEDIUM", "oxygen cylinder at an LPG rig"),
        Step("rig-01", q(c["overdue"]), "INSPECTION_OVERDUE", "due last month"),
        Step("rig-01", q(c["life_exceeded"]), "SERVICE_LIFE_EXCEEDED", "LPG welded, 15 y + 1 m"),
        Step("rig-01", q(c["valid_partner"]), "OK", "city down: the cached record (source cache)",
             before="city_down"),
        Step("rig-01", q(c["offline_uncached"]), "CITY_UNAVAILABLE", "city down, never cached"),
        Step("rig-01", q(c["by_table"]), "OK", "city back; tare/target from the type table",
             before="city_up"),
        Step("rig-01", q(c["valid_partner"]), "MASS_MISMATCH",
             "6.5 kg on the scale, record tare 15.2 kg: another cylinder wears this tag",
             before="weigh:6500"),
        Step("rig-01", q(c["valid_partner"]), "CYLINDER_FULL", "29.8 kg: already full",
             before="weigh:29800"),
        Step("rig-01", q(c["valid_partner"]), "NO_CYLINDER",
             "scanned with the scale empty; nobody put a cylinder down", before="weigh:0"),
        Step("rig-01", f"{cylinders['rfid']['rfid_uid']}+{NEIGHBOUR_UID}", "AMBIGUOUS_TAGS",
             "RFID field: this cylinder's tag and a neighbour's", before="weigh:15200",
             via="rfid"),
    ]


NEIGHBOUR_UID = "E2801160600002084C1A2B99"


def width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def pad(text: str, n: int) -> str:
    return text + " " * max(0, n - width(text))


COLUMNS = (("#", 3), ("rig", 7), ("reading", 30), ("cylinder", 11), ("verdict", 8),
           ("reason", 22), ("原因", 26), ("source", 7), ("permit", 7), ("ms", 7), ("check", 6))


def row(values: list[str]) -> str:
    return " ".join(pad(v, w) for v, (_, w) in zip(values, COLUMNS, strict=True))


def short(reading: str | bytes) -> str:
    text = reading if isinstance(reading, str) else repr(reading)[2:-1]
    return text if len(text) <= 30 else text[:12] + "…" + text[-16:]


def outcome(d: dict) -> str:
    if not d["permit"]:
        return d["reason"]
    return "OK" + (f"+{d['warnings']}" if d["warnings"] else "")


def prepare(station, step: Step) -> None:
    """The step's action on the simulators, before its reading."""
    from simulators.harness import wait_for

    if step.before == "city_down":
        station.city.set_faults(status=503)
    elif step.before == "city_up":
        station.city.clear_faults()
    elif step.before.startswith("weigh:"):
        station.remove(step.rig)
        if int(step.before[6:]):
            station.place(step.rig, int(step.before[6:]))
            wait_for(lambda: station.live(step.rig).get("present"), 5, "the cylinder seen")


def rfid_scan(station, rig: str, tags: list[str]) -> dict:
    """Hold tags in the rig's RFID field until the daemon decides on all of them; the last
    decision (the one the rig shows)."""
    from simulators.harness import wait_for

    since, rfid = station.last_id(), station.rfids[rig]
    store = Store(str(station.store_path), readonly=True)

    def decided() -> list[dict]:
        return [d for d in store.decisions(since) if d["rig"] == rig]

    for tag in tags:
        rfid.enter(tag)
    try:
        wait_for(lambda: len(decided()) >= len(tags), 10, "the RFID decisions")
        last = decided()[-1]
    finally:
        rfid.leave()
        store.close()
    wait_for(lambda: station.shows(rig, bool(last["permit"])), 5, f"{rig} to show the verdict")
    return last


def reading_at(station, step: Step) -> dict:
    """Play a step's reading at its rig (after its action) and return the decision."""
    prepare(station, step)
    if step.via == "rfid":
        return rfid_scan(station, step.rig, step.reading.split("+"))
    return station.scan(step.rig, step.reading)


def play(station, step: Step, n: int) -> tuple[str, bool]:
    d = reading_at(station, step)
    got = outcome(d)
    permit = station.coils(step.rig)["permit"]
    ok = got == step.expect and permit == bool(d["permit"])
    code = d["reason"] or (d["warnings"] or "")
    text = reason_text(code.split(",")[0]) if code else None
    line = row([str(n), step.rig, short(step.reading), d["cylinder_id"] or "-",
                "允许" if d["permit"] else "禁止", code or "OK",
                text.zh if text else "允许充装", d["source"], "1" if permit else "0",
                f"{d['latency_ms']:.0f}", "ok" if ok else "FAIL"])
    return line, ok


def setup_station(workdir: Path):
    from simulators.dataset import demo_cylinders
    from simulators.harness import OPERATORS, RigSpec, SimStation

    rigs = (RigSpec("rig-01", 1, rfid=True), RigSpec("rig-02", 2), RigSpec("rig-03", 3))
    station = SimStation(workdir, rigs, deadline_s=1.0, rig_options={"start_delay_s": None},
                         rig_keys={"hold_reading_s": 1.5})
    station.start()
    try:
        for rig in rigs:
            station.place(rig.id)  # an empty LPG cylinder stands on every scale
        station.block(demo_cylinders(station_today())["blocklisted"]["id"], "演示：钢印不清，待查")
        station.badge("rig-01", OPERATORS[0][1])
        station.badge("rig-03", OPERATORS[1][1])
        station.rig_sim.rig(3).set_estop(True)
    except BaseException:
        station.stop()
        raise
    return station


def run_demo(interactive: bool = False, keep: bool = False, fills: bool = True) -> int:
    """Run the demo; 0 when every step gave the verdict expected. `fills`: the whole fills too."""
    workdir = Path(tempfile.mkdtemp(prefix="station-demo-"))
    started = time.monotonic()
    print("station demo: starting the city simulator, 3 rig controllers (Modbus TCP), 3 scanner "
          "ptys and the daemon …", flush=True)
    station = setup_station(workdir)
    failures = 0
    try:
        print(f"daemon running (pid {station.daemon.pid}); operator 张三 logged in at rig-01 by "
              f"badge; rig-03 has its emergency stop pressed\n")
        if interactive:
            return interact(station)
        print(row([c for c, _ in COLUMNS]))
        for n, step in enumerate(steps(), 1):
            line, ok = play(station, step, n)
            failures += not ok
            print(line + ("" if ok else f"   expected {step.expect}"), flush=True)
        store = Store(str(station.store_path), readonly=True)
        latencies = [r["latency_ms"] for r in store.decisions(limit=1_000_000)]
        store.close()
        print(f"\n{len(latencies)} decisions in {time.monotonic() - started:.1f} s; "
              f"each recorded in {station.store_path.name} before the rig was told.")
        if fills:
            print("\nWhole fills at rig-01 (start button pressed by the simulator, 10 kg/s):")
            from station.app.demo_fills import play_fills

            failures += play_fills(station)
            print("\nA fill with the operator's checklists and a photo ([checks] ask = "
                  '"screen", a camera at rig-01):')
            from station.app.demo_checks import play_checked_fill

            failures += play_checked_fill(workdir)
    finally:
        code = station.stop_daemon()
        station.stop()
        print(f"daemon stopped on SIGTERM (exit {code}); every permit withdrawn first.")
        if keep:
            print(f"work folder kept: {workdir} (station.toml, station.db, station.log)")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    if failures:
        print(f"demo: {failures} step(s) did not give the expected verdict", file=sys.stderr)
    return 1 if failures else 0


def interact(station) -> int:
    print("type a reading (QR URL, information code, 12-digit number) to scan it at the rig;\n"
          "':rig rig-02' switches rig, ':city down' / ':city up' breaks or mends the city, "
          "':estop on|off', ':quit'")
    rig = "rig-01"
    for line in sys.stdin:
        text = line.strip()
        if text in (":quit", ":q"):
            break
        if text.startswith(":rig "):
            rig = text.split()[1]
        elif text.startswith(":city"):
            station.city.set_faults(status=503) if text.endswith("down") else \
                station.city.clear_faults()
        elif text.startswith(":estop"):
            station.rig_sim.rig(station.unit(rig)).set_estop(text.endswith("on"))
        elif text:
            out, _ = play(station, Step(rig, text, "?", "typed"), 0)
            print(out.rsplit(" ", 1)[0], flush=True)
    return 0
