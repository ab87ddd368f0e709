"""The HTTP server of `station web`: the standard library's ThreadingHTTPServer, loopback first."""

from __future__ import annotations

import http.client
import logging
import signal
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from urllib.parse import parse_qsl, unquote, urlsplit

from station.config import StationConfig
from station.errors import StoreError
from station.logfmt import kv
from station.notify import notify, watchdog_interval_s
from station.store.db import Store
from station.web.app import Request, Response, WebApp
from station.web.lan import allowed

log = logging.getLogger("station.web")

MAX_BODY = 64 * 1024  # forms are small; anything bigger is refused unread


def csp(nonce: str) -> str:
    """No external asset, no inline code without this response's nonce, no framing."""
    code = f"'nonce-{nonce}'" if nonce else "'none'"
    return (f"default-src 'none'; script-src {code}; style-src {code}; connect-src 'self'; "
            "img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")


class Handler(BaseHTTPRequestHandler):
    """Parses a request into app.Request, lets the WebApp answer, writes the Response."""

    protocol_version = "HTTP/1.1"  # keep-alive: a tablet polls over one connection
    disable_nagle_algorithm = True  # headers and body leave at once (PITFALLS.md: 44 ms → <1 ms)
    server_version = "station-web"
    sys_version = ""
    timeout = 30  # an idle keep-alive connection gives its thread back after this
    server: WebServer

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def _serve(self, method: str) -> None:
        started = time.perf_counter()
        req = self._request(method)
        if isinstance(req, Response):
            resp = req
        else:
            try:
                resp = self.server.app.handle(req)
            except Exception:  # noqa: BLE001 - one bad request must not end the server
                log.exception(kv("web_error", method=method, path=self.path[:200]))
                resp = Response(500, b"internal server error\n", "text/plain; charset=utf-8")
        self._send(resp)
        log.debug(kv("web_request", method=method, path=self.path[:200], status=resp.status,
                     ms=(time.perf_counter() - started) * 1000))

    def _request(self, method: str) -> Request | Response:
        parts = urlsplit(self.path)
        try:
            items = parse_qsl(parts.query, keep_blank_values=True, max_num_fields=64)
        except ValueError:
            return _plain(400, "bad query")
        headers = {k.lower(): v for k, v in self.headers.items()}
        req = Request(method, unquote(parts.path), {}, items, _cookies(headers.get("cookie", "")),
                      headers)
        for k, v in items:
            req.query.setdefault(k, v)
        if method == "POST":
            form = self._form(headers)
            if isinstance(form, Response):
                return form
            req.form = form
        return req

    def _form(self, headers: dict[str, str]) -> dict[str, str] | Response:
        try:
            length = int(headers.get("content-length", "0"))
        except ValueError:
            self.close_connection = True
            return _plain(400, "bad content-length")
        if length < 0 or length > MAX_BODY:
            self.close_connection = True
            return _plain(413, "request too large")
        body = self.rfile.read(length) if length else b""
        if headers.get("content-type", "").split(";")[0].strip() not in (
                "application/x-www-form-urlencoded", ""):
            return _plain(415, "forms only")
        try:
            pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=64)
        except (UnicodeDecodeError, ValueError):
            return _plain(400, "bad form")
        form: dict[str, str] = {}
        for k, v in pairs:
            form.setdefault(k, v)
        return form

    def _send(self, resp: Response) -> None:
        self.send_response(resp.status)
        self.send_header("Content-Type", resp.ctype)
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "same-origin")  # no-referrer makes Origin "null"
        self.send_header("X-Frame-Options", "DENY")
        self.send_header("Content-Security-Policy", csp(resp.nonce))
        for name, value in resp.headers:
            self.send_header(name, value)
        if isinstance(resp.body, bytes):
            self.send_header("Content-Length", str(len(resp.body)))
            self.end_headers()
            self.wfile.write(resp.body)
            return
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self._send_chunks(resp.body)

    def _send_chunks(self, chunks: Iterator[bytes]) -> None:
        try:
            for chunk in chunks:
                if chunk:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self.wfile.write(b"0\r\n\r\n")
        except StoreError as err:  # mid-stream: the client sees a truncated download
            log.error(kv("web_store_error", path=self.path[:200], error=str(err)))
            self.close_connection = True

    def log_message(self, format: str, *args: object) -> None:
        log.debug(kv("web_http", client=self.client_address[0], message=format % args))


def _plain(status: int, text: str) -> Response:
    return Response(status, (text + "\n").encode("utf-8"), "text/plain; charset=utf-8")


def _cookies(header: str) -> dict[str, str]:
    """Cookie header → name → value (the first of a name wins; malformed parts are skipped)."""
    out: dict[str, str] = {}
    for part in header.split(";"):
        name, sep, value = part.strip().partition("=")
        if sep and name:
            out.setdefault(name, value)
    return out


class WebServer(ThreadingHTTPServer):
    daemon_threads = True
    app: WebApp

    def __init__(self, app: WebApp, bind: str, port: int):
        self.address_family = socket.AF_INET6 if ":" in bind else socket.AF_INET
        self.app = app
        super().__init__((bind, port), Handler)

    def verify_request(self, request: object, client_address: object) -> bool:
        """Loopback and [web] allow only (as the unit's IPAddressAllow=): others are closed."""
        client = str(client_address[0]) if isinstance(client_address, tuple) else ""
        if allowed(client, self.app.cfg.web.allow):
            return True
        log.warning(kv("web_refused_client", client=client, why="not in [web] allow"))
        return False

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        host = str(host)
        return f"http://{'[' + host + ']' if ':' in host else host}:{port}/"


def make_server(cfg: StationConfig) -> WebServer:
    return WebServer(WebApp(cfg), cfg.web.bind, cfg.web.port)


def serve(cfg: StationConfig) -> int:
    """Serve until SIGTERM/SIGINT; tell systemd when ready and, while answering, that it lives."""
    server = make_server(cfg)
    _check_store(cfg.store)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if not stop.is_set():
            stop.set()
            notify("STOPPING=1")
            threading.Thread(target=server.shutdown, daemon=True).start()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    log.info(kv("web_ready", url=server.url, store=cfg.store, users=len(cfg.web.users)))
    notify("READY=1")
    interval = watchdog_interval_s()
    if interval:
        threading.Thread(target=_watchdog, args=(server, interval, stop), daemon=True,
                         name="watchdog").start()
    try:
        server.serve_forever(poll_interval=0.5)
    finally:
        server.server_close()
    log.info(kv("web_stopped"))
    return 0


def _check_store(path: str) -> None:
    try:
        Store(path, readonly=True).close()
    except StoreError as err:
        log.warning(kv("web_store_unavailable", store=path, error=str(err)))


def _watchdog(server: WebServer, interval: float, stop: threading.Event) -> None:
    """WATCHDOG=1 only after the server answered a request of its own: a hung server is
    restarted by systemd."""
    host, port = server.server_address[:2]
    host = "127.0.0.1" if host in ("0.0.0.0", "") else "::1" if host == "::" else str(host)
    while not stop.wait(interval):
        conn = http.client.HTTPConnection(host, port, timeout=interval)  # no proxy, loopback
        try:
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                notify("WATCHDOG=1")
        except OSError as err:
            log.warning(kv("web_watchdog_missed", error=str(err)))
        finally:
            conn.close()
