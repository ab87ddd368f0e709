"""One rig's checklists and fill photos: the question on show, answers taken, a photo per grant.

The fill cycle decides *when* a checklist is asked and what an answer does (FillCycle.question,
FillCycle.answer); this keeps the question the operator sees in step with it (a fresh random
token per question: an answer to an older one is refused), takes the answers the rig's screen
posted into the store (station.store.answers) at each poll, judges each against the open
question (station.core.checklist.judge) and writes back what became of it. With [checks]
ask = "off" it asks nothing and reads nothing.

The photo: after the permit is granted, one JPEG from the rig's camera (when it has one) is
kept beside the store (station.store.photos) and its SHA-256 goes into the fill record, so
`station verify` can tell a photo changed. A camera that fails costs the photo, never the fill.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable
from typing import Any

from station.config import RigConfig, StationConfig
from station.core.checklist import Answer, Question, items_for, judge
from station.core.fillcycle import Action, FillContext, FillCycle
from station.errors import StationError
from station.logfmt import kv
from station.store import answers, outbox
from station.store.db import Store
from station.store.photos import PhotoStore

log = logging.getLogger("station.rig")


class Checklists:
    """The checklist question and the photo of one rig."""

    def __init__(self, cfg: RigConfig, station: StationConfig, store: Store, cycle: FillCycle,
                 camera: Any = None):
        checks = station.checks
        self.cfg, self.store, self.cycle, self.camera = cfg, store, cycle, camera
        self.asking = checks.ask in ("screen", "button")
        self.button = checks.ask == "button"  # the controller's checks-OK button answers
        self._pressed = False  # the button as last seen (an answer on its press, not its hold)
        self.items = {"pre": items_for(checks.pre, cfg.medium),
                      "post": items_for(checks.post, cfg.medium)}
        self.question: Question | None = None
        self._seen = 0  # the newest answer id judged
        # how the marks are written: here, or queued to the daemon's store thread
        self.settle: Callable[[list[tuple[int, str]]], None] = \
            lambda outcomes: answers.settle_all(store, outcomes)
        self.photos = PhotoStore(station.photos.dir, station.photos.budget_mb * 1024 * 1024)
        self._tasks: set[asyncio.Task] = set()

    @staticmethod
    def stages(cfg: RigConfig, station: StationConfig) -> tuple[bool, bool]:
        """Whether the cycle asks before the permit and before closing the record (a stage
        with no item for the rig's medium is not asked)."""
        checks = station.checks
        on = checks.ask in ("screen", "button")
        return (on and bool(items_for(checks.pre, cfg.medium)),
                checks.ask == "screen" and bool(items_for(checks.post, cfg.medium)))

    def sync(self) -> Question | None:
        """The question the cycle asks now: a new one (new token) for a new stage or decision."""
        ctx, stage = self.cycle.ctx, self.cycle.question
        if ctx is None or not stage:
            self.question = None
            return None
        q = self.question
        if q is None or q.stage != stage or q.decision_id != ctx.decision_id:
            self.question = Question(stage, self.cfg.id, ctx.cylinder_id or "", ctx.decision_id,
                                     secrets.token_urlsafe(12), self.items[stage])
            log.info(kv("checks_asked", rig=self.cfg.id, stage=stage,
                        decision=ctx.decision_id, items=len(self.items[stage])))
        return self.question

    def shown(self) -> dict[str, Any] | None:
        """The open question as the rig's picture carries it to the screen."""
        q = self.sync() if self.asking else None
        if q is None:
            return None
        return {"stage": q.stage, "decision_id": q.decision_id, "cylinder_id": q.cylinder_id,
                "token": q.token, "items": [{"key": i.key, "label": i.label,
                                             "required": i.required} for i in q.items]}

    def pressed(self, status: Any, mono: float) -> list[Action]:
        """The controller's checks-OK button ([checks] ask = "button"): its press answers the
        open pre-fill question "all OK" (a button held down answers once)."""
        down = bool(getattr(status, "checks_ok", False))
        rising, self._pressed = down and not self._pressed, down
        q = self.sync() if self.button and rising else None
        if q is None or q.stage != "pre":
            return []
        answer = Answer(stage=q.stage, rig=q.rig, cylinder_id=q.cylinder_id,
                        decision_id=q.decision_id, token=q.token, via="button",
                        by=self.cycle.ctx.operator if self.cycle.ctx else None)
        outcome = judge(q, answer)
        log.info(kv("checks_answer", rig=self.cfg.id, stage="pre", decision=q.decision_id,
                    taken=outcome.taken, via="button"))
        actions = self.cycle.answer("pre", outcome, answer.by, mono)
        self.sync()
        return actions

    def take(self, mono: float) -> list[Action]:
        """The fill cycle's actions for the answers posted since the last poll (none unless a
        question is open): a read of the store; the marks go through `settle`. A StoreError
        propagates: the poll fails closed as for any read."""
        if not self.asking or self.sync() is None:
            return []
        actions: list[Action] = []
        settled: list[tuple[int, str]] = []
        for answer_id, answer in answers.pending(self.store, self.cfg.id, self._seen):
            self._seen = answer_id  # (each answer judged once, whenever its mark is written)
            outcome = judge(self.question, answer)
            settled.append((answer_id, "taken" if outcome.taken else f"refused: {outcome.why}"))
            log.info(kv("checks_answer", rig=self.cfg.id, stage=answer.stage,
                        decision=answer.decision_id, taken=outcome.taken,
                        why=outcome.why or None, not_ok=outcome.summary))
            if outcome.taken and self.question is not None:
                actions += self.cycle.answer(self.question.stage, outcome, answer.by, mono)
                self.sync()
        if settled:
            self.settle(settled)
        return actions

    def _delivered(self, record_ids: list[str]) -> set[str]:
        """(In the rotation's thread: a connection of its own, SQLite's are per thread.)"""
        store = Store(self.store.path, readonly=True)
        try:
            return outbox.delivered_of(store, record_ids)
        finally:
            store.close()

    # --- the photo ----------------------------------------------------------------------
    def photograph(self, ctx: FillContext) -> None:
        """Take the fill's photo in the background (the grant does not wait for it)."""
        if self.camera is None or not hasattr(self.camera, "take_photo"):
            return
        task = asyncio.get_running_loop().create_task(self._photo(ctx))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _photo(self, ctx: FillContext) -> None:
        try:
            jpeg = await asyncio.to_thread(self.camera.take_photo)
            photo = await asyncio.to_thread(self.photos.save, ctx.record_id, jpeg)
        except (StationError, OSError) as err:
            log.warning(kv("photo_failed", rig=self.cfg.id, record_id=ctx.record_id,
                           error=str(err)))
            return
        ctx.photo_sha256 = photo.sha256  # in the record when it closes (and its chain entry)
        log.info(kv("photo_kept", rig=self.cfg.id, record_id=ctx.record_id, bytes=photo.size,
                    sha256=photo.sha256[:16]))
        try:
            rotated = await asyncio.to_thread(self.photos.rotate, self._delivered)
        except (StationError, OSError) as err:
            log.warning(kv("photo_rotation_failed", rig=self.cfg.id, error=str(err)))
            return
        if rotated.over_budget:
            log.warning(kv("photos_over_budget", rig=self.cfg.id, bytes=rotated.total_bytes,
                           why="every photo left belongs to a fill the city has not received"))
