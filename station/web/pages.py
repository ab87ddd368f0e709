"""The managers' pages as HTML: records, refusals, issues, block list, outbox, device health."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from station.core.fills import local
from station.store.records import kg
from station.web import views
from station.web.chart import refusal_chart
from station.web.html import csrf_field, e, href, note, num, table
from station.web.texts import reason_in, state, t


@dataclass(frozen=True)
class Viewer:
    """Who looks, in which language, with which CSRF token for the forms."""

    lang: str
    user: str
    csrf: str

    def t(self, key: str, **fmt: object) -> str:
        return t(key, self.lang, **fmt)


MESSAGES = {"handled": ("handled_ok", False), "handled_gone": ("handled_gone", True),
            "blocked": ("blocked_ok", False), "unblocked": ("unblocked_ok", False),
            "unblock_gone": ("unblock_gone", True), "block_needs": ("block_needs", True),
            "retried": ("retried_ok", False), "retry_gone": ("retry_gone", True),
            "block_invalid": ("block_invalid", True)}


def message(v: Viewer, key: str) -> str:
    """A note for ?msg=KEY after a form was handled; only known keys (nothing is reflected)."""
    if key not in MESSAGES:
        return ""
    text, bad = MESSAGES[key]
    return note(v.t(text), bad)


def login(lang: str, csrf: str, next_path: str, error: str = "") -> str:
    return (f'<form method="post" action="/login" class="login">'
            f'<h2>{e(t("login_title", lang))}</h2>{note(error, True) if error else ""}'
            f'{csrf_field(csrf)}<input type="hidden" name="next" value="{e(next_path)}">'
            f'<label>{e(t("user_name", lang))}<input name="name" autocomplete="username" '
            f'required maxlength="64"></label>'
            f'<label>{e(t("password", lang))}<input name="password" type="password" '
            f'autocomplete="current-password" required maxlength="200"></label>'
            f'<button type="submit">{e(t("log_in", lang))}</button></form>')


# --- records -----------------------------------------------------------------------------------
def records(v: Viewer, flt: views.RecordFilter, rows: list[dict[str, Any]], total: int,
            rigs: list[str]) -> str:
    pages = max(1, math.ceil(total / views.PAGE_SIZE))
    warn = note(v.t("bad_filter", what=", ".join(flt.invalid)), True) if flt.invalid else ""
    head = [v.t(k) for k in ("col_started", "col_rig", "col_operator", "col_cylinder",
                             "col_medium", "col_net", "col_target", "col_pre", "col_post",
                             "col_override", "col_sync", "col_record")]
    body = [[e(r["started"]), e(r["rig"]), e(r["operator"]),
             cylinder_link(r["cylinder_id"] or r["info_code"]), e(r["medium"]),
             num(r["net_kg"]), num(r["target_kg"]), e(state(r["pre_check"], v.lang)),
             check_cell(v, r["post_check"]), e(r["override_by"]), sync_cell(v, r),
             e(r["record_id"])] for r in rows]
    nav = [f'<span>{e(v.t("n_records", n=total, page=flt.page, pages=pages))}</span>']
    if flt.page > 1:
        nav.append(f'<a href="{e(href("/records", flt.query_items(flt.page - 1)))}" '
                   f'rel="prev">{e(v.t("prev"))}</a>')
    if flt.page < pages:
        nav.append(f'<a href="{e(href("/records", flt.query_items(flt.page + 1)))}" '
                   f'rel="next">{e(v.t("next"))}</a>')
    csv_link = (f'<a id="csv" href="{e(href("/records.csv", flt.query_items()))}" download>'
                f'{e(v.t("csv"))}</a>')
    return (warn + _filters(v, flt, rigs) + f'<p class="pager">{" · ".join(nav)} · {csv_link}</p>'
            + table(head, body, v.t("none")))


def _filters(v: Viewer, flt: views.RecordFilter, rigs: list[str]) -> str:
    def select(name: str, current: str, options: list[tuple[str, str]]) -> str:
        opts = "".join(f'<option value="{e(val)}"{" selected" if val == current else ""}>'
                       f'{e(label)}</option>' for val, label in [("", v.t("any")), *options])
        return f'<select name="{name}">{opts}</select>'

    def field(label: str, control: str) -> str:
        return f"<label>{e(label)}{control}</label>"

    return (
        '<form method="get" action="/records" class="filters">'
        + field(v.t("date_from"), f'<input type="date" name="from" value="{e(flt.date_from)}">')
        + field(v.t("date_to"), f'<input type="date" name="to" value="{e(flt.date_to)}">')
        + field(v.t("rig"), select("rig", flt.rig, [(r, r) for r in rigs]))
        + field(v.t("operator"), f'<input name="operator" value="{e(flt.operator)}" size="8">')
        + field(v.t("cylinder"), f'<input name="cylinder" value="{e(flt.cylinder)}" size="16">')
        + field(v.t("check"), select("check", flt.check,
                                           [(c, state(c, v.lang)) for c in views.CHECKS]))
        + field(v.t("sync"), select("sync", flt.sync, [(s, v.t("sync_" + s)) for s in views.SYNCS]))
        + field(v.t("override_only"), f'<input type="checkbox" name="override" value="1"'
                f'{" checked" if flt.override else ""}>')
        + f'<button type="submit">{e(v.t("filter"))}</button>'
        + f'<a href="/records">{e(v.t("reset"))}</a></form>')


def check_cell(v: Viewer, check: str | None) -> str:
    """A post-fill check in the reader's language, coloured; its code as data-check."""
    css = "ok" if check == "ok" else "bad" if check and check != "cancelled" else ""
    return f'<td class="{css}" data-check="{e(check)}">{e(state(check, v.lang))}</td>'


