"""City traceability system client: signed token, cylinder query, tag binding, fill submission."""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from email.utils import parsedate_to_datetime
from typing import Any, Literal

from tenacity import RetryCallState, Retrying, retry_if_exception, wait_random_exponential

from station.city.clockwatch import CitySample
from station.city.wire import Wire, WireReply, body_text, parse_envelope
from station.config import CityConfig
from station.errors import CityError
from station.logfmt import kv

log = logging.getLogger("station.city")

__all__ = ["CityClient", "CityReply", "parse_envelope"]

Outcome = Literal["found", "not_found", "refused", "invalid", "duplicate", "ok", "transient"]

RETRY_HTTP = frozenset({429, 500, 502, 503, 504})  # infrastructure trouble: retry
DEFINITIVE_HTTP = frozenset({400, 403, 404, 409})  # the city's own answer: never retry
RETRY_CODES = frozenset({"429", "500", "502", "503", "504"})
MIN_ATTEMPT_S = 0.05  # no attempt is started with less time than this left
BACKOFF = wait_random_exponential(multiplier=0.1, max=2.0)  # full jitter: U(0, min(2, 0.1*2^n))

QUERY_OUTCOMES: dict[str, Outcome] = {
    "200": "found", "404": "not_found", "403": "refused", "400": "invalid"}
SUBMIT_OUTCOMES: dict[str, Outcome] = {
    "200": "ok", "409": "duplicate", "400": "invalid", "403": "refused", "404": "invalid"}
BIND_OUTCOMES: dict[str, Outcome] = {
    "200": "ok", "409": "duplicate", "400": "invalid", "403": "refused", "404": "not_found"}


@dataclass(frozen=True)
class CityReply:
    """What one client call came to; `transient` means no definitive answer within the deadline."""

    outcome: Outcome
    items: tuple[dict, ...] = ()
    data: Any = None
    code: str | None = None
    message: str = ""
    attempts: int = 0
    elapsed_ms: float = 0.0
    retry_after_s: float | None = None  # from the last 429/503 seen in this call


@dataclass
class _Call:
    """The budget and bookkeeping of one client call (retries and token request included)."""

    deadline_s: float
    started: float = field(default_factory=time.monotonic)
    attempts: int = 0
    refreshed: bool = False
    retry_after_s: float | None = None
    last_error: CityError | None = None

    def remaining(self) -> float:
        return self.deadline_s - (time.monotonic() - self.started)

    def out_of_time(self, what: str) -> CityError:
        """The error to report when the deadline ends the call: the last real one, if any."""
        last = self.last_error
        if last is None:
            return CityError(f"deadline reached before {what}", transient=True)
        return CityError(str(last), transient=True, code=last.code,
                         retry_after_s=last.retry_after_s)

    def elapsed_ms(self) -> float:
        return (time.monotonic() - self.started) * 1000


