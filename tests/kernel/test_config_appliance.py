"""The appliance's configuration: [retention], [backup], [doctor], and the systemd credential."""

from pathlib import Path

import pytest

from station import config
from station.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "station.example.toml"


def load(tmp_path, extra="", env=None, secret_file=""):
    text = EXAMPLE.read_text(encoding="utf-8")
    text = text.replace('secret_file = ""', f'secret_file = "{secret_file}"')
    path = tmp_path / "station.toml"
    path.write_text(text + extra, encoding="utf-8")
    return config.load(path, env={"STATION_APP_SECRET": "from-env"} if env is None else env)


def test_defaults(tmp_path):
    cfg = load(tmp_path)
    assert cfg.retention.keep_years == 2
    assert (cfg.backup.dir, cfg.backup.keep) == ("/media/station-backup", 7)
    assert (cfg.doctor.max_clock_skew_s, cfg.doctor.min_free_mb) == (60.0, 200)


@pytest.mark.parametrize("extra,key", [
    ("\n[retention]\nkeep_years = 1\n", "keep_years"),
    ("\n[retention]\nkeep_year = 3\n", "keep_year"),
    ("\n[backup]\nkeep = 0\n", "keep"),
    ("\n[doctor]\nmax_clock_skew_s = -1\n", "max_clock_skew_s"),
])
def test_bad_values_name_their_key(tmp_path, extra, key):
    text = _without_appliance_sections(EXAMPLE.read_text(encoding="utf-8"))
    path = tmp_path / "s.toml"
    path.write_text(text + extra, encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        config.load(path, env={"STATION_APP_SECRET": "x"})
    assert err.value.key == key


def _without_appliance_sections(text):
    out, skip = [], False
    for line in text.splitlines():
        if line.startswith("["):
            skip = line.strip() in ("[retention]", "[backup]", "[doctor]")
        if not skip:
            out.append(line)
    return "\n".join(out) + "\n"


def test_relative_backup_dir_is_beside_the_config(tmp_path):
    text = _without_appliance_sections(EXAMPLE.read_text(encoding="utf-8"))
    path = tmp_path / "s.toml"
    path.write_text(text + '\n[backup]\ndir = "usb"\nkeep = 3\n', encoding="utf-8")
    cfg = config.load(path, env={"STATION_APP_SECRET": "x"})
    assert cfg.backup.dir == str(tmp_path / "usb") and cfg.backup.keep == 3


def test_secret_from_the_systemd_credential(tmp_path):
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "app_secret").write_text("from-credential\n")
    cfg = load(tmp_path, env={"CREDENTIALS_DIRECTORY": str(creds), "STATION_APP_SECRET": "env"})
    assert cfg.city.app_secret == "from-credential"


def test_secret_file_wins_over_the_credential(tmp_path):
    (tmp_path / "mine").write_text("from-file\n")
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "app_secret").write_text("from-credential\n")
    cfg = load(tmp_path, env={"CREDENTIALS_DIRECTORY": str(creds)}, secret_file="mine")
    assert cfg.city.app_secret == "from-file"


def test_credential_directory_without_the_secret_falls_back_to_env(tmp_path):
    cfg = load(tmp_path, env={"CREDENTIALS_DIRECTORY": str(tmp_path), "STATION_APP_SECRET": "e"})
    assert cfg.city.app_secret == "e"
    with pytest.raises(ConfigError, match="credential"):
        load(tmp_path, env={"CREDENTIALS_DIRECTORY": str(tmp_path)})
