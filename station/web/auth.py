"""Managers' log-in: scrypt password hashes, sessions with a CSRF token, lock-out after failures."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from station.config import WebConfig

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1  # ~16 MiB and ~50 ms per check on this machine
MAX_TRACKED_NAMES = 10_000  # failed-log-in counters kept (the oldest unlocked are forgotten)
MAX_TRACKED_ADDRESSES = 10_000  # the same per client address
ADDRESS_FACTOR = 4  # an address is locked after this many times max_failed_logins failures
MAX_HASHES = 2  # password checks at once (one per core; scrypt takes ~16 MiB each)
HASH_WAIT_S = 10.0  # an attempt waits this long for a free check, then is refused as busy


def hash_password(password: str, *, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P
                  ) -> str:
    """'scrypt$N$r$p$salt$hash' (base64) for the configuration's [[web.users]] password_hash."""
    salt = secrets.token_bytes(16)
    key = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=2**26,
                         dklen=32)
    return "$".join(("scrypt", str(n), str(r), str(p), _b64(salt), _b64(key)))


def verify_password(password: str, stored: str) -> bool:
    """True when the password matches the stored hash (compared in constant time)."""
    try:
        kind, n, r, p, salt, key = stored.split("$")
        if kind != "scrypt":
            return False
        want = base64.b64decode(key)
        got = hashlib.scrypt(password.encode("utf-8"), salt=base64.b64decode(salt), n=int(n),
                             r=int(r), p=int(p), maxmem=2**26, dklen=len(want))
    except ValueError:  # a malformed hash (config checks the shape) or impossible parameters
        return False
    return hmac.compare_digest(got, want)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@dataclass
class Session:
    token: str
    user: str
    csrf: str
    expires: float  # monotonic


class Sessions:
    """Signed-in managers, in memory: a restart of `station web` signs everyone out."""

    def __init__(self, hours: float):
        self.lifetime_s = hours * 3600
        self._by_token: dict[str, Session] = {}
        self._lock = threading.Lock()

    def create(self, user: str) -> Session:
        s = Session(secrets.token_urlsafe(32), user, secrets.token_urlsafe(32),
                    time.monotonic() + self.lifetime_s)
        with self._lock:
            self._expire()
            self._by_token[s.token] = s
        return s

    def get(self, token: str | None) -> Session | None:
        if not token:
            return None
        with self._lock:
            s = self._by_token.get(token)
            if s is not None and s.expires <= time.monotonic():
                del self._by_token[token]
                return None
            return s

    def end(self, token: str) -> None:
        with self._lock:
            self._by_token.pop(token, None)

    def _expire(self) -> None:
        now = time.monotonic()
        for token in [t for t, s in self._by_token.items() if s.expires <= now]:
            del self._by_token[token]


def csrf_ok(expected: str | None, given: str | None) -> bool:
    return bool(expected) and bool(given) and hmac.compare_digest(expected, given)


@dataclass(frozen=True)
class Attempt:
    ok: bool
    locked_s: float = 0.0  # > 0: the name (or the client address) is locked this many more s
    user: str = ""
    busy: bool = False  # refused unchecked: too many password checks running (try again)


@dataclass
class _Count:
    """Failures counted against one name or one client address (in-flight checks included)."""

    n: int = 0
    until: float = 0.0  # monotonic; > now: locked


