"""The web application: routes, log-in and CSRF checks, and what each page reads or writes."""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import re
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from urllib.parse import urlencode

from station.config import StationConfig
from station.core.keys import KeyRefused, block_key
from station.errors import StoreError
from station.logfmt import kv
from station.store.db import Store
from station.store.records import COLUMNS, outbox_summary
from station.web import operator, pages, views
from station.web.auth import LoginGuard, Session, Sessions, csrf_ok
from station.web.html import frame
from station.web.texts import LANGS, t

log = logging.getLogger("station.web")

SESSION_COOKIE, LOGIN_COOKIE, LANG_COOKIE = "station_session", "station_login", "station_lang"
SAFE_NEXT = re.compile(r"/[!-\[\]-~]*")  # "/" then printable ASCII except "\\"
CSV_FORMULA = ("=", "+", "-", "@", "\t", "\r")


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    query_items: list[tuple[str, str]]
    cookies: dict[str, str]
    headers: dict[str, str]
    form: dict[str, str] = field(default_factory=dict)
    client: str = ""  # the peer's IP address (the log-in limit per address)


@dataclass
class Response:
    status: int
    body: bytes | Iterator[bytes] = b""
    ctype: str = "text/html; charset=utf-8"
    headers: list[tuple[str, str]] = field(default_factory=list)
    nonce: str = ""


def cookie(name: str, value: str, max_age: int | None, path: str = "/") -> tuple[str, str]:
    age = "" if max_age is None else f"; Max-Age={max_age}"
    return ("Set-Cookie", f"{name}={value}; Path={path}; HttpOnly; SameSite=Strict{age}")


def redirect(location: str, *headers: tuple[str, str]) -> Response:
    return Response(303, headers=[("Location", location), *headers])


