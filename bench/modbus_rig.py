"""Time ModbusRig.grant_permit() and read_status() over loopback TCP against the rig simulator.

Usage: .venv/bin/python bench/modbus_rig.py [-n 2000] [--in-process]
By default the simulator runs in its own process (as a real controller would be: no shared GIL).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from drivers.modbus_rig import ModbusRig, links_for  # noqa: E402
from simulators.rig import RigSimulator  # noqa: E402
from station.config import ModbusEndpoint, RigConfig  # noqa: E402

SERVE = "from simulators.rig import run_rig; run_rig('127.0.0.1', 0, [1], None, 2000.0)"


def start_sim_process() -> tuple[subprocess.Popen[str], int]:
    """The simulator in a child process; returns it and its port (read from its first line)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVE],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    match = re.search(r"tcp://127\.0\.0\.1:(\d+)", line)
    if not match:
        proc.kill()
        raise SystemExit(f"simulator did not start: {line!r}")
    return proc, int(match.group(1))


def summary(name: str, samples: list[float], transactions: int) -> str:
    ms = sorted(s * 1000 for s in samples)
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    return (
        f"{name:<14} n={len(ms)} median={statistics.median(ms):.3f} ms p99={p99:.3f} ms "
        f"max={ms[-1]:.3f} ms ({transactions} Modbus transactions per call)"
    )


async def timed(
    n: int,
    call: Callable[[], Awaitable[None]],
    between: Callable[[], Awaitable[None]] | None = None,
) -> list[float]:
    samples = []
    for _ in range(n):
        if between is not None:
            await between()
        t0 = time.perf_counter()
        await call()
        samples.append(time.perf_counter() - t0)
    return samples


async def bench(port: int, n: int) -> None:
    endpoint = ModbusEndpoint("tcp", host="127.0.0.1", port=port)
    cfg = RigConfig(id="bench", medium="G13", modbus=endpoint, unit_id=1, timeout_ms=1000)
    rig = ModbusRig(cfg, links_for([cfg])[endpoint.key])
    await rig.connect()
    await rig.configure(60000)  # long enough that the untimed heartbeat below keeps it alive
    await timed(50, rig.read_status)  # warm-up

    async def reset() -> None:
        await rig.withdraw_permit()
        await rig.heartbeat()

    grants = await timed(n, lambda: rig.grant_permit(15000, 14500), between=reset)
    reads = await timed(n, rig.read_status)
    await rig.withdraw_permit()
    await rig.close()
    print(summary("grant_permit()", grants, 4))
    print(summary("read_status()", reads, 3))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=2000)
    ap.add_argument(
        "--in-process",
        action="store_true",
        help="run the simulator in a thread of this process instead",
    )
    args = ap.parse_args()
    if args.in_process:
        with RigSimulator([1], start_delay_s=None) as sim:
            print(f"simulator: thread in this process, tcp://127.0.0.1:{sim.port}")
            asyncio.run(bench(sim.port, args.n))
        return
    proc, port = start_sim_process()
    try:
        print(f"simulator: separate process, tcp://127.0.0.1:{port}")
        asyncio.run(bench(port, args.n))
    finally:
        assert proc.stdin is not None
        proc.stdin.write("quit\n")
        proc.stdin.flush()
        proc.wait(5)


if __name__ == "__main__":
    main()
