"""One daemon per store (issue 10, step 6): the lock beside the store, as `station run` takes it."""

import os
import subprocess
import sys

import pytest

from station.app.daemon import AlreadyRunning, lock_path, take_lock


def test_the_lock_is_exclusive_names_its_holder_and_dies_with_it(tmp_path):
    store = str(tmp_path / "data" / "station.db")
    holder = subprocess.Popen(  # another process holds it (flock is per open file)
        [sys.executable, "-c", "import sys; from station.app.daemon import take_lock; "
         f"take_lock({store!r}); print('locked', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(AlreadyRunning) as err:
            take_lock(store)
        assert err.value.pid == holder.pid and f"already running (pid {holder.pid})" in str(
            err.value)
        assert not os.path.exists(store)  # the store itself is not touched
    finally:
        holder.kill()
        holder.wait()
    fd = take_lock(store)  # the kernel released it with the killed process
    try:
        assert open(lock_path(store)).read() == f"{os.getpid()}\n"
    finally:
        os.close(fd)

