"""The serial scanner driver over a real pty: terminators, over-long lines, unplug and replug."""

import asyncio
import time

import pytest

from drivers.serial_scanner import LineSplitter, SerialScanner
from simulators.scanner import ScannerSim
from station.config import ReaderConfig


@pytest.mark.parametrize("term,data,lines", [
    ("any", b"A\r\nB\rC\nD", [b"A", b"B", b"C"]),
    ("crlf", b"A\r\nB\rC\r\n", [b"A", b"B\rC"]),
    ("cr", b"A\rB\n\r", [b"A", b"B\n"]),
    ("lf", b"A\nB\r\n", [b"A", b"B\r"]),
])
def test_splitter_terminators(term, data, lines):
    assert [line for line, _ in LineSplitter(term).feed(data)] == lines


def test_splitter_overlong_is_reported_once_and_resyncs():
    s = LineSplitter("any", max_length=10)
    out = s.feed(b"X" * 25)
    assert out == [(b"X" * 11, True)]
    assert s.feed(b"Y" * 30) == []  # still the same runaway line: nothing more reported
    assert s.feed(b"Z\r\nOK\r\n") == [(b"OK", False)]


def collect(reader, count, actions=(), timeout=10.0, until=None):
    """Run the reader until `count` lines (or one equal to `until`) arrive; `actions` run in a
    thread once it is open."""
    async def main():
        got = []
        agen = reader.lines()

        async def drive():
            while not reader.connected:
                await asyncio.sleep(0.01)
            for action in actions:
                await asyncio.to_thread(action)

        driver = asyncio.create_task(drive())
        async with asyncio.timeout(timeout):
            async for line in agen:
                got.append(line)
                if len(got) == count or line.data == until:
                    break
        await driver
        await agen.aclose()
        return got
    return asyncio.run(main())


def test_reads_lines_from_a_pty(tmp_path):
    sim = ScannerSim(tmp_path / "scanner").start()
    cfg = ReaderConfig(id="s1", kind="scanner", port=sim.path)
    try:
        lines = collect(SerialScanner(cfg, "rig-01"), 3, actions=[
            lambda: sim.send("https://qr.cqtzsb.example/c/A1"),
            lambda: sim.send(b"\xff\xfe"),
            lambda: sim.send_raw(b"B2\rC3\n")])
    finally:
        sim.close()
    assert [line.data for line in lines] == [b"https://qr.cqtzsb.example/c/A1", b"\xff\xfe", b"B2"]
    assert all(line.reader_id == "s1" and not line.overlong for line in lines)


def test_reopens_after_unplug(tmp_path, caplog):
    sim = ScannerSim(tmp_path / "scanner").start()
    cfg = ReaderConfig(id="s1", kind="scanner", port=sim.path)
    reader = SerialScanner(cfg, "rig-01", backoff_max_s=0.2)

    def unplug_and_replug():
        sim.replug()  # the pty vanishes and comes back under the same link
        deadline = time.monotonic() + 5
        while reader.opened < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        sim.send("AFTER")

    try:
        with caplog.at_level("INFO", logger="station.reader"):
            lines = collect(reader, 5, actions=[unplug_and_replug], until=b"AFTER")
    finally:
        sim.close()
    assert [line.data for line in lines][-1] == b"AFTER"
    messages = [r.getMessage() for r in caplog.records]
    assert sum("event=reader_lost" in m for m in messages) == 1
    assert sum("event=reader_recovered" in m for m in messages) == 1
