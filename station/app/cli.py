"""The `station` command: run the daemon, judge one reading, manage the block list, run the demo."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from station import config as config_mod
from station import logfmt
from station.core.texts import reason_text
from station.errors import ConfigError, StationError

EXIT_OK, EXIT_REFUSED, EXIT_CONFIG = 0, 1, 2
CSV_LANG = "CSV headings: zh (default) or en; the file starts with a UTF-8 BOM either way"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="station", description="Filling-station interlock daemon.")
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="serve every configured rig until SIGTERM")
    run.add_argument("--config", required=True)
    run.add_argument("--log-level", default="INFO")
    chk = sub.add_parser("check", help="judge one reading without touching any rig")
    chk.add_argument("--config", required=True)
    chk.add_argument("--rig", help="judge as at this rig (its medium); default the first rig")
    chk.add_argument("tag", help="the reading: a QR URL, information code or traceable number")
    bl = sub.add_parser("blocklist", help="the station's local block list")
    bl.add_argument("--config", required=True)
    bl.add_argument("action", choices=("add", "remove", "list"))
    bl.add_argument("key", nargs="?", help="cylinder id, information code, product no or UID")
    bl.add_argument("--reason", default="")
    bl.add_argument("--by", default="")
    dec = sub.add_parser("decisions", help="the latest decisions from the local store")
    dec.add_argument("--config", required=True)
    dec.add_argument("--limit", type=int, default=20)
    dec.add_argument("--json", action="store_true")
    rec = sub.add_parser("records", help="fill records, filtered; as a table, JSON or CSV")
    rec.add_argument("--config", required=True)
    rec.add_argument("--from", dest="date_from", help="first fill date, yyyy-mm-dd")
    rec.add_argument("--to", dest="date_to", help="last fill date, yyyy-mm-dd")
    rec.add_argument("--rig")
    rec.add_argument("--operator")
    rec.add_argument("--cylinder", help="cylinder id, information code or tag")
    rec.add_argument("--check", help="post-fill check: ok, overfill, underfill, interrupted")
    rec.add_argument("--sync", choices=("pending", "delivered", "dead", "none"),
                     help="delivery state (none: cancelled permits, never sent)")
    rec.add_argument("--override", action="store_true", help="only supervisor overrides")
    rec.add_argument("--limit", type=int, default=1000)
    fmt = rec.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true")
    fmt.add_argument("--csv", action="store_true")
    rec.add_argument("--lang", choices=("zh", "en"), default="zh", help=CSV_LANG)
    out = sub.add_parser("outbox", help="what waits to be delivered to the city")
    out.add_argument("--config", required=True)
    out.add_argument("action", nargs="?", choices=("show", "retry"), default="show")
    out.add_argument("record_id", nargs="?", help="with retry: the dead record to send again")
    syn = sub.add_parser("sync", help="deliver pending records now")
    syn.add_argument("--config", required=True)
    syn.add_argument("--now", action="store_true", required=True,
                     help="end every backoff: the running daemon sends within a second")
    opr = sub.add_parser("operator", help="log an operator in or out at a rig (no badge)")
    opr_sub = opr.add_subparsers(dest="action", required=True)
    for action in ("login", "logout"):
        one = opr_sub.add_parser(action, help=f"{action} at a rig")
        one.add_argument("--config", required=True)
        one.add_argument("--rig", required=True)
        one.add_argument("name", help="the operator's name as in the configuration")
    lst = opr_sub.add_parser("list", help="who is on shift at each rig")
    lst.add_argument("--config", required=True)
    ent = sub.add_parser("enter", help="type a code for a rig: a traceable number, product "
                         "number or information code (when a label is unreadable)")
    ent.add_argument("--config", required=True)
    ent.add_argument("--rig", required=True)
    ent.add_argument("code")
    bnd = sub.add_parser("bind", help="bind a new QR label or RFID tag to a cylinder file")
    bnd.add_argument("--config", required=True)
    bnd.add_argument("--rig", required=True, help="the rig whose reader reads the new tag")
    bnd.add_argument("--cylinder", required=True, help="the cylinder file id in the city system")
    bnd.add_argument("--photo", action="append", default=[],
                     help="a steel-stamp photo (JPEG, at most 2 MiB); 1 to 4")
    bnd.add_argument("--camera", action="store_true", help="take a photo with the rig's camera")
    bnd.add_argument("--tag", help="the tag's text, instead of reading it at the rig")
    bnd.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the tag")
    ver = sub.add_parser("verify", help="check the hash chain over every decision and fill")
    ver.add_argument("--config", required=True)
    _manager_parsers(sub)
    web = sub.add_parser("web", help="the operator screens and managers' pages (HTTP)")
    web.add_argument("--config", help="the station's configuration (its [web] section)")
    web.add_argument("--log-level", default="INFO")
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
    return p


def _manager_parsers(sub: argparse._SubParsersAction) -> None:
    """stats, export, backup, prune and doctor: the station manager's and installer's tools."""
    sts = sub.add_parser("stats", help="per day: fills, refusals by reason, overrides, "
                         "overfills, delivery lag")
    sts.add_argument("--config", required=True)
    sts.add_argument("--from", dest="date_from", help="first day, yyyy-mm-dd (default: 30 "
                     "days before --to)")
    sts.add_argument("--to", dest="date_to", help="last day, yyyy-mm-dd (default: today)")
    sts.add_argument("--json", action="store_true")
    exp = sub.add_parser("export", help="decisions and fill records of a date range")
    exp.add_argument("--config", required=True)
    exp.add_argument("--from", dest="date_from", required=True, help="first day, yyyy-mm-dd")
    exp.add_argument("--to", dest="date_to", required=True, help="last day, yyyy-mm-dd")
    fmt = exp.add_mutually_exclusive_group()
    fmt.add_argument("--csv", action="store_true", help="one table, column kind (default)")
    fmt.add_argument("--json", action="store_true", help='{"decisions": [...], "fills": [...]}')
    exp.add_argument("--out", help="write to this file instead of standard output")
    exp.add_argument("--lang", choices=("zh", "en"), default="zh", help=CSV_LANG)
    bak = sub.add_parser("backup", help="an online, verified copy of the store into a folder")
    bak.add_argument("--config", required=True)
    bak.add_argument("dir", nargs="?", help="the folder (default: [backup] dir)")
    bak.add_argument("--keep", type=int, help="keep this many copies there, remove older ones "
                     "(default: [backup] keep when the folder is the configured one)")
    prn = sub.add_parser("prune", help="delete records older than [retention] keep_years "
                         "(never one not yet delivered)")
    prn.add_argument("--config", required=True)
    prn.add_argument("--dry-run", action="store_true", help="only count what would go")
    doc = sub.add_parser("doctor", help="check config, store, rigs, readers, city, clock, disk")
    doc.add_argument("--config", required=True)


def main(argv: list[str] | None = None) -> None:
    from station.core.keys import typed_key

    args = _parser().parse_args(argv)
    for name in ("rig", "name"):  # a rig id or operator name as typed: NFKC, trimmed
        if isinstance(getattr(args, name, None), str):
            setattr(args, name, typed_key(getattr(args, name), "name"))
    try:
        code = COMMANDS[args.command](args)
    except ConfigError as err:
        print(f"station: configuration error: {err}", file=sys.stderr)
        code = EXIT_CONFIG
    except StationError as err:
        print(f"station: {err}", file=sys.stderr)
        code = 1
    raise SystemExit(code)


def cmd_run(args: argparse.Namespace) -> int:
    """The daemon: the store's lock first (one daemon per store), then every device."""
    cfg = config_mod.load(args.config)
    logfmt.setup(args.log_level)
    from station.app.daemon import AlreadyRunning, serve, take_lock

    try:
        take_lock(cfg.store)  # held until this process ends: the kernel releases it
    except AlreadyRunning as err:
        logging.getLogger("station.daemon").error(logfmt.kv(
            "already_running", pid=err.pid, lock=err.lock_path, action="exit, nothing changed"))
        print(f"station: {err}", file=sys.stderr)
        return EXIT_CONFIG
    return asyncio.run(serve(cfg))


