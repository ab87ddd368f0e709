"""Step one process's wall clock (not its monotonic clock) while it runs: stepclock.c."""

from __future__ import annotations

import hashlib
import os
import shutil
import struct
import subprocess
import tempfile
from pathlib import Path

SOURCE = Path(__file__).with_name("stepclock.c")


def build() -> Path | None:
    """The preload library, compiled once per source version; None without a C compiler."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        return None
    digest = hashlib.sha256(SOURCE.read_bytes()).hexdigest()[:12]
    lib = Path(tempfile.gettempdir()) / f"stepclock-{digest}.so"
    if not lib.exists():
        tmp = lib.with_suffix(f".{os.getpid()}.tmp")  # (test workers may build it at once)
        subprocess.run([cc, "-O2", "-shared", "-fPIC", "-o", str(tmp), str(SOURCE), "-ldl"],
                       check=True, capture_output=True)
        tmp.replace(lib)
    return lib


class SteppedClock:
    """The offset file a process started with `env()` reads its wall clock's offset from."""

    def __init__(self, lib: Path, path: Path):
        self.lib, self.path = lib, path
        self.path.write_bytes(struct.pack("<q", 0))

    def env(self) -> dict[str, str]:
        return {"LD_PRELOAD": str(self.lib), "STEPCLOCK_FILE": str(self.path)}

    def step_to(self, offset_s: float) -> None:
        """The wall clock now reads real time + offset_s (negative: stepped back)."""
        with open(self.path, "r+b") as f:
            f.write(struct.pack("<q", round(offset_s * 1e9)))
