"""`station` commands at the rigs: run, init, check, enter, bind, operator, web, demo, doctor."""

from __future__ import annotations

import argparse
import asyncio
import errno
import logging
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

from station import config as config_mod
from station import logfmt
from station.app.cli_args import add_config, rig_of, seconds, store_path
from station.core.texts import reason_text
from station.errors import StationError, UsageError

EXIT_OK, EXIT_REFUSED, EXIT_CONFIG = 0, 1, 2
EXIT_TEMPFAIL = 75  # sysexits EX_TEMPFAIL: another daemon holds the store; systemd retries
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def add_parsers(sub: argparse._SubParsersAction) -> None:
    run = sub.add_parser("run", help="serve every configured rig until SIGTERM")
    add_config(run)
    run.add_argument("--log-level", default="INFO", type=str.upper, choices=LEVELS)
    run.add_argument("--init", action="store_true",
                     help="create the store when there is none (else: exit 2, see `init`)")
    ini = sub.add_parser("init", help="create the store (and its folder) before the first start")
    add_config(ini)
    chk = sub.add_parser("check", help="judge one reading without touching any rig")
    add_config(chk)
    chk.add_argument("--rig", help="judge as at this rig (its medium); default the first rig")
    chk.add_argument("tag", help="the reading: a QR URL, information code or traceable number")
    opr = sub.add_parser("operator", help="log an operator in or out at a rig (no badge)")
    opr_sub = opr.add_subparsers(dest="action", required=True)
    for action in ("login", "logout"):
        one = opr_sub.add_parser(action, help=f"{action} at a rig")
        add_config(one)
        one.add_argument("--rig", required=True)
        one.add_argument("name", help="the operator's name as in the configuration")
    lst = opr_sub.add_parser("list", help="who is on shift at each rig")
    add_config(lst)
    ent = sub.add_parser("enter", help="type a code for a rig: a traceable number, product "
                         "number or information code (when a label is unreadable)")
    add_config(ent)
    ent.add_argument("--rig", required=True)
    ent.add_argument("code")
    bnd = sub.add_parser("bind", help="bind a new QR label or RFID tag to a cylinder file")
    add_config(bnd)
    bnd.add_argument("--rig", required=True, help="the rig whose reader reads the new tag")
    bnd.add_argument("--cylinder", required=True, help="the cylinder file id in the city system")
    bnd.add_argument("--photo", action="append", default=[],
                     help="a steel-stamp photo (JPEG, at most 2 MiB); 1 to 4")
    bnd.add_argument("--camera", action="store_true", help="take a photo with the rig's camera")
    bnd.add_argument("--tag", help="the tag's text, instead of reading it at the rig")
    bnd.add_argument("--timeout", type=seconds, default=60.0,
                     help="seconds to wait for the tag")
    web = sub.add_parser("web", help="the operator screens and managers' pages (HTTP)")
    add_config(web)
    web.add_argument("--log-level", default="INFO", type=str.upper, choices=LEVELS)
    web.add_argument("--hash-password", action="store_true",
                     help="print a password hash for [[web.users]] (reads the password)")
    web.add_argument("--systemd-dropin", action="store_true",
                     help="print the web unit's IPAddressAllow= drop-in for [web] allow")
    web.add_argument("--check-systemd", action="store_true",
                     help="exit 2 when the installed drop-in differs from [web] allow")
    demo = sub.add_parser("demo", help="run the station on simulators and show the verdicts")
    demo.add_argument("--interactive", action="store_true", help="type readings yourself")
    demo.add_argument("--keep", action="store_true", help="keep the demo's work folder")
    demo.add_argument("--verdicts-only", action="store_true",
                      help="the verdict table only, without the whole fills after it")
    doc = sub.add_parser("doctor", help="check config, store, rigs, readers, city, clock, disk")
    add_config(doc)