class LoginGuard:
    """Checks a name and password; after max_failed_logins failures the name is locked, after
    ADDRESS_FACTOR times as many the client address is.

    Every attempt is counted as a failure *before* its password is hashed, under one lock, so
    that parallel guesses at a name get at most max_failed_logins checks (issue 16: 30 parallel
    guesses had 24 checked); a success only takes back its own count. Locked entries are never
    forgotten while locked; at most MAX_HASHES checks (scrypt, ~16 MiB each) run at once.
    """

    def __init__(self, cfg: WebConfig):
        self.users = {u.name: u.password_hash for u in cfg.users}
        self.max_failures = cfg.max_failed_logins
        self.max_per_address = cfg.max_failed_logins * ADDRESS_FACTOR
        self.lockout_s = cfg.lockout_minutes * 60
        self._names: OrderedDict[str, _Count] = OrderedDict()
        self._addresses: OrderedDict[str, _Count] = OrderedDict()
        self._lock = threading.Lock()
        self._hashing = threading.BoundedSemaphore(MAX_HASHES)
        self._dummy = hash_password(secrets.token_urlsafe(12))  # same cost for unknown names
        self.checks = 0  # passwords hashed so far (tests count them)

    def locked_for(self, name: str, client: str = "") -> float:
        """Seconds the name (or the client address) stays locked; 0.0 when not locked."""
        now = time.monotonic()
        with self._lock:
            return max(self._remaining(self._names, name, now),
                       self._remaining(self._addresses, client, now) if client else 0.0)

    def attempt(self, name: str, password: str, client: str = "") -> Attempt:
        """One log-in attempt from `client` (an IP address, "" when unknown); a locked name or
        address is refused without looking at the password."""
        now = time.monotonic()
        with self._lock:
            remaining = self.locked_for_locked(name, client, now)
            if remaining > 0:
                return Attempt(False, remaining)
            if not self._reserve(self._names, name, self.max_failures, now, MAX_TRACKED_NAMES):
                return Attempt(False, self.lockout_s)  # every tracked name locked: fail closed
            if client and not self._reserve(self._addresses, client, self.max_per_address,
                                            now, MAX_TRACKED_ADDRESSES):
                self._release(self._names, name, now)
                return Attempt(False, self.lockout_s)
        if not self._hashing.acquire(timeout=HASH_WAIT_S):
            with self._lock:  # nothing was checked: take the counts back
                self._release(self._names, name, now)
                if client:
                    self._release(self._addresses, client, now)
            return Attempt(False, busy=True)
        try:
            ok = verify_password(password, self.users.get(name, self._dummy)) \
                and name in self.users
            with self._lock:
                self.checks += 1
        finally:
            self._hashing.release()
        now = time.monotonic()
        with self._lock:
            if ok:  # its own count back; a lock set meanwhile by other guesses stays
                self._succeeded(self._names, name, now)
                if client:
                    self._release(self._addresses, client, now)
                return Attempt(True, user=name)
            return Attempt(False, self.locked_for_locked(name, client, now))

    # --- under self._lock ---------------------------------------------------------------------
    def locked_for_locked(self, name: str, client: str, now: float) -> float:
        return max(self._remaining(self._names, name, now),
                   self._remaining(self._addresses, client, now) if client else 0.0)

    @staticmethod
    def _remaining(table: OrderedDict[str, _Count], key: str, now: float) -> float:
        entry = table.get(key)
        return max(0.0, entry.until - now) if entry is not None else 0.0

    def _reserve(self, table: OrderedDict[str, _Count], key: str, limit: int, now: float,
                 cap: int) -> bool:
        """Count one failure in advance; lock at `limit`. False: no room to track `key`."""
        entry = table.pop(key, None)
        if entry is None:
            if len(table) >= cap and not _evict_one(table, now):
                return False
            entry = _Count()
        elif 0 < entry.until <= now:  # a lock that ran out starts afresh
            entry = _Count()
        entry.n += 1
        if entry.n >= limit:
            entry.until = now + self.lockout_s
        table[key] = entry  # the most recent last
        return True

    @staticmethod
    def _release(table: OrderedDict[str, _Count], key: str, now: float) -> None:
        """Take back one count that was never checked (or that succeeded); a lock stays."""
        entry = table.get(key)
        if entry is None:
            return
        entry.n = max(0, entry.n - 1)
        if entry.n == 0 and entry.until <= now:
            del table[key]

    @staticmethod
    def _succeeded(table: OrderedDict[str, _Count], key: str, now: float) -> None:
        """A right password resets the name's count, unless other guesses locked it meanwhile."""
        entry = table.get(key)
        if entry is not None and entry.until <= now:
            del table[key]
        elif entry is not None:
            entry.n = max(0, entry.n - 1)


def _evict_one(table: OrderedDict[str, _Count], now: float) -> bool:
    """Forget the oldest entry that is not locked; False when every entry is locked."""
    for key, entry in table.items():
        if entry.until <= now:
            del table[key]
            return True
    return False
