"""A one-rig station.toml around a [city] section, for tests of the city client's commands."""

from __future__ import annotations

from pathlib import Path


def write_city_config(folder: Path, url: str, city_keys: str, station_keys: str = "") -> Path:
    """`folder`/station.toml (and its app_secret) for a station asking the city at `url`;
    `city_keys` are the [city] keys after base_url/app_key/secret_file (TOML lines),
    `station_keys` more [station] keys. Returns the path."""
    (folder / "app_secret").write_text("s3cr3t-for-tests-only\n", encoding="utf-8")
    path = folder / "station.toml"
    path.write_text(f"""[station]
unit_name = "重庆测试充装站"
unit_code = "91500112MA5UTEST0X"
{station_keys}
store = "station.db"

[qr]
hosts = ["qr.example"]

[city]
base_url = "{url}"
app_key = "station-app"
secret_file = "app_secret"
{city_keys}
[[operators]]
name = "张三"
badge = "B1"
role = "operator"

[[rigs]]
id = "rig-01"
medium = "G13"
modbus = "tcp://127.0.0.1:9"
unit_id = 1

[[rigs.readers]]
kind = "scanner"
port = "/dev/null"
""", encoding="utf-8")
    return path
