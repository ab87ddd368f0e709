"""A city that answers the way real deployments sometimes do: proxy pages, GBK, integer codes,
trickles, huge bodies. Paths without a misbehaviour are answered by the simulator's ledger.

    bad = MisbehavingCity(dataset).start()
    bad.behave["/cylinders/query"] = html(404)
    ...
    bad.stop()
"""

from __future__ import annotations

import json
import socket
import threading
from collections import Counter
from collections.abc import Callable
from http.server import ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from .city_api import CityLedger, Reply
from .httpsim import TrackedHandler

NGINX_PAGE = ("<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n<center><h1>"
              "{status} {reason}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n"
              "</html>\r\n")

# A misbehaviour writes the whole answer itself, given the answer the city would have given.
Behaviour = Callable[["_Handler", Reply], None]


def _envelope(reply: Reply, code: Any = None) -> dict[str, Any]:
    _status, real_code, message, data = reply
    env: dict[str, Any] = {"code": real_code if code is None else code, "message": message}
    if data is not None:
        env["data"] = json.dumps(data, ensure_ascii=False)
    return env


def html(status: int, reason: str = "") -> Behaviour:
    """A proxy's or WAF's HTML error page with that HTTP status (nginx's 404, a 403 page)."""
    reason = reason or {403: "Forbidden", 404: "Not Found"}.get(status, "Error")

    def send(h: _Handler, _reply: Reply) -> None:
        page = NGINX_PAGE.format(status=status, reason=reason).encode()
        h.answer(status, page, "text/html")
    return send


def gbk() -> Behaviour:
    """The city's own answer, encoded GBK and labelled so (charset=GBK)."""
    def send(h: _Handler, reply: Reply) -> None:
        body = json.dumps(_envelope(reply), ensure_ascii=False).encode("gbk")
        h.answer(reply[0], body, "application/json; charset=GBK")
    return send


def integer_code() -> Behaviour:
    """The city's own answer with `code` as an integer ({"code": 404, …})."""
    def send(h: _Handler, reply: Reply) -> None:
        body = json.dumps(_envelope(reply, int(reply[1])), ensure_ascii=False).encode()
        h.answer(reply[0], body, "application/json; charset=utf-8")
    return send


def trickle(every_s: float) -> Behaviour:
    """Headers at once, then the city's (well-formed) answer one byte every `every_s`."""
    def send(h: _Handler, reply: Reply) -> None:
        body = json.dumps(_envelope(reply), ensure_ascii=False).encode()
        h.head(reply[0], "application/json; charset=utf-8", len(body))
        for i in range(len(body)):
            if h.stopping.wait(every_s) or not h.write(body[i:i + 1]):
                return
    return send


def trickle_headers(every_s: float) -> Behaviour:
    """The status line and headers themselves one byte every `every_s` (a stalled proxy)."""
    def send(h: _Handler, reply: Reply) -> None:
        head = (f"HTTP/1.1 {reply[0]} OK\r\nContent-Type: application/json\r\n"
                "Date: Mon, 30 Nov 2026 12:00:00 GMT\r\nContent-Length: 0\r\n\r\n").encode()
        for i in range(len(head)):
            if h.stopping.wait(every_s) or not h.write(head[i:i + 1]):
                return
    return send


def huge(size: int, *, say_length: bool) -> Behaviour:
    """A body of `size` bytes (JSON-looking padding), with or without a Content-Length."""
    def send(h: _Handler, _reply: Reply) -> None:
        h.head(200, "application/json; charset=utf-8", size if say_length else None)
        chunk = b'{"code": "200", "pad": "' + b"x" * 65500
        sent = 0
        while sent < size and not h.stopping.is_set():
            part = chunk[:size - sent]
            if not h.write(part):
                return
            sent += len(part)
    return send


class MisbehavingCity:
    """A real HTTP server on loopback; `behave` maps path suffixes to misbehaviours."""

    def __init__(self, dataset: dict, host: str = "127.0.0.1"):
        self.ledger = CityLedger(dataset)
        self.behave: dict[str, Behaviour] = {}
        self.requests: Counter[str] = Counter()
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._conns: set[socket.socket] = set()
        self._server = _Server((host, 0), _Handler)
        self._server.city = self
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True,
                                        name="city-misbehaving")

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> MisbehavingCity:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._thread.join(timeout=5)

    def __enter__(self) -> MisbehavingCity:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def behaviour(self, path: str) -> Behaviour | None:
        with self._lock:
            self.requests[path] += 1
            return next((b for s, b in self.behave.items() if path.endswith(s)), None)

    def track(self, conn: socket.socket, add: bool) -> None:
        with self._lock:
            (self._conns.add if add else self._conns.discard)(conn)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    city: MisbehavingCity

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that gave up mid-answer is what these tests are about


class _Handler(TrackedHandler):
    server: _Server

    def tracker(self) -> MisbehavingCity:
        return self.server.city

    @property
    def stopping(self) -> threading.Event:
        return self.server.city.stopping

    def do_POST(self) -> None:
        city, path = self.server.city, urlsplit(self.path).path
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        behaviour = city.behaviour(path)
        reply = city.ledger.handle(path, self.headers.get("Authorization", ""), raw)
        if behaviour is None:
            self.answer(reply[0], json.dumps(_envelope(reply), ensure_ascii=False).encode(),
                        "application/json; charset=utf-8")
        else:
            self.close_connection = True
            behaviour(self, reply)

    def do_HEAD(self) -> None:
        behaviour = self.server.city.behaviour(urlsplit(self.path).path)
        if behaviour is None:
            self.head(200, "application/json", 0)
        else:
            self.close_connection = True
            behaviour(self, (200, "200", "", None))

    def head(self, status: int, ctype: str, length: int | None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        if length is None:
            self.send_header("Connection", "close")
            self.close_connection = True
        else:
            self.send_header("Content-Length", str(length))
        self.end_headers()
        self.wfile.flush()

    def write(self, data: bytes) -> bool:
        """Send bytes now; False when the client has gone."""
        try:
            self.wfile.write(data)
            self.wfile.flush()
            return True
        except OSError:
            self.close_connection = True
            return False

    def answer(self, status: int, body: bytes, ctype: str) -> None:
        self.head(status, ctype, len(body))
        self.write(body)
