"""The station's configuration: one TOML file, validated strictly at start-up (face of the package).

Each section lives in its own module (city, rules, rigs, ops, web); every key's default and limits
are stated once, on its dataclass field (`spec.opt`). `from station.config import X` gives them all.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

from station.config.checks import ChecksConfig, PhotosConfig, checks, photos
from station.config.city import CityConfig, CityPaths, city
from station.config.ops import (
    HEX,
    BackupConfig,
    DoctorConfig,
    FillConfig,
    Operator,
    RetentionConfig,
    SyncConfig,
    backup,
    operator,
    simple,
)
from station.config.rigs import (
    CAMERA_KEYS,
    READER_KINDS,
    SERIAL_KEYS,
    ModbusEndpoint,
    ReaderConfig,
    RegisterMap,
    RigConfig,
    rig,
)
from station.config.rules import (
    DEFAULT_CYLINDER_TYPES,
    DEFAULT_SERVICE_LIFE,
    MEDIUM_CODES,
    NEVER_OVERRIDE,
    OVERRIDABLE,
    CylinderType,
    OverrideConfig,
    RulesConfig,
    ServiceLife,
    override,
    rules,
)
from station.config.spec import unique
from station.config.web import PASSWORD_HASH, WebConfig, WebUser, _web, web
from station.confread import Section
from station.core.codes import UNIT_NAME_MAX
from station.errors import ConfigError

BOM = "\ufeff"

__all__ = [
    "BOM", "CAMERA_KEYS", "DEFAULT_CYLINDER_TYPES", "DEFAULT_SERVICE_LIFE", "HEX",
    "MEDIUM_CODES", "NEVER_OVERRIDE", "OVERRIDABLE", "PASSWORD_HASH", "READER_KINDS",
    "SERIAL_KEYS", "BackupConfig", "ChecksConfig", "CityConfig", "CityPaths", "CylinderType", "DoctorConfig",
    "FillConfig", "ModbusEndpoint", "Operator", "OverrideConfig", "ReaderConfig", "RegisterMap",
    "PhotosConfig", "RetentionConfig", "RigConfig", "RulesConfig", "ServiceLife", "StationConfig", "SyncConfig",
    "WebConfig", "WebUser", "_web", "backup_only", "load", "read_toml",
]


@dataclass(frozen=True)
class StationConfig:
    file: str
    unit_name: str
    unit_code: str
    fills_for: tuple[str, ...]
    store: str
    qr_hosts: tuple[str, ...]
    qr_allow_http: bool
    city: CityConfig
    rules: RulesConfig
    rigs: tuple[RigConfig, ...]
    operators: tuple[Operator, ...] = ()
    offline_recheck_s: float = 15.0  # [offline] recheck_s: after the city failed, use the cache
    fill: FillConfig = FillConfig()
    sync: SyncConfig = SyncConfig()
    override: OverrideConfig = OverrideConfig()
    web: WebConfig = WebConfig()
    retention: RetentionConfig = RetentionConfig()
    backup: BackupConfig = BackupConfig()
    doctor: DoctorConfig = DoctorConfig()
    checks: ChecksConfig = ChecksConfig()
    photos: PhotosConfig = PhotosConfig()

    def rig(self, rig_id: str) -> RigConfig:
        for r in self.rigs:
            if r.id == rig_id:
                return r
        raise KeyError(rig_id)

    def badge(self, uid: str) -> Operator | None:
        for op in self.operators:
            if op.badge and op.badge.upper() == uid.upper():
                return op
        return None


def read_toml(file: str) -> dict:
    """The file's TOML as a dict; ConfigError naming the file when it cannot be read or parsed.

    A UTF-8 byte-order mark at the top (Windows Notepad writes one) is accepted.
    """
    try:
        return tomllib.loads(Path(file).read_text(encoding="utf-8").removeprefix(BOM))
    except FileNotFoundError as err:
        raise ConfigError(file, "-", None, "file not found") from err
    except IsADirectoryError as err:
        raise ConfigError(file, "-", None, "is a folder, not a file") from err
    except PermissionError as err:
        raise ConfigError(file, "-", None, "cannot be read (permission denied)") from err
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(file, "-", None, f"not valid TOML: {err}") from err


def backup_only(file: str) -> BackupConfig:
    """Only [backup] of a configuration file, validated (no secret needed: install time)."""
    return backup(Section(file, "backup", read_toml(file).get("backup", {})), file)


def load(path: str | os.PathLike[str], env: dict[str, str] | None = None) -> StationConfig:
    """Read and validate the configuration file; raise ConfigError naming file, section, key."""
    file = str(path)
    env = dict(os.environ) if env is None else env
    top = Section(file, "", read_toml(file))
    station = top.sub("station", required=True)
    unit_name = station.get_str("unit_name", maxlen=UNIT_NAME_MAX)
    unit_code = station.get_str("unit_code", maxlen=50)
    fills_for = tuple(station.get_str_list("fills_for", [], maxlen=UNIT_NAME_MAX))
    store = station.get_str("store")
    if not Path(store).is_absolute():
        store = str((Path(file).resolve().parent / store).resolve())
    station.done()
    qr = top.sub("qr")
    qr_hosts = tuple(h.lower() for h in qr.get_str_list("hosts", maxlen=253,
                                                        pattern=r"[A-Za-z0-9.-]+(:\d+)?"))
    if not qr_hosts:
        raise qr.error("hosts", "must list at least one host")
    qr_allow_http = qr.get_bool("allow_http", False)
    qr.done()
    city_cfg = city(top.sub("city", required=True), file, env)
    offline = top.sub("offline")
    rules_cfg = rules(top.sub("rules"), offline)
    recheck_s = offline.get_float("recheck_s", StationConfig.offline_recheck_s, minval=0,
                                  maxval=3600)
    offline.done()
    operators = tuple(operator(s) for s in top.subs("operators"))
    unique(top, "operators", [o.name for o in operators], "name")
    unique(top, "operators", [o.badge.upper() for o in operators if o.badge], "badge")
    fill, sync = simple(top.sub("fill"), FillConfig), simple(top.sub("sync"), SyncConfig)
    override_cfg = override(top.sub("override"))
    web_cfg = web(top.sub("web"))
    retention = simple(top.sub("retention"), RetentionConfig)
    backup_cfg = backup(top.sub("backup"), file)
    doctor = simple(top.sub("doctor"), DoctorConfig)
    checks_cfg = checks(top.sub("checks"))
    photos_cfg = photos(top.sub("photos"), file, store)
    rigs = tuple(rig(s) for s in top.subs("rigs", required=True))
    if not rigs:
        raise top.error("rigs", "at least one [[rigs]] is required")
    unique(top, "rigs", [r.id for r in rigs], "id")
    unique(top, "rigs", [(r.modbus.key, r.unit_id) for r in rigs], "modbus + unit_id")
    unique(top, "rigs", [rd.port or rd.source for r in rigs for rd in r.readers],
           "readers.port/source")
    unique(top, "rigs", [rd.id for r in rigs for rd in r.readers], "readers.id")
    if checks_cfg.ask == "button":
        for n, r in enumerate(rigs):
            if r.registers.checks_ok < 0:
                raise ConfigError(file, f"rigs[{n}].registers", "checks_ok",
                                  '[checks] ask = "button" needs the discrete input of the '
                                  "rig's checks-OK button")
    top.done()
    return StationConfig(file=file, unit_name=unit_name, unit_code=unit_code, fills_for=fills_for,
                         store=store, qr_hosts=qr_hosts, qr_allow_http=qr_allow_http,
                         city=city_cfg, rules=rules_cfg, rigs=rigs, operators=operators,
                         web=web_cfg, offline_recheck_s=recheck_s, fill=fill, sync=sync,
                         override=override_cfg, retention=retention, backup=backup_cfg,
                         doctor=doctor, checks=checks_cfg, photos=photos_cfg)
