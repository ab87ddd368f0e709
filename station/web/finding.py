"""Every decision findable: the decisions page, the search results and one cylinder's page."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from station.core.codes import MEDIA
from station.core.fills import local
from station.core.keys import SearchKey, search_key
from station.core.texts import REASONS
from station.web.html import e, href, note, num, table
from station.web.pages import Viewer, actions_table, check_cell, cylinder_link, sync_cell
from station.web.texts import reason_in, state
from station.web.views import read_common

PAGE_SIZE = 50
VERDICTS = ("permit", "refuse")


@dataclass
class DecisionFilter:
    """The decisions page's filters: the records page's (day range, rig, operator) with the
    reason, the verdict and a cylinder in any form a person has (keys.search_key)."""

    date_from: str = ""
    date_to: str = ""
    rig: str = ""
    operator: str = ""
    reason: str = ""
    verdict: str = ""
    typed: str = ""
    cylinder: SearchKey | None = None
    page: int = 1
    invalid: list[str] = field(default_factory=list)

    @classmethod
    def from_query(cls, q: dict[str, str], hosts: tuple[str, ...] = ()) -> DecisionFilter:
        f = read_common(cls(invalid=[]), q)
        reason = q.get("reason", "").strip()
        if reason and reason not in REASONS:
            f.invalid.append("reason")
        else:
            f.reason = reason
        verdict = q.get("verdict", "")
        if verdict and verdict not in VERDICTS:
            f.invalid.append("verdict")
        else:
            f.verdict = verdict
        f.typed = q.get("cylinder", "").strip()[:300]
        if f.typed:
            f.cylinder = search_key(f.typed, hosts)
        return f

    def query_items(self, page: int | None = None) -> list[tuple[str, str]]:
        items = [("from", self.date_from), ("to", self.date_to), ("rig", self.rig),
                 ("operator", self.operator), ("reason", self.reason),
                 ("verdict", self.verdict), ("cylinder", self.typed)]
        if page and page > 1:
            items.append(("page", str(page)))
        return [(k, v) for k, v in items if v]


def decisions(v: Viewer, flt: DecisionFilter, rows: list[dict[str, Any]], total: int,
              rigs: list[str]) -> str:
    """The filter form, the pager and one page of decisions, newest first."""
    pages = max(1, math.ceil(total / PAGE_SIZE))
    warn = note(v.t("bad_filter", what=", ".join(flt.invalid)), True) if flt.invalid else ""
    nav = [f'<span id="n-decisions" data-n="{total}">'
           f'{e(v.t("n_decisions", n=total, page=flt.page, pages=pages))}</span>']
    if flt.page > 1:
        nav.append(f'<a href="{e(href("/decisions", flt.query_items(flt.page - 1)))}" '
                   f'rel="prev">{e(v.t("prev"))}</a>')
    if flt.page < pages:
        nav.append(f'<a href="{e(href("/decisions", flt.query_items(flt.page + 1)))}" '
                   f'rel="next">{e(v.t("next"))}</a>')
    return (warn + _filters(v, flt, rigs) + f'<p class="pager">{" · ".join(nav)}</p>'
            + decision_table(v, rows))


def decision_table(v: Viewer, rows: list[dict[str, Any]]) -> str:
    head = [v.t(k) for k in ("col_time", "col_rig", "col_operator", "verdict", "col_reason",
                             "col_cylinder", "col_reading", "col_source", "col_latency",
                             "col_decision")]
    body = []
    for d in rows:
        verdict = (f'<td class="ok" data-permit="1">{e(v.t("verdict_permit"))}</td>'
                   if d["permit"] else
                   f'<td class="bad" data-permit="0">{e(v.t("verdict_refuse"))}</td>')
        reason = (f'{e(reason_in(d["reason"], v.lang))} <code>{e(d["reason"])}</code>'
                  if d["reason"] else "-")
        body.append([e(d["local_time"][:19].replace("T", " ")), e(d["rig"]), e(d["operator"]),
                     verdict, reason, cylinder_link(d["cylinder_id"] or d["tag"]),
                     f'<code>{e(d["reading"][:80])}</code>', e(state(d["source"], v.lang)),
                     num(d["latency_ms"]), e(d["id"])])
    return table(head, body, v.t("none"))


def _filters(v: Viewer, flt: DecisionFilter, rigs: list[str]) -> str:
    def select(name: str, current: str, options: list[tuple[str, str]]) -> str:
        opts = "".join(f'<option value="{e(val)}"{" selected" if val == current else ""}>'
                       f'{e(label)}</option>' for val, label in [("", v.t("any")), *options])
        return f'<select name="{name}">{opts}</select>'

    def fld(label: str, control: str) -> str:
        return f"<label>{e(label)}{control}</label>"

    return (
        '<form method="get" action="/decisions" class="filters">'
        + fld(v.t("date_from"), f'<input type="date" name="from" value="{e(flt.date_from)}">')
        + fld(v.t("date_to"), f'<input type="date" name="to" value="{e(flt.date_to)}">')
        + fld(v.t("rig"), select("rig", flt.rig, [(r, r) for r in rigs]))
        + fld(v.t("operator"), f'<input name="operator" value="{e(flt.operator)}" size="8">')
        + fld(v.t("verdict"), select("verdict", flt.verdict,
                                     [(x, v.t("verdict_" + x)) for x in VERDICTS]))
        + fld(v.t("col_reason"), select("reason", flt.reason,
                                        [(c, reason_in(c, v.lang)) for c in REASONS]))
        + fld(v.t("cylinder"), f'<input name="cylinder" value="{e(flt.typed)}" size="16">')
        + f'<button type="submit">{e(v.t("filter"))}</button>'
        + f'<a href="/decisions">{e(v.t("reset"))}</a></form>')


# --- search ------------------------------------------------------------------------------------
def search(v: Viewer, typed: str, found: dict[str, Any]) -> str:
    """What a search found: cylinders (each a link to its page) and bare tags."""
    form = (f'<form method="get" action="/search" class="filters"><label>{e(v.t("search"))}'
            f'<input name="q" value="{e(typed)}" size="40" maxlength="300"></label>'
            f'<button type="submit">{e(v.t("search_go"))}</button></form>'
            f'<p class="muted">{e(v.t("search_hint"))}</p>')
    cyl = [[cylinder_link(c["cylinder_id"]), e(c["matched"])] for c in found["cylinders"]]
    tags = [[f'<a href="{e(href("/decisions", [("cylinder", t["tag"])]))}">{e(t["tag"])}</a>',
             num(t["n"]), e(local(t["last_at"]))] for t in found["tags"]]
    if not cyl and not tags:
        return form + (f'<p class="muted" id="no-match">{e(v.t("search_none"))}</p>'
                       if typed.strip() else "")
    return (form + table([v.t("col_cylinder"), v.t("matched_by")], cyl)
            + (f'<h2>{e(v.t("search_tags"))}</h2>' if tags else "")
            + table([v.t("col_reading"), v.t("times_read"), v.t("last_read")], tags))


# --- one cylinder ------------------------------------------------------------------------------
RECORD_FIELDS = ("id", "info_code", "product_no", "rfid_uid", "user_unit_name", "medium_code",
                 "status", "next_inspection_date", "last_inspection_date", "manufacture_date",
                 "manufacturer", "unit_internal_no", "registration_cert_no", "tare_kg",
                 "fill_capacity_kg", "volume_l", "nominal_pressure_mpa")


def cylinder(v: Viewer, c: dict[str, Any], blocked: list[tuple[str, str]],
             actions: list[dict[str, Any]]) -> str:
    """Its city record as last seen, block-list state, keys, fills with their delivery state
    (overrides and handling included), every decision here, and manager actions on it."""
    rec = c["record"]
    if rec is None:
        city = f'<p class="muted" id="city-record">{e(v.t("city_record_none"))}</p>'
    else:
        shown = [k for k in RECORD_FIELDS if k in rec] + sorted(k for k in rec
                                                               if k not in RECORD_FIELDS)
        rows = [[(e(v.t("rec_" + k)) if k in RECORD_FIELDS else f"<code>{e(k)}</code>"),
                 e(_field(k, rec[k], v.lang))] for k in shown]
        rows.append([e(v.t("fetched_at")), e(local(c["fetched_at"]))])
        city = f'<div id="city-record">{table(["", ""], rows)}</div>'
    block = ('<ul id="blocked">' + "".join(
        f'<li class="bad">{e(k)}: {e(why)}</li>' for k, why in blocked) + "</ul>" if blocked
        else f'<p class="ok" id="blocked">{e(v.t("not_blocked"))}</p>')
    keys = " · ".join(f"<code>{e(k)}</code>" for k in c["keys"])
    head = [v.t(k) for k in ("col_started", "col_rig", "col_operator", "col_net", "col_pre",
                             "col_post", "col_override", "col_handled", "col_sync", "col_record",
                             "col_photo")]
    fills = [[e(r["started"]), e(r["rig"]), e(r["operator"]), num(r["net_kg"]),
              e(r["pre_check"]), check_cell(v, r["post_check"]),
              e(f'{r["override_by"]}: {r["override_reason"]}' if r["override_by"] else None),
              e(f'{r["handled_by"]} {local(r["handled_at"])}' if r["handled_at"] else None),
              sync_cell(v, r), e(r["record_id"]), photo_cell(r)] for r in c["fills"]]
    return (f'<h2>{e(v.t("city_record"))}</h2>{city}'
            f'<h2>{e(v.t("blocked_state"))}</h2>{block}'
            f'<p>{e(v.t("keys"))}: {keys}</p>'
            f'<h2 id="fills">{e(v.t("fills_here"))} ({len(fills)})</h2>'
            + table(head, fills, v.t("none"))
            + f'<h2 id="decisions">{e(v.t("decisions_here"))} ({len(c["decisions"])})</h2>'
            + decision_table(v, c["decisions"]) + actions_table(v, actions))


def photo_cell(r: dict[str, Any]) -> str:
    """The fill's photo (issue 17), small, linking to the whole picture; "" when it has none."""
    if not r.get("photo"):
        return ""
    src = "/photo?" + urlencode({"record": r["record_id"]})
    return (f'<a href="{e(src)}"><img class="photo" src="{e(src)}" alt="{e(r["record_id"])}" '
            'width="96" loading="lazy"></a>')


def _field(key: str, value: Any, lang: str) -> str:
    if key == "medium_code" and isinstance(value, str) and value in MEDIA:
        return f"{value} {MEDIA[value]}"
    if key == "status":
        return state(value, lang)
    return "-" if value is None else str(value)
