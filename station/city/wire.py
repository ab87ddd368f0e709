"""The city's wire: one HTTP exchange that ends by its deadline, and the envelope read from it.

requests' timeouts bound each wait for bytes, not the call: a server that trickles a byte at a
time keeps a plain `post(timeout=…)` alive for minutes. Here every exchange has a monotonic
deadline; one watchdog thread shuts the connection's socket down when it passes, which ends any blocking
read at once (headers, body, a stall mid-body), so the calling thread is free by the deadline.
The body is read in chunks and refused past `max_reply_bytes`.
"""

from __future__ import annotations

import codecs
import hashlib
import heapq
import itertools
import json
import re
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from station.city.profile import DEFAULT_PROFILE, CityProfile
from station.errors import CityError

CHUNK = 65536
_CHARSET = re.compile(r"""charset\s*=\s*["']?([^"';\s]+)""", re.IGNORECASE)
_GB_LABELS = frozenset({"gbk", "gb2312", "gb_2312", "gb_2312-80", "x-gbk", "cp936", "gb18030"})
_TLS_HINTS = {
    "issuer": " (is [city] ca_bundle the CA that signed the city's certificate?)",
    "self-signed": " (is [city] ca_bundle the CA that signed the city's certificate?)",
    "expired": " (the city must renew it; or is our clock wrong?)",
    "not yet valid": " (is our clock wrong?)",
    "mismatch": " (is [city] base_url the host the certificate names?)",
}
_local = threading.local()  # the guard of the exchange this thread is making


# ---- the envelope ---------------------------------------------------------------------------
def body_text(body: bytes, content_type: str | None) -> str:
    """The body as text, by the charset its Content-Type names (UTF-8 when none; a BOM skipped).

    GBK and GB2312 are read as GB18030 (their superset). An unknown charset or bytes that are not
    in it raise CityError(transient=True).
    """
    match = _CHARSET.search(content_type or "")
    label = match.group(1).strip().lower() if match else "utf-8"
    if label in _GB_LABELS:
        label = "gb18030"
    if body.startswith(codecs.BOM_UTF8):
        body, label = body[len(codecs.BOM_UTF8):], "utf-8"
    try:
        text = body.decode(codecs.lookup(label).name)
    except LookupError as err:
        raise CityError(f"unknown charset {label[:40]!r}", transient=True) from err
    except UnicodeDecodeError as err:
        raise CityError(f"body is not {label[:40]} text", transient=True) from err
    return text.removeprefix("\ufeff")


def parse_envelope(body: bytes, content_type: str | None = None,
                   profile: CityProfile = DEFAULT_PROFILE) -> tuple[str, str, Any]:
    """Split a city answer into (code, message, data), decoding a `data` string as JSON.

    `code` may be a string or an integer (`{"code": 404}`); it is returned as a string. `data`
    may be a string holding JSON (the contract), a JSON value (some deployments), absent or empty
    (None). A `data` string that is not JSON is returned as it is. A body that is not such an
    object raises CityError(transient=True): a proxy, a WAF or a gateway spoke, not the city.
    The keys and the code's values are the profile's; the code comes back as the contract's.
    """
    try:
        doc = json.loads(body_text(body, content_type))
    except (ValueError, RecursionError) as err:
        raise CityError("a body that is not JSON", transient=True) from err
    if not isinstance(doc, dict):
        raise CityError("JSON that is not an object", transient=True)
    code = doc.get(profile.code_key)
    if isinstance(code, int) and not isinstance(code, bool):
        code = str(code)
    if not isinstance(code, str) or not code:
        raise CityError(f"JSON without a string or integer {profile.code_key!r}",
                        transient=True)
    message = doc.get(profile.message_key)
    message = "" if message is None else message if isinstance(message, str) else str(message)
    data = doc.get(profile.data_key)
    if isinstance(data, str):
        if not data.strip():
            data = None
        else:
            try:
                data = json.loads(data)
            except (ValueError, RecursionError):
                pass  # a plain string payload: keep it as text
    return profile.contract_code(code), message, data


