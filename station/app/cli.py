"""The `station` command: parses, dispatches to the command groups, and turns every user error
into a message and an exit code (0 done, 1 refused or failed, 2 usage or set-up), never a
traceback."""

from __future__ import annotations

import argparse
import os
import sys
from importlib.metadata import PackageNotFoundError, version

from station.app import cli_records, cli_station
from station.app.cli_args import CONFIG_ENV, default_config
from station.errors import ConfigError, StationError, UsageError

EXIT_OK, EXIT_REFUSED, EXIT_CONFIG = 0, 1, 2
COMMANDS = cli_station.COMMANDS | cli_records.COMMANDS


def station_version() -> str:
    try:
        return version("station-controller")
    except PackageNotFoundError:  # a checkout that was never installed
        return "unknown"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="station", description="Filling-station interlock daemon.",
                                allow_abbrev=False)
    p.add_argument("--version", action="version", version=f"station {station_version()}")
    sub = p.add_subparsers(dest="command", required=True)
    cli_station.add_parsers(sub)
    cli_records.add_parsers(sub)
    return p


def main(argv: list[str] | None = None) -> None:
    """Run one command; exit with its code. argparse refuses bad input itself (exit 2)."""
    from station.core.keys import typed_key

    args = _parser().parse_args(argv)
    given = getattr(args, "config", None) is not None
    if hasattr(args, "config") and not given:
        args.config = default_config()
    for name in ("rig", "name"):  # a rig id or operator name as typed: NFKC, trimmed
        if isinstance(getattr(args, name, None), str):
            setattr(args, name, typed_key(getattr(args, name), "name"))
    try:
        code = COMMANDS[args.command](args)
        sys.stdout.flush()  # a closed pipe shows here, not at exit
    except ConfigError as err:
        hint = "" if given or err.problem != "file not found" else (
            f" (no --config given: ${CONFIG_ENV}, else {default_config()})")
        print(f"station: configuration error: {err}{hint}", file=sys.stderr)
        code = EXIT_CONFIG
    except UsageError as err:
        print(f"station {args.command}: {err}", file=sys.stderr)
        code = EXIT_CONFIG
    except StationError as err:
        print(f"station: {err}", file=sys.stderr)
        code = EXIT_REFUSED
    except BrokenPipeError:  # `station records --csv | head -1`: the reader had enough
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = EXIT_OK
    except KeyboardInterrupt:
        code = 130
    raise SystemExit(code)
