"""The fault campaign: one trial per call, a fault injected at a random moment of a fill.

Each kind in KINDS is one function `kind(st, rng, settings, trial)`: it stands a cylinder on the
scale, scans it, lets the fill start, injects its fault at a random moment (of the fill, or
between fills), clears it and proves the station fills again. `run_trial` then applies the
checks every trial shares: no permit left set, every valve opening has exactly one fill record,
every record delivered and stored once at the city, `PRAGMA integrity_check` ok and the hash
chain (`station verify`) ok. A new fault kind is one more function in KINDS.

Used by tests/faults/test_campaign.py (each kind once, short) and run_campaign.py (the long run).
"""

from __future__ import annotations

import random
import signal
import sqlite3
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import store_faults
from stepclock import SteppedClock, build

from simulators.dataset import demo_cylinders, qr_url
from simulators.harness import OPERATORS, RigSpec, SimStation, wait_for
from simulators.rig_model import RigModel
from simulators.tcp_proxy import TcpProxy
from station.store import retention
from station.today import station_today

RIG = "rig-01"
EMPTY_G = 15200  # the demo cylinders' tare: an empty cylinder
START_DELAY_S = 0.05  # the controller opens the valve this long after the permit
VALID = ("valid", "valid_partner", "special_23t0", "by_table")  # cylinders every fill may use


@dataclass(frozen=True)
class Settings:
    """The campaign's numbers; the short test and the long runner differ only here."""

    watchdog_ms: int = 600
    slow_flow_g_per_s: float = 8000.0  # a fill a fault interrupts outlasts the watchdog after it
    quick_flow_g_per_s: float = 30000.0  # every other fill
    outage_s: tuple[float, float] = (0.2, 2.0)  # how long a device stays faulty
    city_hold_s: float = 60.0  # how long a city fault is held while fills go on
    deadline_s: float = 0.5  # the decision deadline (the city, retries included)

    @property
    def poll_s(self) -> float:
        return min(100, self.watchdog_ms // 3) / 1000  # what the harness configures

    @property
    def permit_bound_s(self) -> float:
        """The safety bound: the permit is gone within the watchdog period plus one poll."""
        return self.watchdog_ms / 1000 + self.poll_s


@dataclass
class Trial:
    """One trial's measured numbers and the problems found."""

    kind: str
    moment: str = ""
    openings: int = 0  # valve openings at the rig during the trial
    records: int = 0  # fill records (closed, not cancelled) made during the trial
    delivered: int = 0  # of those, stored at the city (unique record ids)
    duplicates: int = 0  # of those, extra copies stored at the city
    resubmissions: int = 0  # submissions the city answered 409 (it had the record already)
    under_fault: int = 0  # fills judged or recorded while the fault held
    permit_off_s: float | None = None  # fault → permit off, the controller's own clock
    watchdog_trips: int = 0
    integrity: str = ""
    chain: str = ""
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)
    notes: dict[str, Any] = field(default_factory=dict)


