"""The manager's home page (today at a glance, each number a link) and the printable day report."""

from __future__ import annotations

from typing import Any

from station.core.fills import local
from station.store.stats import Day
from station.web.html import e, href, note, num, table
from station.web.pages import Viewer, check_cell, cylinder_link, sync_cell
from station.web.texts import reason_in, state


def card(label: str, n: object, link: str, alarm: bool = False, small: str = "",
         ident: str = "") -> str:
    """One number with its label, linking to the list behind it."""
    cls = "card alarm" if alarm else "card"
    who = f' id="{e(ident)}"' if ident else ""
    extra = f"<small>{e(small)}</small>" if small else ""
    return (f'<div class="{cls}"{who}><a href="{e(link)}"><span class="n">{e(n)}</span>'
            f'{e(label)}</a>{extra}</div>')


def home(v: Viewer, d: dict[str, Any], down: dict[str, list[str]], warn_h: float) -> str:
    """Today: fills, refusals by reason, open issues, undelivered records (the oldest flagged
    past `warn_h` hours: [sync] backlog_warn_h), dead letters, the last backup, rigs and
    readers down, the chain head. `d` is station.store.overview.today's."""
    day = d["day"]
    fills = sum(n for c, n in d["fills"].items() if c != "cancelled")
    overfills = d["fills"].get("overfill", 0)
    age = d["oldest_pending_h"]
    late = age is not None and age > warn_h
    oldest = v.t("home_oldest", h=f"{age:.1f}") if age is not None else ""
    day_q = [("from", day), ("to", day)]
    refused = sum(d["refusals"].values())
    cards = [
        card(v.t("home_fills"), fills, href("/records", day_q), ident="c-fills",
             small=f'{v.t("kind_overfill")} {overfills}' if overfills else ""),
        card(v.t("home_permits"), d["permits"],
             href("/decisions", day_q + [("verdict", "permit")]), ident="c-permits"),
        card(v.t("home_refusals"), refused,
             href("/decisions", day_q + [("verdict", "refuse")]), ident="c-refusals"),
        card(v.t("home_open_issues"), d["issues"], "/issues", d["issues"] > 0, ident="c-issues"),
        card(v.t("home_pending"), d["pending"], href("/records", [("sync", "pending")]), late,
             oldest, ident="c-pending"),
        card(v.t("home_dead"), d["dead"], "/outbox", d["dead"] > 0, ident="c-dead"),
    ]
    warn = note(v.t("home_backlog_warn", limit=f"{warn_h:g}") + " · " + oldest, True) \
        if late else ""
    reasons = [[f'<a href="{e(href("/decisions", day_q + [("reason", code)]))}">'
                f'{e(reason_in(code, v.lang))}</a>', f"<code>{e(code)}</code>", num(n)]
               for code, n in d["refusals"].items()]
    return (f'<div class="cards">{"".join(cards)}</div>{warn}'
            f'<h2>{e(v.t("home_refusals"))}</h2>'
            + table([v.t("reason"), v.t("code"), v.t("count")], reasons,
                    v.t("home_no_refusals"))
            + _devices(v, down) + _backup(v, d["backup"]))


def _devices(v: Viewer, down: dict[str, list[str]]) -> str:
    rows = []
    for key, what in (("home_rigs_down", "rigs"), ("home_readers_down", "readers")):
        names = down.get(what) or []
        cell = (f'<td class="bad" id="down-{what}">{e(", ".join(names))}</td>' if names
                else f'<td class="ok" id="down-{what}">{e(v.t("home_all_up"))}</td>')
        rows.append([f'<a href="/health">{e(v.t(key))}</a>', cell])
    return f'<h2>{e(v.t("nav_health"))}</h2>' + table(["", ""], rows)


def _backup(v: Viewer, b: dict[str, Any] | None) -> str:
    title = f'<h2>{e(v.t("home_backup"))}</h2>'
    if b is None:
        return title + f'<p class="bad" id="backup">{e(v.t("home_backup_none"))}</p>'
    ok = bool(b["ok"])
    result = v.t("home_backup_ok") if ok else v.t("home_backup_failed")
    what = b["path"] if ok else b["detail"]
    return (title + f'<p id="backup" data-ok="{int(ok)}"><span class="{"ok" if ok else "bad"}">'
            f'{e(result)}</span> · {e(local(b["at"]))} · {e(what)}</p>')


# --- the printable day report ------------------------------------------------------------------
def report(v: Viewer, day: Day, rows: list[dict[str, Any]], printed: str) -> str:
    """One local day: its numbers (station.store.stats.Day), refusals by reason, per rig and
    per operator, and every fill record; printed on A4 (print CSS hides the navigation)."""
    picker = (f'<form method="get" action="/report" class="filters noprint"><label>'
              f'{e(v.t("report_day"))}<input type="date" name="day" value="{e(day.date)}">'
              f'</label><button type="submit">{e(v.t("report_show"))}</button></form>')
    totals = table([v.t("home_fills"), v.t("kind_overfill"), state("underfill", v.lang),
                    state("interrupted", v.lang), state("cancelled", v.lang),
                    v.t("kind_override"), v.t("home_permits"), v.t("home_refusals"),
                    v.t("delivered")],
                   [[num(day.fills), num(day.overfills), num(day.underfills),
                     num(day.interrupted), num(day.cancelled), num(day.overrides),
                     num(day.permits), num(day.refused), num(day.delivered)]])
    reasons = [[e(reason_in(c, v.lang)), f"<code>{e(c)}</code>", num(n)]
               for c, n in sorted(day.refusals.items(), key=lambda kv: (-kv[1], kv[0]))]
    per: dict[str, dict[str, list[float]]] = {"rig": {}, "operator": {}}
    for r in rows:
        for what in per:
            if r["post_check"] != "cancelled":
                per[what].setdefault(r[what] or "-", []).append(r["net_kg"] or 0.0)
    groups = "".join(
        f'<h3>{e(v.t(title))}</h3>'
        + table([v.t("col_" + what), v.t("home_fills"), v.t("col_net")],
                [[e(name), num(len(nets)), num(round(sum(nets), 2))]
                 for name, nets in sorted(per[what].items())], v.t("none"))
        for what, title in (("rig", "report_by_rig"), ("operator", "report_by_operator")))
    head = [v.t(k) for k in ("col_started", "col_rig", "col_operator", "col_cylinder",
                             "col_net", "col_target", "col_post", "col_override", "col_sync",
                             "col_record")]
    body = [[e(r["started"]), e(r["rig"]), e(r["operator"]), cylinder_link(r["cylinder_id"] or r["info_code"]), num(r["net_kg"]),
             num(r["target_kg"]), check_cell(v, r["post_check"]), e(r["override_by"]),
             sync_cell(v, r), e(r["record_id"])] for r in rows]
    return (picker + f'<p class="muted">{e(v.t("printed_at"))}: {e(printed)} · {e(v.user)}</p>'
            + totals + f'<h2>{e(v.t("home_refusals"))}</h2>'
            + table([v.t("reason"), v.t("code"), v.t("count")], reasons, v.t("no_refusals"))
            + groups + f'<h2>{e(v.t("nav_records"))}</h2>' + table(head, body, v.t("none")))