def cmd_check(args: argparse.Namespace) -> int:
    from station.city.client import CityClient
    from station.city.lookup import LookupService
    from station.core.model import RigCondition
    from station.core.reading import parse_scan
    from station.core.rules import Policy, judge
    from station.store.db import Store

    cfg = config_mod.load(args.config)
    rig = cfg.rig(args.rig) if args.rig else cfg.rigs[0]
    reading = parse_scan(args.tag, cfg.qr_hosts, cfg.qr_allow_http, "cli", typed=True)
    store = Store(cfg.store)
    city = CityClient(cfg.city, cfg.unit_code)
    with ThreadPoolExecutor(1) as pool:
        lookups = LookupService(city, store, pool, cfg.city.decision_deadline_s)
        answer = asyncio.run(lookups.lookup(reading)) if not reading.refusal else None
    cond = RigCondition(rig.id, rig.medium, healthy=True, operator="(check)", weigh=False)
    policy = Policy(frozenset((cfg.unit_name, *cfg.fills_for)), cfg.rules)
    lookup = answer.lookup if answer else None
    from station.core.model import Lookup

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
    city.close()
    return EXIT_OK if verdict.permit else EXIT_REFUSED


def cmd_blocklist(args: argparse.Namespace) -> int:
    """add/remove/list the block list; a key is normalised as a reading would give it
    (keys.block_key) and one that can never match a reading is refused (exit 2)."""
    from station.core.keys import KeyRefused, block_key, unmatchable
    from station.store.db import Store

    cfg = config_mod.load(args.config)
    store = Store(cfg.store)
    if args.action == "list":
        for row in store.blocklist_rows():
            why = unmatchable(row["key"])
            print(f"{row['key']}\t{row['reason']}" + (f"\t(never matches: {why})" if why else ""))
        return EXIT_OK
    if not args.key:
        raise StationError(f"blocklist {args.action} needs the cylinder id or tag")
    if args.action == "add":
        if not args.reason:
            raise StationError("blocklist add needs --reason")
        try:
            key = block_key(args.key, cfg.qr_hosts, cfg.qr_allow_http)
        except KeyRefused as err:
            print(f"station: not blocked: {err}", file=sys.stderr)
            return EXIT_CONFIG
        store.block(key, args.reason, args.by)
        typed = "" if key == args.key else f" (typed as {logfmt.escape(args.key)!r})"
        print(f"blocked {key}{typed}: {args.reason}")
        return EXIT_OK
    found = store.unblock(args.key)
    print(f"unblocked {args.key}" if found else f"{args.key} was not on the block list")
    return EXIT_OK if found else EXIT_REFUSED


