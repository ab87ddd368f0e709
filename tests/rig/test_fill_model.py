"""Model-based test: the fill cycle driving the simulated controller through random days.

A hypothesis state machine plays scans, cylinders placed and removed, the start button, ESTOP,
a hung daemon, crashes and restarts against the pure FillCycle and the simulator's RigModel (the
controller's physics and watchdog, explicit time, no I/O). Invariants: the permit is set only
for a fill whose open row was committed first, while the daemon holds it (or for at most the
watchdog period after the daemon stopped heartbeating); every valve opening ends in exactly one
record that is not a cancellation — every opening that moved gas, that is: an opening of no time
(start, then ESTOP at once) moves none, and no controller reports it.
"""

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from drivers.rig import RigStatus
from simulators.rig_model import RigModel, split_u32
from station.core.fillcycle import (
    MASS_NOISE_G,
    Closed,
    FillContext,
    FillCycle,
    Grant,
    Limits,
    Opened,
    Started,
    Withdraw,
)

TARE, TARGET, WATCHDOG_S = 15000, 14500, 3.0
POINTS = ("fill_permit", "lamp_green", "lamp_red", "buzzer", "valve_open", "cylinder_present",
          "estop", "fill_done", "gross_g", "stable", "overload", "scale_fault", "fault_code")


def status(model: RigModel, t: float) -> RigStatus:
    snap = model.snapshot(now=t)
    values = [snap[p] for p in POINTS]
    return RigStatus(*values)


