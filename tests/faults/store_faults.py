"""Store faults: the disk full, or the store unwritable, under a running daemon.

Two ways to make the daemon's store refuse writes, both real (no mock):
- `DiskFull` ("enospc"): the store lives on a small tmpfs (root or CAP_SYS_ADMIN: `mount`) that
  a filler file fills up, leaving a few KB; SQLite answers SQLITE_FULL ("database or disk is
  full"). The WAL is truncated first (`wal_checkpoint(TRUNCATE)`): a WAL that has been wrapped
  has room for new frames in its old ones, and a commit then needs no new disk space at all.
- `FileSizeLimit` ("efbig"): RLIMIT_FSIZE of the daemon set to 0 with prlimit (no privilege:
  same user). Python ignores SIGXFSZ, so every write of the daemon to a regular file fails with
  EFBIG; SQLite answers SQLITE_IOERR_WRITE ("disk I/O error"). Its log file would fail too,
  so the daemon must log through a pipe (the harness's `log_pipe`, as to the journal).

`trial_disk_full(st, rng)` is one trial of the long campaign (tests/faults/campaign.py) and of
tests/faults/test_store_faults.py: a scan refused while the store cannot commit, a fill whose
closing record is held in memory and committed once the store takes it again (or, after a
kill -9 meanwhile, recovered from its open row: completed, FILL_DONE latched), a normal fill after; it returns
what it measured. `station_options(workdir)` gives the SimStation options a campaign needs for
it (a tmpfs where mounting works, the log pipe otherwise); `release(st)` unmounts.
"""

from __future__ import annotations

import errno
import os
import random
import re
import resource
import signal
import sqlite3
import subprocess
import tempfile
import time
from functools import cache
from pathlib import Path
from typing import Any

from simulators.dataset import demo_cylinders, qr_url
from simulators.harness import SimStation, wait_for
from station.store import chain
from station.today import station_today

TMPFS_MB = 16  # room for the store and a WAL of 1000 pages (the autocheckpoint) in a long run
LEAVE_BYTES = 8 * 1024  # what the filler leaves free: less than one commit needs
KILL_P = 0.25  # how often a trial kills the daemon while a record is held
# The cylinders this trial scans: the first refused, the second filled (and the normal fill
# after), the third refused while a record is held. Consecutive scans differ (the same code
# within dedup_s is no new reading), and none is one the campaign's other trials scan.
STEP_KEYS = ("due_soon", "life_last_month", "offline_uncached")
ERRORS = {"enospc": "database or disk is full", "efbig": "disk I/O error"}


# --- the two mechanisms -------------------------------------------------------------------
@cache
def can_mount() -> bool:
    """Whether this process may mount a tmpfs (root, or CAP_SYS_ADMIN)."""
    with tempfile.TemporaryDirectory() as probe:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", probe],
                              capture_output=True, check=False)
        if done.returncode != 0:
            return False
        unmount(Path(probe))
        return True


def mount_tmpfs(path: Path, size_mb: int = TMPFS_MB) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(path)],
                   check=True, capture_output=True)
    return path


def unmount(path: Path) -> None:
    """Unmount; lazily when something still holds a file there (it goes once released)."""
    if subprocess.run(["umount", str(path)], capture_output=True, check=False).returncode:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)


def station_options(workdir: Path) -> dict[str, Any]:
    """SimStation options for store-fault trials: the store on a tmpfs where this process may
    mount one (a real ENOSPC), else the log through a pipe (so RLIMIT_FSIZE spares it)."""
    if can_mount():
        return {"store_dir": mount_tmpfs(Path(workdir) / "store")}
    return {"log_pipe": True}


def release(st: SimStation) -> None:
    """After st.stop(): unmount the store's tmpfs, if it has one."""
    if st.store_dir is not None and os.path.ismount(st.store_dir):
        unmount(Path(st.store_dir))


