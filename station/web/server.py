"""The HTTP server of `station web`: the stdlib's ThreadingHTTPServer, bounded against slow clients."""

from __future__ import annotations

import errno
import http.client
import logging
import resource
import signal
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
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
MAX_CONNECTIONS = 128  # open connections, one thread each (at the cap, see WebServer)
FD_RESERVE = 32  # descriptors kept for the store, logs and the listening socket
REQUEST_S = 10.0  # a request must arrive whole this long after accept or the previous answer
ACCEPT_BACKOFF_S = (0.05, 1.0)  # first and longest pause after a failing accept (EMFILE, …)
OUT_OF_FDS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)


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
    timeout = 30  # one send or receive waits at most this (the whole request: REQUEST_S)
    server: WebServer

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def _serve(self, method: str) -> None:
        started = time.perf_counter()
        req = self._request(method)
        self.server.answering(self.connection)  # read whole: no deadline while answering
        try:
            self._answer(req, method, started)
        finally:
            self.server.waiting(self.connection)

    def _answer(self, req: Request | Response, method: str, started: float) -> None:
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
                      headers, client=str(self.client_address[0]))
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
        if any(_unsafe_header(n) or _unsafe_header(v) for n, v in resp.headers):
            log.error(kv("web_header_refused", path=self.path[:200], status=resp.status))
            resp = _plain(500, "internal server error")  # never split a response
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


def _unsafe_header(text: str) -> bool:
    """A header name or value that could end the header or start another (CR, LF, NUL, …)."""
    return any(ord(c) < 0x20 and c != "\t" or c == "\x7f" for c in text)


def _cookies(header: str) -> dict[str, str]:
    """Cookie header → name → value (the first of a name wins; malformed parts are skipped)."""
    out: dict[str, str] = {}
    for part in header.split(";"):
        name, sep, value = part.strip().partition("=")
        if sep and name:
            out.setdefault(name, value)
    return out


@dataclass
class _Conn:
    client: str
    deadline: float | None  # monotonic; None while the request is being answered


class WebServer(ThreadingHTTPServer):
    """ThreadingHTTPServer that slow clients cannot take offline (issue 16: ~1,024 connections
    sending a byte every 10 s did): at most MAX_CONNECTIONS connections, each request due whole
    within REQUEST_S (else the connection is cut), and at the cap a new connection replaces the
    one that has waited longest for its request, so a tablet's poll always gets in. A failing
    accept (out of file descriptors) backs off instead of spinning."""

    daemon_threads = True
    request_queue_size = 128  # a burst of connections waits in the kernel, not refused
    app: WebApp

    def __init__(self, app: WebApp, bind: str, port: int,
                 max_connections: int | None = None, request_s: float = REQUEST_S):
        self.address_family = socket.AF_INET6 if ":" in bind else socket.AF_INET
        self.app = app
        self.max_connections = max_connections or connection_cap()
        self.request_s = request_s
        self._conns: dict[socket.socket, _Conn] = {}
        self._conns_lock = threading.Lock()
        self._backoff_s = 0.0
        self.dropped = 0  # connections cut at the cap or past their deadline
        super().__init__((bind, port), Handler)

    def verify_request(self, request: object, client_address: object) -> bool:
        """Loopback and [web] allow only (as the unit's IPAddressAllow=): others are closed."""
        client = str(client_address[0]) if isinstance(client_address, tuple) else ""
        if allowed(client, self.app.cfg.web.allow):
            return True
        log.warning(kv("web_refused_client", client=client, why="not in [web] allow"))
        return False

    # --- connections: a cap, a deadline per request, a back-off on a failing accept ------------
    def get_request(self) -> tuple[socket.socket, object]:
        try:
            conn, addr = self._accept()
        except OSError as err:
            if err.errno in OUT_OF_FDS:
                self._accept_failed(err)
            raise  # socketserver drops this round and selects again
        self._backoff_s = 0.0
        return conn, addr

    def _accept(self) -> tuple[socket.socket, object]:
        return self.socket.accept()

    def _accept_failed(self, err: OSError) -> None:
        """Out of descriptors: free the longest-waiting connection and pause the accept loop
        (the listening socket stays readable, so retrying at once spins at 100 % CPU)."""
        first, longest = ACCEPT_BACKOFF_S
        self._backoff_s = min(longest, self._backoff_s * 2 or first)
        log.warning(kv("web_accept_failed", error=err.strerror or str(err),
                       pause_s=self._backoff_s))
        self._drop_longest_waiting("accept failed")
        time.sleep(self._backoff_s)  # a pause of the accept loop, not a synchronisation

    def process_request(self, request: socket.socket, client_address: object) -> None:  # type: ignore[override]
        client = str(client_address[0]) if isinstance(client_address, tuple) else ""
        with self._conns_lock:
            full = len(self._conns) >= self.max_connections
        if full and not self._drop_longest_waiting("connection cap"):
            log.warning(kv("web_connection_refused", client=client, why="every slot answering"))
            self.shutdown_request(request)
            return
        with self._conns_lock:
            self._conns[request] = _Conn(client, time.monotonic() + self.request_s)
        super().process_request(request, client_address)

    def shutdown_request(self, request: socket.socket) -> None:  # type: ignore[override]
        with self._conns_lock:
            self._conns.pop(request, None)
        super().shutdown_request(request)

    def answering(self, conn: socket.socket) -> None:
        """The request on `conn` arrived whole: no deadline while it is answered."""
        with self._conns_lock:
            if conn in self._conns:
                self._conns[conn].deadline = None

    def waiting(self, conn: socket.socket) -> None:
        """Answered: the next request on `conn` is due whole within request_s."""
        with self._conns_lock:
            if conn in self._conns:
                self._conns[conn].deadline = time.monotonic() + self.request_s

    @property
    def open_connections(self) -> int:
        with self._conns_lock:
            return len(self._conns)

    def service_actions(self) -> None:
        """Each turn of the accept loop (every poll_interval at most): cut the connections whose
        request is late."""
        now = time.monotonic()
        with self._conns_lock:
            late = [(s, c) for s, c in self._conns.items()
                    if c.deadline is not None and c.deadline <= now]
            for sock, _ in late:
                del self._conns[sock]
        for sock, conn in late:
            self._cut(sock, conn, "request deadline")

    def _drop_longest_waiting(self, why: str) -> bool:
        """Cut the connection that has waited longest for its request; False when every
        connection is being answered."""
        with self._conns_lock:
            waiting = [(c.deadline, s) for s, c in self._conns.items() if c.deadline is not None]
            if not waiting:
                return False
            _, sock = min(waiting, key=lambda pair: pair[0])
            conn = self._conns.pop(sock)
        self._cut(sock, conn, why)
        return True

    def _cut(self, sock: socket.socket, conn: _Conn, why: str) -> None:
        """Wake the connection's thread with end-of-file: it closes and ends."""
        self.dropped += 1
        log.debug(kv("web_connection_cut", client=conn.client, why=why))
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already closed by its thread

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        host = str(host)
        return f"http://{'[' + host + ']' if ':' in host else host}:{port}/"


def connection_cap() -> int:
    """MAX_CONNECTIONS, or fewer when the descriptor limit (RLIMIT_NOFILE) would run out first."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return MAX_CONNECTIONS
    return max(8, min(MAX_CONNECTIONS, soft - FD_RESERVE))


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
    log.info(kv("web_ready", url=server.url, store=cfg.store, users=len(cfg.web.users),
                max_connections=server.max_connections, request_s=server.request_s))
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
