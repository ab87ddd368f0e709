"""`station doctor`: one line per check (PASS, WARN or FAIL and why) of what a station needs."""

from __future__ import annotations

import asyncio
import errno
import os
import shutil
import sqlite3
import time
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import serial

from station import config as config_mod
from station.config import ReaderConfig, RigConfig, StationConfig
from station.core.fills import local
from station.errors import CityError, ConfigError, RigFault, StoreError
from station.logfmt import escape
from station.store import chain, probe, retention

RIG_TIMEOUT_S = 1.0  # per Modbus exchange; a healthy controller answers in milliseconds
BUSY = (errno.EAGAIN, errno.EWOULDBLOCK, errno.EBUSY)


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # PASS | WARN (noted, not a failure) | FAIL
    detail: str


def run(config_path: str, env: Mapping[str, str] | None = None) -> list[Check]:
    """Every check, in order; without a valid configuration only that one."""
    try:
        cfg = config_mod.load(config_path, dict(env) if env is not None else None)
    except ConfigError as err:
        return [Check("config", "FAIL", str(err))]
    readers = sum(len(r.readers) for r in cfg.rigs)
    checks = [Check("config", "PASS", f"{cfg.file}: {len(cfg.rigs)} rig(s), {readers} reader(s)")]
    checks.append(check_store(cfg.store, cfg.file))
    checks.append(check_chain(cfg.store, store_ok=checks[-1].status == "PASS"))
    checks += asyncio.run(check_rigs(cfg))
    checks += check_links(cfg.store)
    checks += [check_reader(rig.id, rd) for rig in cfg.rigs for rd in rig.readers]
    checks.append(check_city(cfg))
    checks.append(check_clock(cfg))
    checks.append(check_disk(cfg))
    checks.append(check_blocklist(cfg.store))
    checks += setup_checks(cfg)
    return checks


def setup_checks(cfg: StationConfig) -> list[Check]:
    """The start-up warnings (station.app.startup) as WARN lines; a missing serial port is
    already a reader's or rig's FAIL above."""
    from station.app.startup import notices

    return [Check("setup", "WARN", n.text) for n in notices(cfg)
            if n.event != "serial_port_missing"]


def render(checks: list[Check]) -> str:
    return "\n".join(f"{c.status:<4}  {c.name:<24} {c.detail}" for c in checks)


def failed(checks: list[Check]) -> bool:
    return any(c.status == "FAIL" for c in checks)


# --- the store ------------------------------------------------------------------------------
def check_store(path: str, config_file: str = "FILE") -> Check:
    """Opens without creating, passes integrity_check, and takes the write lock. Before the
    first start: PASS when the first `station run` will create it (the first-start marker of
    `make install` in a writable folder), else FAIL naming the step that comes first."""
    from station.app.startup import FIRST_START

    store = Path(path)
    if not store.exists():
        init = f"`station init --config {config_file}`"
        if not store.parent.is_dir():
            return Check("store", "FAIL", f"{store} not created yet and its folder "
                         f"{store.parent} does not exist: run {init} (or make install), or "
                         "correct [station] store")
        if not _writable(store.parent):
            return Check("store", "FAIL", f"{store} not created yet and {store.parent} is not "
                         "writable for this user (run as the station user: sudo station …)")
        if (store.parent / FIRST_START).is_file():
            return Check("store", "PASS", f"{store} not created yet: the first `station run` "
                         "creates it (first-start marker of make install)")
        return Check("store", "FAIL", f"{store} does not exist, and `station run` will not "
                     f"create it: for a first start run {init}; otherwise correct [station] "
                     "store")
    try:
        result, version = probe.writable(str(store))
    except StoreError as err:
        return Check("store", "FAIL", f"{store}: {err}")
    if result != ["ok"]:
        return Check("store", "FAIL", f"{store}: integrity_check: {'; '.join(result[:3])}")
    if not _writable(store.parent):
        return Check("store", "FAIL", f"{store.parent} is not writable (SQLite keeps its -wal "
                     "and -shm files there)")
    return Check("store", "PASS", f"{store}: integrity ok, writable, schema {version}")


def _existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _writable(folder: Path) -> bool:
    """Really create a file there (os.access says yes to root on a read-only folder)."""
    probe = folder / f".station-doctor-{os.getpid()}"
    try:
        with open(probe, "xb"):
            pass
        probe.unlink()
    except OSError:
        return False
    return True