class CampaignStation(SimStation):
    """A SimStation whose daemon reaches the rig controller through a TcpProxy (a cable that
    can be pulled); the tests' own Modbus reads go straight to the controller."""

    def __init__(self, workdir: Path, settings: Settings, clock: SteppedClock | None = None,
                 **options: Any):
        super().__init__(
            workdir,
            (RigSpec(RIG, 1),),
            watchdog_ms=settings.watchdog_ms,
            deadline_s=settings.deadline_s,
            rig_options={
                "start_delay_s": START_DELAY_S,
                "flow_g_per_s": settings.quick_flow_g_per_s,
            },
            rig_keys={"permit_timeout_s": 10},
            extra_config="[sync]\nrate_per_s = 0\nbackoff_cap_s = 1\nsubmit_timeout_s = 1\n",
            daemon_env=clock.env() if clock else None,
            **options,
        )
        self.settings, self.clock = settings, clock
        self.proxy: TcpProxy | None = None
        self.codes = [c["info_code"] for k, c in demo_cylinders(station_today()).items() if k in VALID]
        self.refused_code = demo_cylinders(station_today())["scrapped"]["info_code"]
        self.last_code = ""

    def write_config(self, extra: str = "") -> None:
        if self.proxy is None:  # the rig simulator listens by now: put the cable in front
            self.proxy = TcpProxy("127.0.0.1", self.rig_sim.port).start()
        super().write_config(extra)

    def config_text(self) -> str:
        assert self.proxy is not None
        return (
            super()
            .config_text()
            .replace(f"tcp://127.0.0.1:{self.rig_sim.port}", f"tcp://127.0.0.1:{self.proxy.port}")
        )

    def stop(self) -> None:
        try:
            super().stop()
        finally:
            if self.proxy is not None:
                self.proxy.stop()
            store_faults.release(self)  # the store's tmpfs, if it has one

    @property
    def scale(self) -> RigModel:
        """The rig controller's model: its points, physics and counters."""
        return self.rig_sim.rig(self.unit(RIG))

    def next_code(self, rng: random.Random) -> str:
        """A cylinder other than the last one scanned: the same code again within the reader's
        dedup_s is one event, not a second cylinder (as a person swapping cylinders would)."""
        self.last_code = rng.choice([c for c in self.codes if c != self.last_code])
        return self.last_code

    def log_size(self) -> int:
        return self.log_path.stat().st_size

    def logged(self, text: str, since: int) -> bool:
        with open(self.log_path, "rb") as log:
            log.seek(since)
            return text.encode() in log.read()


def start(workdir: Path, settings: Settings, kind: str = "") -> CampaignStation:
    """A running station, the operator logged in, every campaign cylinder in the cache; for the
    kinds of OWN_STATION, the station that kind needs (the store on a tmpfs, a stepped clock)."""
    options: dict[str, Any] = {}
    if kind == "disk_full":
        options = store_faults.station_options(workdir)
    elif kind == "clock_step":
        lib = build()
        if lib is None:
            raise RuntimeError("clock_step needs a C compiler for tests/faults/stepclock.c")
        options = {"clock": SteppedClock(lib, Path(workdir) / "clock-offset")}
    st = CampaignStation(workdir, settings, **options).start()
    try:
        st.badge(RIG, OPERATORS[0][1])
        st.scale.start_delay_s = None  # nobody presses start: each permit is left unused
        st.place(RIG, EMPTY_G)
        for code in st.codes:  # judged by the city, each permit left unused: cached
            d = st.scan(RIG, qr_url(code), settle=False)
            assert d["permit"] == 1 and d["source"] == "city", d
        assert st.scan(RIG, qr_url(st.refused_code), settle=False)["permit"] == 0  # idle again
        st.last_code = st.refused_code
    except BaseException:
        st.stop()
        raise
    return st


# --- filling ----------------------------------------------------------------------------------
def begin_fill(
    st: CampaignStation, code: str, flow: float, auto_start: bool = True
) -> dict[str, Any]:
    """An empty cylinder on the scale, scanned; returns the decision (a permit, or a problem).
    Without `auto_start` nobody presses start: the permit is granted and left unused."""
    if st.scale.snapshot()["cylinder_present"]:
        st.remove(RIG)
    st.scale.flow_g_per_s = flow
    st.scale.start_delay_s = START_DELAY_S if auto_start else None
    st.place(RIG, EMPTY_G)
    d = st.scan(RIG, qr_url(code), settle=False)
    if d["permit"] != 1:
        raise AssertionError(f"cylinder refused: {d['reason']} {d.get('detail')}")
    return d


def wait_mass(st: CampaignStation, fraction: float) -> None:
    """Until the fill is `fraction` of the way to its target (a moment of the fill)."""

    def there() -> bool:
        snap = st.scale.snapshot()
        target = snap["target_net_g"]  # (this fill's, or the same from the one before)
        return target > 0 and snap["gross_g"] >= EMPTY_G + fraction * target

    wait_for(there, 15, f"the fill {fraction:.0%} of the way")


