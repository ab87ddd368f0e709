"""What the operator sees and hears: one pure function from a rig's picture to screen and lamps.

The rig loop publishes a *picture* of its rig (RigLoop.publish: connection, controller flags,
fill-cycle phase, the current verdict, the result of the fill just ended, …). `screen(picture)`
turns it into the one state the operator perceives: the screen's Chinese headline and what to
do, the small English second line, the colour, and the lamps the controller shows. The daemon
writes the lamps from it and the web page shows the rest from it, so the two never disagree.

Pure: no I/O, no clock reads. `stale` (the web's judgement that the daemon stopped publishing)
and `store_unreadable` (the web cannot read the store) are passed in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from station.core.texts import SCREENS, reason_text

# Every state, most urgent first: the first that applies is the one shown.
STATES = ("daemon_gone", "controller_lost", "store_fault", "estop", "scale_overload",
          "scale_fault", "filling", "settling", "done_ok", "overfill", "underfill", "interrupted",
          "permitted", "checking", "accepted", "refused", "held", "no_operator", "idle")


@dataclass(frozen=True)
class LampSet:
    """The controller's operator lamps and whether this state sounds the buzzer (a pulse)."""

    green: bool
    red: bool
    buzz: bool = False


OFF, GREEN, RED = LampSet(False, False), LampSet(True, False), LampSet(False, True)
RED_BUZZ, GREEN_BUZZ = LampSet(False, True, True), LampSet(True, False, True)

# state → (colour, lamps); lamps None: nothing can be written (no controller to write to).
LOOK: dict[str, tuple[str, LampSet | None]] = {
    "daemon_gone": ("dark", None), "controller_lost": ("dark", None),
    "store_fault": ("red", RED_BUZZ), "estop": ("red", RED), "scale_overload": ("red", RED),
    "scale_fault": ("red", RED), "filling": ("blue", GREEN), "settling": ("blue", GREEN),
    "done_ok": ("green", GREEN), "overfill": ("red", RED_BUZZ),
    "underfill": ("amber", GREEN_BUZZ), "interrupted": ("red", RED_BUZZ),
    "permitted": ("green", GREEN), "checking": ("amber", OFF), "accepted": ("green", GREEN),
    "refused": ("red", RED_BUZZ),
    "held": ("amber", OFF), "no_operator": ("grey", OFF), "idle": ("grey", OFF),
}


@dataclass(frozen=True)
class Screen:
    """What the operator perceives of one state."""

    state: str
    headline: str  # Chinese: what it is and, where needed, what to do next
    detail: str  # Chinese, second large line: the reason, the kg over, …
    en: str  # the small English line under it
    colour: str  # green / red / amber / blue / grey / dark
    lamps: LampSet | None
    key: str  # changes when a new verdict or result is shown: a new buzzer pulse

    def as_dict(self) -> dict[str, Any]:
        lamps = None if self.lamps is None else {
            "green": self.lamps.green, "red": self.lamps.red, "buzz": self.lamps.buzz}
        return {"state": self.state, "headline": self.headline, "detail": self.detail,
                "en": self.en, "colour": self.colour, "lamps": lamps, "key": self.key}


def state_of(p: dict[str, Any], stale: bool = False, store_unreadable: bool = False) -> str:
    """The one state a rig's picture is in (STATES order: the most urgent first)."""
    verdict, result, phase = p.get("verdict") or {}, p.get("result") or {}, p.get("phase")
    checks = {"ok": "done_ok", "overfill": "overfill", "underfill": "underfill",
              "interrupted": "interrupted"}
    for state, applies in (
        ("daemon_gone", stale),
        ("store_fault", store_unreadable),  # (the web knows nothing else of the rig then)
        ("controller_lost", not p.get("connected")),
        ("store_fault", p.get("store_fault") or verdict.get("code") == "STORE_FAULT"),
        ("estop", p.get("estop")),
        ("scale_overload", p.get("overload")),
        ("scale_fault", p.get("scale_fault")),
        ("filling", phase == "filling"),
        ("settling", phase == "settling"),
        (checks.get(str(result.get("check"))), phase == "ended" and result),
        ("permitted", phase == "permitted"),
        ("checking", phase == "accepted" and (p.get("question") or {}).get("stage") == "pre"),
        ("accepted", phase == "accepted"),
        ("refused", verdict and not verdict.get("permit")),
        ("held", p.get("held")),
        ("no_operator", not p.get("operator")),
    ):
        if applies and state:
            return state
    return "idle"


def _kg(g: Any) -> str:
    return "-" if not isinstance(g, int | float) else f"{g / 1000:.2f}"


def _detail(state: str, p: dict[str, Any]) -> tuple[str, str]:
    """The second Chinese line and any English to add, for the states that carry facts."""
    result, verdict = p.get("result") or {}, p.get("verdict") or {}
    net, target = result.get("net_g"), result.get("target_g")
    off = net - target if isinstance(net, int) and isinstance(target, int) else None
    if state == "overfill":
        return (f"超出 {_kg(off)} kg（净重 {_kg(net)} / 目标 {_kg(target)} kg）",
                f"by {_kg(off)} kg")
    if state == "underfill":
        return (f"少 {_kg(-off if off is not None else None)} kg（净重 {_kg(net)} / 目标 "
                f"{_kg(target)} kg）", f"short by {_kg(-off if off is not None else None)} kg")
    leaks = [str(d) for d in result.get("defects") or []][:3]  # post-fill checklist: not OK
    if state in ("done_ok", "interrupted") and leaks:
        return (f"充装后检查不合格：{'、'.join(leaks)} — 请主管处理",
                f"post-fill check failed: {len(leaks)} item(s)")
    if state in ("done_ok", "interrupted"):
        return f"净重 {_kg(net)} kg（目标 {_kg(target)} kg）", f"{_kg(net)} kg"
    if state == "refused":
        text = reason_text(str(verdict.get("code") or ""))
        defects = [str(d) for d in verdict.get("defects") or []][:5]  # checklist items not OK
        if defects:
            return f"{text.zh}：{'、'.join(defects)}", text.en
        return text.zh, text.en
    if state == "held":
        code = str(p.get("held") or "").rstrip("/").rsplit("/", 1)[-1].rsplit("=", 1)[-1]
        return f"已扫码 {code[-20:]}，等待气瓶", ""
    return "", ""


def screen(p: dict[str, Any], stale: bool = False, store_unreadable: bool = False) -> Screen:
    """Headline (zh), detail (zh), the English line, colour and lamps of a rig's picture."""
    state = state_of(p, stale, store_unreadable)
    text = SCREENS[state]
    colour, lamps = LOOK[state]
    detail, en_more = _detail(state, p)
    en = f"{text.en}: {en_more}" if en_more else text.en
    verdict, result = p.get("verdict") or {}, p.get("result") or {}
    key = f"{state}:{verdict.get('decision_id')}:{result.get('record_id')}"
    return Screen(state, text.headline, detail or text.todo, en, colour, lamps, key)


def current_verdict(shown: dict[str, Any] | None, epoch: Any, phase: str,
                    cycle_decision: int | None) -> dict[str, Any] | None:
    """The verdict still standing, or None: never an old one. A permit stands while the fill
    cycle runs on its decision (accepted … ended); a refusal while the scale holds the same
    placement it was made on (a cylinder put down or taken off clears it)."""
    if not shown:
        return None
    if shown.get("permit"):
        alive = phase != "idle" and cycle_decision is not None \
            and cycle_decision == shown.get("decision_id")
        return shown if alive else None
    return shown if shown.get("epoch") == list(epoch) or shown.get("epoch") == epoch else None
