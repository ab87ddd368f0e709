"""The daemon: every configured rig served concurrently from one process, until SIGTERM."""

from __future__ import annotations

import asyncio
import errno
import fcntl
import inspect
import json
import logging
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from drivers.modbus_rig import ModbusRig, links_for
from drivers.registry import make_reader
from station.app.startup import FIRST_START
from station.city.client import CityClient
from station.city.clockwatch import ClockWatch
from station.city.lookup import LookupService
from station.city.sync import SyncWorker
from station.config import StationConfig
from station.errors import StationError, StoreError, UsageError
from station.logfmt import kv
from station.notify import notify, watchdog_interval_s
from station.rig.liveness import Progress, Watched, hung_rigs
from station.rig.loop import RigLoop, store_deadline_s
from station.rig.storethread import DEADLINE_S, StoreThread
from station.store.db import Store

log = logging.getLogger("station.daemon")


class AlreadyRunning(StationError):
    """Another `station run` holds the store's lock; `pid` is its process id (0: unknown)."""

    def __init__(self, lock_path: str, pid: int):
        self.lock_path, self.pid = lock_path, pid
        super().__init__(f"already running (pid {pid or 'unknown'}): {lock_path} is locked; "
                         "this one changed nothing")


def may_create(cfg: StationConfig, *, asked: bool) -> bool:
    """Whether `station run` is to create the store: never silently (a typo in `store =` would
    start an empty store, hiding history, shifts, block list and chain). True when there is
    none and it was asked for (--init) or the first-start marker lies in the store's folder;
    False when the store exists; UsageError (exit 2: systemd does not restart) otherwise."""
    store = Path(cfg.store)
    if store.is_file():
        return False
    if store.exists():
        raise UsageError(f"[station] store {store} in {cfg.file} is not a file")
    if asked or (store.parent / FIRST_START).is_file():
        return True
    raise UsageError(f"no store at {store} ([station] store in {cfg.file}): for the first "
                     f"start run `station init --config {cfg.file}` (make install lays down "
                     f"{store.parent / FIRST_START} for this); otherwise correct the path")


def init_store(cfg: StationConfig) -> bool:
    """Create the store (and its folder) with the current schema; False when it existed.
    The first-start marker is removed: from now on a missing store is an error."""
    existed = Path(cfg.store).is_file()
    Store(cfg.store).close()
    (Path(cfg.store).parent / FIRST_START).unlink(missing_ok=True)
    if not existed:
        log.info(kv("store_created", store=cfg.store))
    return not existed


def warn_setup(cfg: StationConfig) -> None:
    """Log what is set up oddly but does not stop a start (station.app.startup)."""
    from station.app.startup import rig_notices

    for n in rig_notices(cfg):
        log.warning(kv(n.event, **dict(n.fields), why=n.text))


def lock_path(store: str) -> str:
    """The daemon's lock file: beside the store, `<store>.lock` (symlinks resolved)."""
    return os.path.realpath(store) + ".lock"


def take_lock(store: str) -> int:
    """One daemon per store (issue 10, step 6): an exclusive, non-blocking flock(2) on
    `lock_path(store)`, created if missing, which then holds this process's pid.

    Returns the open descriptor: keep it open for the life of the process; the kernel releases
    the lock when the process ends, however it ends (kill -9 too), so a stale file never blocks
    a start. Raises AlreadyRunning (with the holder's pid as written in the file) when another
    process holds it, StoreError when the file cannot be created. Nothing else is touched
    first: no store, serial port, Modbus link or city. Readers of the store (station doctor,
    check, web) do not take it.
    """
    path = lock_path(store)
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o640)
    except OSError as err:
        try:  # a folder or file made read-only after the first start: flock needs no write
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            raise StoreError(f"cannot create the lock file {path}: {err.strerror or err}"
                             ) from err
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as err:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        os.close(fd)
        if err.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
            raise StoreError(f"cannot lock {path}: {err.strerror or err}") from err
        raise AlreadyRunning(path, int(text) if text.isdigit() else 0) from None
    try:  # the pid is for people; a full disk must not stop the start (it refuses fills)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
    except OSError as err:
        log.warning(kv("lock_pid_not_written", lock=path, error=err.strerror or str(err)))
    return fd


def build(cfg: StationConfig, store: Store, executor: ThreadPoolExecutor,
          city: CityClient, on_fill=lambda: None,
          writes: StoreThread | None = None) -> tuple[list[RigLoop], dict]:
    """The rig loops with their controllers and readers, sharing one link per endpoint and
    the process's one store thread (`writes`: every store write off the event loop)."""
    if writes is None:
        writes = StoreThread(store, min(store_deadline_s(r) for r in cfg.rigs)
                             if cfg.rigs else DEADLINE_S)
    lookups = LookupService(city, store, executor, cfg.city.decision_deadline_s,
                            cfg.offline_recheck_s)
    links = links_for(list(cfg.rigs))
    clock = ClockWatch(store, lambda: city.clock_sample, cfg.rules.max_clock_skew_s)
    loops = []
    for rig in cfg.rigs:
        controller = Watched(ModbusRig(rig, links[rig.modbus.key]))
        readers = [make_reader(r, rig.id) for r in rig.readers]
        loops.append(RigLoop(rig, cfg, controller, readers, store, lookups, clock, on_fill,
                             writes))
    return loops, links