def end_fill(
    st: CampaignStation, d: dict[str, Any], trial: Trial, timeout: float = 20
) -> dict[str, Any]:
    """The fill of decision d once recorded, and the cylinder taken off. The record must weigh
    what the scale weighs (a fill cut short by a fault is recorded with the gas that went in)."""
    fill = st.wait_fill(RIG, d["id"], timeout)
    scale = st.scale.snapshot()
    if fill["state"] != "closed" or fill["gross_g"] != scale["gross_g"]:
        trial.problems.append(
            f"fill {fill['record_id']} {fill['state']} with gross "
            f"{fill['gross_g']} g; the scale shows {scale['gross_g']} g"
        )
    st.remove(RIG)
    return fill


def fill_once(st: CampaignStation, rng: random.Random, flow: float, trial: Trial) -> dict[str, Any]:
    return end_fill(st, begin_fill(st, st.next_code(rng), flow), trial)


MOMENTS = ("filling", "filling", "filling", "permitted", "idle")


def fault_moment(
    st: CampaignStation, rng: random.Random, s: Settings, trial: Trial
) -> dict[str, Any] | None:
    """Bring the rig to a random moment for the fault: mid-fill ("filling"), a permit granted
    and not yet used ("permitted"), or between fills ("idle", no decision: None)."""
    trial.moment = rng.choice(MOMENTS)
    if trial.moment == "idle":
        return None
    filling = trial.moment == "filling"
    d = begin_fill(st, st.next_code(rng), s.slow_flow_g_per_s, auto_start=filling)
    if filling:
        wait_mass(st, rng.uniform(0.1, 0.6))
    else:
        wait_for(lambda: st.scale.snapshot()["fill_permit"], 5, "the permit")
    return d


def end_of_moment(st: CampaignStation, d: dict[str, Any] | None, trial: Trial) -> None:
    """After the fault: a fill that was running is recorded once (by end_fill's checks); a
    permit that was never used is cancelled, no fill."""
    if d is None:
        return
    if trial.moment.startswith("filling"):
        trial.notes["post_check"] = end_fill(st, d, trial)["post_check"]
        return
    fill = st.wait_fill(RIG, d["id"], 20)
    trial.notes["post_check"] = f"unused permit {fill['state']}"
    if fill["state"] != "cancelled":
        trial.problems.append(f"an unused permit ended as a {fill['state']} fill")
    st.remove(RIG)


def outage(rng: random.Random, s: Settings) -> float:
    return rng.uniform(*s.outage_s)


def hold(seconds: float) -> None:
    """Keep a fault in place this long: the fault's duration, not a wait for anything."""
    time.sleep(seconds)


def permit_off_after(st: CampaignStation, t0: float, s: Settings, what: str) -> float:
    """Wait for the controller's permit to drop; return fault → drop on the model's clock."""
    wait_for(lambda: not st.scale.snapshot()["fill_permit"], s.permit_bound_s + 5, what)
    return st.scale.snapshot()["permit_off_at"] - t0


@contextmanager
def frozen(st: CampaignStation) -> Iterator[None]:
    """The daemon stopped (SIGSTOP) inside the block, continued (SIGCONT) after it."""
    assert st.daemon is not None
    st.daemon.send_signal(signal.SIGSTOP)
    try:
        yield
    finally:
        st.daemon.send_signal(signal.SIGCONT)


def refused_while_down(st: CampaignStation, rng: random.Random, trial: Trial) -> None:
    """A cylinder scanned while the controller cannot be reached is refused (fail closed)."""
    st.scale.place_cylinder(EMPTY_G)
    d = st.scan(RIG, qr_url(st.next_code(rng)), settle=False)
    if d["permit"]:
        trial.problems.append("a cylinder was accepted while the controller was unreachable")
    st.scale.remove_cylinder()


def wait_logged(st: CampaignStation, text: str, since: int, timeout: float) -> None:
    wait_for(lambda: st.logged(text, since), timeout, f"the daemon to log {text!r}", every=0.05)