# ---- the deadline ---------------------------------------------------------------------------
class _Guard:
    """The connection of one exchange, shut down by a timer when the deadline passes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._socks: list[socket.socket] = []
        self.killed = self._done = False

    def attach(self, sock: Any) -> None:
        if isinstance(sock, socket.socket):
            with self._lock:
                self._socks.append(sock)

    def kill(self) -> None:
        with self._lock:
            if self._done:
                return
            self.killed = True
            for sock in self._socks:
                try:  # the base class: an SSLSocket's own shutdown would drop its TLS state
                    socket.socket.shutdown(sock, socket.SHUT_RDWR)
                except OSError:  # closed meanwhile, or the raw socket of a TLS handshake
                    pass  # (detached; CPython bounds a handshake as a whole by its timeout)

    def done(self) -> None:
        with self._lock:
            self._done = True


class _Reaper:
    """One thread for the whole process that kills each guard whose deadline has passed (a
    guard already done ignores it): no thread per call."""

    def __init__(self) -> None:
        self._cv = threading.Condition()
        self._heap: list[tuple[float, int, _Guard]] = []
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None

    def watch(self, when: float, guard: _Guard) -> None:
        with self._cv:
            heapq.heappush(self._heap, (when, next(self._seq), guard))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="city-deadlines",
                                                daemon=True)
                self._thread.start()
            self._cv.notify()

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._heap or self._heap[0][0] > time.monotonic():
                    self._cv.wait(self._heap[0][0] - time.monotonic() if self._heap else None)
                _, _, guard = heapq.heappop(self._heap)
            guard.kill()


_REAPER = _Reaper()


def _attach(sock: Any) -> None:
    guard = getattr(_local, "guard", None)
    if guard is not None:
        guard.attach(sock)


class _GuardedMixin:
    """Hands every socket the connection makes or reuses to the current exchange's guard."""

    sock: Any

    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()  # type: ignore[misc]
        _attach(sock)
        return sock

    def request(self, *args: Any, **kw: Any) -> Any:
        _attach(self.sock)  # a kept-alive connection (or the TLS socket after the handshake)
        return super().request(*args, **kw)  # type: ignore[misc]


class CityHTTPConnection(_GuardedMixin, HTTPConnection):
    pass


class CityHTTPSConnection(_GuardedMixin, HTTPSConnection):
    pass


class CityHTTPPool(HTTPConnectionPool):
    ConnectionCls = CityHTTPConnection


class CityHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = CityHTTPSConnection


class _Adapter(HTTPAdapter):
    """One connection per thread, no retries of its own, guarded sockets, an optional pin."""

    def __init__(self, cert_sha256: str = "") -> None:
        self._pin = cert_sha256
        super().__init__(max_retries=0, pool_connections=1, pool_maxsize=1)

    def init_poolmanager(self, *args: Any, **kw: Any) -> None:
        if self._pin:
            kw["assert_fingerprint"] = self._pin
        super().init_poolmanager(*args, **kw)
        self.poolmanager.pool_classes_by_scheme = {"http": CityHTTPPool, "https": CityHTTPSPool}


@dataclass(frozen=True)
class WireReply:
    status: int
    headers: Any  # requests' case-insensitive dict
    body: bytes


def cert_fingerprint(der: bytes) -> str:
    """The SHA-256 fingerprint of a DER certificate, as `[city] cert_sha256` takes it."""
    return hashlib.sha256(der).hexdigest()


