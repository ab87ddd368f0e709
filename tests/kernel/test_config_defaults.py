"""Each configuration default is stated once: an omitted key reads as its dataclass field's default."""

import ast
import dataclasses
from pathlib import Path

from station import config
from station.config import (
    BackupConfig,
    CityConfig,
    DoctorConfig,
    FillConfig,
    ModbusEndpoint,
    OverrideConfig,
    ReaderConfig,
    RetentionConfig,
    RigConfig,
    RulesConfig,
    StationConfig,
    SyncConfig,
    WebConfig,
)
from station.core.fillcycle import Limits
from station.rig.loop import limits_for

MINIMAL = """
[station]
unit_name = "U"
unit_code = "C"
store = "s.db"
[qr]
hosts = ["qr.example"]
[city]
base_url = "http://127.0.0.1:1"
app_key = "k"
[[rigs]]
id = "rig-1"
medium = "G13"
modbus = "rtu:///dev/ttyS9"
[[rigs.readers]]
kind = "scanner"
port = "/dev/ttyS8"
"""
PACKAGE = Path(config.__file__).parent


def minimal(tmp_path) -> StationConfig:
    path = tmp_path / "station.toml"
    path.write_text(MINIMAL, encoding="utf-8")
    return config.load(path, env={"STATION_APP_SECRET": "x"})


def test_every_omitted_key_takes_its_fields_default(tmp_path):
    cfg = minimal(tmp_path)
    for got, cls in ((cfg.fill, FillConfig), (cfg.sync, SyncConfig), (cfg.web, WebConfig),
                     (cfg.override, OverrideConfig), (cfg.retention, RetentionConfig),
                     (cfg.backup, BackupConfig), (cfg.doctor, DoctorConfig),
                     (cfg.rules, RulesConfig)):
        assert got == cls(), cls.__name__
    rig = cfg.rigs[0]
    assert rig == RigConfig(id="rig-1", medium="G13", readers=rig.readers,
                            modbus=ModbusEndpoint("rtu", device="/dev/ttyS9"))
    assert rig.readers[0] == ReaderConfig(id="rig-1-reader1", kind="scanner", port="/dev/ttyS8")
    city_defaults = CityConfig(base_url="http://127.0.0.1:1", app_key="k", app_secret="x")
    assert cfg.city == city_defaults and cfg.city.max_reply_bytes == 4 * 1024 * 1024
    assert cfg.offline_recheck_s == StationConfig.offline_recheck_s
    # the fill cycle's own defaults are the configuration's, not a third copy
    assert limits_for(rig, cfg) == Limits(max_residual_g=round(cfg.fill.max_residual_kg * 1000))


def test_a_default_changed_on_its_field_changes_what_an_omitted_key_reads(tmp_path, monkeypatch):
    field = {f.name: f for f in dataclasses.fields(SyncConfig)}["backlog_warn_h"]
    monkeypatch.setattr(field, "default", 7.5)  # the parser must ask the field, not a copy
    assert minimal(tmp_path).sync.backlog_warn_h == 7.5


def test_no_parser_restates_a_fields_default():
    """A getter given a literal default for a key that is also a field with a default."""
    getters = {"get_str", "get_int", "get_float", "get_bool", "get_str_list", "get_number"}
    named = {f.name for cls in (CityConfig, FillConfig, SyncConfig, WebConfig, OverrideConfig,
                                RetentionConfig, BackupConfig, DoctorConfig, RulesConfig,
                                RigConfig, ReaderConfig, ModbusEndpoint, StationConfig)
             for f in dataclasses.fields(cls) if f.default is not dataclasses.MISSING}
    twice = []
    for module in PACKAGE.glob("*.py"):
        for node in ast.walk(ast.parse(module.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in getters and len(node.args) >= 2
                    and isinstance(node.args[0], ast.Constant) and node.args[0].value in named):
                try:
                    ast.literal_eval(node.args[1])
                except ValueError:
                    continue  # derived from the field: stated once
                twice.append(f"{module.name}:{node.lineno} {node.args[0].value}")
    assert twice == []