def sync_cell(v: Viewer, r: dict[str, Any]) -> str:
    """A record's delivery state; the city's last error as its title."""
    sync = r["sync"]
    label = v.t(sync) if sync in ("pending", "delivered", "dead") else "-"
    title = f' title="{e(r["last_error"])}"' if r.get("last_error") else ""
    return f'<td class="{"bad" if sync == "dead" else ""}"{title}>{e(label)}</td>'


def cylinder_link(shown: str | None) -> str:
    """A cylinder id or code linking to its page."""
    if not shown:
        return "-"
    return f'<a href="/cylinder?id={quote(str(shown), safe="")}">{e(shown)}</a>'


# --- refusals ----------------------------------------------------------------------------------
def refusals(v: Viewer, days: int, dates: list[str], counts: dict[str, dict[str, int]]) -> str:
    picker = "".join(f'<a href="/refusals?days={d}">{d}</a> ' for d in (7, 14, 30, 90))
    intro = f'<h2>{e(v.t("refusals_title", days=days))}</h2><p>{e(v.t("days"))}: {picker}</p>'
    if not counts:
        return intro + f'<p class="muted" id="no-refusals">{e(v.t("no_refusals"))}</p>'
    totals = sorted(((sum(c.values()), code) for code, c in counts.items()), reverse=True)
    rows = [[f'<a href="/decisions?reason={quote(code)}">{e(reason_in(code, v.lang))}</a>',
             f"<code>{e(code)}</code>", num(n)] for n, code in totals]
    return (intro + f'<figure id="chart">{refusal_chart(dates, counts, v.lang)}</figure>'
            + table([v.t("reason"), v.t("code"), v.t("refusals_total")], rows))


