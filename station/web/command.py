"""`station web`: serve the pages, or print a password hash for [[web.users]]."""

from __future__ import annotations

import argparse
import getpass
import sys

from station import config as config_mod
from station import logfmt
from station.errors import StationError
from station.web import lan
from station.web.auth import hash_password

MIN_PASSWORD = 8


def run(args: argparse.Namespace) -> int:
    if args.hash_password:
        print(hash_password(read_password()))
        return 0
    if not args.config:
        raise StationError("web needs --config FILE (or --hash-password)")
    if args.systemd_dropin or args.check_systemd:
        web = lan.web_config(args.config)
        if args.systemd_dropin:
            print(lan.dropin_text(web), end="")
            return 0
        problem = lan.check_dropin(web)
        if problem:
            print(problem, file=sys.stderr)
            return 2
        return 0
    cfg = config_mod.load(args.config)
    logfmt.setup(args.log_level)
    from station.web.server import serve

    return serve(cfg)


def read_password() -> str:
    """Asked twice at a terminal; otherwise the first line of standard input."""
    if sys.stdin.isatty():
        first = getpass.getpass("password: ")
        if getpass.getpass("again: ") != first:
            raise StationError("the two passwords differ")
    else:
        first = sys.stdin.readline().rstrip("\r\n")
    if len(first) < MIN_PASSWORD:
        raise StationError(f"a password needs at least {MIN_PASSWORD} characters")
    return first
