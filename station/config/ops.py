"""[[operators]], [fill], [sync], [retention], [backup], [doctor]: how the station runs day to day."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from station.config.spec import opt, read
from station.confread import Section
from station.core.codes import OPERATOR_NAME_MAX

HEX = r"[0-9A-Fa-f]+"


@dataclass(frozen=True)
class Operator:
    name: str
    badge: str = opt("", allow_empty=True, maxlen=64, pattern=HEX)
    role: str = opt("operator", choices=("operator", "supervisor"))


@dataclass(frozen=True)
class FillConfig:
    tolerance_kg: float = opt(0.5, 0.01, 100)  # post-fill: beyond target ± this: over/underfill
    max_residual_kg: float = opt(0.5, 0, 1000)  # pre-fill: more gas left than this is noted
    refuse_residual: bool = opt(False)  # … and refused when true
    settle_timeout_s: float = opt(10.0, 0.5, 120)  # wait this long for a stable scale after
    start_gain_kg: float = opt(1.0, 0.2, 100)  # a gain above this, valve never seen open: a fill


@dataclass(frozen=True)
class SyncConfig:
    rate_per_s: float = opt(20.0, 0, 10000)  # at most this many submissions a second (0: any)
    backoff_cap_s: float = opt(300.0, 1, 86400)
    backlog_warn_h: float = opt(24.0, 0.01, 24 * 365)
    submit_timeout_s: float = opt(10.0, 0.5, 120)


@dataclass(frozen=True)
class RetentionConfig:
    keep_years: int = opt(2, 2, 100)  # records younger are never pruned; the law wants 2 at least


@dataclass(frozen=True)
class BackupConfig:
    dir: str = opt("", allow_empty=True)  # where `station backup` writes by default (a USB stick)
    keep: int = opt(7, 1, 1000)  # copies kept there; older ones go after a verified backup


@dataclass(frozen=True)
class DoctorConfig:
    max_clock_skew_s: float = opt(60.0, 0, 86400)  # `station doctor` fails beyond this
    min_free_mb: int = opt(200, 0, 10_000_000)  # … and when less is free under the store's folder


def operator(sec: Section) -> Operator:
    """One [[operators]] table → Operator."""
    op = Operator(name=sec.get_str("name", maxlen=OPERATOR_NAME_MAX), **read(sec, Operator))
    sec.done()
    return op


def simple(sec: Section, cls: type) -> object:
    """A section whose every key is an `opt` field of `cls` ([fill], [sync], [retention] …)."""
    cfg = cls(**read(sec, cls))
    sec.done()
    return cfg


def backup(sec: Section, file: str) -> BackupConfig:
    """[backup] → BackupConfig; a relative dir is relative to the configuration file."""
    values = read(sec, BackupConfig)
    if values["dir"] and not Path(values["dir"]).is_absolute():
        values["dir"] = str((Path(file).resolve().parent / values["dir"]).resolve())
    sec.done()
    return BackupConfig(**values)
