"""A whole station on simulators: city, rigs and scanners here, the real daemon as a subprocess."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from pymodbus import ModbusException
from pymodbus.client import ModbusTcpClient

from station.today import station_today

from .city import CitySimulator
from .dataset import (
    APP_KEY,
    APP_SECRET,
    PARTNER_UNIT,
    QR_HOST,
    STATION_UNIT,
    UNIT_CODE,
    demo_dataset,
)
from .rfid import RfidSim
from .rig import RigSimulator
from .rig_model import RigModel
from .scanner import ScannerSim


@dataclass(frozen=True)
class RigSpec:
    id: str
    unit_id: int
    medium: str = "G13"
    rfid: bool = False  # an RFID reader at the scale besides the scanner
    camera: str = ""  # a video file (or stream URL) a camera reader reads, besides the scanner
    camera_roi: tuple[int, int, int, int] = (0, 0, 1280, 720)  # the camera's required roi
    camera_keys: tuple[tuple[str, object], ...] = ()  # more camera keys: (("confirm_frames", 2),)
    controller: int = 0  # rigs with the same number share one controller (one Modbus server)


OPERATORS = (("张三", "0A1B2C3D", "operator"), ("李四", "0A1B2C3E", "operator"),
             ("王主管", "0A1B2C3F", "supervisor"))


def _copy_lines(source: Any, log: Any) -> None:
    """The daemon's piped output into the log file, line by line, until it exits."""
    with source, log:
        for line in source:
            log.write(line)
            log.flush()


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, every: float = 0.01) -> Any:
    """Poll until predicate() is truthy; raise TimeoutError naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.1f}s waiting for {what}")
        time.sleep(every)


class SimStation:
    """Start with `start()`, drive with `scan()`/`badge()`, read with `coils()`, end with `stop()`."""

    def __init__(self, workdir: Path, rigs: tuple[RigSpec, ...] = (RigSpec("rig-01", 1),),
                 *, today: date | None = None, deadline_s: float = 1.5, watchdog_ms: int = 3000,
                 offline_max_age_h: float = 72.0, offline_recheck_s: float = 0.0,
                 rig_options: dict[str, Any] | None = None, poll_ms: int | None = None,
                 dataset: dict[str, Any] | None = None, rig_keys: dict[str, Any] | None = None,
                 extra_config: str = "", store_dir: Path | None = None, log_pipe: bool = False,
                 daemon_env: dict[str, str] | None = None):
        self.workdir = Path(workdir)
        # store_dir: the store elsewhere (a small tmpfs to fill); log_pipe: the daemon logs
        # through a pipe, as to the journal, copied here into the log file
        self.store_dir, self.log_pipe = store_dir, log_pipe
        self.daemon_env = daemon_env or {}  # more environment for the daemon (a stepped clock)
        self.rigs = rigs
        self.deadline_s, self.watchdog_ms = deadline_s, watchdog_ms
        self.offline_max_age_h = offline_max_age_h
        self.offline_recheck_s = offline_recheck_s
        self.rig_keys, self.extra_config = rig_keys or {}, extra_config  # more TOML for tests
        self.dataset = dataset or demo_dataset(today or station_today())
        self.city = CitySimulator(self.dataset)
        self.poll_ms = poll_ms or min(100, watchdog_ms // 3)
        self.rig_sims = {c: RigSimulator([r.unit_id for r in rigs if r.controller == c],
                                         **(rig_options or {}))
                         for c in sorted({r.controller for r in rigs})}
        self.rig_sim = next(iter(self.rig_sims.values()))  # the first (usually only) controller
        self.scanners = {r.id: ScannerSim(self.workdir / f"scanner-{r.id}") for r in rigs}
        self.rfids = {r.id: RfidSim(self.workdir / f"rfid-{r.id}") for r in rigs if r.rfid}
        self.daemon: subprocess.Popen[bytes] | None = None
        self.config_path = self.workdir / "station.toml"
        self.store_path = Path(store_dir or self.workdir) / "station.db"
        self.log_path = self.workdir / "station.log"
        self._db: sqlite3.Connection | None = None
        self._log_start = 0
        self._log_pump: threading.Thread | None = None
        self._modbus: dict[int, ModbusTcpClient] = {}  # by controller port

    # --- lifecycle ------------------------------------------------------------------------
    def start(self) -> SimStation:
        """Start everything; on any failure stop what was started (no daemon left behind)."""
        try:
            self.workdir.mkdir(parents=True, exist_ok=True)
            self.city.start()
            for sim in self.rig_sims.values():
                sim.start()
            for scanner in self.scanners.values():
                scanner.start()
            for rfid in self.rfids.values():
                rfid.start()
            self.write_config()
            self.start_daemon()
        except BaseException:
            self.stop()
            raise
        return self

    def write_config(self, extra: str = "") -> None:
        (self.workdir / "app_secret").write_text(APP_SECRET + "\n", encoding="utf-8")
        self.config_path.write_text(self.config_text() + extra, encoding="utf-8")

    def config_text(self) -> str:
        lines = [
            "[station]", f'unit_name = "{STATION_UNIT}"', f'unit_code = "{UNIT_CODE}"',
            f'fills_for = ["{PARTNER_UNIT}"]',
            f"store = {json.dumps(str(self.store_path) if self.store_dir else 'station.db')}", "",
            "[qr]", f'hosts = ["{QR_HOST}"]', "",
            "[city]", f'base_url = "{self.city.url}"', f'app_key = "{APP_KEY}"',
            'secret_file = "app_secret"', "connect_timeout_s = 0.5",
            f"read_timeout_s = {min(1.0, self.deadline_s)}",
            f"decision_deadline_s = {self.deadline_s}", "",
            "[offline]", f"max_age_h = {self.offline_max_age_h}",
            f"recheck_s = {self.offline_recheck_s}", "",
        ]
        for name, badge, role in OPERATORS:
            lines += ["[[operators]]", f'name = "{name}"', f'badge = "{badge}"',
                      f'role = "{role}"', ""]
        for rig in self.rigs:
            lines += ["[[rigs]]", f'id = "{rig.id}"', f'medium = "{rig.medium}"',
                      f'modbus = "tcp://127.0.0.1:{self.sim_of(rig.id).port}"',
                      f"unit_id = {rig.unit_id}", f"watchdog_ms = {self.watchdog_ms}",
                      f"poll_ms = {self.poll_ms}",
                      f"timeout_ms = {min(500, self.watchdog_ms // 3)}",
                      *(f"{k} = {json.dumps(v)}" for k, v in self.rig_keys.items()), "",
                      "[[rigs.readers]]", 'kind = "scanner"',
                      f'port = "{self.scanners[rig.id].path}"', ""]
            if rig.camera:
                lines += ["[[rigs.readers]]", 'kind = "camera"', f'id = "{rig.id}-camera"',
                          f'source = "{rig.camera}"', "fps = 20",
                          f"roi = {json.dumps(list(rig.camera_roi))}",
                          *(f"{k} = {json.dumps(v)}" for k, v in rig.camera_keys), ""]
            if rig.id in self.rfids:
                lines += ["[[rigs.readers]]", 'kind = "rfid"', f'id = "{rig.id}-rfid"',
                          f'port = "{self.rfids[rig.id].path}"', ""]
        return "\n".join(lines) + "\n" + self.extra_config

    def start_daemon(self, wait: bool = True) -> None:
        if self._log_pump is not None:  # the previous daemon's last lines first
            self._log_pump.join(10)
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        self._log_start = log.tell()  # this daemon's lines start here
        env = dict(os.environ, PYTHONUNBUFFERED="1", **self.daemon_env)
        self.daemon = subprocess.Popen(
            [sys.executable, "-m", "station", "run", "--init", "--config", str(self.config_path)],
            stdout=subprocess.PIPE if self.log_pipe else log, stderr=subprocess.STDOUT,
            env=env, cwd=self.workdir)
        if self.log_pipe:
            self._log_pump = threading.Thread(target=_copy_lines, args=(self.daemon.stdout, log),
                                              name="daemon-log", daemon=True)
            self._log_pump.start()
        else:
            log.close()
        if wait:
            self.wait_ready()

    def wait_ready(self, timeout: float = 20.0) -> None:
        """Every rig connected and every scanner port open, per the daemon's own log."""
        def ready() -> bool:
            if self.daemon is not None and self.daemon.poll() is not None:
                raise RuntimeError(f"daemon exited {self.daemon.returncode}:\n{self.log_tail()}")
            with open(self.log_path, "rb") as log:
                log.seek(self._log_start)
                text = log.read().decode("utf-8", errors="replace")
            if "event=station_ready" not in text:
                return False
            return all(f"event=rig_connected rig={r.id}" in text
                       and f"event=reader_open rig={r.id} reader={r.id}-reader1 " in text
                       and (not r.rfid or f"event=reader_open rig={r.id} reader={r.id}-rfid "
                            in text)
                       for r in self.rigs)
        try:
            wait_for(ready, timeout, "the daemon to connect every rig and reader")
        except TimeoutError as err:
            raise TimeoutError(f"{err}\n{self.log_tail()}") from err

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop_daemon(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int | None:
        if self.daemon is None:
            return None
        if self.daemon.poll() is None:
            self.daemon.send_signal(sig)
            try:
                self.daemon.wait(timeout)
            except subprocess.TimeoutExpired:
                self.daemon.kill()
                self.daemon.wait()
        code, self.daemon = self.daemon.returncode, None
        if self._log_pump is not None:
            self._log_pump.join(10)
        return code

    def stop(self) -> None:
        self.stop_daemon()
        for client in self._modbus.values():
            client.close()
        if self._db is not None:
            self._db.close()
        for scanner in self.scanners.values():
            scanner.close()
        for rfid in self.rfids.values():
            rfid.close()
        for sim in self.rig_sims.values():
            sim.stop()
        self.city.stop()

    # --- driving and reading --------------------------------------------------------------
    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            self._db = sqlite3.connect(self.store_path, timeout=5)
            self._db.row_factory = sqlite3.Row
        return self._db

    def rows(self, sql: str, *params: Any) -> list[dict[str, Any]]:
        return [dict(r) for r in self.db.execute(sql, params).fetchall()]

    def last_id(self, table: str = "decisions") -> int:
        return self.db.execute(f"SELECT coalesce(max(id), 0) FROM {table}").fetchone()[0]

    def scan(self, rig: str, reading: str | bytes, timeout: float = 10.0,
             settle: bool = True) -> dict[str, Any]:
        """Type a reading at a rig's scanner and return the decision the daemon recorded.

        The decision is committed before the rig is told; with `settle` this also waits until
        the rig shows the verdict (see `shows`).
        """
        since = self.last_id()
        self.scanners[rig].send(reading)
        decision = self.wait_decision(rig, since, timeout)
        if settle:
            wait_for(lambda: self.shows(rig, bool(decision["permit"])), timeout,
                     f"{rig} to show the verdict")
        return decision

    def shows(self, rig: str, permit: bool) -> bool:
        """The rig shows a verdict: red and no permit; or green, with the permit once a
        cylinder stands on a stable scale (a lamp alone may still be the previous verdict's)."""
        c = self.coils(rig)
        if not permit:
            return c["lamp_red"] and not c["lamp_green"] and not c["permit"]
        snap = self.model(rig).snapshot()
        on_scale = snap["cylinder_present"] and snap["stable"] and not snap["estop"]
        return c["lamp_green"] and not c["lamp_red"] and (c["permit"] or not on_scale)

    def wait_decision(self, rig: str, since: int, timeout: float = 10.0) -> dict[str, Any]:
        def found() -> dict[str, Any] | None:
            rows = self.rows("SELECT * FROM decisions WHERE id > ? AND rig = ? ORDER BY id "
                             "LIMIT 1", since, rig)
            return rows[0] if rows else None
        return wait_for(found, timeout, f"a decision at {rig}")

    def wait_fill(self, rig: str, decision_id: int, timeout: float = 15.0) -> dict[str, Any]:
        """The fill that a decision at a rig led to, once it is no longer open."""
        def done() -> dict[str, Any] | None:
            rows = self.rows("SELECT * FROM fills WHERE rig = ? AND decision_id = ? AND "
                             "state != 'open'", rig, decision_id)
            return rows[0] if rows else None
        return wait_for(done, timeout, f"the fill of decision {decision_id} at {rig}")

    def badge(self, rig: str, uid: str, timeout: float = 10.0) -> dict[str, Any]:
        since = self.last_id("operator_events")
        self.scanners[rig].send(uid)
        rows = wait_for(lambda: self.rows("SELECT * FROM operator_events WHERE id > ? AND rig = ?",
                                          since, rig), timeout, f"operator event at {rig}")
        return rows[0]

    def place(self, rig: str, gross_g: int = 15200) -> None:
        """Stand a cylinder on the rig's scale and wait until the scale says so, stable."""
        model = self.model(rig)
        model.place_cylinder(gross_g)
        wait_for(lambda: (s := model.snapshot())["cylinder_present"] and s["stable"], 5,
                 f"a stable cylinder on {rig}'s scale")

    def remove(self, rig: str, seen: bool = True) -> None:
        """Take the cylinder off; with `seen`, wait until the daemon has noticed (a person
        cannot swap cylinders between two of its polls, and a test should not either)."""
        self.model(rig).remove_cylinder()
        if seen and self.daemon is not None and self.daemon.poll() is None:
            wait_for(lambda: not self.live(rig).get("present", True), 5,
                     f"the daemon to see {rig}'s scale empty")

    def live(self, rig: str) -> dict[str, Any]:
        """The daemon's published picture of a rig (what the operator screen shows)."""
        rows = self.rows("SELECT state FROM rig_live WHERE rig = ?", rig)
        return json.loads(rows[0]["state"]) if rows else {}

    def unit(self, rig: str) -> int:
        return next(r.unit_id for r in self.rigs if r.id == rig)

    def sim_of(self, rig: str) -> RigSimulator:
        """The controller (Modbus server) a rig belongs to."""
        return self.rig_sims[next(r.controller for r in self.rigs if r.id == rig)]

    def model(self, rig: str) -> RigModel:
        return self.sim_of(rig).rig(self.unit(rig))

    def coils(self, rig: str) -> dict[str, bool]:
        """The rig controller's coils, read over Modbus TCP like any other client would."""
        port = self.sim_of(rig).port
        try:
            rr = self._client(port).read_coils(0, count=4, device_id=self.unit(rig))
        except ModbusException:  # the simulator was restarted: a new connection, once
            self._modbus.pop(port).close()
            rr = self._client(port).read_coils(0, count=4, device_id=self.unit(rig))
        if rr.isError():
            raise RuntimeError(f"read_coils failed: {rr}")
        names = ("permit", "lamp_green", "lamp_red", "buzzer")
        return dict(zip(names, rr.bits[:4], strict=True))

    def _client(self, port: int) -> ModbusTcpClient:
        if port not in self._modbus:
            self._modbus[port] = ModbusTcpClient("127.0.0.1", port=port, timeout=2)
            self._modbus[port].connect()
        return self._modbus[port]

    def block(self, key: str, reason: str) -> None:
        """Put a cylinder on the block list as a manager would, through the CLI."""
        subprocess.run([sys.executable, "-m", "station", "blocklist", "--config",
                        str(self.config_path), "add", key, "--reason", reason],
                       check=True, capture_output=True)

    def dump(self) -> str:
        return json.dumps(self.rows("SELECT * FROM decisions ORDER BY id"), ensure_ascii=False)
