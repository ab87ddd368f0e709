"""[web], [[web.users]]: the web pages' address, sessions, lock-out, users and allowed networks."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from station.config.spec import opt, read, unique
from station.confread import Section

PASSWORD_HASH = r"scrypt\$\d+\$\d+\$\d+\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+"


@dataclass(frozen=True)
class WebUser:
    name: str
    password_hash: str = field(repr=False)  # scrypt$N$r$p$salt$hash (station web --hash-password)


@dataclass(frozen=True)
class WebConfig:
    """The web pages (`station web`): operator screens and the managers' pages."""

    bind: str = opt("127.0.0.1", maxlen=253, pattern=r"[A-Za-z0-9.:-]+")
    port: int = opt(8080, 0, 65535)  # 0: any free port (tests)
    session_hours: float = opt(12.0, 0.05, 24 * 30)
    max_failed_logins: int = opt(5, 1, 100)
    lockout_minutes: float = opt(15.0, 0.1, 24 * 60)
    users: tuple[WebUser, ...] = ()
    allow: tuple[str, ...] = ()  # the tablets' networks (CIDR) besides loopback
    screen_sound: bool = opt(False)  # the operator screens beep on a refusal, overfill, …


def web(sec: Section) -> WebConfig:
    """[web] → WebConfig; a LAN bind needs `allow`."""
    users = []
    for s in sec.subs("users"):
        users.append(WebUser(name=s.get_str("name", maxlen=64, pattern=r"[^\s\x00-\x1f]+"),
                             password_hash=s.get_str("password_hash", maxlen=400,
                                                     pattern=PASSWORD_HASH)))
        s.done()
    unique(sec, "users", [u.name for u in users], "name")
    cfg = WebConfig(users=tuple(users), allow=_networks(sec), **read(sec, WebConfig))
    loopback = cfg.bind == "localhost" or cfg.bind.startswith("127.") or cfg.bind == "::1"
    if not loopback and not cfg.allow:
        raise sec.error("allow", f"bind = {cfg.bind!r} serves the LAN: list the tablets' "
                        "networks, e.g. allow = [\"192.168.10.0/24\"] (the web unit's "
                        "IPAddressAllow= is written from it)")
    sec.done()
    return cfg


_web = web  # the name station.web.lan imports


def _networks(sec: Section) -> tuple[str, ...]:
    """[web] allow: networks in CIDR (or single addresses), normalised; never "any"."""
    out = []
    for text in sec.get_str_list("allow", list(WebConfig.allow), maxlen=64,
                                 pattern=r"[0-9A-Fa-f.:/]+"):
        try:
            net = ipaddress.ip_network(text, strict=False)
        except ValueError as err:
            raise sec.error("allow", f"{text!r} is not a network: {err}") from err
        if net.prefixlen == 0:
            raise sec.error("allow", f"{text!r} is every address: list the station's LAN")
        out.append(str(net))
    return tuple(out)
