"""The operator's pre- and post-fill checklists: items, the question asked, the answer judged.

TSG 23-2021 (气瓶安全技术规程) and GB/T 14193 (液化气体气瓶充装规定) require the filling unit to
check each cylinder before and after filling and to keep those records; what only a person can
see (a missing guard, fire damage, a leak at the valve) is asked here. Pure: no I/O, no clock.

A question is bound to one rig, one cylinder and one decision, and carries a random token; an
answer is taken only for the question it answers (a stale or replayed answer is refused), and
only once. The answer names the items found *not* OK (one tap "全部合格" names none) and the
items skipped as not applicable; a required item cannot be skipped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Stage = Literal["pre", "post"]
KEY_RE = re.compile(r"[a-z][a-z0-9_]{0,23}")
SUMMARY_MAX = 64  # characters of pre_check / post_check this module writes (fits every store)


@dataclass(frozen=True)
class CheckItem:
    """One item of a checklist.

    `key`: ASCII id (`[a-z][a-z0-9_]{0,23}`), what the record keeps; `label`: Chinese, what the
    operator reads; `required`: may not be skipped as not applicable; `refuses`: for a pre-fill
    item, a "not OK" refuses the fill; for a post-fill item, a "not OK" flags the record (the gas
    is already in); `media`: the medium codes it applies to (empty: every medium).
    """

    key: str
    label: str
    required: bool = True
    refuses: bool = True
    media: frozenset[str] = frozenset()

    def applies_to(self, medium: str) -> bool:
        return not self.media or medium in self.media


# Station practice for LPG (TSG 23-2021 §6 filling; GB/T 14193 pre-fill and post-fill checks;
# the local traceability specifications' "充装前检查登记" and "充装后检查登记").
LPG = frozenset({"G13"})
DEFAULT_PRE: tuple[CheckItem, ...] = (
    CheckItem("guard", "护罩、手轮齐全完好", media=LPG),
    CheckItem("fire_water", "无火烧、水浸痕迹", media=LPG),
    CheckItem("corrosion", "无严重腐蚀", media=LPG),
    CheckItem("dent", "无凹陷、鼓包、变形", media=LPG),
    CheckItem("valve_seat", "瓶阀及阀座无松动", media=LPG),
    CheckItem("tare_mark", "钢印及皮重标记清晰", media=LPG),
    CheckItem("valve_type", "瓶阀为标准阀", media=LPG),
)
DEFAULT_POST: tuple[CheckItem, ...] = (
    CheckItem("leak_valve", "瓶阀处无泄漏", media=LPG),
    CheckItem("leak_seam", "焊缝、瓶体无泄漏", media=LPG),
)


@dataclass(frozen=True)
class Question:
    """What the daemon asks the operator at one rig about one cylinder, for one decision."""

    stage: Stage
    rig: str
    cylinder_id: str
    decision_id: int
    token: str  # random, made by the daemon; an answer must carry it back
    items: tuple[CheckItem, ...]


@dataclass(frozen=True)
class Answer:
    """What came back: the items found not OK, the items skipped, who answered and how."""

    stage: Stage
    rig: str
    cylinder_id: str
    decision_id: int
    token: str
    not_ok: frozenset[str] = frozenset()
    skipped: frozenset[str] = frozenset()
    by: str | None = None
    via: str = "screen"  # "screen" (the rig's tablet) or "button" (the controller's input)


@dataclass(frozen=True)
class Outcome:
    """The judged answer. `taken` False: the answer answers no open question (`why` says which
    binding failed) and changes nothing. Else `refused` lists the refusing items found not OK
    (pre: no permit; post: the record is flagged) and `summary` is the record's text."""

    taken: bool
    why: str = ""
    not_ok: tuple[CheckItem, ...] = ()
    refused: tuple[CheckItem, ...] = ()
    summary: str = "ok"


def items_for(items: tuple[CheckItem, ...], medium: str) -> tuple[CheckItem, ...]:
    """The items of a checklist that apply to one medium code (e.g. "G13")."""
    return tuple(i for i in items if i.applies_to(medium))


def judge(question: Question | None, answer: Answer) -> Outcome:
    """Judge an answer against the open question of its rig (None: there is none).

    Refused (taken=False) when there is no open question, or the stage, rig, cylinder, decision
    or token differ (a stale or replayed answer), or it names an item the question did not ask,
    or skips a required one. Never raises.
    """
    if question is None:
        return Outcome(False, "no open question at this rig")
    for name in ("stage", "rig", "cylinder_id", "decision_id", "token"):
        if getattr(question, name) != getattr(answer, name):
            return Outcome(False, f"{name} does not match the open question")
    asked = {i.key: i for i in question.items}
    unknown = sorted((answer.not_ok | answer.skipped) - asked.keys())
    if unknown:
        return Outcome(False, f"items not asked: {','.join(unknown)}")
    if answer.not_ok & answer.skipped:
        return Outcome(False, "an item both not OK and skipped")
    must = sorted(k for k in answer.skipped if asked[k].required)
    if must:
        return Outcome(False, f"required items skipped: {','.join(must)}")
    not_ok = tuple(i for i in question.items if i.key in answer.not_ok)
    refused = tuple(i for i in not_ok if i.refuses)
    return Outcome(True, "", not_ok, refused, summary(not_ok))


def summary(not_ok: tuple[CheckItem, ...]) -> str:
    """The record's text for a checklist: "ok", or "defect:" and the keys found not OK, cut to
    SUMMARY_MAX characters with "+N" counting the keys left out."""
    if not not_ok:
        return "ok"
    keys = [i.key for i in not_ok]
    text = "defect:" + ",".join(keys)
    n = len(keys)
    while len(text) > SUMMARY_MAX and n > 1:
        n -= 1
        text = "defect:" + ",".join(keys[:n]) + f",+{len(keys) - n}"
    return text[:SUMMARY_MAX]


def with_measured(measured: str, checked: str) -> str:
    """One pre_check/post_check text from the measured check (e.g. "ok", "residual 0.40 kg",
    "overfill") and the checklist's summary: the measured text alone when the checklist found
    nothing, else both joined by "; " — the measured word stays first, so filters and screens
    that read the first word (ok / overfill / underfill / interrupted) still read it."""
    return measured if checked == "ok" else f"{measured}; {checked}"
