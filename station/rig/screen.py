"""What the operator sees of one rig: its picture published for the screens, the verdict shown."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from station.config import RigConfig
from station.core import hmi
from station.core.fillcycle import Closed, FillCycle
from station.core.model import Reading, Verdict
from station.core.texts import ACCEPTED, reason_text
from station.errors import StoreError
from station.logfmt import kv
from station.store.db import Store

from .state import RigState
from .storethread import StoreThread

log = logging.getLogger("station.rig")


class Screen:
    """Publishes one rig's picture (link, controller flags, phase, verdict, fill result, mass)
    to the store for the operator screens, and keeps the verdict shown. Reads the loop's state
    and cycle; never writes the rig. `unsaved` is the ledger's list of held fill records.
    The picture is written by the store thread (`writes`), never waited for: one write in
    flight per rig, a newer picture replacing one not yet sent."""

    def __init__(self, cfg: RigConfig, store: Store, state: RigState, cycle: FillCycle,
                 unsaved: list[Closed], writes: StoreThread):
        self.cfg, self.store, self.state, self.cycle, self.unsaved = \
            cfg, store, state, cycle, unsaved
        self.writes = writes
        self._next: dict | None = None  # the picture to write once the one in flight is done
        self._sending = False
        self.question: Callable[[], dict | None] = lambda: None  # the checklist asked (checks)

    def operator(self) -> str | None:
        """The operator on shift at this rig (StoreError when the store cannot tell)."""
        return self.store.operator_on_shift(self.cfg.id)

    def picture(self, operator: str | None = None) -> dict:
        """What the operator perceives of the rig, as data (station.core.hmi turns it into the
        screen and the lamps): never an old verdict, the result only of the fill just ended.
        Masses in g, `heartbeat_at` in epoch s."""
        st, ctx, cycle = self.state.status, self.cycle.ctx, self.cycle
        held = self.state.scale.held
        verdict = hmi.current_verdict(self.state.shown, self.state.scale.epoch(), cycle.phase,
                                      ctx.decision_id if ctx else None)
        result = None
        if (done := cycle.result) is not None:
            result = {"check": done.post_check.split(" ")[0].rstrip(";"), "net_g": done.net_g,
                      "target_g": done.target_g, "record_id": done.record_id,
                      "defects": list(done.extra.get("post_defects") or [])}
        return {
            "connected": bool(self.state.connected), "fault": self.state.fault or None,
            "estop": bool(st and st.estop), "overload": bool(st and st.overload),
            "scale_fault": bool(st and st.scale_fault), "store_fault": bool(self.unsaved),
            "phase": cycle.phase, "operator": operator, "verdict": verdict, "result": result,
            "held": held.reading.raw[:120] if held is not None else None,
            "permit": bool(st and st.permit), "present": bool(st and st.cylinder_present),
            "gross_g": st.gross_g if st else None,
            "net_g": st.gross_g - ctx.tare_g if st and ctx and st.cylinder_present else None,
            "target_g": ctx.target_g if ctx else None,
            "heartbeat_at": time.time() if self.state.connected else None,
            "question": self.question(),
        }

    def publish(self) -> None:
        """The rig's picture for screens, written when what a person would see changed (or
        every second), queued to the store thread; a store that refuses it is logged, never
        raised (and the picture written again at the next publish)."""
        try:
            picture = self.picture(self.operator())
        except StoreError as err:  # the shift is unreadable: the screen still learns the rest
            log.debug(kv("operator_unread", rig=self.cfg.id, error=str(err)))
            picture = {**self.picture(), "store_fault": True}
        coarse = {**picture, "gross_g": (picture["gross_g"] or 0) // 50,
                  "net_g": None, "heartbeat_at": None}
        now = time.monotonic()
        if coarse == self.state.published and now - self.state.published_at < 1.0:
            return
        self.state.published, self.state.published_at = coarse, now
        self._next = picture
        if not self._sending:
            self._send()

    def _send(self) -> None:
        picture, self._next = self._next, None
        self._sending = True
        self.writes.post("publish", self.cfg.id, picture, done=self._sent)

    def _sent(self, _result: object, err: BaseException | None) -> None:
        self._sending = False
        if err is not None:
            log.debug(kv("publish_failed", rig=self.cfg.id, error=str(err)))
            self.state.published = None  # written again at the next publish
        if self._next is not None:
            self._send()

    def show(self, shown: dict) -> None:
        """A new verdict for the operator, bound to the scale's placement it was made on."""
        self.state.shown = {**shown, "epoch": list(self.state.scale.epoch())}


def shown_verdict(decision_id: int, verdict: Verdict, record: dict, reading: Reading) -> dict:
    """What the operator screen shows of a verdict: Chinese and English, cylinder facts."""
    code = verdict.reason or "OK"
    text = reason_text(verdict.reason) if verdict.reason else ACCEPTED
    return {"decision_id": decision_id, "permit": verdict.permit, "code": code, "zh": text.zh,
            "en": text.en, "warnings": [{"code": w, "zh": reason_text(w).zh,
                                         "en": reason_text(w).en} for w in verdict.warnings],
            "cylinder_id": verdict.cylinder_id, "medium": record.get("medium_code"),
            "next_inspection": record.get("next_inspection_date"),
            "reading": reading.raw[:120], "at": time.time()}


def fault_shown(code: str) -> dict:
    """What the operator screen shows when the station refuses on its own (nothing recorded)."""
    text = reason_text(code)
    return {"decision_id": None, "permit": False, "code": code, "zh": text.zh, "en": text.en,
            "warnings": [], "cylinder_id": None, "medium": None, "next_inspection": None,
            "reading": None, "at": time.time()}
