"""The one exception tree of the station controller; library errors are translated into it."""


class StationError(Exception):
    """Base of every error the station raises on purpose."""


class ConfigError(StationError):
    """The configuration is invalid; the message names file, section and key."""

    def __init__(self, file: str, section: str, key: str | None, problem: str):
        self.file, self.section, self.key, self.problem = file, section, key, problem
        where = f"[{section}]" + (f" {key}" if key else "")
        super().__init__(f"{file}: {where}: {problem}")


class StoreError(StationError):
    """The local store cannot be read or written (disk full, corrupt, read-only)."""


class DeviceError(StationError):
    """A device did not answer or answered wrongly."""


class RigFault(DeviceError):
    """The rig controller is unreachable, refused a write, or read back a different value."""


class ReaderError(DeviceError):
    """A tag reader's port failed (unplugged, permission denied)."""


class CityError(StationError):
    """The city system could not be used; `transient` tells whether a retry may help."""

    def __init__(self, message: str, *, transient: bool, code: str | None = None,
                 retry_after_s: float | None = None):
        super().__init__(message)
        self.transient = transient
        self.code = code
        self.retry_after_s = retry_after_s


class UsageError(StationError):
    """A command was given input it cannot use (a bad date, an unknown rig, no store): exit 2."""