# --- the kinds --------------------------------------------------------------------------------
def sigstop(st: CampaignStation, rng: random.Random, s: Settings, trial: Trial) -> None:
    """The daemon frozen (SIGSTOP) mid-fill: the controller's watchdog must withdraw the permit;
    after SIGCONT the daemon records the fill once and fills again. Between fills: a reading
    typed while it is frozen is judged after SIGCONT, and no permit is set while it is frozen."""
    d = fault_moment(st, rng, s, trial)
    if d is None:
        grants, since = st.scale.snapshot()["permit_grants"], st.last_id()
        with frozen(st):
            st.scale.flow_g_per_s, st.scale.start_delay_s = s.quick_flow_g_per_s, START_DELAY_S
            st.place(RIG, EMPTY_G)
            st.scanners[RIG].send(qr_url(st.next_code(rng)))
            hold(outage(rng, s))
            if st.scale.snapshot()["permit_grants"] != grants:
                trial.problems.append("a permit was granted while the daemon was stopped")
        d = st.wait_decision(RIG, since)
        if d["permit"] != 1:
            raise AssertionError(f"refused after SIGCONT: {d['reason']} {d['detail']}")
        end_fill(st, d, trial)
        return
    t0 = time.monotonic()
    with frozen(st):
        trial.permit_off_s = permit_off_after(st, t0, s, "the watchdog to drop the permit")
        hold(outage(rng, s))
    end_of_moment(st, d, trial)
    fill_once(st, rng, s.quick_flow_g_per_s, trial)  # the daemon recovered


@contextmanager
def controller_down(st: CampaignStation, how: str) -> Iterator[None]:
    """ "reboot": a power cut, registers lost; "server_restart": the Modbus server restarted,
    the registers kept (the watchdog ran on meanwhile)."""
    if how == "reboot":
        st.rig_sim.power_off()
    else:
        st.rig_sim.stop()
    try:
        yield
    finally:
        st.rig_sim.start()


def controller_restart(st: CampaignStation, rng: random.Random, s: Settings, trial: Trial) -> None:
    """The rig controller rebooted (or its server restarted) mid-fill: the fill ends in one
    interrupted record once the daemon is back in touch, and the next fill works."""
    d = fault_moment(st, rng, s, trial)
    how = rng.choice(("reboot", "reboot", "server_restart"))
    trial.moment += f"/{how}"
    mark, t0 = st.log_size(), time.monotonic()
    with controller_down(st, how):
        wait_logged(st, f"event=rig_lost rig={RIG}", mark, 10)
        if d is None:
            refused_while_down(st, rng, trial)
        hold(outage(rng, s))
    wait_logged(st, f"event=rig_connected rig={RIG}", mark, 15)
    if d is not None:
        trial.permit_off_s = max(0.0, st.scale.snapshot()["permit_off_at"] - t0)
    end_of_moment(st, d, trial)
    fill_once(st, rng, s.quick_flow_g_per_s, trial)


def controller_reset(st: CampaignStation, rng: random.Random, s: Settings, trial: Trial) -> None:
    """The controller's registers reset behind a live connection (a PLC program restarted, a
    gateway keeping the TCP session): the daemon must see it and configure the controller
    again (its watchdog period, not the controller's default), and record the fill once."""
    d = fault_moment(st, rng, s, trial)
    mark, t0 = st.log_size(), time.monotonic()
    st.scale.reboot()
    if d is not None:
        trial.permit_off_s = max(0.0, st.scale.snapshot()["permit_off_at"] - t0)
    wait_for(
        lambda: st.scale.snapshot()["watchdog_ms"] == s.watchdog_ms,
        10,
        "the daemon to set the controller's watchdog period again",
        every=0.05,
    )
    trial.notes["reconfigured_s"] = round(time.monotonic() - t0, 3)
    wait_logged(st, f"event=rig_connected rig={RIG}", mark, 10)  # and back in service
    end_of_moment(st, d, trial)
    fill_once(st, rng, s.quick_flow_g_per_s, trial)


