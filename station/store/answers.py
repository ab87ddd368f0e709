"""Checklist answers on their way from the rig's screen to the daemon, and what became of each.

The web process touches no device: it posts an answer here (`post`), bound to the rig, the
cylinder, the decision and the token of the question it answers (station.core.checklist). The
daemon takes the rig's new answers at its next poll (`take`), judges each against its open
question, and writes the outcome back (`settle`): taken, or refused and why (a stale or replayed
answer). An answer is taken once. Every function raises StoreError when the store fails.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from station.core.checklist import Answer

if TYPE_CHECKING:
    from station.store.db import Store


def _keys(values: frozenset[str]) -> str:
    return ",".join(sorted(values))


def _set(text: str) -> frozenset[str]:
    return frozenset(k for k in text.split(",") if k)


def post(store: Store, answer: Answer, now: float | None = None) -> int:
    """Queue an answer for its rig's daemon; returns its id."""
    with store.transaction() as conn:
        cur = conn.execute(
            "INSERT INTO checklist_answers (at, rig, stage, decision_id, cylinder_id, token, "
            "not_ok, skipped, by, via) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (time.time() if now is None else now, answer.rig, answer.stage, answer.decision_id,
             answer.cylinder_id, answer.token, _keys(answer.not_ok), _keys(answer.skipped),
             answer.by, answer.via))
    return int(cur.lastrowid or 0)


def take(store: Store, rig: str) -> list[tuple[int, Answer]]:
    """The rig's answers not yet taken, oldest first, each marked taken (read once)."""
    rows = store.query("SELECT * FROM checklist_answers WHERE rig = ? AND taken_at IS NULL "
                       "ORDER BY id", (rig,))
    if not rows:
        return []
    with store.transaction() as conn:
        conn.executemany("UPDATE checklist_answers SET taken_at = ? WHERE id = ? "
                         "AND taken_at IS NULL", [(time.time(), r["id"]) for r in rows])
    return [(r["id"], _answer(r)) for r in rows]


def pending(store: Store, rig: str, after_id: int = 0) -> list[tuple[int, Answer]]:
    """The rig's answers not yet taken with an id above `after_id`, oldest first; a read only
    (the daemon marks them with `settle_all` from its store thread)."""
    rows = store.query("SELECT * FROM checklist_answers WHERE rig = ? AND taken_at IS NULL "
                       "AND id > ? ORDER BY id", (rig, after_id))
    return [(r["id"], _answer(r)) for r in rows]


def settle_all(store: Store, outcomes: list[tuple[int, str]]) -> None:
    """Mark answers taken, each with what became of it, in one transaction."""
    now = time.time()
    with store.transaction() as conn:
        conn.executemany("UPDATE checklist_answers SET taken_at = coalesce(taken_at, ?), "
                         "outcome = ? WHERE id = ?",
                         [(now, outcome[:200], answer_id) for answer_id, outcome in outcomes])


def settle(store: Store, answer_id: int, outcome: str) -> None:
    """What the daemon made of an answer ("taken", or "refused: why"), for the pages and logs."""
    with store.transaction() as conn:
        conn.execute("UPDATE checklist_answers SET outcome = ? WHERE id = ?",
                     (outcome[:200], answer_id))


def of_decision(store: Store, decision_id: int) -> list[dict[str, Any]]:
    """Every answer posted for one decision, oldest first (the cylinder and record pages)."""
    return store.query("SELECT * FROM checklist_answers WHERE decision_id = ? ORDER BY id",
                       (decision_id,))


def _answer(r: dict[str, Any]) -> Answer:
    return Answer(stage=r["stage"], rig=r["rig"], cylinder_id=r["cylinder_id"],
                  decision_id=int(r["decision_id"]), token=r["token"], not_ok=_set(r["not_ok"]),
                  skipped=_set(r["skipped"]), by=r["by"], via=r["via"])
