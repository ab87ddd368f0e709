"""Coverage-guided fuzzing (atheris) of what untrusted bytes reach: readings, city answers, config.

python bench/fuzz_atheris.py reading|envelope|config [-atheris_runs=N]   (pip install atheris)
Each target must either return or raise the project's own refusal (StationError subclasses);
any other exception is a finding and atheris stops with its input saved.
"""

import sys
import tempfile
from pathlib import Path

import atheris

with atheris.instrument_imports():
    from station import config
    from station.city.client import parse_envelope
    from station.core.reading import decode, parse_rfid, parse_scan, strip_framing
    from station.errors import StationError

HOSTS = ("qr.cqtzsb.example",)
CONFIG_DIR = Path(tempfile.mkdtemp(prefix="fuzz-config-"))


def reading(data: bytes) -> None:
    text = decode(data)
    if isinstance(text, str):
        text = strip_framing(text, "STX", "ETX")
        parse_scan(text, HOSTS, allow_http=False)
        parse_rfid(text)


def envelope(data: bytes) -> None:
    try:
        parse_envelope(data)
    except StationError:
        pass


def config_file(data: bytes) -> None:
    path = CONFIG_DIR / "station.toml"
    path.write_bytes(data)
    try:
        config.load(path, env={"STATION_APP_SECRET": "x"})
    except StationError:
        pass


TARGETS = {"reading": reading, "envelope": envelope, "config": config_file}

if __name__ == "__main__":
    target = TARGETS[sys.argv.pop(1)] if len(sys.argv) > 1 and sys.argv[1] in TARGETS else None
    if target is None:
        raise SystemExit(f"usage: {sys.argv[0]} {'|'.join(TARGETS)} [-atheris_runs=N]")
    atheris.Setup(sys.argv, target)
    atheris.Fuzz()
