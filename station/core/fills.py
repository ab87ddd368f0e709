"""The fill record: its station-made id, its local row, and the city's submission body."""

from __future__ import annotations

import json
import os
import time
import uuid
from datetime import datetime
from typing import Any

from station.core.fillcycle import FillContext
from station.today import LOCAL_TZ


def new_record_id(now: float | None = None) -> str:
    """A time-ordered UUID (version 7 layout): the idempotency key of a fill record."""
    ms = int((time.time() if now is None else now) * 1000) & ((1 << 48) - 1)
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms << 80) | (0x7 << 76) | ((rand >> 62) & 0xFFF) << 64 | (0b10 << 62) | \
        (rand & ((1 << 62) - 1))
    return str(uuid.UUID(int=value))


def local(epoch: float | None) -> str | None:
    """'yyyy-mm-dd hh:mm:ss' in Asia/Shanghai, as the city wants its times."""
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, LOCAL_TZ).strftime("%Y-%m-%d %H:%M:%S")


def fill_date(ctx: FillContext) -> str | None:
    moment = ctx.started_at or ctx.permitted_at
    return None if moment is None else datetime.fromtimestamp(moment, LOCAL_TZ).date().isoformat()


def row(ctx: FillContext, rig_id: str) -> dict[str, Any]:
    """The fills table row for a context, open or closed."""
    return {
        "record_id": ctx.record_id, "decision_id": ctx.decision_id, "rig": rig_id,
        "cylinder_id": ctx.cylinder_id, "info_code": ctx.info_code, "tag": ctx.tag,
        "medium": ctx.medium, "operator": ctx.operator, "source": ctx.source,
        "cache_age_s": ctx.cache_age_s, "tare_g": ctx.tare_g, "target_g": ctx.target_g,
        "prefill_g": ctx.prefill_g, "gross_g": ctx.gross_g, "net_g": ctx.net_g,
        "pre_check": ctx.pre_check, "post_check": ctx.post_check or None,
        "end_reason": ctx.end_reason or None, "permitted_at": ctx.permitted_at,
        "started_at": ctx.started_at, "ended_at": ctx.ended_at, "fill_date": fill_date(ctx),
        "override_by": ctx.override_by, "override_reason": ctx.override_reason,
        "checks": json.dumps(ctx.checks, ensure_ascii=False, sort_keys=True)
        if ctx.checks else None,
        "photo_sha256": ctx.photo_sha256,
    }


def submission(fill: dict[str, Any], unit_name: str) -> dict[str, Any]:
    """The city's filling submission (contracts/city-api.md §4) from a closed fills row.

    A fill without a cylinder id (a supervisor override while the city was down) carries
    `_resolve`: the tag the sync worker looks the id up by before sending; keys starting with
    `_` are never sent.
    """
    net = fill.get("net_g")
    body = {
        "record_id": fill["record_id"], "medium_code": fill["medium"],
        "operator": fill.get("operator") or "", "fill_date": fill.get("fill_date"),
        "filling_unit_name": unit_name, "id": fill.get("cylinder_id"),
        "fill_started_at": local(fill.get("started_at") or fill.get("permitted_at")),
        "fill_ended_at": local(fill.get("ended_at")),
        "net_mass_kg": None if net is None else round(net / 1000, 2),
        "rig_id": fill["rig"], "pre_check": fill.get("pre_check") or "ok",
        "post_check": fill.get("post_check") or "interrupted",
    }
    if not body["id"]:
        body["_resolve"] = {"info_code": fill.get("info_code"), "tag": fill.get("tag")}
    return body
