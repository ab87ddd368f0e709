"""Set-up mistakes that do not stop a start but must be seen: logged at start and shown by doctor.

Each is a Notice: an event name (the log's key) and a sentence for the installer.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from station.config import StationConfig

FIRST_START = ".station-first-start"  # laid in the store's folder by tools/install.sh

# The hashes published in config/station.example.toml: anyone can read them, so a station that
# keeps one has a known password (tests/app/test_setup_traps.py keeps this list in step).
EXAMPLE_HASHES = frozenset({
    "scrypt$16384$8$1$Yn7tQNCvPdITvDomy19pRA==$KLjrbjzVXTq+lMJDvKWZhYrAFbuyxNoDcrEJOZmV214=",
})


@dataclass(frozen=True)
class Notice:
    event: str  # the log event (English, key=value log)
    text: str  # what is wrong and what to do
    fields: tuple[tuple[str, str], ...] = ()


def rig_notices(cfg: StationConfig) -> list[Notice]:
    """What `station run` warns about: rigs without a reader, serial devices that are absent
    (the daemon starts all the same and keeps trying to open them)."""
    out = []
    for rig in cfg.rigs:
        if not rig.readers:
            out.append(Notice("rig_without_reader", f"rig {rig.id} has no [[rigs.readers]]: "
                              "only `station enter` and the operator screen can give it a "
                              "reading", (("rig", rig.id),)))
        if rig.modbus.kind == "rtu" and not Path(rig.modbus.device).exists():
            out.append(Notice("serial_port_missing", f"rig {rig.id}: {rig.modbus.device} does "
                              "not exist (adapter unplugged, or a typo?); retrying",
                              (("rig", rig.id), ("port", rig.modbus.device))))
        for rd in rig.readers:
            if rd.kind != "camera" and not Path(rd.port).exists():
                out.append(Notice("serial_port_missing", f"reader {rd.id}: {rd.port} does not "
                                  "exist (unplugged, or a typo?); retrying",
                                  (("reader", rd.id), ("port", rd.port))))
    return out


def web_notices(cfg: StationConfig) -> list[Notice]:
    """What `station web` warns about: nobody can sign in; a password everyone can read."""
    if not cfg.web.users:
        return [Notice("web_without_users", "[web] lists no [[web.users]]: the operator "
                       "screens work, the managers' pages cannot be signed into (add one with "
                       "`station web --hash-password`)")]
    return [Notice("web_example_password", f"web user {u.name!r} has the example's published "
                   "password hash: anyone can sign in; set a new one with `station web "
                   "--hash-password`", (("user", u.name),))
            for u in cfg.web.users if u.password_hash in EXAMPLE_HASHES]


def notices(cfg: StationConfig) -> list[Notice]:
    return rig_notices(cfg) + web_notices(cfg)