# --- the record chain --------------------------------------------------------------------------
def check_chain(path: str, *, store_ok: bool = True) -> Check:
    """Every decision and fill still as committed (as `station verify`): the whole chain is
    walked, so this takes ~25 s a million entries; the time is shown.

    PASS shows the head (newest entry: sequence, hash prefix, its record's time); FAIL the first
    problem. A store that cannot be read is a WARN when the store check has already failed."""
    store = Path(path)
    if not store.exists():
        return Check("chain", "PASS", "no store yet: nothing to verify")
    t0 = time.monotonic()
    try:
        with probe.readonly(str(store)) as conn:
            if not probe.has_table(conn, "chain"):
                return Check("chain", "WARN", f"{store} has no chain table yet (an older "
                             "schema: the daemon adds it when it starts)")
            problems, _ = retention.verify(conn)
            top, entries = chain.newest(conn), chain.head(conn).records
    except sqlite3.Error as err:
        return Check("chain", "FAIL" if store_ok else "WARN", f"not verified: {err}")
    took = f"{time.monotonic() - t0:.1f} s"
    if problems:
        more = f" (and {len(problems) - 1} more: station verify)" if len(problems) > 1 else ""
        return Check("chain", "FAIL", f"{problems[0]}{more}; walked {entries} entries in {took}")
    if top is None:
        return Check("chain", "PASS", "no records yet")
    return Check("chain", "PASS", f"{entries} entries verified in {took}; head {head_text(top)}")


def check_blocklist(path: str) -> Check:
    """WARN for block-list rows that can never match a reading (keys.unmatchable: typed before
    keys were checked, e.g. a name or a URL); rows that merely were not normalised (`cyl-000002`)
    match through their normalised form and pass. Issue 10, step 5."""
    from station.core.keys import unmatchable

    store = Path(path)
    if not store.exists():
        return Check("blocklist", "PASS", "no store yet: no block list")
    try:
        keys = probe.blocklist_keys(str(store))
    except StoreError as err:
        return Check("blocklist", "WARN", f"not read: {err}")
    bad = [(k, why) for k in keys if (why := unmatchable(k))]
    if not bad:
        return Check("blocklist", "PASS", f"{len(keys)} key(s), each can match a reading")
    shown = "; ".join(f"{escape(k)!r}: {why}" for k, why in bad[:3])
    more = f" (and {len(bad) - 3} more: station blocklist list)" if len(bad) > 3 else ""
    return Check("blocklist", "WARN", f"{len(bad)} of {len(keys)} key(s) can never match a "
                 f"reading, remove them with station blocklist remove: {shown}{more}")


def head_text(top: chain.Newest) -> str:
    """'#SEQ HASH16 (KIND at LOCAL TIME)': the head as people compare it."""
    at = local(top.at) if top.at is not None else "time unknown: record pruned"
    return f"#{top.seq} {top.short} ({top.kind} at {at})"


# --- rig controllers --------------------------------------------------------------------------
async def check_rigs(cfg: StationConfig) -> list[Check]:
    """Each rig's controller: connect and read its status once (reads only, no writes)."""
    from drivers.modbus_rig import ModbusRig, links_for

    links = links_for(list(cfg.rigs))
    checks = []
    for rig in cfg.rigs:
        name = f"rig {rig.id}"
        if rig.modbus.kind == "rtu" and _port_busy(rig.modbus.device):
            checks.append(Check(name, "PASS", f"{rig.modbus.device} in use (daemon running?); "
                                "not probed, to leave its RS-485 line alone"))
            continue
        link = links[rig.modbus.key]
        link.timeout_s = min(link.timeout_s, RIG_TIMEOUT_S)
        checks.append(await _probe_rig(rig, ModbusRig(rig, link)))
    for link in links.values():
        await link.close()
    return checks


LINK_STATS_STALE_S = 30.0  # older than this: the daemon is not running (it writes every 5 s)