def cmd_run(args: argparse.Namespace) -> int:
    """The daemon: the store must exist (or be asked for), then the store's lock (one daemon
    per store), then every device. Exit 2 for what a restart cannot mend."""
    cfg = config_mod.load(args.config)
    logfmt.setup(args.log_level)
    from station.app.daemon import AlreadyRunning, init_store, may_create, serve, take_lock

    create = may_create(cfg, asked=args.init)  # UsageError when there is none to open
    try:
        take_lock(cfg.store)  # held until this process ends: the kernel releases it
    except AlreadyRunning as err:
        logging.getLogger("station.daemon").error(logfmt.kv(
            "already_running", pid=err.pid, lock=err.lock_path, action="exit, nothing changed"))
        print(f"station: {err}", file=sys.stderr)
        return EXIT_TEMPFAIL
    if create:
        init_store(cfg)
    return asyncio.run(serve(cfg))


def cmd_init(args: argparse.Namespace) -> int:
    """Create the store with the current schema; an existing one is left as it is."""
    from station.app.daemon import init_store

    cfg = config_mod.load(args.config)
    made = init_store(cfg)
    print(f"{'created' if made else 'kept the existing'} store {cfg.store}"
          + ("; `station run` can start" if made else " (nothing changed)"))
    return EXIT_OK


def cmd_check(args: argparse.Namespace) -> int:
    from station.city.client import CityClient
    from station.city.lookup import LookupService
    from station.core.model import Lookup, RigCondition
    from station.core.reading import parse_scan
    from station.core.rules import Policy, judge
    from station.store.db import Store

    cfg = config_mod.load(args.config)
    rig = rig_of(cfg, args.rig) if args.rig else cfg.rigs[0]
    reading = parse_scan(args.tag, cfg.qr_hosts, cfg.qr_allow_http, "cli", typed=True)
    # Before the first start there is no store: judge without one (no block list, no cache)
    # rather than create it here.
    fresh = not Path(cfg.store).is_file()
    store = Store(":memory:" if fresh else cfg.store)
    city = CityClient(cfg.city, cfg.unit_code)
    with ThreadPoolExecutor(1) as pool:
        lookups = LookupService(city, store, pool, cfg.city.decision_deadline_s)
        answer = asyncio.run(lookups.lookup(reading)) if not reading.refusal else None
    cond = RigCondition(rig.id, rig.medium, healthy=True, operator="(check)", weigh=False)
    policy = Policy(frozenset((cfg.unit_name, *cfg.fills_for)), cfg.rules)
    lookup = answer.lookup if answer else None
    verdict = judge(reading, cond, lookup or Lookup("unavailable"), policy, store.blocklist(),
                    datetime.now(UTC))
    text = reason_text(verdict.reason) if verdict.reason else None
    print(f"rig:      {rig.id} ({rig.medium})  [rig state and operator not checked]")
    print(f"reading:  {logfmt.escape(reading.raw[:200])}  ({reading.kind})")
    print(f"source:   {lookup.source if lookup else 'none'}"
          + (f"  (city {answer.elapsed_ms:.0f} ms)" if answer else ""))
    if verdict.permit:
        print(f"verdict:  允许充装 / PERMIT  cylinder={verdict.cylinder_id}")
    else:
        print(f"verdict:  禁止充装 / REFUSE  {verdict.reason}: {text.zh} / {text.en}")
    for w in verdict.warnings:
        print(f"warning:  {w}: {reason_text(w).zh} / {reason_text(w).en}")
    if verdict.detail:
        print(f"detail:   {verdict.detail}")
    if fresh:
        print(f"store:    none yet at {cfg.store}: no block list, no cache consulted")
    city.close()
    return EXIT_OK if verdict.permit else EXIT_REFUSED


