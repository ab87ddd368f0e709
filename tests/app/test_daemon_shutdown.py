"""The daemon's shutdown: each step guarded, so one failure never skips closing the rest."""

import asyncio
import logging

from station.app import daemon


def test_a_failed_or_timed_out_step_never_skips_the_next(caplog):
    done = []

    async def withdraw():
        raise TimeoutError  # a controller that never answered within the shutdown's 5 s

    def broken():
        raise OSError("link already gone")

    async def main():
        await daemon._step("withdraw permits", withdraw())
        await daemon._step("close a Modbus link", broken)
        await daemon._step("close the store", lambda: done.append("store closed"))

    with caplog.at_level(logging.ERROR, logger="station.daemon"):
        asyncio.run(main())
    assert done == ["store closed"]
    failed = [r.getMessage() for r in caplog.records if "shutdown_step_failed" in r.getMessage()]
    assert len(failed) == 2 and "withdraw permits" in failed[0]