def check_links(store: str, now: float | None = None) -> list[Check]:
    """The running daemon's Modbus links as it last reported them (`<store>.links.json`,
    station.app.daemon.publish_links): WARN for a line overloaded (polls stretched) or a rig
    whose heartbeats came later than WATCHDOG_MS / 3; nothing when the daemon is not running."""
    import json

    from station.app.daemon import links_path

    try:
        with open(links_path(store), encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return []
    if (now if now is not None else time.time()) - float(data.get("at", 0)) > \
            LINK_STATS_STALE_S:
        return []
    checks = []
    for s in data.get("links", []):
        units = s.get("units", {})
        late = {rig: u["late"] for rig, u in units.items() if u.get("late")}
        gap = max((u.get("max_gap_s", 0) for u in units.values()), default=0)
        detail = (f"{len(units)} rig(s), busy {s.get('busy', 0):.0%}, "
                  f"{s.get('overloads', 0)} overload(s), heartbeat gap max {gap:.3f} s")
        problems = []
        if s.get("overloaded"):
            problems.append(f"overloaded: polls stretched x{s.get('poll_stretch')}")
        if late:
            problems.append("late heartbeats " + ", ".join(f"{r}: {n}"
                                                           for r, n in sorted(late.items())))
        checks.append(Check(f"link {s.get('endpoint')}", "WARN" if problems else "PASS",
                            "; ".join([*problems, detail])))
    return checks


async def _probe_rig(rig: RigConfig, controller: Any) -> Check:
    name, where = f"rig {rig.id}", f"unit {rig.unit_id} at {rig.modbus.key}"
    try:
        await asyncio.wait_for(controller.connect(), 3 * RIG_TIMEOUT_S)
        status = await asyncio.wait_for(controller.read_status(), 3 * RIG_TIMEOUT_S)
    except (RigFault, TimeoutError) as err:
        return Check(name, "FAIL", f"{where}: {err or 'no answer'}")
    scale = f"scale {status.gross_g} g{' stable' if status.stable else ''}"
    if not status.healthy:
        return Check(name, "WARN", f"{where} answers; {scale}; {status.fault_text()}")
    return Check(name, "PASS", f"{where} answers; {scale}")


# --- readers ------------------------------------------------------------------------------------
def check_reader(rig_id: str, rd: ReaderConfig) -> Check:
    name = f"reader {rd.id}"
    if rd.kind == "camera":
        return _check_camera(name, rd.source)
    try:
        port = serial.Serial(rd.port, rd.baudrate, timeout=0, exclusive=True)
    except serial.SerialException as err:
        if err.errno in BUSY:
            return Check(name, "PASS", f"{rd.port} in use (daemon running?)")
        return Check(name, "FAIL", f"{rd.port}: {err}")
    except (OSError, ValueError) as err:
        return Check(name, "FAIL", f"{rd.port}: {err}")
    port.close()
    return Check(name, "PASS", f"{rd.port} opens ({rd.kind} at {rig_id})")


def _port_busy(device: str) -> bool:
    try:
        serial.Serial(device, timeout=0, exclusive=True).close()
    except serial.SerialException as err:
        return err.errno in BUSY
    except (OSError, ValueError):
        return False
    return False


def _check_camera(name: str, source: str) -> Check:
    device = f"/dev/video{source}" if source.isdigit() else source
    if "://" in device:
        return Check(name, "PASS", "a network stream; not opened by doctor")
    if not Path(device).exists():
        return Check(name, "FAIL", f"{device} does not exist")
    if not os.access(device, os.R_OK):
        return Check(name, "FAIL", f"{device}: no permission to read (group video?)")
    return Check(name, "PASS", f"{device} present (not opened: the daemon may be capturing)")


# --- the city -----------------------------------------------------------------------------------
def check_city(cfg: StationConfig) -> Check:
    """A token from the city within [city] probe_deadline_s, however the city behaves."""
    from station.city.client import CityClient

    client = CityClient(cfg.city, cfg.unit_code)
    t0 = time.monotonic()
    try:
        client.token(deadline_s=cfg.city.probe_deadline_s)
    except CityError as err:
        return Check("city", "FAIL", f"{cfg.city.base_url}: {err}")
    finally:
        client.close()
    ms = (time.monotonic() - t0) * 1000
    return Check("city", "PASS", f"{cfg.city.base_url}: token obtained in {ms:.0f} ms")


def clock_skew_s(date_header: str, sent: float, received: float) -> float:
    """Our clock minus the city's, from its HTTP Date (whole seconds, stamped somewhere between
    our send and receive): 0 when the two can agree, else the smallest difference there is."""
    server = parsedate_to_datetime(date_header).timestamp()  # the city's second: [server, +1)
    if received < server:
        return received - server
    if sent >= server + 1:
        return sent - (server + 1)
    return 0.0


def skew_check(skew: float, limit_s: float) -> Check:
    text = f"our clock is {abs(skew):.1f} s {'ahead of' if skew > 0 else 'behind'} the city's"
    if skew == 0:
        return Check("clock", "PASS", "agrees with the city's Date to the second")
    if abs(skew) > limit_s:
        return Check("clock", "FAIL", f"{text} (more than {limit_s:g} s; fix NTP)")
    if abs(skew) > limit_s / 2:
        return Check("clock", "WARN", f"{text} (limit {limit_s:g} s)")
    return Check("clock", "PASS", f"{text} (limit {limit_s:g} s)")


def check_clock(cfg: StationConfig) -> Check:
    from station.city.client import CityClient

    client = CityClient(cfg.city, cfg.unit_code)
    try:
        date, sent, received = client.city_date(cfg.city.probe_deadline_s)
    except CityError as err:
        return Check("clock", "FAIL", f"cannot ask the city for its time: {err}")
    finally:
        client.close()
    if not date:
        return Check("clock", "FAIL", "the city's answer carries no Date header")
    try:
        skew = clock_skew_s(date, sent, received)
    except (TypeError, ValueError):
        return Check("clock", "FAIL", f"the city's Date header {date[:40]!r} is not a date")
    return skew_check(skew, cfg.doctor.max_clock_skew_s)


# --- disk -----------------------------------------------------------------------------------------
def check_disk(cfg: StationConfig) -> Check:
    folder = _existing(Path(cfg.store).parent)
    free_mb = shutil.disk_usage(folder).free // (1024 * 1024)
    want = cfg.doctor.min_free_mb
    if free_mb < want:
        return Check("disk", "FAIL", f"{free_mb} MB free under {folder}; want {want} MB")
    return Check("disk", "PASS", f"{free_mb} MB free under {folder} (minimum {want} MB)")
