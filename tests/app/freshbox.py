"""A small station configuration for set-up and CLI tests: no simulators, a store path of choice."""

from __future__ import annotations

from pathlib import Path

SECRET = {"STATION_APP_SECRET": "s3cret"}


def write_config(folder: Path, *, store: str = "state/station.db", rig_extra: str = "",
                 readers: str | None = None, extra: str = "", bom: bool = False) -> Path:
    """station.toml in `folder`: one rig on a serial line that need not exist, one scanner
    reader (or `readers`: the [[rigs.readers]] text, "" for none), and `extra` appended."""
    reader = ('[[rigs.readers]]\nkind = "scanner"\nport = "/dev/ttyS-station-test-scanner"\n'
              if readers is None else readers)
    text = f"""[station]
unit_name = "测试站"
unit_code = "91500112TEST"
store = "{store}"
[qr]
hosts = ["qr.example"]
[city]
base_url = "http://127.0.0.1:9"
app_key = "k"
decision_deadline_s = 0.3
{extra}
[[rigs]]
id = "rig-01"
medium = "G13"
modbus = "rtu:///dev/ttyS-station-test-rig"
{rig_extra}
{reader}"""
    path = folder / "station.toml"
    path.write_text(("\ufeff" if bom else "") + text, encoding="utf-8")
    return path
