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
MAX_TRACKED_NAMES = 10_000  # failed-log-in counters kept (the oldest are forgotten)


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
    locked_s: float = 0.0  # > 0: the name is locked for this many more seconds
    user: str = ""


class LoginGuard:
    """Checks a name and password; after max_failed_logins failures the name is locked."""

    def __init__(self, cfg: WebConfig):
        self.users = {u.name: u.password_hash for u in cfg.users}
        self.max_failures = cfg.max_failed_logins
        self.lockout_s = cfg.lockout_minutes * 60
        self._failures: OrderedDict[str, tuple[int, float]] = OrderedDict()  # name → (n, until)
        self._lock = threading.Lock()
        self._dummy = hash_password(secrets.token_urlsafe(12))  # same cost for unknown names

    def locked_for(self, name: str) -> float:
        with self._lock:
            _, until = self._failures.get(name, (0, 0.0))
        return max(0.0, until - time.monotonic())

    def attempt(self, name: str, password: str) -> Attempt:
        """One log-in attempt; a locked name is refused without looking at the password."""
        remaining = self.locked_for(name)
        if remaining > 0:
            return Attempt(False, remaining)
        ok = verify_password(password, self.users.get(name, self._dummy)) and name in self.users
        with self._lock:
            if ok:
                self._failures.pop(name, None)
                return Attempt(True, user=name)
            count, _ = self._failures.pop(name, (0, 0.0))
            count += 1
            until = time.monotonic() + self.lockout_s if count >= self.max_failures else 0.0
            self._failures[name] = (0 if until else count, until)
            while len(self._failures) > MAX_TRACKED_NAMES:
                self._failures.popitem(last=False)
        return Attempt(False, max(0.0, until - time.monotonic()))