class Station(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.t = 0.0
        self.model = RigModel(start_delay_s=None, flow_g_per_s=5000, now=0.0)
        self.model.write_holding(1, [round(WATCHDOG_S * 1000)], now=0.0)
        self.cycle = FillCycle(Limits(permit_timeout_s=20, settle_timeout_s=5))
        self.beat, self.beat_at = 0, 0.0
        self.up = True  # the daemon is running (not crashed or hung)
        self.opened: dict[str, FillContext] = {}  # committed open rows
        self.closed: dict[str, bool] = {}  # record id → cancelled
        self.n = 0
        # Restarts that found the cylinder without a gain and cancelled its row: a valve open
        # for no time at all between the crash and the restart cannot be told from none.
        self.no_gain = 0
        self.gas_openings = 0  # valve openings that moved gas (more than the scale's noise)
        self.opened_at_gross: int | None = None
        self.last_gross = 0

    # --- the daemon's side ---------------------------------------------------------------
    def heartbeat(self):
        self.beat = self.beat % 65535 + 1
        self.model.write_holding(0, [self.beat], now=self.t)
        self.beat_at = self.t

    def execute(self, actions):
        for action in actions:
            if isinstance(action, Opened):
                self.opened[action.ctx.record_id] = action.ctx
            elif isinstance(action, Grant):
                self.model.write_holding(4, list(split_u32(action.tare_g)), now=self.t)
                self.model.write_holding(2, list(split_u32(action.target_g)), now=self.t)
                self.model.write_coils(0, [True], now=self.t)
            elif isinstance(action, Withdraw):
                self.model.write_coils(0, [False], now=self.t)
            elif isinstance(action, Closed):
                assert action.ctx.record_id not in self.closed, "a record closed twice"
                self.closed[action.ctx.record_id] = action.cancelled
            elif isinstance(action, Started):
                assert action.ctx.record_id in self.opened

    def observe(self):
        st_ = status(self.model, self.t)
        if st_.permit and not self.cycle.holds_permit:
            self.model.write_coils(0, [False], now=self.t)  # a permit the daemon does not hold
        self.execute(self.cycle.step(st_, self.t, 1_800_000_000 + self.t))

    # --- rules ----------------------------------------------------------------------------
    @precondition(lambda self: self.up)
    @rule()
    def scan_accepted_cylinder(self):
        self.observe()  # the rig as it is now (RigLoop._refresh)
        if self.cycle.phase in ("filling", "settling"):
            return  # busy: the reading is noted and ignored
        if self.cycle.phase == "permitted":
            ctx = self.cycle.ctx
            self.execute([Withdraw("another reading"), Closed(ctx, cancelled=True)])
        self.cycle.reset()
        self.n += 1
        self.cycle.accept(FillContext(
            record_id=f"r{self.n}", decision_id=self.n, cylinder_id=f"C{self.n}",
            info_code=None, tag="X", medium="G13", operator="张三", source="city",
            tare_g=TARE, target_g=TARGET, accepted_at=self.t))
        self.observe()

    @rule(extra=st.integers(min_value=0, max_value=3000))
    def place_cylinder(self, extra):
        """A cylinder stands on the scale — never swapped faster than a running daemon polls
        (a person cannot lift one off and put another on within 0.2 s)."""
        if self.model.snapshot(now=self.t)["cylinder_present"]:
            return
        if self.up and self.cycle.present:
            self.tick(0.2)  # the daemon sees the scale empty first
        self.model.place_cylinder(TARE + extra, now=self.t)

    @rule()
    def remove_cylinder(self):
        self.model.remove_cylinder(now=self.t)

    @rule()
    def press_start(self):
        self.model.press_start(now=self.t)

    @rule(on=st.booleans())
    def estop(self, on):
        self.model.set_estop(on, now=self.t)

    @rule(dt=st.floats(min_value=0.05, max_value=2.0))
    def tick(self, dt):
        """Time passes; a running daemon heartbeats and polls every 0.2 s."""
        end = self.t + dt
        while self.t < end:
            self.t = min(end, self.t + 0.2)
            if self.up:
                self.heartbeat()
                self.observe()
            else:
                self.model.advance(self.t)

    @precondition(lambda self: self.up)
    @rule()
    def crash(self):
        self.up = False  # kill -9 or a hang: nothing heartbeats, nothing observes

    @precondition(lambda self: not self.up)
    @rule()
    def restart(self):
        """A new daemon: permit withdrawn at configure, open rows recovered from the mass."""
        self.up = True
        self.model.write_coils(0, [False], now=self.t)
        self.heartbeat()
        self.cycle = FillCycle(self.cycle.limits)
        st_ = status(self.model, self.t)
        for rid, ctx in self.opened.items():
            if rid in self.closed:
                continue
            gained = st_.gross_g - (ctx.prefill_g or st_.gross_g) if st_.cylinder_present \
                else None
            unused = ctx.started_at is None and gained is not None and gained < MASS_NOISE_G
            self.closed[rid] = unused
            self.no_gain += unused

    # --- invariants ------------------------------------------------------------------------
    @invariant()
    def permit_only_for_a_committed_fill_the_daemon_holds(self):
        snap = self.model.snapshot(now=self.t)
        if not snap["fill_permit"]:
            return
        if self.up:
            ctx = self.cycle.ctx
            assert self.cycle.holds_permit and ctx is not None and ctx.record_id in self.opened
        else:
            assert self.t - self.beat_at <= WATCHDOG_S + 0.25, "the watchdog let it live on"

    @invariant()
    def track_gas(self):
        """Count the openings that moved gas; an opening of no time moves none (and no
        controller reports one, so no daemon can record it)."""
        snap = self.model.snapshot(now=self.t)
        if snap["valve_open"] and self.opened_at_gross is None:
            self.opened_at_gross = self.last_gross = snap["gross_g"]
        if snap["cylinder_present"] and self.opened_at_gross is not None:
            self.last_gross = max(self.last_gross, snap["gross_g"])
        if not snap["valve_open"] and self.opened_at_gross is not None:
            if self.last_gross - self.opened_at_gross > MASS_NOISE_G:
                self.gas_openings += 1
            self.opened_at_gross = None

    @invariant()
    def every_valve_opening_is_or_will_be_a_record(self):
        fills = sum(not cancelled for cancelled in self.closed.values()) + self.no_gain
        running = self.cycle.phase in ("filling", "settling") or not self.up
        open_rows = sum(rid not in self.closed for rid in self.opened)
        assert self.gas_openings <= fills + (open_rows if running else 0) + \
            (1 if self.cycle.phase == "permitted" else 0)

    def teardown(self):
        if not self.up:
            self.restart()
        self.model.remove_cylinder(now=self.t)
        self.tick(8.0)
        self.track_gas()
        fills = sum(not cancelled for cancelled in self.closed.values()) + self.no_gain
        assert self.gas_openings <= fills
        assert all(rid in self.closed for rid in self.opened), "an open row never closed"


Station.TestCase.settings = settings(max_examples=300, stateful_step_count=40, deadline=None)
TestFillModel = Station.TestCase