def _retry_after(value: str | None) -> float | None:
    """Retry-After as seconds (delta-seconds or an HTTP date); None when absent or unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


class CityClient:
    """Thread-safe client of the city API: a Session per thread, one cached token for all."""

    def __init__(self, cfg: CityConfig, unit_code: str, clock: Callable[[], float] = time.time):
        self._cfg, self._unit_code, self._clock = cfg, unit_code, clock
        self._wire = Wire(connect_timeout_s=cfg.connect_timeout_s,
                          read_timeout_s=cfg.read_timeout_s, ca_bundle=cfg.ca_bundle,
                          cert_sha256=cfg.cert_sha256, max_reply_bytes=cfg.max_reply_bytes)
        self._garbled = False  # a body that was not the envelope has been logged
        self._token_lock = threading.Lock()
        self._token_value: str | None = None
        self._token_expires = 0.0  # in self._clock() time
        self._closing = threading.Event()
        self._state_lock = threading.Lock()
        self._up: bool | None = None  # for logging transitions only
        self.clock_sample: CitySample | None = None  # the city's Date at its last answer

    # ---- public calls -----------------------------------------------------------------------
    def query(self, condition: dict[str, str], deadline_s: float | None = None) -> CityReply:
        """Look a cylinder up; never raises for city trouble (see CityReply.outcome)."""
        deadline = self._cfg.decision_deadline_s if deadline_s is None else deadline_s
        reply = self._run(self._cfg.paths.query, dict(condition), deadline, QUERY_OUTCOMES,
                          check=_check_items)
        if reply.outcome == "found":
            items = tuple(reply.data["items"])
            if not items:
                return _with(reply, outcome="not_found", data=None)
            return _with(reply, items=items)
        return reply

    def submit_filling(self, record: dict, deadline_s: float = 10.0) -> CityReply:
        """Submit one filling record; a `duplicate` for our record_id means delivered."""
        if not record.get("record_id"):
            return CityReply("invalid", message="filling record has no record_id")
        return self._run(self._cfg.paths.submit, record, deadline_s, SUBMIT_OUTCOMES)

    def bind_tag(self, body: dict, deadline_s: float = 15.0) -> CityReply:
        """Bind a tag (QR URL or RFID UID) to a cylinder file, with 1–4 stamp photos."""
        return self._run(self._cfg.paths.bind, body, deadline_s, BIND_OUTCOMES)

    def token(self, deadline_s: float | None = None) -> str:
        """The current bearer token, fetched (signed) when absent or near expiry.

        Raises CityError when no token can be had within the deadline.
        """
        call = _Call(self._cfg.decision_deadline_s if deadline_s is None else deadline_s)
        return self._retrying(call)(self._recording, call, self._token, call)

    def city_date(self, deadline_s: float) -> tuple[str | None, float, float]:
        """The city's HTTP Date (HEAD of base_url), with our wall clock at send and receipt.

        Ends by the deadline; raises CityError when no answer came."""
        sent = time.time()
        reply = self._wire.exchange("HEAD", self._cfg.base_url + "/", what="HEAD /",
                                    end=time.monotonic() + deadline_s)
        return reply.headers.get("Date"), sent, time.time()

    def close(self) -> None:
        """Stop retrying and close every thread's connections."""
        self._closing.set()
        self._wire.close()

    # ---- one call: retries inside the deadline ----------------------------------------------
    def _run(self, path: str, body: dict, deadline_s: float, outcomes: dict[str, Outcome],
             check: Callable[[Any], None] | None = None) -> CityReply:
        call = _Call(deadline_s)
        # Retrying a POST whose request may already have reached the city is safe here: a query
        # is read-only, a filling submission carries record_id as its idempotency key (a second
        # delivery answers 409 duplicate) and binding the same tag to the same cylinder twice
        # leaves the same binding.
        try:
            code, message, data = self._retrying(call)(self._recording, call, self._exchange,
                                                       call, path, body, check)
        except CityError as err:
            self._note(False, str(err))
            return CityReply("transient", code=err.code, message=str(err),
                             attempts=call.attempts, elapsed_ms=call.elapsed_ms(),
                             retry_after_s=call.retry_after_s)
        self._note(True, "")
        outcome = outcomes.get(code, "transient")
        if outcome == "transient":
            message = f"unexpected code {code} from {path}: {message}"
        log.debug(kv("city_call", path=path, outcome=outcome, code=code,
                     attempts=call.attempts, elapsed_ms=call.elapsed_ms()))
        return CityReply(outcome, data=data, code=code, message=message, attempts=call.attempts,
                         elapsed_ms=call.elapsed_ms(), retry_after_s=call.retry_after_s)

    def _retrying(self, call: _Call) -> Retrying:
        """Retry transient CityErrors with full-jitter backoff, never past the call's deadline."""
        return Retrying(
            retry=retry_if_exception(lambda e: isinstance(e, CityError) and e.transient),
            stop=lambda rs: self._give_up(call, rs),
            wait=lambda rs: self._backoff(call, rs),
            sleep=self._closing.wait,  # close() cuts a backoff short
            before_sleep=lambda rs: log.debug("city retry in %.2fs after: %s",
                                              rs.upcoming_sleep, rs.outcome.exception()),
            reraise=True)

    def _give_up(self, call: _Call, rs: RetryCallState) -> bool:
        err = rs.outcome.exception() if rs.outcome else None
        left = call.remaining() - MIN_ATTEMPT_S  # an attempt needs at least MIN_ATTEMPT_S
        wait_asked = getattr(err, "retry_after_s", None)
        if wait_asked is not None and wait_asked > left:
            return True  # the city asked us to wait longer than we may: give up now
        return self._closing.is_set() or left <= 0

    def _backoff(self, call: _Call, rs: RetryCallState) -> float:
        err = rs.outcome.exception() if rs.outcome else None
        left = max(0.0, call.remaining() - MIN_ATTEMPT_S)
        wait_asked = getattr(err, "retry_after_s", None)
        if wait_asked is not None:
            return min(wait_asked, left)
        return min(BACKOFF(rs), left)

    @staticmethod
    def _recording(call: _Call, attempt: Callable[..., Any], *args: Any) -> Any:
        """Run one attempt, remembering its error for the report when the deadline ends it."""
        try:
            return attempt(*args)
        except CityError as err:
            call.last_error = err
            raise

    def _exchange(self, call: _Call, path: str, body: dict,
                  check: Callable[[Any], None] | None) -> tuple[str, str, Any]:
        """One attempt: token, POST, and on a 401 one new token and one more POST."""
        while True:
            token = self._token(call)
            call.attempts += 1
            code, message, data = self._post(call, path, body, token)
            if code != "401":
                break
            if call.refreshed:
                raise CityError(f"city refused a fresh token on {path} (401: {message})",
                                transient=False, code="401")
            log.info(kv("city_token_refused", message=message or "401", action="new token"))
            call.refreshed = True
            self._drop_token(token)
        if code == "200" and check is not None:
            check(data)
        return code, message, data

    def _post(self, call: _Call, path: str, body: dict, token: str | None,
              extra: dict[str, str] | None = None) -> tuple[str, str, Any]:
        """One POST; `extra` headers mark a body already in the deployment's terms (token)."""
        left = call.remaining()
        if left < MIN_ATTEMPT_S / 2:
            raise call.out_of_time(f"{path} could be called")
        headers = {"Content-Type": "application/json; charset=utf-8"}
        if token is not None:
            headers.update(self._cfg.profile.authorization(token))
        headers.update(extra or {})
        wire_body = body if extra is not None else self._cfg.profile.to_wire(body)
        payload = json.dumps(wire_body, ensure_ascii=False).encode("utf-8")
        reply = self._wire.exchange("POST", self._cfg.base_url + path, data=payload,
                                    headers=headers, end=call.started + call.deadline_s,
                                    what=path)
        return self._classify(call, path, reply)

    def _sample_clock(self, date: str | None) -> None:
        """Keep the city's clock reading (its Date header) against ours, for the clock watch."""
        try:
            city = parsedate_to_datetime(date).timestamp() if date else None
        except (TypeError, ValueError):
            city = None
        if city is not None:
            self.clock_sample = CitySample(city, time.time(), time.monotonic())

    def _classify(self, call: _Call, path: str, reply: WireReply) -> tuple[str, str, Any]:
        """Turn an HTTP answer into (code, message, data), or raise a transient CityError.

        Only a well-formed envelope is the city's word, whatever the HTTP status: an HTML page
        from a proxy or WAF, text, an empty body or JSON that is not the envelope is transient
        (and carries no code, so that nothing downstream takes it for the city's answer).
        """
        status, headers = reply.status, reply.headers
        self._sample_clock(headers.get("Date"))
        wait_asked = _retry_after(headers.get("Retry-After"))
        if status in (429, 503) and wait_asked is not None:
            call.retry_after_s = wait_asked
        if status in RETRY_HTTP:
            raise CityError(f"{path}: HTTP {status}", transient=True, code=str(status),
                            retry_after_s=wait_asked if status in (429, 503) else None)
        try:
            code, message, data = parse_envelope(reply.body, headers.get("Content-Type"),
                                                 self._cfg.profile)
        except CityError as err:
            self._not_envelope(path, reply, str(err))
            raise CityError(f"{path}: HTTP {status} with {err}, not the city's envelope",
                            transient=True) from err
        self._garbled = False
        if status != 200 and (status not in DEFINITIVE_HTTP | {401} or code == "200"):
            raise CityError(f"{path}: unexpected HTTP {status} (code {code})", transient=True,
                            code=None if code == "200" else code)
        if code in RETRY_CODES:
            if code == "429" and wait_asked is not None:
                call.retry_after_s = wait_asked
            raise CityError(f"{path}: code {code} {message}".rstrip(), transient=True, code=code,
                            retry_after_s=wait_asked if code == "429" else None)
        return code, message, data

    def _not_envelope(self, path: str, reply: WireReply, problem: str) -> None:
        """Log a body that is not the envelope once (until the city answers properly again)."""
        if self._garbled:
            return
        self._garbled = True
        head = reply.body[:120]
        try:
            text = body_text(head, reply.headers.get("Content-Type"))
        except CityError:
            text = head.decode("latin-1")
        log.warning(kv("city_not_envelope", path=path, status=reply.status, problem=problem,
                       content_type=reply.headers.get("Content-Type", ""), first=text))

    # ---- token ------------------------------------------------------------------------------
    def _token(self, call: _Call) -> str:
        if not self._token_lock.acquire(timeout=max(0.0, call.remaining())):
            raise call.out_of_time("another thread got the city token")
        try:
            now = self._clock()
            if self._token_value is not None and now < self._token_expires:
                return self._token_value
            token, ttl = self._fetch_token(call)
            margin = min(self._cfg.token_margin_s, ttl / 2)
            self._token_value, self._token_expires = token, now + ttl - margin
            log.info(kv("city_token_obtained", valid_s=round(ttl)))
            return token
        finally:
            self._token_lock.release()

    def _drop_token(self, token: str) -> None:
        with self._token_lock:
            if self._token_value == token:  # another thread may have replaced it already
                self._token_value = None

    def _fetch_token(self, call: _Call) -> tuple[str, float]:
        profile = self._cfg.profile
        values = {"unit_code": self._unit_code, "app_key": self._cfg.app_key,
                  "timestamp": int(self._clock()), "nonce": secrets.token_hex(8)}
        body, headers = profile.token_request(self._cfg.app_secret, values)
        code, message, data = self._post(call, self._cfg.paths.token, body, None, headers)
        if code != "200":
            raise CityError(f"city refused our credentials (code {code}: {message}); check "
                            "unit_code, app_key, app_secret and the clock",
                            transient=False, code=code)
        token = data.get(profile.token_key) if isinstance(data, dict) else None
        ttl = data.get(profile.expires_key) if isinstance(data, dict) else None
        if not isinstance(token, str) or not token or isinstance(ttl, bool) or \
                not isinstance(ttl, int | float) or ttl <= 0:
            raise CityError("city token answer lacks a token or expires_in", transient=True)
        return token, float(ttl)

    # ---- plumbing ---------------------------------------------------------------------------
    def _note(self, up: bool, detail: str) -> None:
        """Log when the city becomes reachable or unreachable, not every call."""
        with self._state_lock:
            changed, self._up = self._up != up, up
        if changed and up:
            log.info(kv("city_reachable"))
        elif changed:
            log.warning(kv("city_unreachable", error=detail))


def _check_items(data: Any) -> None:
    """A query's success data must hold a list of objects; anything else is a garbled answer."""
    items = data.get("items") if isinstance(data, dict) else None
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise CityError("city query answer has no list of cylinder objects", transient=True)


def _with(reply: CityReply, **changes: Any) -> CityReply:
    return replace(reply, **changes)
