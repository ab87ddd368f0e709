"""The manager's pages as request handlers: home, records, decisions, search, a cylinder, issues,
block list, outbox, health, the day report, and the audited actions behind a confirmation."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from datetime import date, datetime
from typing import TYPE_CHECKING

from station.core.keys import KeyRefused, block_key, search_key
from station.logfmt import kv
from station.store import audit, browse, overview, stats
from station.store.photos import PhotoError, PhotoStore
from station.store.records import COLUMNS, csv_lines, outbox_summary
from station.today import LOCAL_TZ, station_today
from station.web import confirm, finding, home, pages, views
from station.web.texts import csv_headers

if TYPE_CHECKING:
    from station.web.app import Request, Response
    from station.web.auth import Session

log = logging.getLogger("station.web")

# The old one-click paths: they now show the confirmation (no note: nothing is done).
OLD_PATHS = {"/issues/handle": ("handle", "record_id"), "/blocklist/remove": ("unblock", "key"),
             "/outbox/retry": ("retry", "record_id")}
DONE_MSG = {"unblock": ("unblocked", "unblock_gone"), "handle": ("handled", "handled_gone"),
            "retry": ("retried", "retry_gone")}


class ManagerPages:
    """Mixed into station.web.app.WebApp: `self.page`, `self.reader`, `self.writer`,
    `self.viewer`, `self.cfg` and `self.rigs` come from there."""

    def manager_routes(self) -> tuple[dict, dict]:
        gets = {"/home": self.home, "/records": self.records, "/records.csv": self.records_csv,
                "/decisions": self.decisions, "/search": self.search,
                "/cylinder": self.cylinder, "/photo": self.photo, "/refusals": self.refusals, "/issues": self.issues,
                "/blocklist": self.blocklist, "/outbox": self.outbox, "/health": self.health,
                "/confirm": self.confirm, "/report": self.report}
        posts = {"/blocklist/add": self.block, "/act": self.act,
                 **{path: self.act for path in OLD_PATHS}}
        return gets, posts

    def badges(self, store) -> dict[str, tuple[int, bool]]:
        """The navigation's count badges: open issues and dead letters (alarming)."""
        n = overview.counts(store)
        return {"/issues": (n["issues"], True), "/outbox": (n["dead"], True)}

    # --- home and lists ------------------------------------------------------------------------
    def home(self, req: Request, session: Session) -> Response:
        day = station_today()
        with self.reader() as store:
            data = overview.today(store, day)
            down = views.devices_down(store, self.cfg.rigs)
        body = home.home(self.viewer(req, session), data, down, self.cfg.sync.backlog_warn_h)
        return self.page(req, "home_title", body, session, title_fmt={"day": day.isoformat()})

    def records(self, req: Request, session: Session) -> Response:
        flt = views.RecordFilter.from_query(req.query)
        with self.reader() as store:
            rows, total = views.records_page(store, flt)
        body = pages.records(self.viewer(req, session), flt, rows, total, self.rigs)
        return self.page(req, "nav_records", body, session)

    def records_csv(self, req: Request, session: Session) -> Response:
        """The records as CSV: a BOM, Chinese headings (English with ?lang=en)."""
        from station.web.app import Response

        flt = views.RecordFilter.from_query(req.query)
        lang = self.lang(req)
        log.info(kv("web_export", user=session.user, filters=json.dumps(
            flt.query_items(), ensure_ascii=False)))
        return Response(200, self._csv(flt, lang), "text/csv; charset=utf-8",
                        [("Content-Disposition", 'attachment; filename="fill-records.csv"')])

    def _csv(self, flt: views.RecordFilter, lang: str) -> Iterator[bytes]:
        """The export, streamed 500 rows a chunk (station.store.records.csv_lines)."""
        buf = io.StringIO()
        with self.reader() as store:
            lines = csv_lines(views.records_all(store, flt), COLUMNS,
                              csv_headers(COLUMNS, lang))
            for n, line in enumerate(lines, start=1):
                buf.write(line)
                if n % 500 == 0:
                    yield buf.getvalue().encode("utf-8")
                    buf.seek(0)
                    buf.truncate()
        yield buf.getvalue().encode("utf-8")

    def decisions(self, req: Request, session: Session) -> Response:
        flt = finding.DecisionFilter.from_query(req.query, self.cfg.qr_hosts)
        with self.reader() as store:
            rows, total = browse.decisions_page(store, flt, flt.page, finding.PAGE_SIZE)
        body = finding.decisions(self.viewer(req, session), flt, rows, total, self.rigs)
        return self.page(req, "decisions_title", body, session)

    def search(self, req: Request, session: Session) -> Response:
        """One box for any form of a cylinder's key; one cylinder found: its page."""
        from station.web.app import redirect

        typed = req.query.get("q", "")[:300]
        key = search_key(typed, self.cfg.qr_hosts, self.cfg.qr_allow_http)
        found: dict = {"cylinders": [], "tags": []}
        if key.exact:
            with self.reader() as store:
                found = browse.search(store, key)
        if len(found["cylinders"]) == 1 and not found["tags"]:
            from urllib.parse import quote

            return redirect("/cylinder?id=" + quote(found["cylinders"][0]["cylinder_id"],
                                                    safe=""))
        body = finding.search(self.viewer(req, session), typed, found)
        return self.page(req, "search_title", body, session, title_fmt={"q": typed})

    def cylinder(self, req: Request, session: Session) -> Response:
        key = search_key(req.query.get("id", "")[:300], self.cfg.qr_hosts)
        if not key.exact:
            return self.page(req, "not_found", "", session, 404)
        with self.reader() as store:
            c = browse.cylinder(store, key.exact[0])
            if not c["record"] and not c["decisions"] and not c["fills"]:
                found = browse.search(store, key)  # an information code or number typed
                if found["cylinders"]:
                    c = browse.cylinder(store, found["cylinders"][0]["cylinder_id"])
            blocked = browse.blocked(store.blocklist(), c["keys"])
            acts = audit.actions_on(store, c["keys"] + [f["record_id"] for f in c["fills"]])
        body = finding.cylinder(self.viewer(req, session), c, blocked, acts)
        return self.page(req, "cylinder_title", body, session,
                         title_fmt={"id": c["cylinder_id"]})

    def photo(self, req: Request, session: Session) -> Response:
        """One fill's photo (station.store.photos), for signed-in managers."""
        from station.web.app import Response

        photos = PhotoStore(self.cfg.photos.dir, 0)
        try:
            data = photos.path_of(req.query.get("record", "")).read_bytes()
        except (PhotoError, OSError):
            return self.page(req, "not_found", "", session, 404)
        return Response(200, data, "image/jpeg", [("Cache-Control", "private, max-age=3600")])

    def refusals(self, req: Request, session: Session) -> Response:
        days = req.query.get("days", "14")
        days_n = int(days) if days.isdigit() and 1 <= int(days) <= 366 else 14
        with self.reader() as store:
            dates, counts = views.refusals_by_day(store, days_n)
        body = pages.refusals(self.viewer(req, session), days_n, dates, counts)
        return self.page(req, "nav_refusals", body, session)

    def issues(self, req: Request, session: Session) -> Response:
        with self.reader() as store:
            open_rows, handled = overview.open_issues(store), overview.handled_issues(store)
            acts = audit.actions(store, action="handle", limit=50)
        v = self.viewer(req, session)
        body = (pages.message(v, req.query.get("msg", ""))
                + pages.issues(v, open_rows, handled, acts))
        return self.page(req, "issues_title", body, session)

    def blocklist(self, req: Request, session: Session) -> Response:
        with self.reader() as store:
            rows, acts = overview.blocklist(store), audit.actions(store, action="unblock",
                                                                  limit=20)
        v = self.viewer(req, session)
        body = (pages.message(v, req.query.get("msg", "")) + pages.blocklist(v, rows)
                + pages.actions_table(v, acts))
        return self.page(req, "blocklist_title", body, session)

    def block(self, req: Request, session: Session) -> Response:
        from station.web.app import redirect

        key, why = req.form.get("key", "").strip()[:200], req.form.get("reason", "").strip()[:200]
        if not key or not why:
            return redirect("/blocklist?msg=block_needs")
        try:  # normalised as a reading would give it; refused when no reading ever could
            key = block_key(key, self.cfg.qr_hosts, self.cfg.qr_allow_http)
        except KeyRefused as err:
            log.info(kv("web_block_refused", key=key, why=err.why, user=session.user))
            return redirect("/blocklist?msg=block_invalid")
        with self.writer() as store:
            store.block(key, why, session.user)
        log.info(kv("web_blocked", key=key, reason=why, user=session.user))
        return redirect("/blocklist?msg=blocked")

    def outbox(self, req: Request, session: Session) -> Response:
        with self.reader() as store:
            summary = outbox_summary(store)
            acts = audit.actions(store, action="retry", limit=20)
        v = self.viewer(req, session)
        body = (pages.message(v, req.query.get("msg", "")) + pages.outbox(v, summary)
                + pages.actions_table(v, acts))
        return self.page(req, "outbox_title", body, session)

    def health(self, req: Request, session: Session) -> Response:
        with self.reader() as store:
            rigs, head = views.health(store, self.rigs), views.chain_head(store)
        v = self.viewer(req, session)
        return self.page(req, "health_title", pages.health(v, rigs) + pages.chain_section(v, head),
                         session)

    def report(self, req: Request, session: Session) -> Response:
        """One local day (?day=yyyy-mm-dd, default today) to print."""
        try:
            day = date.fromisoformat(req.query.get("day", ""))
        except ValueError:
            day = station_today()
        flt = views.RecordFilter(date_from=day.isoformat(), date_to=day.isoformat())
        with self.reader() as store:
            (numbers,) = stats.daily(store, day, day)
            rows = list(views.records_all(store, flt))
        printed = datetime.now(LOCAL_TZ).strftime("%Y-%m-%d %H:%M")
        body = home.report(self.viewer(req, session), numbers, rows, printed)
        return self.page(req, "report_title", body, session, title_fmt={"day": day.isoformat()})

    # --- audited actions -----------------------------------------------------------------------
    def confirm(self, req: Request, session: Session) -> Response:
        action, target = req.query.get("action", ""), req.query.get("target", "")[:200]
        if action not in audit.ACTIONS or not target:
            return self.page(req, "not_found", "", session, 404)
        body = confirm.page(self.viewer(req, session), action, target)
        return self.page(req, "confirm_title", body, session)

    def act(self, req: Request, session: Session) -> Response:
        """Carry out a confirmed action with its note (station.store.audit); without a note or
        the confirmation, the confirmation page again and nothing done."""
        from station.web.app import redirect

        if req.path in OLD_PATHS:
            action, field = OLD_PATHS[req.path]
            target = req.form.get(field, "")[:200]
        else:
            action, target = req.form.get("action", ""), req.form.get("target", "")[:200]
        if action not in audit.ACTIONS or not target:
            return self.page(req, "not_found", "", session, 404)
        note = req.form.get("note", "")
        if req.form.get("confirm") != "1" or not note.strip():
            body = confirm.page(self.viewer(req, session), action, target,
                                error=req.form.get("confirm") == "1", typed=note[:500])
            return self.page(req, "confirm_title", body, session,
                             400 if req.form.get("confirm") == "1" else 200)
        with self.writer() as store:
            done = audit.act(store, action, target, session.user, note)
        log.info(kv("web_action", action=action, target=target, user=session.user,
                    changed=done.changed, action_id=done.action_id))
        ok, gone = DONE_MSG[action]
        return redirect(f"{confirm.BACK[action]}?msg=" + (ok if done.changed else gone))