def cmd_decisions(args: argparse.Namespace) -> int:
    from station.store.db import Store

    cfg = config_mod.load(args.config)
    store = Store(cfg.store)
    rows = store.conn.execute("SELECT * FROM decisions ORDER BY id DESC LIMIT ?", (args.limit,))
    cols = [c[0] for c in rows.description]
    items = [dict(zip(cols, r, strict=True)) for r in rows.fetchall()][::-1]
    if args.json:
        print(json.dumps(items, ensure_ascii=False, indent=1))
        return EXIT_OK
    for d in items:
        verdict = "PERMIT" if d["permit"] else f"REFUSE {d['reason']}"
        print(f"{d['local_time']}  {d['rig']:<8} {verdict:<28} {d['cylinder_id'] or '-':<20} "
              f"{d['source']:<6} {d['latency_ms']:7.1f} ms  {d['reading'][:60]}")
    return EXIT_OK


def cmd_enter(args: argparse.Namespace) -> int:
    """Queue a typed code for a rig's daemon; normalised (keys.typed_key) and shape-checked."""
    from station.core.keys import typed_key
    from station.core.reading import TRACEABLE_NO, parse_scan
    from station.store.db import Store

    cfg = config_mod.load(args.config)
    if args.rig not in {r.id for r in cfg.rigs}:
        raise StationError(f"no rig {args.rig!r} in the configuration")
    code = typed_key(args.code, "tag")
    reading = parse_scan(code, cfg.qr_hosts, cfg.qr_allow_http, "manual", typed=True)
    if reading.refusal or (code.isascii() and code.isdigit() and not TRACEABLE_NO.fullmatch(code)):
        why = reading.detail or "a number must have 12 digits (3 maker, 2 year, 7 serial)"
        raise StationError(f"{logfmt.escape(code)!r} is not a code the station can look up: "
                           f"{why}")
    entry = Store(cfg.store).enter_manually(args.rig, code, via="cli")
    kind = {"id_or_code": "cylinder id or information code"}.get(reading.kind, reading.kind)
    print(f"entry {entry} for {args.rig}: {code} ({kind}); the daemon judges it now")
    return EXIT_OK


