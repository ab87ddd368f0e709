"""The web application: routes, log-in and CSRF checks, and what each page reads or writes."""

from __future__ import annotations

import json
import logging
import math
import re
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from station.config import StationConfig
from station.errors import StoreError
from station.logfmt import kv
from station.store import answers
from station.store.db import Store
from station.web import checks, operator, pages, views
from station.web.auth import LoginGuard, Session, Sessions, csrf_ok
from station.web.html import frame
from station.web.manager import ManagerPages
from station.web.texts import LANGS, t

log = logging.getLogger("station.web")

SESSION_COOKIE, LOGIN_COOKIE, LANG_COOKIE = "station_session", "station_login", "station_lang"
SAFE_NEXT = re.compile(r"/[!-\[\]-~]*")  # "/" then printable ASCII except "\\"


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


def json_response(status: int, body: dict[str, Any]) -> Response:
    return Response(status, json.dumps(body, ensure_ascii=False).encode("utf-8"),
                    "application/json; charset=utf-8")


def redirect(location: str, *headers: tuple[str, str]) -> Response:
    return Response(303, headers=[("Location", location), *headers])


class WebApp(ManagerPages):
    """Everything a request needs: the configuration, the sessions and the log-in guard (the
    manager's pages: station.web.manager)."""

    def __init__(self, cfg: StationConfig):
        self.cfg = cfg
        self.rigs = [r.id for r in cfg.rigs]
        self.sessions = Sessions(cfg.web.session_hours)
        self.guard = LoginGuard(cfg.web)
        gets, posts = self.manager_routes()
        self.get_routes: dict[str, Callable[[Request, Session], Response]] = gets
        self.post_routes: dict[str, Callable[[Request, Session], Response]] = {
            "/logout": self.logout, **posts}

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
             status: int = 200, title_fmt: dict[str, str] | None = None) -> Response:
        nonce = secrets.token_urlsafe(16)
        lang = self.lang(req)
        footer, badges = self.chrome(lang) if session else ("", {})
        text = frame(t(title_key, lang, **(title_fmt or {})), body, lang=lang, path=req.path,
                     query=req.query_items, user=session.user if session else None,
                     csrf=session.csrf if session else None, nonce=nonce,
                     footer=footer, badges=badges)
        resp = Response(status, text.encode("utf-8"), nonce=nonce)
        if req.query.get("lang") in LANGS:
            resp.headers.append(cookie(LANG_COOKIE, req.query["lang"], 365 * 86400))
        return resp

    def chrome(self, lang: str) -> tuple[str, dict[str, tuple[int, bool]]]:
        """The chain head under every manager page and the navigation's count badges (indexed
        queries); none when the store cannot be read (the page itself says so, or did not
        need the store)."""
        try:
            with self.reader() as store:
                return pages.chain_footer(lang, views.chain_head(store)), self.badges(store)
        except StoreError as err:
            log.warning(kv("web_chain_head_unread", error=str(err)))
            return "", {}

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
            if path.startswith("/api/rig/") and path.endswith("/checks"):
                return self.rig_checks(req)
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

    def rig_checks(self, req: Request) -> Response:
        """A checklist answer from the rig's screen (station.web.checks), queued for the daemon."""
        rig = req.path.removeprefix("/api/rig/").removesuffix("/checks")
        if rig not in self.rigs:
            return json_response(404, {"error": "no such rig"})
        if not self.same_origin(req):
            return json_response(403, {"error": t("forbidden", "zh")})
        with self.writer() as store:
            shown = views.rig_screen(store, rig)
            try:
                answer = checks.parse(rig, req.form, shown.get("question"), shown.get("operator"))
            except checks.Refused as err:
                log.warning(kv("web_checks_refused", rig=rig, why=str(err)))
                return json_response(409, {"error": t(err.key, "zh")})
            answer_id = answers.post(store, answer)
        log.info(kv("web_checks_posted", rig=rig, id=answer_id, stage=answer.stage,
                    decision=answer.decision_id, not_ok=",".join(sorted(answer.not_ok))))
        return json_response(202, {"id": answer_id})

    # --- log-in -------------------------------------------------------------------------------------
    def login_form(self, req: Request, error: str = "", status: int = 200) -> Response:
        if self.session(req) is not None and not error:
            return redirect(self.safe_next(req.query.get("next")))
        token = req.cookies.get(LOGIN_COOKIE) or ""
        if not (20 <= len(token) <= 64 and token.replace("-", "").replace("_", "").isalnum()):
            token = secrets.token_urlsafe(32)
        lang = self.lang(req)
        nxt = req.form.get("next") or req.query.get("next") or "/home"
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
        """A plain path on this server, else "/home": printable ASCII only (no control character,
        whitespace, backslash or non-ASCII: issue 16 planted a cookie through CR/LF, and a tab
        made `/\t/evil` read as `//evil`), starting with one "/" (never `//host`)."""
        if not target or not SAFE_NEXT.fullmatch(target) or target.startswith("//"):
            return "/home"
        return target

    def logout(self, req: Request, session: Session) -> Response:
        self.sessions.end(session.token)
        log.info(kv("web_logout", user=session.user))
        return redirect("/login", cookie(SESSION_COOKIE, "", 0))