# --- overfills and overrides -------------------------------------------------------------------
def issues(v: Viewer, open_rows: list[dict[str, Any]], handled: list[dict[str, Any]],
           actions: list[dict[str, Any]]) -> str:
    """Open overfills and overrides (each marked handled after a confirmation and a note) and
    those handled lately, with who, when and the note (station.store.audit)."""
    head = ["", v.t("col_started"), v.t("col_rig"), v.t("col_operator"), v.t("col_cylinder"),
            v.t("col_net"), v.t("col_target"), v.t("col_override"), v.t("col_record"), ""]
    body = [[_kind(v, r), e(local(r["started_at"] or r["permitted_at"])), e(r["rig"]),
             e(r["operator"]), cylinder_link(r["cylinder_id"] or r["info_code"]),
             num(kg(r["net_g"])), num(kg(r["target_g"])),
             e(f'{r["override_by"]}: {r["override_reason"]}' if r["override_by"] else None),
             e(r["record_id"]), confirm_link(v, "handle", r["record_id"], "mark_handled")]
            for r in open_rows]
    notes = {a["target"]: a["note"] for a in reversed(actions)}
    done = [[_kind(v, r), e(r["record_id"]), e(r["handled_by"]), e(local(r["handled_at"])),
             e(notes.get(r["record_id"]))] for r in handled]
    return (table(head, body, v.t("no_issues"))
            + (f'<h2>{e(v.t("recently_handled"))}</h2>' if done else "")
            + table(["", v.t("col_record"), v.t("handled_by"), v.t("handled_at"),
                     v.t("action_note")], done))


def _kind(v: Viewer, r: dict[str, Any]) -> str:
    kinds = []
    if (r.get("post_check") or "").startswith("overfill"):
        kinds.append(f'<span class="bad">{e(v.t("kind_overfill"))}</span>')
    if r.get("override_by"):
        kinds.append(e(v.t("kind_override")))
    return " ".join(kinds)


# --- block list --------------------------------------------------------------------------------
def blocklist(v: Viewer, rows: list[dict[str, Any]]) -> str:
    """The add form and the list; a removal asks for a confirmation and a note."""
    form = (f'<form method="post" action="/blocklist/add" class="filters">{csrf_field(v.csrf)}'
            f'<label>{e(v.t("block_key"))}<input name="key" required maxlength="200"></label>'
            f'<label>{e(v.t("block_reason"))}<input name="reason" required maxlength="200">'
            f'</label><button type="submit">{e(v.t("add"))}</button></form>')
    body = [[e(r["key"]), e(r["reason"]), e(local(r["added_at"])), e(r["added_by"]),
             confirm_link(v, "unblock", r["key"], "remove")] for r in rows]
    return form + table([v.t("block_key"), v.t("block_reason"), v.t("added_at"),
                         v.t("added_by"), ""], body, v.t("empty_list"))


# --- outbox ------------------------------------------------------------------------------------
def outbox(v: Viewer, s: dict[str, Any]) -> str:
    counts = table([v.t("pending"), v.t("delivered"), v.t("dead"), v.t("oldest_pending")],
                   [[num(s["pending"]), num(s["delivered"]), num(s["dead"]),
                     e(s["oldest_pending"]) + (" (" + e(v.t("hours", h=s["oldest_pending_age_h"]))
                                               + ")" if s["oldest_pending"] else "")]])
    last = s["last_error"]
    last_html = (f'<p>{e(v.t("last_error"))}: {e(last["record_id"])} ×{e(last["attempts"])}: '
                 f'{e(last["last_error"])}</p>' if last else "")
    dead = [[e(d["record_id"]), e(d["last_error"]),
             confirm_link(v, "retry", d["record_id"], "retry")] for d in s["dead_records"]]
    return (counts + last_html + f'<h2>{e(v.t("dead_letters"))}</h2>'
            + table([v.t("col_record"), v.t("city_message"), ""], dead, v.t("none")))