class WebApp:
    """Everything a request needs: the configuration, the sessions and the log-in guard."""

    def __init__(self, cfg: StationConfig):
        self.cfg = cfg
        self.rigs = [r.id for r in cfg.rigs]
        self.sessions = Sessions(cfg.web.session_hours)
        self.guard = LoginGuard(cfg.web)
        self.get_routes: dict[str, Callable[[Request, Session], Response]] = {
            "/records": self.records, "/records.csv": self.records_csv,
            "/refusals": self.refusals, "/issues": self.issues, "/blocklist": self.blocklist,
            "/outbox": self.outbox, "/health": self.health}
        self.post_routes: dict[str, Callable[[Request, Session], Response]] = {
            "/logout": self.logout, "/issues/handle": self.handle_issue,
            "/blocklist/add": self.block, "/blocklist/remove": self.unblock,
            "/outbox/retry": self.retry}

    # --- plumbing -------------------------------------------------------------------------------
    @contextmanager
    def reader(self) -> Iterator[Store]:
        """A read-only connection for one request (SQLite connections stay in one thread)."""
        store = Store(self.cfg.store, readonly=True)
        try:
            yield store
        finally:
            store.close()

    @contextmanager
    def writer(self) -> Iterator[Store]:
        """A connection for a manager's write; each goes through one store transaction."""
        store = Store(self.cfg.store)
        try:
            yield store
        finally:
            store.close()

    def lang(self, req: Request) -> str:
        chosen = req.query.get("lang")
        if chosen in LANGS:
            return chosen
        return req.cookies.get(LANG_COOKIE) if req.cookies.get(LANG_COOKIE) in LANGS else "zh"

    def page(self, req: Request, title_key: str, body: str, session: Session | None,
             status: int = 200) -> Response:
        nonce = secrets.token_urlsafe(16)
        lang = self.lang(req)
        text = frame(t(title_key, lang), body, lang=lang, path=req.path, query=req.query_items,
                     user=session.user if session else None,
                     csrf=session.csrf if session else None, nonce=nonce,
                     footer=self.footer(lang) if session else "")
        resp = Response(status, text.encode("utf-8"), nonce=nonce)
        if req.query.get("lang") in LANGS:
            resp.headers.append(cookie(LANG_COOKIE, req.query["lang"], 365 * 86400))
        return resp

    def footer(self, lang: str) -> str:
        """The chain head under every manager page (one indexed query); none when the store
        cannot be read (the page itself says so, or did not need the store)."""
        try:
            with self.reader() as store:
                return pages.chain_footer(lang, views.chain_head(store))
        except StoreError as err:
            log.warning(kv("web_chain_head_unread", error=str(err)))
            return ""

    def viewer(self, req: Request, session: Session) -> pages.Viewer:
        return pages.Viewer(self.lang(req), session.user, session.csrf)

    # --- dispatch -------------------------------------------------------------------------------
    def handle(self, req: Request) -> Response:
        try:
            return self._route(req)
        except StoreError as err:
            log.error(kv("web_store_error", path=req.path, error=str(err)))
            return self.page(req, "store_down", "", None, 503)  # the detail is in the log

    def _route(self, req: Request) -> Response:
        path, method = req.path, req.method
        if method == "GET":
            if path == "/healthz":
                return Response(200, b"ok\n", "text/plain; charset=utf-8")
            if path == "/":
                return self.page(req, "index_title", pages.index(self.lang(req), self.rigs),
                                 self.session(req))
            if path.startswith("/rig/") or path.startswith("/api/rig/"):
                return self.rig(req)
            if path == "/login":
                return self.login_form(req)
            if path in self.get_routes:
                session = self.session(req)
                if session is None:
                    target = path + ("?" + urlencode(req.query_items) if req.query_items
                                     else "")
                    return redirect("/login?" + urlencode([("next", target)]))
                return self.get_routes[path](req, session)
        elif method == "POST":
            if path == "/login":
                return self.login(req)
            if path in self.post_routes:
                session = self.session(req)
                if session is None or not csrf_ok(session.csrf, req.form.get("csrf")) \
                        or not self.same_origin(req):
                    log.warning(kv("web_forbidden", path=path, signed_in=session is not None))
                    return self.page(req, "forbidden", "", session, 403)
                return self.post_routes[path](req, session)
        return self.page(req, "not_found", "", self.session(req), 404)

    def session(self, req: Request) -> Session | None:
        return self.sessions.get(req.cookies.get(SESSION_COOKIE))

    @staticmethod
    def same_origin(req: Request) -> bool:
        """A browser's Origin, when sent, must be this server (a second line behind CSRF)."""
        origin = req.headers.get("origin")
        return origin is None or origin == f"http://{req.headers.get('host', '')}"

    # --- operator screens -------------------------------------------------------------------------
    def rig(self, req: Request) -> Response:
        api = req.path.startswith("/api/")
        rig = req.path.removeprefix("/api/rig/" if api else "/rig/")
        if rig not in self.rigs:
            if api:
                return Response(404, b'{"error": "no such rig"}', "application/json")
            return self.page(req, "unknown_rig", "", None, 404)
        status = 200
        try:
            with self.reader() as store:
                state = views.rig_screen(store, rig)
        except StoreError as err:  # the screen says so and keeps asking: it recovers by itself
            log.error(kv("web_store_error", path=req.path, error=str(err)))
            state, status = {**views.rig_screen(None, rig), "error": t("store_down", "zh")}, 503
        state["page"] = operator.PAGE_ID  # a page older than the server reloads itself
        if api:
            return Response(status, json.dumps(state, ensure_ascii=False).encode("utf-8"),
                            "application/json; charset=utf-8")
        nonce = secrets.token_urlsafe(16)
        page = operator.page(state, nonce, sound=self.cfg.web.screen_sound)
        return Response(status, page.encode("utf-8"), nonce=nonce)

    # --- log-in -------------------------------------------------------------------------------------
    def login_form(self, req: Request, error: str = "", status: int = 200) -> Response:
        if self.session(req) is not None and not error:
            return redirect(self.safe_next(req.query.get("next")))
        token = req.cookies.get(LOGIN_COOKIE) or ""
        if not (20 <= len(token) <= 64 and token.replace("-", "").replace("_", "").isalnum()):
            token = secrets.token_urlsafe(32)
        lang = self.lang(req)
        nxt = req.form.get("next") or req.query.get("next") or "/records"
        resp = self.page(req, "login_title", pages.login(lang, token, self.safe_next(nxt), error),
                         None, status)
        resp.headers.append(cookie(LOGIN_COOKIE, token, 3600, "/login"))
        return resp

    def login(self, req: Request) -> Response:
        if not csrf_ok(req.cookies.get(LOGIN_COOKIE), req.form.get("csrf")) \
                or not self.same_origin(req):
            log.warning(kv("web_forbidden", path="/login", signed_in=False))
            return self.page(req, "forbidden", "", None, 403)
        name = req.form.get("name", "")[:64]
        attempt = self.guard.attempt(name, req.form.get("password", "")[:200], req.client)
        lang = self.lang(req)
        if attempt.ok:
            session = self.sessions.create(attempt.user)
            log.info(kv("web_login", user=attempt.user))
            return redirect(self.safe_next(req.form.get("next")),
                            cookie(SESSION_COOKIE, session.token,
                                   round(self.cfg.web.session_hours * 3600)),
                            cookie(LOGIN_COOKIE, "", 0, "/login"))
        if attempt.busy:
            log.warning(kv("web_login_busy", name=name, client=req.client))
            return self.login_form(req, t("login_busy", lang), 503)
        if attempt.locked_s > 0:
            log.warning(kv("web_login_locked", name=name, client=req.client,
                           seconds=round(attempt.locked_s)))
            minutes = max(1, math.ceil(attempt.locked_s / 60))
            return self.login_form(req, t("locked", lang, minutes=minutes), 429)
        log.warning(kv("web_login_failed", name=name, client=req.client))
        return self.login_form(req, t("login_failed", lang), 401)

    @staticmethod
    def safe_next(target: str | None) -> str:
        """A plain path on this server, else "/": printable ASCII only (no control character,
        whitespace, backslash or non-ASCII: issue 16 planted a cookie through CR/LF, and a tab
        made `/\t/evil` read as `//evil`), starting with one "/" (never `//host`)."""
        if not target or not SAFE_NEXT.fullmatch(target) or target.startswith("//"):
            return "/"
        return target

    def logout(self, req: Request, session: Session) -> Response:
        self.sessions.end(session.token)
        log.info(kv("web_logout", user=session.user))
        return redirect("/login", cookie(SESSION_COOKIE, "", 0))

    # --- manager pages ----------------------------------------------------------------------------
    def records(self, req: Request, session: Session) -> Response:
        flt = views.RecordFilter.from_query(req.query)
        with self.reader() as store:
            rows, total = views.records_page(store, flt)
        body = pages.records(self.viewer(req, session), flt, rows, total, self.rigs)
        return self.page(req, "nav_records", body, session)

    def records_csv(self, req: Request, session: Session) -> Response:
        flt = views.RecordFilter.from_query(req.query)
        log.info(kv("web_export", user=session.user, filters=json.dumps(flt.query_items(),
                                                                          ensure_ascii=False)))
        return Response(200, self._csv(flt), "text/csv; charset=utf-8",
                        [("Content-Disposition", 'attachment; filename="fill-records.csv"')])

    def _csv(self, flt: views.RecordFilter) -> Iterator[bytes]:
        """The export, streamed: UTF-8 with a BOM (Excel), formulas neutralised."""
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=COLUMNS)
        buf.write("\ufeff")
        writer.writeheader()
        with self.reader() as store:
            for n, row in enumerate(views.records_all(store, flt), start=1):
                writer.writerow({k: "'" + v if isinstance(v, str) and v.startswith(CSV_FORMULA)
                                 else v for k, v in row.items()})
                if n % 500 == 0:
                    yield buf.getvalue().encode("utf-8")
                    buf.seek(0)
                    buf.truncate()
        yield buf.getvalue().encode("utf-8")

    def refusals(self, req: Request, session: Session) -> Response:
        days = req.query.get("days", "14")
        days_n = int(days) if days.isdigit() and 1 <= int(days) <= 366 else 14
        with self.reader() as store:
            dates, counts = views.refusals_by_day(store, days_n)
        body = pages.refusals(self.viewer(req, session), days_n, dates, counts)
        return self.page(req, "nav_refusals", body, session)

    def issues(self, req: Request, session: Session) -> Response:
        with self.reader() as store:
            open_rows, handled = views.open_issues(store), views.handled_issues(store)
        v = self.viewer(req, session)
        body = pages.message(v, req.query.get("msg", "")) + pages.issues(v, open_rows, handled)
        return self.page(req, "issues_title", body, session)

    def handle_issue(self, req: Request, session: Session) -> Response:
        record_id = req.form.get("record_id", "")[:64]
        with self.writer() as store:
            done = views.mark_handled(store, record_id, session.user)
        log.info(kv("web_handled", record=record_id, user=session.user, done=done))
        return redirect("/issues?msg=" + ("handled" if done else "handled_gone"))

    def blocklist(self, req: Request, session: Session) -> Response:
        with self.reader() as store:
            rows = views.blocklist(store)
        v = self.viewer(req, session)
        body = pages.message(v, req.query.get("msg", "")) + pages.blocklist(v, rows)
        return self.page(req, "blocklist_title", body, session)

    def block(self, req: Request, session: Session) -> Response:
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

    def unblock(self, req: Request, session: Session) -> Response:
        key = req.form.get("key", "")[:200]
        with self.writer() as store:
            found = store.unblock(key)
        log.info(kv("web_unblocked", key=key, user=session.user, found=found))
        return redirect("/blocklist?msg=" + ("unblocked" if found else "unblock_gone"))

    def outbox(self, req: Request, session: Session) -> Response:
        with self.reader() as store:
            summary = outbox_summary(store)
        v = self.viewer(req, session)
        body = pages.message(v, req.query.get("msg", "")) + pages.outbox(v, summary)
        return self.page(req, "outbox_title", body, session)

    def retry(self, req: Request, session: Session) -> Response:
        record_id = req.form.get("record_id", "")[:64]
        with self.writer() as store:
            done = views.outbox_retry(store, record_id)
        log.info(kv("web_outbox_retry", record=record_id, user=session.user, done=done))
        return redirect("/outbox?msg=" + ("retried" if done else "retry_gone"))

    def health(self, req: Request, session: Session) -> Response:
        with self.reader() as store:
            rigs, head = views.health(store, self.rigs), views.chain_head(store)
        v = self.viewer(req, session)
        return self.page(req, "health_title", pages.health(v, rigs) + pages.chain_section(v, head),
                         session)
