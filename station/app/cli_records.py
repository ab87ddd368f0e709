"""`station` commands over the records: blocklist, decisions, records, outbox, sync, verify,
stats, export, backup, prune."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from station import config as config_mod
from station import logfmt
from station.app.cli_args import CHECKS, add_config, count, day, rig_of, store_path
from station.errors import StationError, UsageError
from station.store import outbox

EXIT_OK, EXIT_REFUSED, EXIT_CONFIG = 0, 1, 2
CSV_LANG = "CSV headings: zh (default) or en; the file starts with a UTF-8 BOM either way"


def add_parsers(sub: argparse._SubParsersAction) -> None:
    bl = sub.add_parser("blocklist", help="the station's local block list")
    add_config(bl)
    bl.add_argument("action", choices=("add", "remove", "list"))
    bl.add_argument("key", nargs="?", help="cylinder id, information code, product no or UID")
    bl.add_argument("--reason", default="")
    bl.add_argument("--by", default="")
    dec = sub.add_parser("decisions", help="the latest decisions from the local store")
    add_config(dec)
    dec.add_argument("--limit", type=count, default=20)
    dec.add_argument("--json", action="store_true")
    rec = sub.add_parser("records", help="fill records, filtered; as a table, JSON or CSV")
    add_config(rec)
    rec.add_argument("--from", dest="date_from", type=day, metavar="YYYY-MM-DD", help="first fill date, yyyy-mm-dd")
    rec.add_argument("--to", dest="date_to", type=day, metavar="YYYY-MM-DD", help="last fill date, yyyy-mm-dd")
    rec.add_argument("--rig", help="a configured rig's id")
    rec.add_argument("--operator")
    rec.add_argument("--cylinder", help="cylinder id, information code or tag")
    rec.add_argument("--check", choices=CHECKS, help="post-fill check")
    rec.add_argument("--sync", choices=("pending", "delivered", "dead", "none"),
                     help="delivery state (none: cancelled permits, never sent)")
    rec.add_argument("--override", action="store_true", help="only supervisor overrides")
    rec.add_argument("--limit", type=count, default=1000)
    fmt = rec.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true")
    fmt.add_argument("--csv", action="store_true")
    rec.add_argument("--lang", choices=("zh", "en"), default="zh", help=CSV_LANG)
    out = sub.add_parser("outbox", help="what waits to be delivered to the city")
    add_config(out)
    out.add_argument("action", nargs="?", choices=("show", "retry"), default="show")
    out.add_argument("record_id", nargs="?", help="with retry: the dead record to send again")
    syn = sub.add_parser("sync", help="deliver pending records now")
    add_config(syn)
    syn.add_argument("--now", action="store_true", required=True,
                     help="end every backoff: the running daemon sends within a second")
    ver = sub.add_parser("verify", help="check the hash chain over every decision and fill")
    add_config(ver)
    sts = sub.add_parser("stats", help="per day: fills, refusals by reason, overrides, "
                         "overfills, delivery lag")
    add_config(sts)
    sts.add_argument("--from", dest="date_from", type=day, metavar="YYYY-MM-DD", help="first day, yyyy-mm-dd "
                     "(default: 30 days before --to)")
    sts.add_argument("--to", dest="date_to", type=day, metavar="YYYY-MM-DD", help="last day, yyyy-mm-dd "
                     "(default: today)")
    sts.add_argument("--json", action="store_true")
    exp = sub.add_parser("export", help="decisions and fill records of a date range")
    add_config(exp)
    exp.add_argument("--from", dest="date_from", type=day, metavar="YYYY-MM-DD", required=True,
                     help="first day, yyyy-mm-dd")
    exp.add_argument("--to", dest="date_to", type=day, metavar="YYYY-MM-DD", required=True,
                     help="last day, yyyy-mm-dd")
    fmt = exp.add_mutually_exclusive_group()
    fmt.add_argument("--csv", action="store_true", help="one table, column kind (default)")
    fmt.add_argument("--json", action="store_true", help='{"decisions": [...], "fills": [...]}')
    exp.add_argument("--out", help="write to this file instead of standard output")
    exp.add_argument("--lang", choices=("zh", "en"), default="zh", help=CSV_LANG)
    bak = sub.add_parser("backup", help="an online, verified copy of the store into a folder")
    add_config(bak)
    bak.add_argument("dir", nargs="?", help="the folder (default: [backup] dir)")
    bak.add_argument("--keep", type=count, help="keep this many copies there, remove older "
                     "ones (default: [backup] keep when the folder is the configured one)")
    bak.add_argument("--systemd-dropin", action="store_true",
                     help="print the backup unit's drop-in for [backup] dir (make install)")
    prn = sub.add_parser("prune", help="delete records older than [retention] keep_years "
                         "(never one not yet delivered)")
    add_config(prn)
    prn.add_argument("--dry-run", action="store_true", help="only count what would go")


def _store(cfg: config_mod.StationConfig, readonly: bool = False):
    from station.store.db import Store

    return Store(store_path(cfg), readonly=readonly)


def cmd_blocklist(args: argparse.Namespace) -> int:
    """add/remove/list the block list; a key is normalised as a reading would give it
    (keys.block_key) and one that can never match a reading is refused (exit 2)."""
    from station.core.keys import KeyRefused, block_key, unmatchable

    cfg = config_mod.load(args.config)
    store = _store(cfg)
    if args.action == "list":
        for row in store.blocklist_rows():
            why = unmatchable(row["key"])
            print(f"{row['key']}\t{row['reason']}" + (f"\t(never matches: {why})" if why else ""))
        return EXIT_OK
    if not args.key:
        raise UsageError(f"blocklist {args.action} needs the cylinder id or tag")
    if args.action == "add":
        if not args.reason:
            raise UsageError("blocklist add needs --reason")
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
    cfg = config_mod.load(args.config)
    store = _store(cfg)
    items = store.recent_decisions(args.limit)
    if args.json:
        print(json.dumps(items, ensure_ascii=False, indent=1))
        return EXIT_OK
    for d in items:
        verdict = "PERMIT" if d["permit"] else f"REFUSE {d['reason']}"
        print(f"{d['local_time']}  {d['rig']:<8} {verdict:<28} {d['cylinder_id'] or '-':<20} "
              f"{d['source']:<6} {d['latency_ms']:7.1f} ms  {d['reading'][:60]}")
    return EXIT_OK


def cmd_records(args: argparse.Namespace) -> int:
    from station.store.records import COLUMNS, print_records
    from station.web.texts import csv_headers

    cfg = config_mod.load(args.config)
    if args.rig:
        rig_of(cfg, args.rig)
    if args.date_from and args.date_to and args.date_from > args.date_to:
        raise UsageError(f"--from {args.date_from} is after --to {args.date_to}")
    store_path(cfg)
    return print_records(cfg, args, csv_headers(COLUMNS, args.lang))


def cmd_outbox(args: argparse.Namespace) -> int:
    from station.store.records import outbox_retry, print_outbox

    cfg = config_mod.load(args.config)
    store_path(cfg)
    if args.action == "retry":
        if not args.record_id:
            raise UsageError("outbox retry needs the record id")
        return outbox_retry(cfg, args.record_id)
    return print_outbox(cfg)


def cmd_sync(args: argparse.Namespace) -> int:
    cfg = config_mod.load(args.config)
    n = outbox.due_now(_store(cfg))
    print(f"{n} pending record(s) due now; the running daemon delivers them within a second")
    return EXIT_OK


def cmd_verify(args: argparse.Namespace) -> int:
    from station.store import chain, retention
    from station.store.photos import PhotoStore
    from station.store.records import photo_hashes

    cfg = config_mod.load(args.config)
    store = _store(cfg)
    problems, pruned = retention.verify(store.conn)
    top = chain.head(store.conn)
    photos = PhotoStore(cfg.photos.dir, cfg.photos.budget_mb * 1024 * 1024)
    bad, checked, rotated = photos.verify(photo_hashes(store))
    for problem in problems + bad:
        print(f"FAIL {problem}")
    print(f"{'chain broken' if problems else 'chain ok'}: {top.records} entries, head "
          f"{top.seq} {top.hash}" + (f"; {pruned} pruned by retention" if pruned else ""))
    print(f"{'photos broken' if bad else 'photos ok'}: {checked} checked against their "
          f"records' hashes, {rotated} rotated away, {len(bad)} wrong or missing")
    return EXIT_REFUSED if problems or bad else EXIT_OK


def cmd_stats(args: argparse.Namespace) -> int:
    from station.store import stats

    cfg = config_mod.load(args.config)
    first, last = _days(args.date_from, args.date_to, 30)
    days = stats.daily(_store(cfg, readonly=True), first, last)
    print(stats.as_json(days) if args.json else stats.table(days))
    return EXIT_OK


def _days(date_from: str | None, date_to: str | None, default_days: int | None):
    from station.store.stats import day_range

    try:
        return day_range(date_from, date_to, default_days=default_days)
    except StationError as err:  # --from after --to: the person's input
        raise UsageError(str(err)) from err


def cmd_export(args: argparse.Namespace) -> int:
    from station.store import export

    cfg = config_mod.load(args.config)
    first, last = _days(args.date_from, args.date_to, None)
    store = _store(cfg, readonly=True)
    from station.web.texts import csv_headers

    text = export.as_json(store, first, last) if args.json else export.as_csv(
        store, first, last, csv_headers(export.CSV_COLUMNS, args.lang))
    if not args.out:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        return EXIT_OK
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

    if args.systemd_dropin:
        print(backup_dropin(args.config, config_mod.backup_only(args.config).dir), end="")
        return EXIT_OK
    cfg = config_mod.load(args.config)
    folder = args.dir or cfg.backup.dir
    if not folder:
        raise UsageError("backup needs a folder: give DIR or set [backup] dir")
    keep = args.keep if args.keep is not None else (None if args.dir else cfg.backup.keep)
    done = backup(store_path(cfg), folder, keep)
    rows = sum(done.rows.values())
    print(f"backup {done.path}: {rows} rows in {len(done.rows)} tables, "
          f"{done.size / 1e6:.1f} MB, integrity ok, row counts equal")
    for old in done.removed:
        print(f"removed old backup {old}")
    return EXIT_OK


def backup_dropin(file: str, folder: str) -> str:
    """station-backup.service's drop-in: mount [backup] dir first and let the unit write there
    (the unit itself may write nowhere but the store's folder)."""
    head = (f"# Written from [backup] dir of {file} by `make install`\n"
            "# (station backup --systemd-dropin): edit the configuration, not this.\n")
    if not folder:
        return head + "# [backup] dir is empty: the nightly backup has no folder and fails\n"
    if any(c.isspace() or not c.isprintable() for c in folder):
        raise UsageError(f"[backup] dir {folder!r}: a folder for systemd must not contain "
                         "spaces or control characters")
    return head + f"[Unit]\nRequiresMountsFor={folder}\n\n[Service]\nReadWritePaths=-{folder}\n"


def cmd_prune(args: argparse.Namespace) -> int:
    from station.store.retention import prune

    cfg = config_mod.load(args.config)
    p = prune(_store(cfg), cfg.retention.keep_years, dry_run=args.dry_run)
    verb = "would delete" if args.dry_run else "deleted"
    print(f"{verb} records before {p.cutoff} ({cfg.retention.keep_years} years): "
          f"{p.decisions} decisions, {p.fills} fills, {p.outbox} delivered outbox rows, "
          f"{p.rig_events} rig events; kept {p.kept_undelivered} old fills not yet delivered")
    return EXIT_OK


COMMANDS = {"blocklist": cmd_blocklist, "decisions": cmd_decisions, "records": cmd_records,
            "outbox": cmd_outbox, "sync": cmd_sync, "verify": cmd_verify, "stats": cmd_stats,
            "export": cmd_export, "backup": cmd_backup, "prune": cmd_prune}
