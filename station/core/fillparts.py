"""The fill cycle's parts: what it knows of a cylinder (FillContext), its limits, its actions.

Pure values and functions shared by the fill cycle (station.core.fillcycle), the rig loop that
executes its actions and the fill record (station.core.fills).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from drivers.rig import RigStatus
from station.config import ChecksConfig, FillConfig, RigConfig

MASS_NOISE_G = 50  # a gain above this means gas went in
# A fill recovered after a crash whose valve was never seen open and whose cylinder has left:
# whether gas went in cannot be told, so it is recorded (an over-report rather than a loss).
OVER_REPORT = "station restarted: valve never seen open, recorded in case it did"
# The open row's columns a recovered fill's record is rebuilt from (store.open_fills()).
RECOVERED = ("record_id", "decision_id", "cylinder_id", "info_code", "tag", "medium", "operator",
             "source", "tare_g", "target_g", "cache_age_s", "override_by", "override_reason",
             "prefill_g", "permitted_at", "started_at")


def torn(st: RigStatus) -> bool:
    """A cylinder present on a scale that reads empty: a sample read across a placement or a
    removal (presence and mass come from two Modbus requests). Its mass is not to be used."""
    return st.cylinder_present and st.gross_g <= MASS_NOISE_G


@dataclass
class FillContext:
    """What the cycle knows about the cylinder it is filling; becomes the fill record."""

    record_id: str
    decision_id: int
    cylinder_id: str | None
    info_code: str | None
    tag: str
    medium: str
    operator: str | None
    source: str
    tare_g: int
    target_g: int
    cache_age_s: float | None = None
    override_by: str | None = None
    override_reason: str | None = None
    accepted_at: float = 0.0  # monotonic
    judged_g: int | None = None  # the stable gross (g) the verdict weighed the cylinder at
    swap_g: int = 500  # a change of the gross beyond this (g) without gas is another cylinder
    prefill_g: int | None = None
    pre_check: str = "ok"
    permitted_at: float | None = None  # wall clock (epoch seconds) from here on
    permitted_mono: float = 0.0  # when the permit was granted, for its expiry (clock steps)
    started_at: float | None = None
    ended_at: float | None = None
    last_gross_g: int | None = None
    gross_g: int | None = None
    end_reason: str = ""
    post_check: str = ""
    # The operator's checklists (station.core.checklist): the stage asked and not yet answered
    # ("pre" before the permit, "post" before the record closes), since when (monotonic s),
    # and the answers by stage ({"pre": {"not_ok": [...], "skipped": [...], "by": …}, …}).
    pending_check: str = ""
    asked_mono: float = 0.0
    checks: dict[str, Any] = field(default_factory=dict)
    photo_sha256: str | None = None  # the photo taken at the grant (station.store.photos)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def net_g(self) -> int | None:
        return None if self.gross_g is None else self.gross_g - self.tare_g


@dataclass(frozen=True)
class Limits:
    """The configured numbers the cycle needs, in g and s; defaults are the configuration's."""

    permit_timeout_s: float = RigConfig.permit_timeout_s
    tolerance_g: int = round(FillConfig.tolerance_kg * 1000)
    max_residual_g: int | None = None  # None: no residual check
    refuse_residual: bool = FillConfig.refuse_residual
    settle_timeout_s: float = FillConfig.settle_timeout_s
    # A gain above this (g) with the valve never seen open is a fill the samples missed; below
    # it, weight put on with the valve shut (a clamped filling head weighs ~150 g).
    start_gain_g: int = round(FillConfig.start_gain_kg * 1000)
    # The operator's checklists ([checks]): asked before the permit / before the record closes;
    # an unanswered question lapses after answer_within_s (pre: refused, post: not answered).
    ask_pre: bool = False
    ask_post: bool = False
    answer_within_s: float = ChecksConfig.answer_within_s


# Actions for the rig loop.
@dataclass(frozen=True)
class Grant:
    tare_g: int
    target_g: int


@dataclass(frozen=True)
class Withdraw:
    why: str


@dataclass(frozen=True)
class Lamps:
    green: bool
    red: bool
    buzzer: bool = False


@dataclass(frozen=True)
class Opened:
    """The fill row is to be committed as open (before the permit is written)."""

    ctx: FillContext


@dataclass(frozen=True)
class Started:
    """The valve was seen open: the open fill row learns it (a crash now is a fill)."""

    ctx: FillContext


@dataclass(frozen=True)
class Closed:
    """The fill is over: commit the record and its outbox entry (or cancel an unused permit)."""

    ctx: FillContext
    cancelled: bool = False


@dataclass(frozen=True)
class Refused:
    """The pre-fill check refused the cylinder: `reason` is a reason code (texts.REASONS)."""

    ctx: FillContext
    why: str
    reason: str = "RESIDUAL_HIGH"


Action = Grant | Withdraw | Lamps | Opened | Started | Closed | Refused


def post_check(ctx: FillContext, limits: Limits) -> str:
    """ok / overfill / underfill for a fill the controller ended at target; else interrupted."""
    if ctx.end_reason != "done":
        return "interrupted"
    net = ctx.net_g if ctx.net_g is not None else 0
    if net > ctx.target_g + limits.tolerance_g:
        return "overfill"
    if net < ctx.target_g - limits.tolerance_g:
        return "underfill"
    return "ok"


def end_reason(st: RigStatus) -> str:
    """Why the valve closed: the controller's cut-off at target, or something that interrupted."""
    if st.fill_done:
        return "done"
    if st.estop:
        return "ESTOP"
    if not st.cylinder_present:
        return "cylinder removed"
    if not st.healthy:
        return st.fault_text() or "scale fault"
    if not st.permit:
        return "permit withdrawn (daemon, watchdog or controller)"
    return "valve closed by the controller"
