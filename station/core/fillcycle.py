"""One rig's fill cycle as an explicit state machine: pure, driven by controller status samples.

idle → accepted (verdict OK, waiting for the cylinder on a stable scale, and for the operator's
pre-fill checklist when [checks] asks it) → permitted (tare, target and permit written) →
filling (valve open) → settling (valve closed: done or interrupted, waiting for a stable gross
mass) → ended (record written — once the post-fill checklist is answered when [checks] asks it —
lamps show the result) → idle when the cylinder is taken off. The rig loop executes the actions
it returns.

A checklist question is open while `ctx.pending_check` names its stage; `answer()` takes the
judged answer (station.core.checklist.judge). A pre-fill item found not OK refuses the fill
(CHECK_DEFECT); an unanswered pre-fill question lapses (CHECK_LAPSED) and never holds a permit.
A post-fill answer completes the record; the cylinder leaving, a new reading, a stop or the
deadline close it "not answered" instead, so that no record waits on a person for ever.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from drivers.rig import RigStatus
from station.core.checklist import Outcome, with_measured
from station.core.fillparts import (  # noqa: F401  (re-exported: the cycle's vocabulary)
    MASS_NOISE_G,
    OVER_REPORT,
    RECOVERED,
    Action,
    Closed,
    FillContext,
    Grant,
    Lamps,
    Limits,
    Opened,
    Refused,
    Started,
    Withdraw,
    end_reason,
    post_check,
    torn,
)


class FillCycle:
    """The state of one rig's current cylinder; `step()` is called with every status sample."""

    def __init__(self, limits: Limits):
        self.limits = limits
        self.phase = "idle"
        self.ctx: FillContext | None = None
        self.present = False
        self.settle_since = 0.0
        self.filled_on_scale = False  # the cylinder on the scale was just filled: no new permit

    @property
    def holds_permit(self) -> bool:
        """The permit is the daemon's: granted and not yet over (a permit set otherwise is not)."""
        return self.phase in ("permitted", "filling")

    @property
    def busy(self) -> bool:
        """A fill under way (valve seen open, not yet recorded): a reading now is ignored."""
        return self.phase in ("filling", "settling")

    @property
    def engaged(self) -> bool:
        """A permit held or a fill under way: only a status sample may end it."""
        return self.phase in ("permitted", "filling", "settling")

    @property
    def result(self) -> FillContext | None:
        """The fill just recorded while its cylinder still stands on the scale, for the screen."""
        return self.ctx if self.phase == "ended" and self.ctx and self.ctx.post_check else None

    @property
    def question(self) -> str:
        """The checklist stage waiting for the operator ("pre", "post"), or ""."""
        return self.ctx.pending_check if self.ctx is not None else ""

    def answer(self, stage: str, outcome: Outcome, by: str | None, mono: float) -> list[Action]:
        """The operator's judged answer (outcome.taken) to the open `stage` question.

        pre: items not OK that refuse → Refused CHECK_DEFECT (naming them), else the permit
        follows at the next stable sample; post: the record closes with the answer. An answer
        to no open question of that stage changes nothing ([]).
        """
        ctx = self.ctx
        if ctx is None or ctx.pending_check != stage or not outcome.taken:
            return []
        ctx.pending_check = ""
        ctx.checks[stage] = {"not_ok": [i.key for i in outcome.not_ok], "by": by,
                             "refused": [i.key for i in outcome.refused]}
        if stage == "pre":
            ctx.pre_check = with_measured(ctx.pre_check, outcome.summary)
            ctx.accepted_at = mono  # the permit's own timeout starts now
            if outcome.refused:
                self.phase = "ended"
                labels = "、".join(i.label for i in outcome.refused)
                ctx.extra["defects"] = [i.label for i in outcome.refused]
                return [Refused(ctx, f"pre-fill check: {labels} not OK", "CHECK_DEFECT")]
            return []
        ctx.post_check = with_measured(ctx.post_check, outcome.summary)
        ctx.extra["post_defects"] = [i.label for i in outcome.not_ok]
        return [Closed(ctx)]

    def _unanswered(self, why: str) -> list[Action]:
        """A post-fill question left without an answer: the record closes saying so."""
        ctx = self.ctx
        if ctx is None or ctx.pending_check != "post":
            return []
        ctx.pending_check = ""
        ctx.checks["post"] = {"unanswered": why}
        return [Closed(ctx)]

    def rig_lost(self) -> None:
        """The controller is lost: a verdict waiting for its permit is void (a cylinder seen
        after the gap may be another); a permit or a fill waits for the next sample."""
        if self.phase == "accepted":
            self.reset()

    def void_permit(self) -> None:
        """The permit just asked for (Opened, Grant) is not written (no open row, or another
        cylinder): idle."""
        self.reset()

    def abandon(self) -> bool:
        """A reading's decision failed: idle (True), unless engaged or a record waits for its
        post-fill answer (False, left alone)."""
        if self.engaged or self.question == "post":
            return False
        self.reset()
        return True

    def preempt(self, why: str) -> list[Action]:
        """Another reading replaces the verdict: idle; an unused permit's row closes cancelled
        for `why`. The caller withdraws a held permit first (a failed withdrawal leaves the
        cycle holding it, for the next sample to settle). A fill under way: [], unchanged."""
        if self.busy:
            return []
        flushed = self._unanswered(f"not answered: {why}")
        ctx, permitted = self.ctx, self.phase == "permitted"
        self.reset()
        if flushed:
            return flushed
        if ctx is None or not permitted:
            return []
        ctx.end_reason = why
        return [Closed(ctx, cancelled=True)]

    def stop(self, why: str, wall: float) -> list[Action]:
        """The station stops, its permit withdrawn: a fill under way ends interrupted at `wall`
        (epoch s), last whole mass, "`why` during the fill"; an unused permit is cancelled."""
        ctx, actions = self.ctx, []
        if ctx is not None and self.busy:
            ctx.ended_at, ctx.end_reason = wall, f"{why} during the fill"
            ctx.gross_g, ctx.post_check = ctx.last_gross_g, "interrupted"
            actions = [Closed(ctx)]
        elif ctx is not None and self.phase == "permitted":
            ctx.end_reason = why
            actions = [Closed(ctx, cancelled=True)]
        else:
            actions = self._unanswered(f"not answered: {why}")
        self.reset()
        return actions

    def recover(self, row: Mapping[str, Any], status: RigStatus, wall: float) -> Closed:
        """The end of a fill a crash left open (`row`: its open row, columns RECOVERED), judged
        from the rig now, at `wall` (epoch s); the cycle is unchanged. Cancelled only when the
        valve was never seen open and the cylinder stands there without a gain (g); else
        recorded with the mass now: "done" when the controller cut off at target (FILL_DONE
        and a gain beyond start_gain_g), otherwise interrupted (OVER_REPORT if never seen open).
        """
        present = status.cylinder_present
        gained = status.gross_g - (row["prefill_g"] or status.gross_g) if present else None
        ctx = FillContext(**{k: row[k] for k in RECOVERED})
        ctx.pre_check = row.get("pre_check") or "ok"  # (residual note, the checklist's answer)
        ctx.checks = json.loads(row["checks"]) if row.get("checks") else {}
        ctx.ended_at, ctx.end_reason = wall, "station restarted during the fill"
        ctx.gross_g = status.gross_g if present else None
        ctx.post_check = "interrupted"
        if status.fill_done and gained is not None and \
                gained > self.limits.start_gain_g:  # the controller cut off at target
            ctx.end_reason = "done"  # (the latch is this fill's: gas went in since its row)
            ctx.post_check = post_check(ctx, self.limits) + \
                ("" if status.stable else " (scale not stable)")
        # Unused only when provably so: valve never seen open and the cylinder still on the
        # scale without a gain. A cylinder gone since cannot tell: recorded (over-report).
        unused = row["started_at"] is None and gained is not None and gained < MASS_NOISE_G
        if unused:
            ctx.end_reason = "station restarted: the valve was never seen open"
        elif row["started_at"] is None and not present:
            ctx.end_reason = f"{OVER_REPORT}; the cylinder was gone"
        elif row["started_at"] is None and gained is not None and \
                gained <= self.limits.start_gain_g:
            ctx.end_reason = f"{OVER_REPORT}; it gained {gained / 1000:.2f} kg (a clamped head?)"
        return Closed(ctx, cancelled=unused)

    def accept(self, ctx: FillContext) -> None:
        """A verdict allowed this cylinder; the permit follows once it stands on a stable scale
        (and the pre-fill checklist is answered, when asked: from ctx.accepted_at)."""
        self.phase, self.ctx = "accepted", ctx
        if self.limits.ask_pre:
            ctx.pending_check, ctx.asked_mono = "pre", ctx.accepted_at

    def reset(self) -> None:
        self.phase, self.ctx = "idle", None

    def step(self, st: RigStatus, mono: float, wall: float) -> list[Action]:
        if torn(st) and self.phase in ("accepted", "settling"):
            return []  # a mass is about to be taken: wait for a whole sample
        removed = self.present and not st.cylinder_present
        self.present = st.cylinder_present
        if not st.cylinder_present:
            self.filled_on_scale = False
        handler = getattr(self, f"_{self.phase}")
        actions = handler(st, mono, wall, removed)
        if removed and self.phase == "ended":
            actions += self._unanswered("not answered: cylinder removed")
            self.reset()
            actions.append(Lamps(False, False))
        return actions

    def _idle(self, st: RigStatus, mono: float, wall: float, removed: bool) -> list[Action]:
        return [Lamps(False, False)] if removed else []

    def _accepted(self, st: RigStatus, mono: float, wall: float, removed: bool) -> list[Action]:
        ctx = self._ctx()
        asking = ctx.pending_check == "pre"
        if removed or (not asking and mono - ctx.accepted_at > self.limits.permit_timeout_s):
            self.reset()  # the verdict was for the cylinder that stood there: void with it
            return [Lamps(False, False)]
        if asking and mono - ctx.asked_mono > self.limits.answer_within_s:
            self.phase = "ended"  # a tablet left on the checklist never holds a permit
            ctx.pending_check = ""
            ctx.checks["pre"] = {"unanswered": f"lapsed after {self.limits.answer_within_s:.0f} s"}
            return [Refused(ctx, "pre-fill checklist not answered in time", "CHECK_LAPSED")]
        if asking:
            return []
        if not (st.cylinder_present and st.stable and st.healthy) or self.filled_on_scale:
            return []  # (a just-filled cylinder must leave the scale before the next permit)
        if ctx.judged_g is not None and abs(st.gross_g - ctx.judged_g) > ctx.swap_g:
            self.phase = "ended"
            return [Refused(ctx, f"gross {st.gross_g / 1000:.2f} kg at the permit, "
                            f"{ctx.judged_g / 1000:.2f} kg at the verdict", "MASS_MISMATCH")]
        ctx.prefill_g = st.gross_g
        residual = st.gross_g - ctx.tare_g
        limit = self.limits.max_residual_g
        if limit is not None and residual > limit:
            ctx.pre_check = f"residual {residual / 1000:.2f} kg"
            if self.limits.refuse_residual:
                self.phase = "ended"
                return [Refused(ctx, ctx.pre_check)]
        ctx.permitted_at, ctx.permitted_mono = wall, mono
        self.phase = "permitted"
        return [Opened(ctx), Grant(ctx.tare_g, ctx.target_g)]

    def _permitted(self, st: RigStatus, mono: float, wall: float, removed: bool) -> list[Action]:
        ctx = self._ctx()
        if not st.fill_done:
            ctx.extra["latch_low"] = True  # the previous cylinder's FILL_DONE has cleared
        if st.valve_open or self._filled_unseen(st):
            ctx.started_at = wall  # (the valve may have opened and closed between two samples)
            self.phase = "filling"
            return self._filling(st, mono, wall, removed)
        expired = mono - ctx.permitted_mono > self.limits.permit_timeout_s
        if removed or expired:  # an unused permit: cancelled, lamps out, no fill
            ctx.end_reason = "cylinder removed" if removed else "permit unused: expired"
            self.reset()
            return [Withdraw(ctx.end_reason), Closed(ctx, cancelled=True), Lamps(False, False)]
        if self._swapped(st):  # lighter than the cylinder weighed: another one stands there
            ctx.end_reason = (f"gross fell to {st.gross_g / 1000:.2f} kg from "
                              f"{(ctx.prefill_g or 0) / 1000:.2f} kg: cylinder swapped")
            self.phase = "ended"
            return [Withdraw(ctx.end_reason), Closed(ctx, cancelled=True),
                    Refused(ctx, ctx.end_reason, "MASS_MISMATCH")]
        if not st.healthy or not st.permit:  # ESTOP, fault or watchdog before the valve opened
            ctx.end_reason = end_reason(st)
            self.phase = "ended"
            return [Withdraw(ctx.end_reason), Closed(ctx, cancelled=True), Lamps(False, True)]
        return []

    @staticmethod
    def _first_sample_filling(ctx: FillContext) -> bool:
        first = not ctx.extra.get("started_recorded")
        ctx.extra["started_recorded"] = True
        return first

    def _swapped(self, st: RigStatus) -> bool:
        """The gross fell by more than the swap tolerance while the permit was held."""
        ctx = self._ctx()
        return st.cylinder_present and st.stable and not torn(st) and \
            ctx.prefill_g is not None and ctx.prefill_g - st.gross_g > ctx.swap_g

    def _filled_unseen(self, st: RigStatus) -> bool:
        """Mass went in, or the controller latched FILL_DONE for this permit, though no sample
        saw the valve open. A FILL_DONE not yet seen low since the permit may be the previous
        cylinder's latch (rig-modbus.md: it can read 1 for a few hundred ms after the permit
        write): it counts only with a gain beyond what a clamped filling head explains."""
        ctx = self._ctx()
        gained = st.cylinder_present and st.stable and ctx.prefill_g is not None and \
            st.gross_g - ctx.prefill_g > self.limits.start_gain_g  # (a hand pressing on it
        return gained or (st.fill_done and bool(ctx.extra.get("latch_low")))  # is not stable)

    def _filling(self, st: RigStatus, mono: float, wall: float, removed: bool) -> list[Action]:
        ctx = self._ctx()
        if st.cylinder_present and not torn(st):
            last = ctx.extra.get("last_sample")  # (mono, gross): the flow between two samples
            if last is not None and mono > last[0] and st.valve_open:
                ctx.extra["flow_g_per_s"] = (st.gross_g - last[1]) / (mono - last[0])
            ctx.extra["last_sample"] = (mono, st.gross_g)
            ctx.last_gross_g = st.gross_g
        if st.valve_open and (removed or not st.healthy):
            return [Withdraw(end_reason(st))]  # the controller closes too; make sure
        if st.valve_open and st.gross_g - ctx.tare_g > ctx.target_g + self.limits.tolerance_g:
            return [Withdraw("over target: the controller did not cut off")]
        if st.valve_open:
            return [Started(ctx)] if self._first_sample_filling(ctx) else []
        ctx.ended_at, ctx.end_reason = wall, end_reason(st)
        self.phase, self.settle_since = "settling", mono
        actions: list[Action] = [] if not st.permit else [Withdraw(ctx.end_reason)]
        return actions + self._settling(st, mono, wall, removed)

    def _settling(self, st: RigStatus, mono: float, wall: float, removed: bool) -> list[Action]:
        ctx = self._ctx()
        waited = mono - self.settle_since
        if st.cylinder_present and not st.stable and waited < self.limits.settle_timeout_s:
            return []
        ctx.gross_g = st.gross_g if st.cylinder_present else ctx.last_gross_g
        if ctx.end_reason == "cylinder removed":  # the scale's last word, not a content
            flow = ctx.extra.get("flow_g_per_s")
            ctx.end_reason += (f"; mass last seen before the removal ({(ctx.net_g or 0) / 1000:.2f}"
                               " kg net" + (f", filling at {flow / 1000:.1f} kg/s" if flow else "")
                               + "): the content is that or more")
        ctx.post_check = post_check(ctx, self.limits)
        # a cylinder filled to its target stays unfillable until it leaves the scale; one whose
        # fill was interrupted may be scanned again to finish it
        self.filled_on_scale = st.cylinder_present and ctx.end_reason == "done"
        if st.cylinder_present and not st.stable:
            ctx.post_check += " (scale not stable)"
        self.phase = "ended" if st.cylinder_present else "idle"
        good = ctx.post_check == "ok"
        alarm = ctx.post_check.startswith(("overfill", "interrupted"))
        lamps = Lamps(green=good or ctx.post_check.startswith("underfill"),
                      red=not good and alarm, buzzer=not good)
        if self.limits.ask_post and self.phase == "ended":
            ctx.pending_check, ctx.asked_mono = "post", mono  # the record waits for the answer
            return [lamps]
        if self.limits.ask_post:
            ctx.checks["post"] = {"unanswered": "not answered: cylinder removed"}
        return [Closed(ctx), lamps]

    def _ended(self, st: RigStatus, mono: float, wall: float, removed: bool) -> list[Action]:
        ctx = self.ctx
        if ctx is not None and ctx.pending_check == "post" and \
                mono - ctx.asked_mono > self.limits.answer_within_s:
            return self._unanswered(f"not answered within {self.limits.answer_within_s:.0f} s")
        return []

    def _ctx(self) -> FillContext:
        if self.ctx is None:
            raise RuntimeError(f"fill cycle in phase {self.phase} without a cylinder")
        return self.ctx
