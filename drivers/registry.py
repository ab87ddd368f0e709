"""Name → implementation for each device kind, imported lazily so a missing library is named."""

from __future__ import annotations

import importlib
from typing import Any

from station.errors import DeviceError

READERS: dict[str, tuple[str, str]] = {
    "scanner": ("drivers.serial_scanner", "SerialScanner"),
    "rfid": ("drivers.serial_scanner", "SerialScanner"),  # hex UID lines; parsed by kind
    "camera": ("drivers.camera", "camera_reader"),
}


def make_reader(cfg: Any, rig_id: str) -> Any:
    """The TagReader for a configured reader (station.config.ReaderConfig)."""
    return reader_class(cfg.kind)(cfg, rig_id)


def reader_class(kind: str) -> Any:
    """The TagReader class (or factory) for a configured reader kind."""
    try:
        module_name, class_name = READERS[kind]
    except KeyError as err:
        raise DeviceError(f"unknown reader kind {kind!r}") from err
    try:
        return getattr(importlib.import_module(module_name), class_name)
    except ImportError as err:
        raise DeviceError(f"reader kind {kind!r} needs a library that is missing: {err}") from err