class Wire:
    """HTTP exchanges with the city, each ending by its deadline; a Session per thread."""

    def __init__(self, *, connect_timeout_s: float, read_timeout_s: float, ca_bundle: str = "",
                 cert_sha256: str = "", max_reply_bytes: int = 4 * 1024 * 1024):
        self.connect_timeout_s, self.read_timeout_s = connect_timeout_s, read_timeout_s
        self.ca_bundle, self.cert_sha256 = ca_bundle, cert_sha256.replace(":", "").lower()
        self.max_reply_bytes = max_reply_bytes
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._lock = threading.Lock()

    def exchange(self, method: str, url: str, *, end: float, data: bytes | None = None,
                 headers: dict[str, str] | None = None, what: str = "") -> WireReply:
        """One request and its whole answer by `end` (time.monotonic()); else CityError."""
        what = what or url
        left = end - time.monotonic()
        if left <= 0:
            raise CityError(f"{what}: deadline reached before the call", transient=True)
        guard = _Guard()
        _local.guard = guard
        _REAPER.watch(end, guard)
        try:
            return self._exchange(method, url, data, headers, left, end)
        except (requests.RequestException, OSError, ValueError) as err:
            raise self._translate(err, guard, what, end) from err
        finally:
            guard.done()
            _local.guard = None

    def _exchange(self, method: str, url: str, data: bytes | None,
                  headers: dict[str, str] | None, left: float, end: float) -> WireReply:
        timeout = (min(self.connect_timeout_s, left), min(self.read_timeout_s, left))
        # verify per request: a Session's own verify loses to $REQUESTS_CA_BUNDLE (requests
        # merges the environment over it), which would silently drop [city] ca_bundle.
        resp = self._session().request(method, url, data=data, headers=headers, timeout=timeout,
                                       stream=True, allow_redirects=False,
                                       verify=self.ca_bundle or True)
        try:
            return WireReply(resp.status_code, resp.headers, self._body(resp, end))
        finally:
            resp.close()

    def _body(self, resp: requests.Response, end: float) -> bytes:
        cap = self.max_reply_bytes
        length = resp.headers.get("Content-Length", "")
        if length.strip().isdigit() and int(length) > cap:
            raise CityError(f"answer of {int(length)} bytes refused (at most {cap})",
                            transient=True)
        chunks, size = [], 0
        for chunk in resp.iter_content(CHUNK):
            size += len(chunk)
            if size > cap:
                raise CityError(f"answer longer than {cap} bytes refused", transient=True)
            chunks.append(chunk)
            if time.monotonic() > end:
                raise CityError("deadline reached while the answer was arriving", transient=True)
        return b"".join(chunks)

    @staticmethod
    def _translate(err: BaseException, guard: _Guard, what: str, end: float) -> CityError:
        if guard.killed or time.monotonic() >= end:
            return CityError(f"{what}: timed out at the call's deadline without a whole answer "
                             "(the city stalled or trickled)", transient=True)
        tls = tls_problem(err)
        if tls:  # a configuration or an attack, never downgraded; the call is not retried
            return CityError(f"{what}: TLS: {tls}", transient=False)
        if isinstance(err, requests.Timeout):
            return CityError(f"{what}: timed out ({_brief(err)})", transient=True)
        return CityError(f"{what}: connection failed ({_brief(err)})", transient=True)

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            adapter = _Adapter(self.cert_sha256)
            session.mount("https://", adapter)
            session.mount("http://", adapter)
            with self._lock:
                self._sessions.append(session)
            self._local.session = session
        return session

    def close(self) -> None:
        with self._lock:
            sessions, self._sessions = self._sessions, []
        for session in sessions:
            session.close()


def tls_problem(err: BaseException) -> str:
    """What was wrong with the city's certificate, plainly; "" when err is no TLS failure."""
    seen: set[int] = set()
    cause: BaseException | None = err
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, ssl.SSLCertVerificationError):
            why = cause.verify_message or str(cause)
            hint = next((h for k, h in _TLS_HINTS.items() if k in why), "")
            return f"the city's certificate is not trusted: {why}{hint}"
        text = str(cause)
        if "Fingerprints did not match" in text:
            return "the city's certificate does not match [city] cert_sha256 (the pin)"
        if isinstance(cause, ssl.SSLError):
            return f"the TLS handshake failed: {cause.reason or cause}"
        cause = cause.__cause__ or cause.__context__ or _first_arg_error(cause)
    return ""


def _first_arg_error(err: BaseException) -> BaseException | None:
    """requests and urllib3 wrap the cause in their arguments (MaxRetryError.reason)."""
    reason = getattr(err, "reason", None)
    if isinstance(reason, BaseException):
        return reason
    for arg in getattr(err, "args", ()):
        if isinstance(arg, BaseException):
            return arg
    return None


def _brief(err: BaseException) -> str:
    return f"{type(err).__name__}: {str(err)[:200]}"