class DiskFull:
    """ENOSPC: a filler file takes all but LEAVE_BYTES of the store's tmpfs."""

    name = "enospc"

    def __init__(self, st: SimStation):
        self.st = st
        self.filler = Path(st.store_path).parent / "filler"

    def block(self) -> None:
        truncate_wal(self.st)
        chunk = b"\0" * (1 << 20)
        with open(self.filler, "wb", buffering=0) as f:
            while True:
                try:
                    f.write(chunk)
                except OSError as err:
                    if err.errno != errno.ENOSPC:
                        raise
                    if len(chunk) == 4096:
                        break
                    chunk = chunk[: len(chunk) // 2]
            f.truncate(max(0, f.tell() - LEAVE_BYTES))
            os.fsync(f.fileno())

    def free(self) -> None:
        self.filler.unlink(missing_ok=True)


class FileSizeLimit:
    """EFBIG: the daemon may not write any regular file (RLIMIT_FSIZE 0, set from outside)."""

    name = "efbig"

    def __init__(self, st: SimStation):
        self.st = st
        self.pid: int | None = None
        self.before: tuple[int, int] | None = None

    def block(self) -> None:
        assert self.st.daemon is not None
        self.pid = self.st.daemon.pid
        _, hard = resource.prlimit(self.pid, resource.RLIMIT_FSIZE)
        self.before = resource.prlimit(self.pid, resource.RLIMIT_FSIZE, (0, hard))

    def free(self) -> None:
        if self.pid is None or self.before is None:
            return
        try:
            resource.prlimit(self.pid, resource.RLIMIT_FSIZE, self.before)
        except ProcessLookupError:
            pass  # that daemon is gone (killed): its successor has no limit
        self.pid = self.before = None


def mechanism_for(st: SimStation) -> DiskFull | FileSizeLimit:
    """ENOSPC when the store has a tmpfs of its own, else RLIMIT_FSIZE."""
    if os.path.ismount(Path(st.store_path).parent):
        return DiskFull(st)
    return FileSizeLimit(st)


def truncate_wal(st: SimStation) -> None:
    """Checkpoint the WAL into the store and cut it to zero bytes: the next commit must grow
    it, so a full disk is felt at once."""
    def truncated() -> bool:
        busy, _, _ = st.db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        return busy == 0
    wait_for(truncated, 10, "a TRUNCATE checkpoint of the WAL")


# --- observing the daemon -----------------------------------------------------------------
class LogMark:
    """The daemon's log from a point on."""

    def __init__(self, st: SimStation):
        self.path = Path(st.log_path)
        self.start = self.path.stat().st_size if self.path.exists() else 0

    def text(self) -> str:
        with open(self.path, "rb") as log:
            log.seek(self.start)
            return log.read().decode("utf-8", errors="replace")

    def wait(self, pattern: str, timeout: float, what: str) -> re.Match[str]:
        return wait_for(lambda: re.search(pattern, self.text()), timeout, what)


def decisions(st: SimStation) -> int:
    return st.db.execute("SELECT count(*) FROM decisions").fetchone()[0]


def fill_row(st: SimStation, decision_id: int) -> dict[str, Any]:
    return st.rows("SELECT * FROM fills WHERE decision_id = ?", decision_id)[0]


def integrity(path: Path) -> tuple[str, list[str]]:
    """PRAGMA integrity_check and the hash chain's problems, on a connection of its own."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        return conn.execute("PRAGMA integrity_check").fetchone()[0], chain.verify(conn)
    finally:
        conn.close()


# --- the trial ------------------------------------------------------------------------------
class Trial:
    """One trial's state and numbers (see trial_disk_full)."""

    def __init__(self, st: SimStation, rng: random.Random):
        self.st, self.rng = st, rng
        self.rig = st.rigs[0].id
        self.model = st.rig_sim.rig(st.unit(self.rig))
        self.fault = mechanism_for(st)
        by_key = demo_cylinders(station_today())  # (info codes do not depend on the day)
        self.codes = [by_key[k]["info_code"] for k in STEP_KEYS]
        self.out: dict[str, Any] = {
            "mechanism": self.fault.name, "refused_scans": 0, "records": 0, "delivered_once": 0,
            "held": False, "killed_while_held": False, "permit_on_while_unwritable": 0,
            "permit_off_checks": 0, "permit_drop_s": None, "sqlite_error": "",
            "screen_reason": "", "post_checks": [], "valve_openings": 0, "fills_closed": 0,
            "submissions": 0, "integrity": "", "chain_problems": [],
        }

    def coils(self) -> dict[str, bool]:
        return self.st.coils(self.rig)

    def refused(self, code: str, mark: LogMark) -> dict[str, bool]:
        """Type a reading while the store cannot commit: red, no permit, no decision row."""
        before = decisions(self.st)
        self.st.scanners[self.rig].send(qr_url(code))

        def red() -> dict[str, bool] | None:
            c = self.coils()
            self.out["permit_on_while_unwritable"] += c["permit"]
            return c if c["lamp_red"] and not c["lamp_green"] and not c["permit"] else None
        shown = wait_for(red, 15, "the red lamp of a refusal the store could not record")
        found = mark.wait(r"event=decision_failed rig=\S+ error=(.*?) action=", 10,
                          "the refusal logged")
        self.out["sqlite_error"] = self.out["sqlite_error"] or found.group(1)
        if decisions(self.st) != before:
            raise AssertionError("a decision was recorded while the store could not commit")
        self.out["refused_scans"] += 1
        self.out["permit_off_checks"] += 1
        return shown

    def lamps_out(self) -> None:
        """From any idle state to lamps out: a cylinder the daemon sees arrive, then leave."""
        st = self.st
        wait_for(lambda: st.live(self.rig).get("phase") in ("idle", "ended"), 30,
                 f"{self.rig} idle")
        if not self.model.snapshot()["cylinder_present"]:
            st.place(self.rig)
            wait_for(lambda: st.live(self.rig).get("present"), 5, "the cylinder seen")
        st.remove(self.rig)
        wait_for(lambda: not (c := self.coils())["lamp_red"] and not c["lamp_green"], 5,
                 "the lamps out")

    def wait_delivered(self, record_ids: list[str]) -> None:
        st = self.st
        st.db.execute("UPDATE outbox SET next_at = 0 WHERE state = 'pending'")
        st.db.commit()
        marks = ",".join("?" * len(record_ids))
        sql = f"SELECT 1 FROM outbox WHERE record_id IN ({marks}) AND state = 'delivered'"
        wait_for(lambda: len(st.rows(sql, *record_ids)) == len(record_ids), 40,
                 "the trial's records delivered")
        at_city = [f["record_id"] for f in st.city.fillings]
        submissions = st.city.submissions
        for rid in record_ids:
            if at_city.count(rid) != 1:
                raise AssertionError(f"record {rid} is {at_city.count(rid)} times at the city")
            self.out["delivered_once"] += 1
            self.out["submissions"] += submissions[rid]


def trial_disk_full(st: SimStation, rng: random.Random, *, kill: bool | None = None,
                    flow_g_per_s: float = 4000.0) -> dict[str, Any]:
    """One disk-full trial on a running station (its first rig; the store writable).

    1. The store cannot commit; a valid cylinder is scanned: refused (red lamp, no permit, no
       decision row), logged with SQLite's error; space back: the screen shows STORE_FAULT.
    2. A fill runs; the store fails at a random point while the valve is open: the fill goes on
       to its target (the rig loop stays alive), its closing record is held in memory.
    3. Another scan while it is held: refused, no permit.
    4. Either space comes back (the record is committed by itself, no restart), or - `kill`, or
       at random with KILL_P - the daemon is SIGKILLed meanwhile: the controller's watchdog drops
       the permit, and the restarted daemon records the fill from its open row as the
       controller ended it: at target, FILL_DONE latched, so `done` with its post-check (on a
       full disk it is held again until space comes back).
    5. A normal fill; both records delivered exactly once; valve openings = fill records;
       integrity_check and the hash chain.
    Returns the numbers measured; raises AssertionError when an invariant fails. The scale's
    flow and start delay are set for the trial (the start button pressed) and restored.
    """
    model = st.rig_sim.rig(st.unit(st.rigs[0].id))
    flow, delay = model.flow_g_per_s, model.start_delay_s
    model.flow_g_per_s, model.start_delay_s = flow_g_per_s, 0.05
    try:
        t = Trial(st, rng)
        if t.fault.name == "efbig" and not st.log_pipe:  # its log file would be unwritable too
            st.log_pipe = True
            st.stop_daemon()
            st.start_daemon()
        st.city.clear_faults()
        opened = model.snapshot()["valve_openings"]
        closed = st.db.execute("SELECT count(*) FROM fills WHERE state = 'closed'").fetchone()[0]
        _refused_while_unwritable(t)
        held = _fill_held(t, rng.random() < KILL_P if kill is None else kill)
        _normal_fill_and_checks(t, held, opened, closed)
        return t.out
    finally:
        model.flow_g_per_s, model.start_delay_s = flow, delay


def _refused_while_unwritable(t: Trial) -> None:
    """Step 1: a scan the store cannot record; the screen shows why once it can."""
    st, code = t.st, t.codes[0]
    t.lamps_out()
    mark = LogMark(st)
    t.fault.block()
    try:
        st.place(t.rig)
        t.refused(code, mark)
    finally:
        t.fault.free()
    shown = wait_for(lambda: (v := st.live(t.rig).get("verdict") or {}).get("code") ==
                     "STORE_FAULT" and v, 10, "the screen showing the store fault")
    t.out["screen_reason"] = shown["zh"]


def _fill_held(t: Trial, kill: bool) -> dict[str, Any]:
    """Steps 2-4: the store fails mid-fill; the record is held, then committed (or recovered
    after a kill -9). Returns the fill row."""
    st, model, out = t.st, t.model, t.out
    d = st.scan(t.rig, qr_url(t.codes[1]))
    if not d["permit"]:
        raise AssertionError(f"a valid cylinder refused with the store writable: {d}")
    row = fill_row(st, d["id"])
    gain = t.rng.uniform(0, 0.6) * row["target_g"]
    wait_for(lambda: (s := model.snapshot())["valve_open"] and
             s["gross_g"] - row["prefill_g"] >= gain, 15, "the fill under way")
    mark = LogMark(st)
    t.fault.block()
    try:
        mark.wait(rf"event=fill_not_saved rig={t.rig} record_id={row['record_id']} ", 30,
                  "the closing record refused by the store")
        out["held"] = True
        if fill_row(st, d["id"])["state"] != "open":
            raise AssertionError("the fill's row changed while the store could not commit")
        t.refused(t.codes[2], mark)  # no new fill while it is held
        if kill:
            _kill_while_held(t, row["record_id"])
    finally:
        t.fault.free()
    fill = st.wait_fill(t.rig, d["id"], timeout=30)
    if fill["state"] != "closed":
        raise AssertionError(f"the held fill ended {fill['state']}, not closed: {fill}")
    if kill and (fill["post_check"], fill["end_reason"]) != ("ok", "done"):
        raise AssertionError(f"a fill the controller completed before the kill is recovered "
                             f"as {fill['post_check']} ({fill['end_reason']})")
    out["post_checks"].append(fill["post_check"])
    return fill


def _normal_fill_and_checks(t: Trial, held: dict[str, Any], opened: int, closed: int) -> None:
    """Step 5: a normal fill, both records at the city once, the store intact."""
    st, out = t.st, t.out
    st.remove(t.rig)
    st.place(t.rig)
    d = st.scan(t.rig, qr_url(t.codes[1]))
    if not d["permit"]:
        raise AssertionError(f"no normal fill after the store came back: {d}")
    fill = st.wait_fill(t.rig, d["id"], timeout=30)
    out["post_checks"].append(fill["post_check"])
    st.remove(t.rig)
    t.wait_delivered([held["record_id"], fill["record_id"]])
    out["records"] = 2
    out["valve_openings"] = t.model.snapshot()["valve_openings"] - opened
    out["fills_closed"] = st.db.execute(
        "SELECT count(*) FROM fills WHERE state = 'closed'").fetchone()[0] - closed
    if out["fills_closed"] != out["valve_openings"]:
        raise AssertionError(f"{out['valve_openings']} valve openings, "
                             f"{out['fills_closed']} fill records")
    out["integrity"], out["chain_problems"] = integrity(Path(st.store_path))
    if out["integrity"] != "ok" or out["chain_problems"]:
        raise AssertionError(f"store damaged: {out['integrity']} {out['chain_problems']}")


def _kill_while_held(t: Trial, record_id: str) -> None:
    """SIGKILL with the record held in memory; the restarted daemon recovers it."""
    st, out = t.st, t.out
    assert st.daemon is not None
    st.daemon.send_signal(signal.SIGKILL)
    st.daemon.wait()
    killed = time.monotonic()
    st.daemon = None
    wait_for(lambda: not t.coils()["permit"], st.watchdog_ms / 1000 + 1.0,
             "the watchdog to drop the permit")
    out["permit_drop_s"] = time.monotonic() - killed
    out["killed_while_held"] = True
    if t.fault.name == "enospc":  # restart on the full disk: the record is held again
        mark = LogMark(st)
        st.start_daemon()
        mark.wait(rf"event=fill_not_saved rig={t.rig} record_id={record_id} ", 20,
                  "the recovered record refused by the full store")
    else:  # the limit went with the killed process: restart after freeing (the caller frees)
        t.fault.free()
        st.start_daemon()