def link_cut(st: CampaignStation, rng: random.Random, s: Settings, trial: Trial) -> None:
    """The Modbus TCP link cut (silently, or reset) and restored: the watchdog withdraws the
    permit, the daemon reconnects and records the fill once, and fills again."""
    d = fault_moment(st, rng, s, trial)
    how = rng.choice(("silent", "refuse"))
    trial.moment += f"/{how}"
    assert st.proxy is not None
    mark, t0 = st.log_size(), time.monotonic()
    st.proxy.cut(how)
    try:
        if d is not None:
            trial.permit_off_s = permit_off_after(st, t0, s, "the watchdog to drop the permit")
        wait_logged(st, f"event=rig_lost rig={RIG}", mark, 10)
        if d is None:
            refused_while_down(st, rng, trial)
        hold(outage(rng, s))
    finally:
        st.proxy.restore()
    wait_logged(st, f"event=rig_connected rig={RIG}", mark, 15)
    end_of_moment(st, d, trial)
    fill_once(st, rng, s.quick_flow_g_per_s, trial)


def serial_unplug(st: CampaignStation, rng: random.Random, s: Settings, trial: Trial) -> None:
    """The scanner unplugged and replugged (mid-fill, with half a reading typed, or idle): a
    running fill is untouched, the half reading is lost, and the next reading fills."""
    trial.moment = rng.choice(("filling", "partial", "idle"))
    scanner, flow = st.scanners[RIG], s.slow_flow_g_per_s
    d = None
    if trial.moment == "filling":
        d = begin_fill(st, st.next_code(rng), flow)
        wait_mass(st, rng.uniform(0.1, 0.8))
    elif trial.moment == "partial":
        url = qr_url(rng.choice(st.codes))  # never read whole: not the last code the rig saw
        scanner.send_raw(url[: rng.randrange(1, len(url))].encode())
    mark = st.log_size()
    scanner.unplug()
    try:
        wait_logged(st, f"event=reader_lost rig={RIG}", mark, 10)
        hold(outage(rng, s))
    finally:
        scanner.start()
    wait_logged(st, f"event=reader_recovered rig={RIG}", mark, 15)
    if d is not None:
        fill = end_fill(st, d, trial)
        if fill["post_check"] != "ok":
            trial.problems.append(
                f"a fill ended {fill['post_check']} ({fill['end_reason']}) "
                "though only the scanner was unplugged"
            )
    code = st.next_code(rng)
    d = begin_fill(st, code, s.quick_flow_g_per_s)
    if d["reading"] != qr_url(code):
        trial.problems.append(f"the reading after the replug was {d['reading']!r}")
    end_fill(st, d, trial)


# Each city fault mode: the simulator's faults (as POST /_sim/faults takes them) for one trial.
CITY_MODES: dict[str, Callable[[random.Random], dict[str, Any]]] = {
    "5xx": lambda rng: {"status": rng.choice((500, 502, 503, 504))},
    "429": lambda rng: {"status": 429, "retry_after_s": rng.choice((0, 1, 5, 60))},
    "hang": lambda rng: {"hang": True},
    "slow": lambda rng: {"latency_ms": rng.choice((800, 1500, 3000))},  # past the deadline
    "reset": lambda rng: {"reset": True},  # the request read, then a reset, nothing done
    "reset_after": lambda rng: {"reset_after": True},  # done (stored), then a reset
    "hang_after": lambda rng: {"hang_after": True},  # done (stored), then never answered
    "garbage": lambda rng: {"garbage": True},
    "token": lambda rng: {"expire_tokens": True, "reject_tokens": True},
}


def city_fault(
    st: CampaignStation, rng: random.Random, s: Settings, trial: Trial, *, mode: str
) -> None:
    """The city failing one way for `city_hold_s` while fills go on from the cache; then back,
    and every record made meanwhile arrives exactly once."""
    trial.moment = rng.choice(("idle", "filling"))
    faults = CITY_MODES[mode](rng)
    trial.notes["faults"] = faults
    flow = s.quick_flow_g_per_s
    until = 0.0

    def inject() -> None:
        nonlocal until
        st.city.control(dict(faults))
        until = time.monotonic() + s.city_hold_s

    try:
        if trial.moment == "idle":
            inject()
        d = begin_fill(st, st.next_code(rng), flow)
        if trial.moment == "filling":
            wait_mass(st, rng.uniform(0.1, 0.8))
            inject()
        judged_under = trial.moment == "idle"
        while True:
            if judged_under and d["source"] != "cache":
                trial.problems.append(f"judged from {d['source']} while the city failed")
            end_fill(st, d, trial)
            trial.under_fault += 1
            if judged_under and time.monotonic() >= until:
                break
            d, judged_under = begin_fill(st, st.next_code(rng), flow), True
    finally:
        st.city.clear_faults()