async def serve(cfg: StationConfig) -> int:
    """Run until SIGTERM/SIGINT; withdraw every permit before returning."""
    warn_setup(cfg)
    store = Store(cfg.store)
    if not store.integrity_ok():
        raise StoreError(f"store {cfg.store} failed its integrity check")
    executor = ThreadPoolExecutor(cfg.city.workers, thread_name_prefix="city")
    city = CityClient(cfg.city, cfg.unit_code)
    sync = SyncWorker(cfg.store, city, cfg.sync)
    writes = StoreThread(store, min(store_deadline_s(r) for r in cfg.rigs)
                         if cfg.rigs else DEADLINE_S)
    loops, links = build(cfg, store, executor, city, sync.wake, writes)
    sync.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    tasks = [asyncio.create_task(rl.run(), name=f"rig:{rl.cfg.id}") for rl in loops]
    log.info(kv("station_ready", rigs=len(loops), store=cfg.store, city=cfg.city.base_url))
    notify("READY=1")
    pinger = asyncio.create_task(ping_watchdog(loops), name="watchdog")
    stats = asyncio.create_task(publish_links(links, writes, links_path(cfg.store)),
                                name="link-stats")
    stopper = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait([stopper, *tasks], return_when=asyncio.FIRST_COMPLETED)
    crashed = [t for t in done if t is not stopper]
    for t in crashed:
        log.critical(kv("rig_loop_died", task=t.get_name(), error=repr(t.exception())))
    log.info(kv("station_stopping", reason="loop died" if crashed else "signal"))
    notify("STOPPING=1")
    for t in (*tasks, pinger, stats):
        t.cancel()
    await asyncio.gather(*tasks, pinger, stats, return_exceptions=True)
    # Each step guarded: one that fails or times out never skips the ones after it.
    await _step("withdraw permits", asyncio.wait_for(
        asyncio.gather(*(rl.shutdown() for rl in loops)), 5))
    for link in links.values():
        await _step("close a Modbus link", link.close())
    await _step("close the store thread", asyncio.to_thread(writes.close))
    sync.stop()
    await _step("stop the sync worker", asyncio.to_thread(sync.join, 10))
    for what, close in (("close the city client", city.close),
                        ("stop the city threads",
                         lambda: executor.shutdown(wait=False, cancel_futures=True)),
                        ("close the store", store.close)):
        await _step(what, close)
    log.info(kv("station_stopped"))
    return 1 if crashed else 0


async def _step(what: str, step) -> None:
    """One shutdown step (an awaitable, or a plain function called on this thread); its failure
    is logged and the next step runs all the same."""
    try:
        if inspect.isawaitable(step):
            await step
        else:
            step()
    except Exception as err:  # noqa: BLE001 - shutting down: log and go on to the next step
        log.error(kv("shutdown_step_failed", step=what, error=repr(err)))


def links_path(store: str) -> str:
    """Where the daemon leaves its Modbus links' counters for `station doctor`:
    `<store>.links.json` beside the store (symlinks resolved)."""
    return os.path.realpath(store) + ".links.json"


LINK_STATS_EVERY_S = 5.0


async def publish_links(links: dict, writes: StoreThread, path: str) -> None:
    """Every LINK_STATS_EVERY_S, each link's `stats()` (overloaded, late heartbeats per rig)
    written to `path` as JSON {"at": epoch s, "links": [...], "store": the store thread's
    queue and longest call (s)}, by the store thread (a file
    write is no work for the event loop), replaced atomically."""
    def write(_store: Store, text: str) -> None:
        tmp = f"{path}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)

    await asyncio.sleep(1.0)  # the rigs attached first
    while True:
        text = json.dumps({"at": time.time(), "pid": os.getpid(),
                           "links": [link.stats() for link in links.values()],
                           "store": {"queued": writes.queued,
                                     "longest_call_s": round(writes.waited_s, 3)}})
        writes.post(write, text, done=lambda _r, err: err and log.debug(
            kv("link_stats_not_written", path=path, error=str(err))))
        await asyncio.sleep(LINK_STATS_EVERY_S)


def progress(loops: list[RigLoop]) -> list[Progress]:
    """Each rig loop's last signs of life, for the liveness decision."""
    return [Progress(rig=rl.cfg.id, alive_at=rl.state.alive_at,
                     exchanged_at=getattr(rl.controller, "exchanged_at", rl.state.alive_at),
                     connected=rl.state.connected, watchdog_ms=rl.cfg.watchdog_ms,
                     timeout_ms=rl.cfg.timeout_ms) for rl in loops]


async def ping_watchdog(loops: list[RigLoop]) -> None:
    """WATCHDOG=1 every half WatchdogSec while every rig loop makes progress; a hung loop
    stops the pings (logged once) and systemd restarts the daemon."""
    interval = watchdog_interval_s()
    if interval is None:
        return
    withheld: list[str] = []
    while True:
        hung = hung_rigs(progress(loops), time.monotonic())
        if hung and hung != withheld:
            log.critical(kv("watchdog_withheld", hung=",".join(hung),
                            why="rig loop made no progress; systemd will restart the daemon"))
        elif not hung and withheld:
            log.warning(kv("watchdog_resumed", was_hung=",".join(withheld)))
        if not hung:
            notify("WATCHDOG=1")
        withheld = hung
        await asyncio.sleep(interval)