def cmd_enter(args: argparse.Namespace) -> int:
    """Queue a typed code for a rig's daemon; normalised (keys.typed_key) and shape-checked."""
    from station.core.keys import typed_key
    from station.core.reading import TRACEABLE_NO, parse_scan
    from station.store.db import Store

    cfg = config_mod.load(args.config)
    rig_of(cfg, args.rig)
    code = typed_key(args.code, "tag")
    reading = parse_scan(code, cfg.qr_hosts, cfg.qr_allow_http, "manual", typed=True)
    if reading.refusal or (code.isascii() and code.isdigit() and not TRACEABLE_NO.fullmatch(code)):
        why = reading.detail or "a number must have 12 digits (3 maker, 2 year, 7 serial)"
        raise StationError(f"{logfmt.escape(code)!r} is not a code the station can look up: "
                           f"{why}")
    entry = Store(store_path(cfg)).enter_manually(args.rig, code, via="cli")
    kind = {"id_or_code": "cylinder id or information code"}.get(reading.kind, reading.kind)
    print(f"entry {entry} for {args.rig}: {code} ({kind}); the daemon judges it now")
    return EXIT_OK


def cmd_bind(args: argparse.Namespace) -> int:
    from station.app.binding import bind
    from station.core.keys import typed_key

    cfg = config_mod.load(args.config)
    rig_of(cfg, args.rig)
    store_path(cfg)
    tag = typed_key(args.tag, "tag") if args.tag else args.tag  # as typed: normalised once
    return bind(cfg, args.rig, typed_key(args.cylinder, "code"), photos=args.photo,
                camera=args.camera, tag=tag, timeout_s=args.timeout)


def cmd_operator(args: argparse.Namespace) -> int:
    from station.store.db import Store

    cfg = config_mod.load(args.config)
    store = Store(store_path(cfg))
    if args.action == "list":
        for rig, name in sorted(store.operators_on_shift().items()):
            print(f"{rig}\t{name}")
        return EXIT_OK
    rig_of(cfg, args.rig)
    if args.name not in {o.name for o in cfg.operators}:
        names = ", ".join(o.name for o in cfg.operators) or "none"
        raise UsageError(f"{args.name!r} is not an operator in {cfg.file} (its operators: "
                         f"{names})")
    on_shift = store.operators_on_shift().get(args.rig)
    if args.action == "logout" and on_shift != args.name:
        raise StationError(f"{args.name} is not logged in at {args.rig}")
    store.operator_event(args.rig, args.name, args.action, via="cli")
    print(f"{args.name} {'logged in at' if args.action == 'login' else 'logged out of'} "
          f"{args.rig}")
    return EXIT_OK


def cmd_web(args: argparse.Namespace) -> int:
    """The web server; an address it cannot listen on is a set-up error (exit 2)."""
    from station.web.command import run

    if not (args.hash_password or args.systemd_dropin or args.check_systemd):
        from station.app.startup import web_notices

        cfg = config_mod.load(args.config)
        logfmt.setup(args.log_level)
        for n in web_notices(cfg):
            logging.getLogger("station.web").warning(logfmt.kv(n.event, **dict(n.fields),
                                                               why=n.text))
    try:
        return run(args)
    except OSError as err:
        if err.errno in (errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES):
            raise UsageError(f"cannot listen for the web pages ([web] bind and port in "
                             f"{args.config}): {err.strerror}") from err
        raise


def cmd_demo(args: argparse.Namespace) -> int:
    from station.app.demo import run_demo

    return run_demo(interactive=args.interactive, keep=args.keep, fills=not args.verdicts_only)


def cmd_doctor(args: argparse.Namespace) -> int:
    from station.app import doctor

    logfmt.setup("CRITICAL")  # the checks speak for themselves
    checks = doctor.run(args.config)
    print(doctor.render(checks))
    return EXIT_REFUSED if doctor.failed(checks) else EXIT_OK


COMMANDS = {"run": cmd_run, "init": cmd_init, "check": cmd_check, "enter": cmd_enter,
            "bind": cmd_bind, "operator": cmd_operator, "web": cmd_web, "demo": cmd_demo,
            "doctor": cmd_doctor}