CLOCK_STEPS_S = (-30 * 86400, -86400, -3600, 3600, 86400, 30 * 86400)


def clock_step(st: CampaignStation, rng: random.Random, s: Settings, trial: Trial) -> None:
    """The daemon's wall clock stepped (an NTP step, a bad RTC; its monotonic clock untouched)
    at a random moment, then set right: a fill under way ends in one record; while the clock is
    off the city's, a scan is refused (RIG_FAULT); set right, the station fills again."""
    assert st.clock is not None, "start(..., kind='clock_step') gives the station its clock"
    offset = rng.choice(CLOCK_STEPS_S)
    trial.notes["step_s"] = offset
    d = fault_moment(st, rng, s, trial)
    st.clock.step_to(offset)
    try:
        if trial.moment == "permitted":
            st.remove(RIG)  # the operator takes it off: the unused permit is cancelled
        end_of_moment(st, d, trial)
        st.place(RIG, EMPTY_G)
        refused = st.scan(RIG, qr_url(st.next_code(rng)), settle=False)
        trial.under_fault += 1
        if refused["permit"] or "clock" not in (refused["detail"] or ""):
            trial.problems.append(f"scanned with the clock {offset:+d} s off: {refused}")
        st.remove(RIG)
    finally:
        st.clock.step_to(0)
    fill_once(st, rng, s.quick_flow_g_per_s, trial)


def disk_full(st: CampaignStation, rng: random.Random, s: Settings, trial: Trial) -> None:
    """The store cannot commit (a full tmpfs, else RLIMIT_FSIZE): store_faults.trial_disk_full."""
    out = store_faults.trial_disk_full(st, rng)
    trial.moment = "killed while held" if out["killed_while_held"] else "held, then saved"
    trial.permit_off_s = out["permit_drop_s"]
    trial.under_fault = out["refused_scans"]
    trial.notes["post_check"] = ", ".join(out["post_checks"])


OWN_STATION = ("clock_step", "disk_full")  # each needs a station of its own (see start)

KINDS: dict[str, Callable[[CampaignStation, random.Random, Settings, Trial], None]] = {
    "sigstop": sigstop,
    "controller_restart": controller_restart,
    "controller_reset": controller_reset,
    "link_cut": link_cut,
    "serial_unplug": serial_unplug,
    **{f"city_{mode}": partial(city_fault, mode=mode) for mode in CITY_MODES},
    "clock_step": clock_step,
    "disk_full": disk_full,
}


# --- one trial and the checks every trial shares -----------------------------------------------
@dataclass(frozen=True)
class Counts:
    openings: int
    trips: int
    closed: frozenset[str]


def counts(st: CampaignStation) -> Counts:
    snap = st.scale.snapshot()
    closed = {r["record_id"] for r in st.rows("SELECT record_id FROM fills WHERE state = 'closed'")}
    return Counts(snap["valve_openings"], snap["watchdog_trips"], frozenset(closed))


def run_trial(st: CampaignStation, kind: str, rng: random.Random, s: Settings) -> Trial:
    """One trial of `kind`, then the shared checks; a failure is a problem in the Trial."""
    trial, before, started = Trial(kind), counts(st), time.monotonic()
    try:
        KINDS[kind](st, rng, s, trial)
    except Exception as err:  # noqa: BLE001 - a trial that fails is a finding: record, go on
        trial.problems.append(f"{type(err).__name__}: {err}")
        restore(st)
    check(st, s, trial, before)
    trial.seconds = time.monotonic() - started
    return trial