def cmd_bind(args: argparse.Namespace) -> int:
    from station.app.binding import bind

    cfg = config_mod.load(args.config)
    if args.rig not in {r.id for r in cfg.rigs}:
        raise StationError(f"no rig {args.rig!r} in the configuration")
    from station.core.keys import typed_key

    tag = typed_key(args.tag, "tag") if args.tag else args.tag  # as typed: normalised once
    return bind(cfg, args.rig, typed_key(args.cylinder, "code"), photos=args.photo,
                camera=args.camera, tag=tag, timeout_s=args.timeout)


def cmd_verify(args: argparse.Namespace) -> int:
    from station.store import chain, retention
    from station.store.db import Store

    cfg = config_mod.load(args.config)
    store = Store(cfg.store)
    problems, pruned = retention.verify(store.conn)
    top = chain.head(store.conn)
    for problem in problems:
        print(f"FAIL {problem}")
    print(f"{'chain broken' if problems else 'chain ok'}: {top.records} entries, head "
          f"{top.seq} {top.hash}" + (f"; {pruned} pruned by retention" if pruned else ""))
    return EXIT_REFUSED if problems else EXIT_OK


def cmd_web(args: argparse.Namespace) -> int:
    from station.web.command import run

    return run(args)


def cmd_demo(args: argparse.Namespace) -> int:
    from station.app.demo import run_demo

    return run_demo(interactive=args.interactive, keep=args.keep, fills=not args.verdicts_only)


def cmd_records(args: argparse.Namespace) -> int:
    from station.store.records import COLUMNS, print_records
    from station.web.texts import csv_headers

    cfg = config_mod.load(args.config)
    return print_records(cfg, args, csv_headers(COLUMNS, args.lang))


def cmd_outbox(args: argparse.Namespace) -> int:
    from station.store.records import outbox_retry, print_outbox

    cfg = config_mod.load(args.config)
    if args.action == "retry":
        if not args.record_id:
            raise StationError("outbox retry needs the record id")
        return outbox_retry(cfg, args.record_id)
    return print_outbox(cfg)


def cmd_sync(args: argparse.Namespace) -> int:
    from station.store.db import Store

    cfg = config_mod.load(args.config)
    store = Store(cfg.store)
    with store.transaction() as conn:
        n = conn.execute("UPDATE outbox SET next_at = 0 WHERE state = 'pending'").rowcount
    print(f"{n} pending record(s) due now; the running daemon delivers them within a second")
    return EXIT_OK


