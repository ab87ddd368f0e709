"""What the `station` command accepts: dates, counts, rig ids, the configuration's path, the store.

Each checker refuses with a message that says what was wanted; argparse turns a refusal into
exit 2, as `main` does for UsageError (station.errors).
"""

from __future__ import annotations

import argparse
import os
import re
from datetime import date
from pathlib import Path

from station.config import RigConfig, StationConfig
from station.errors import UsageError

DEFAULT_CONFIG = "/etc/station/station.toml"
CONFIG_ENV = "STATION_CONFIG"
CHECKS = ("ok", "overfill", "underfill", "interrupted", "defect")  # post-fill (core.fillcycle)
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


def default_config() -> str:
    """The configuration when --config is not given: $STATION_CONFIG, else /etc/station/…"""
    return os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG


def add_config(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default=None, help=f"the station's configuration (default: "
                   f"${CONFIG_ENV}, else {DEFAULT_CONFIG})")


def day(text: str) -> str:
    """A calendar day as yyyy-mm-dd (returned as given); anything else is refused."""
    try:
        if _DAY.fullmatch(text):
            return date.fromisoformat(text).isoformat()
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"{text!r} is not a day: {err}") from None
    raise argparse.ArgumentTypeError(f"{text!r}: want a date as yyyy-mm-dd, e.g. 2026-03-31")


def count(text: str) -> int:
    """A whole number of at least 1 (a limit, copies to keep)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is too small: at least 1")
    return value


def seconds(text: str) -> float:
    """A positive time in seconds, at most a day."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value <= 86400:
        raise argparse.ArgumentTypeError(f"{text} s: want more than 0 and at most 86400")
    return value


def rig_of(cfg: StationConfig, rig_id: str) -> RigConfig:
    """The configured rig `rig_id`; UsageError naming the rigs there are."""
    for rig in cfg.rigs:
        if rig.id == rig_id:
            return rig
    known = ", ".join(r.id for r in cfg.rigs)
    raise UsageError(f"no rig {rig_id!r} in {cfg.file} (its rigs: {known})")


def store_path(cfg: StationConfig) -> str:
    """The store, which must exist: a command never creates an empty one (a typo in `store =`
    would hide the history, shifts, block list and chain). UsageError says what to do."""
    if not Path(cfg.store).is_file():
        raise UsageError(missing_store(cfg))
    return cfg.store


def missing_store(cfg: StationConfig) -> str:
    return (f"no store at {cfg.store} ([station] store in {cfg.file}): if this is the "
            f"station's first start, create it with `station init --config {cfg.file}`; "
            "otherwise correct the path")