def restore(st: CampaignStation) -> None:
    """After a failed trial: every fault cleared, the daemon running, the scale empty."""
    st.city.clear_faults()
    if st.proxy is not None:
        st.proxy.restore()
    if not st.rig_sim.running:
        st.rig_sim.start()
    if st.scanners[RIG].master < 0:
        st.scanners[RIG].start()
    if st.daemon is not None and st.daemon.poll() is None:
        st.daemon.send_signal(signal.SIGCONT)


def check(st: CampaignStation, s: Settings, trial: Trial, before: Counts) -> None:
    problem = trial.problems.append
    if st.daemon is None or st.daemon.poll() is not None:
        problem(f"the daemon exited:\n{st.log_tail(20)}")
        st.start_daemon()
    try:
        if st.scale.snapshot()["cylinder_present"]:
            st.remove(RIG)
        wait_for(
            lambda: not st.rows("SELECT 1 FROM fills WHERE state = 'open'"), 20, "no fill left open"
        )
        wait_for(
            lambda: not st.rows("SELECT 1 FROM outbox WHERE state = 'pending'"),
            60,
            "every record delivered",
            every=0.05,
        )
    except TimeoutError as err:
        problem(str(err))
    if trial.permit_off_s is not None and trial.permit_off_s > s.permit_bound_s:
        problem(
            f"the permit outlived the watchdog: off {trial.permit_off_s:.3f} s after the "
            f"fault (bound {s.permit_bound_s:.3f} s)"
        )
    check_records(st, trial, before)
    check_store(st, trial)


def check_records(st: CampaignStation, trial: Trial, before: Counts) -> None:
    """Each valve opening has one fill record; each record is delivered, once, at the city."""
    problem = trial.problems.append
    snap, now = st.scale.snapshot(), counts(st)
    if snap["fill_permit"]:
        problem("the permit is still set after the trial")
    if snap["watchdog_ms"] != st.settings.watchdog_ms:
        problem(
            f"the controller's watchdog period is {snap['watchdog_ms']} ms, configured "
            f"{st.settings.watchdog_ms} ms"
        )
    new = now.closed - before.closed
    trial.openings, trial.records = now.openings - before.openings, len(new)
    trial.watchdog_trips = now.trips - before.trips
    if now.openings != len(now.closed):
        problem(
            f"{trial.openings} valve openings but {trial.records} fill records "
            f"(in all: {now.openings} and {len(now.closed)})"
        )
    outbox = {r["record_id"]: r for r in st.rows("SELECT * FROM outbox")}
    if set(outbox) != now.closed:
        problem("a fill record without its outbox entry, or an entry without its record")
    stuck = {k: r["last_error"] for k, r in outbox.items() if r["state"] != "delivered"}
    if stuck:
        problem(f"records not delivered: {stuck}")
    at_city = Counter(f["record_id"] for f in st.city.fillings)
    submissions = st.city.submissions
    trial.delivered = sum(1 for r in new if at_city[r])
    trial.duplicates = sum(at_city[r] - 1 for r in new if at_city[r] > 1)
    trial.resubmissions = sum(max(0, submissions[r] - 1) for r in new)
    if trial.duplicates:
        problem(f"{trial.duplicates} records stored twice at the city")
    if set(at_city) != now.closed:
        problem(
            f"at the city but not recorded: {sorted(set(at_city) - now.closed)}; "
            f"recorded but not at the city: {sorted(now.closed - set(at_city))}"
        )


def check_store(st: CampaignStation, trial: Trial) -> None:
    """PRAGMA integrity_check and the hash chain, as `station verify` walks it."""
    conn = sqlite3.connect(st.store_path, timeout=5, isolation_level=None)
    try:
        trial.integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
        problems, _ = retention.verify(conn)
    finally:
        conn.close()
    trial.chain = "ok" if not problems else "; ".join(problems[:3])
    if trial.integrity != "ok":
        trial.problems.append(f"integrity_check: {trial.integrity}")
    if problems:
        trial.problems.append(f"station verify: {trial.chain}")