# --- device health -----------------------------------------------------------------------------
def health(v: Viewer, rigs: list[dict[str, Any]]) -> str:
    out = []
    for h in rigs:
        age = h["heartbeat_age_s"]
        beat = (v.t("never") if age is None
                else f'{h["heartbeat_at"]} ({v.t("seconds_ago", s=round(age, 1))})')
        err = h["last_error"]
        shows = h["screen"]["en" if v.lang == "en" else "zh"]
        rows = [[e(v.t("screen_shows")), e(shows)],
                [e(v.t("connected")),
                 f'<td class="{"ok" if h["connected"] else "bad"}">'
                 f'{e(v.t("yes") if h["connected"] else v.t("no"))}</td>'],
                [e(v.t("last_heartbeat")), e(beat)],
                [e(v.t("fault")), e(h["fault"])],
                [e(v.t("phase")), e(state(h["phase"], v.lang))],
                [e(v.t("operator")), e(h["operator"])],
                [e(v.t("last_error_event")),
                 e(f'{err["at"]} {state(err["event"], v.lang)}: {err["detail"] or ""}'
                   if err else None)]]
        events = table(["", "", ""], [[e(x["at"]), f'<span data-event="{e(x["event"])}">'
                                       f'{e(state(x["event"], v.lang))}</span>', e(x["detail"])]
                                      for x in h["events"]])
        stale = note(v.t("live_stale"), True) if h["stale"] else ""
        out.append(f'<section class="rig" data-rig="{e(h["rig"])}"><h2>{e(h["rig"])}</h2>'
                   f'{stale}{table(["", ""], rows)}<h3>{e(v.t("recent_events"))}</h3>{events}'
                   f'</section>')
    return "".join(out)


# --- the record chain's head ------------------------------------------------------------------
def chain_section(v: Viewer, head: dict[str, Any] | None) -> str:
    """The health page's chain section: the head's sequence, hash prefix, time and record."""
    title = f'<h2>{e(v.t("chain_title"))}</h2>'
    if head is None:
        return f'<section id="chain">{title}<p class="muted">{e(v.t("chain_empty"))}</p></section>'
    kind = v.t(f"chain_kind_{head['kind']}")
    rows = [[e(v.t("chain_seq")), num(head["seq"])],
            [e(v.t("chain_hash")), f'<code title="{e(head["hash"])}">{e(head["short"])}</code>'],
            [e(v.t("chain_at")), e(head["at"] or v.t("chain_gone"))],
            [e(v.t("chain_record")), e(f'{kind} {head["ref"]}')]]
    return (f'<section id="chain" data-seq="{e(head["seq"])}" data-hash="{e(head["short"])}">'
            f'{title}{table(["", ""], rows)}'
            f'<p class="muted">{e(v.t("chain_not_verified"))}</p></section>')


def chain_footer(lang: str, head: dict[str, Any] | None) -> str:
    """Every manager page's footer: '记录链头：#SEQ HASH16 · TIME' (the full hash as its title)."""
    label = e(t("chain_head", lang)) + ("：" if lang == "zh" else ": ")
    if head is None:
        return f'<span id="chain-head">{label}{e(t("chain_empty", lang))}</span>'
    return (f'<span id="chain-head" data-seq="{e(head["seq"])}" data-hash="{e(head["short"])}">'
            f'{label}#{e(head["seq"])} <code title="{e(head["hash"])}">{e(head["short"])}'
            f'</code> · {e(head["at"] or t("chain_gone", lang))}</span>')


def index(lang: str, rigs: list[str]) -> str:
    links = "".join(f'<li><a href="/rig/{e(r)}">{e(r)}</a></li>' for r in rigs)
    return (f'<ul>{links}</ul><p><a href="/home">{e(t("manager_pages", lang))}</a></p>')


def confirm_link(v: Viewer, action: str, target: str, label: str) -> str:
    """A link to the confirmation page of an audited action (station.web.confirm)."""
    link = href("/confirm", [("action", action), ("target", target)])
    return f'<td><a class="act" href="{e(link)}">{e(v.t(label))}…</a></td>'


def actions_table(v: Viewer, rows: list[dict[str, Any]]) -> str:
    """Manager actions (station.store.audit): when, who, what, on what, the note."""
    body = [[e(local(a["at"])), e(a["user"]), e(v.t("action_" + a["action"]))
             + ("" if a["done"] else " " + e(v.t("action_nothing"))), e(a["target"]),
             e(a["note"])] for a in rows]
    if not body:
        return ""
    return (f'<section id="actions"><h2>{e(v.t("recent_actions"))}</h2>'
            + table([v.t("action_at"), v.t("action_user"), "", v.t("action_target"),
                     v.t("action_note")], body) + "</section>")