def cmd_operator(args: argparse.Namespace) -> int:
    from station.store.db import Store

    cfg = config_mod.load(args.config)
    store = Store(cfg.store)
    if args.action == "list":
        for rig, name in sorted(store.operators_on_shift().items()):
            print(f"{rig}\t{name}")
        return EXIT_OK
    if args.rig not in {r.id for r in cfg.rigs}:
        raise StationError(f"no rig {args.rig!r} in the configuration")
    if args.name not in {o.name for o in cfg.operators}:
        raise StationError(f"{args.name!r} is not an operator in {cfg.file}")
    on_shift = store.operators_on_shift().get(args.rig)
    if args.action == "logout" and on_shift != args.name:
        raise StationError(f"{args.name} is not logged in at {args.rig}")
    store.operator_event(args.rig, args.name, args.action, via="cli")
    print(f"{args.name} {'logged in at' if args.action == 'login' else 'logged out of'} "
          f"{args.rig}")
    return EXIT_OK


def cmd_stats(args: argparse.Namespace) -> int:
    from station.store import stats
    from station.store.db import Store

    cfg = config_mod.load(args.config)
    first, last = stats.day_range(args.date_from, args.date_to)
    days = stats.daily(Store(cfg.store, readonly=True), first, last)
    print(stats.as_json(days) if args.json else stats.table(days))
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    from station.store import export
    from station.store.db import Store
    from station.store.stats import day_range

    cfg = config_mod.load(args.config)
    first, last = day_range(args.date_from, args.date_to, default_days=None)
    store = Store(cfg.store, readonly=True)
    from station.web.texts import csv_headers

    text = export.as_json(store, first, last) if args.json else export.as_csv(
        store, first, last, csv_headers(export.CSV_COLUMNS, args.lang))
    if not args.out:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        return EXIT_OK
    from pathlib import Path

    out = Path(args.out)
    partial = out.with_name(out.name + ".partial")
    try:
        partial.write_text(text, encoding="utf-8")
        partial.replace(out)
    except OSError as err:
        raise StationError(f"cannot write {out}: {err.strerror or err}") from err
    print(f"wrote {out} ({first} to {last})", file=sys.stderr)
    return EXIT_OK


def cmd_backup(args: argparse.Namespace) -> int:
    from station.store.backup import backup

    cfg = config_mod.load(args.config)
    folder = args.dir or cfg.backup.dir
    if not folder:
        raise StationError("backup needs a folder: give DIR or set [backup] dir")
    keep = args.keep if args.keep is not None else (None if args.dir else cfg.backup.keep)
    if keep is not None and keep < 1:
        raise StationError("--keep must be at least 1")
    done = backup(cfg.store, folder, keep)
    rows = sum(done.rows.values())
    print(f"backup {done.path}: {rows} rows in {len(done.rows)} tables, "
          f"{done.size / 1e6:.1f} MB, integrity ok, row counts equal")
    for old in done.removed:
        print(f"removed old backup {old}")
    return EXIT_OK


def cmd_prune(args: argparse.Namespace) -> int:
    from station.store.db import Store
    from station.store.retention import prune

    cfg = config_mod.load(args.config)
    p = prune(Store(cfg.store), cfg.retention.keep_years, dry_run=args.dry_run)
    verb = "would delete" if args.dry_run else "deleted"
    print(f"{verb} records before {p.cutoff} ({cfg.retention.keep_years} years): "
          f"{p.decisions} decisions, {p.fills} fills, {p.outbox} delivered outbox rows, "
          f"{p.rig_events} rig events; kept {p.kept_undelivered} old fills not yet delivered")
    return EXIT_OK


def cmd_doctor(args: argparse.Namespace) -> int:
    from station.app import doctor

    logfmt.setup("CRITICAL")  # the checks speak for themselves
    checks = doctor.run(args.config)
    print(doctor.render(checks))
    return EXIT_REFUSED if doctor.failed(checks) else EXIT_OK


COMMANDS = {"run": cmd_run, "web": cmd_web, "check": cmd_check, "blocklist": cmd_blocklist,
            "decisions": cmd_decisions, "records": cmd_records, "outbox": cmd_outbox,
            "sync": cmd_sync, "operator": cmd_operator, "enter": cmd_enter, "bind": cmd_bind, "verify": cmd_verify,
            "demo": cmd_demo, "stats": cmd_stats, "export": cmd_export, "backup": cmd_backup,
            "prune": cmd_prune, "doctor": cmd_doctor}
