"""The rig screen's checklist answer: parsed, matched to the question on show, queued for the daemon.

`POST /api/rig/<rig>/checks` with form fields stage, decision_id, cylinder_id, token, not_ok
and skipped (comma lists of item keys). The web touches no device: it queues the answer in the
store (station.store.answers) and the daemon judges it against its own open question at its
next poll (station.core.checklist.judge). The web's own check here only refuses early what the
daemon would refuse anyway: an answer to a question that is no longer on show (a stale or
replayed answer, another cylinder), so the operator learns at once.
"""

from __future__ import annotations

import re
from typing import Any

from station.core.checklist import KEY_RE, Answer

KEYS = re.compile(rf"(?:{KEY_RE.pattern})(?:,(?:{KEY_RE.pattern})){{0,29}}|")


class Refused(Exception):
    """The answer cannot be queued: `key` names the text to show (station.web.texts)."""

    def __init__(self, key: str, detail: str):
        super().__init__(detail)
        self.key = key


def parse(rig: str, form: dict[str, str], shown: dict[str, Any] | None,
          operator: str | None) -> Answer:
    """The answer in `form` for the question `shown` at `rig` (views.question_shown), answered by
    the operator on shift. Raises Refused: "checks_bad" for a malformed form, "checks_stale"
    when it does not answer the question on show."""
    stage = form.get("stage", "")
    not_ok, skipped = form.get("not_ok", ""), form.get("skipped", "")
    if stage not in ("pre", "post") or not KEYS.fullmatch(not_ok) or not KEYS.fullmatch(skipped):
        raise Refused("checks_bad", "stage or item keys malformed")
    try:
        decision_id = int(form.get("decision_id", ""))
    except ValueError as err:
        raise Refused("checks_bad", "decision_id is not a number") from err
    token, cylinder = form.get("token", ""), form.get("cylinder_id", "")
    if not shown or (shown.get("stage"), shown.get("decision_id"), shown.get("token"),
                     shown.get("cylinder_id") or "") != (stage, decision_id, token, cylinder):
        raise Refused("checks_stale", "no such question on show at this rig")
    return Answer(stage=stage, rig=rig, cylinder_id=cylinder, decision_id=decision_id,
                  token=token, not_ok=_keys(not_ok), skipped=_keys(skipped), by=operator,
                  via="screen")


def _keys(text: str) -> frozenset[str]:
    return frozenset(k for k in text.split(",") if k)
