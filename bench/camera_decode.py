"""Camera QR reading: decode time and read rate per backend, a reader's CPU share and memory.

Frames are 1280×720 scenes made by `simulators.camera` (segno codes on clutter; fixed seed) in
three looks: clean, degraded (blur 1.5, rotated 15°, glare) and hard (3.5–4.5 px modules, blur,
rotation, low contrast, noise). Then a CameraReader decodes a looping 1280×720 video at
10 frames/s, and fresh processes report VmRSS with and without a camera.
Usage: python bench/camera_decode.py [--frames N] [--cpu-seconds S] [--cpu-backends zxing,opencv]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from drivers.camera import CameraConfig, CameraReader  # noqa: E402
from drivers.qr_decoders import BACKENDS, load_decoder  # noqa: E402
from simulators.camera import LOOKS, clutter, make_video, scene  # noqa: E402
from simulators.dataset import qr_url  # noqa: E402

SIZE = (1280, 720)
SEED = 20261101
LABELS = {"zxing": "zxing-cpp", "pyzbar": "pyzbar", "opencv": "OpenCV QRCodeDetector"}


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def frame_set(look: str, n: int) -> list[tuple[str, np.ndarray]]:
    """n grey frames of distinct codes in one look, with the text each should decode to."""
    rng = np.random.default_rng(SEED + list(LOOKS).index(look))
    background = clutter(SIZE, rng)
    out = []
    for _ in range(n):
        text = qr_url(f"500112CQ{int(rng.integers(10**10)):010d}")
        frame = scene(text, LOOKS[look], size=SIZE, rng=rng, background=background)
        out.append((text, cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)))
    return out


def decode_row(name: str, sets: dict[str, list[tuple[str, np.ndarray]]]) -> str:
    decoder, why = load_decoder(name)
    if decoder.name != name:
        return f"| {LABELS[name]} | not available: {why} |" + " |" * (len(sets) * 3 - 1)
    cells = []
    for frames in sets.values():
        times, hits = [], 0
        for text, gray in frames:
            start = time.perf_counter()
            found = decoder.decode(gray)
            times.append((time.perf_counter() - start) * 1000)
            hits += text in found
        cells += [f"{statistics.median(times):.1f}", f"{pct(times, 99):.1f}",
                  f"{100 * hits / len(frames):.0f} %"]
    return f"| {LABELS[name]} | " + " | ".join(cells) + " |"


def decode_table(n: int) -> None:
    sets = {look: frame_set(look, n) for look in LOOKS}
    print(f"### Decode time per {SIZE[0]}×{SIZE[1]} frame (ms) and read rate, {n} frames a look\n")
    head = " | ".join(f"{look} median | {look} p99 | {look} read" for look in sets)
    print(f"| decoder | {head} |")
    print("|---|" + "---:|" * (len(sets) * 3))
    for name in BACKENDS:
        print(decode_row(name, sets))
    print()


async def _run_reader(reader: CameraReader, seconds: float) -> int:
    readings = 0

    async def consume() -> None:
        nonlocal readings
        async for _line in reader.lines():
            readings += 1

    task = asyncio.create_task(consume())
    await asyncio.wait({task}, timeout=seconds)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    return readings


def cpu_row(video: Path, backend: str, seconds: float) -> str:
    reader = CameraReader(CameraConfig("bench-cam", str(video), decoder=backend, fps=10.0,
                                       loop=True), "rig-01")
    cpu0, wall0 = time.process_time(), time.monotonic()
    readings = asyncio.run(_run_reader(reader, seconds))
    cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    if reader.thread is not None:
        reader.thread.join(timeout=10)
    return (f"| {LABELS[reader.decoder.name]} | {wall:.1f} | {reader.frames} | "
            f"{reader.frames / wall:.1f} | {readings} | {cpu:.2f} | {100 * cpu / wall:.1f} % |")


def cpu_table(video: Path, backends: list[str], seconds: float) -> None:
    print(f"### CameraReader at 10 frames/s on a looping {SIZE[0]}×{SIZE[1]} MJPEG video "
          "(whole process, share of one core)\n")
    print("| decoder | wall s | frames decoded | frames/s | readings | CPU s | CPU share |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for backend in backends:
        print(cpu_row(video, backend, seconds))
    print()


RSS_PROBE = """
import sys, threading
sys.path.insert(0, {root!r})
import station.daemon, drivers.serial_scanner  # the daemon without a camera
stage = {stage!r}
if stage != "none":
    import cv2, numpy
    from drivers.camera import CameraConfig, CameraReader
    reader = CameraReader(CameraConfig("cam", {video!r}), "rig-01")
if stage == "capture":
    from drivers.camera_source import open_source
    source = open_source({video!r}, loop=True)
    for _ in range(10):
        frame = source.next_frame(0.0, threading.Event())
        reader.decoder.decode(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY))
for line in open("/proc/self/status"):
    if line.startswith("VmRSS:"):
        print(int(line.split()[1]))
"""

RSS_STAGES = {
    "none": "no camera (daemon modules only)",
    "import": "camera configured: + cv2, numpy, zxing-cpp imported, reader built",
    "capture": "camera configured: + capture open, 10 frames read and decoded",
}


def rss_table(video: Path) -> None:
    root = str(Path(__file__).resolve().parents[1])
    print("### Resident memory of a fresh process (VmRSS)\n")
    print("| process | VmRSS MiB | over no camera MiB |")
    print("|---|---:|---:|")
    base = None
    for stage, label in RSS_STAGES.items():
        code = RSS_PROBE.format(root=root, stage=stage, video=str(video))
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             check=True, timeout=120)
        kib = int(out.stdout.split()[-1])
        base = kib if base is None else base
        print(f"| {label} | {kib / 1024:.1f} | {(kib - base) / 1024:+.1f} |")
    print()


def versions() -> str:
    names = ("opencv-python-headless", "zxing-cpp", "pyzbar", "segno", "numpy")
    out = []
    for name in names:
        try:
            out.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            out.append(f"{name} missing")
    return ", ".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=120, help="frames per look (≥ 100)")
    parser.add_argument("--cpu-seconds", type=float, default=20.0)
    parser.add_argument("--cpu-backends", default="zxing,opencv")
    args = parser.parse_args()
    print(f"camera QR decoding on {platform.node()} ({platform.machine()}, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}); {versions()}\n")
    decode_table(args.frames)
    with tempfile.TemporaryDirectory() as tmp:
        codes = [qr_url(f"500112CQ{n:010d}") for n in range(1, 6)]
        video = make_video(Path(tmp) / "loop.avi", codes, size=SIZE, fps=10, frames_per_code=20)
        cpu_table(video, args.cpu_backends.split(","), args.cpu_seconds)
        rss_table(video)


if __name__ == "__main__":
    main()
