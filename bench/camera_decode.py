"""Camera QR reading: decode time and read rate per backend, a reader's CPU share and memory.

Frames are 1280×720 scenes made by `simulators.camera` (segno codes on clutter; fixed seed) in
every look of `simulators.camera.LOOKS` (clean, degraded, hard, inverted, low-contrast, etched,
dot-peen, glare, low-light) and a two-code look (two tags in view: read means both found). Each
backend decodes each frame plainly (both polarities) and through the full fallback cascade
(CLAHE, CLAHE + blur); the table gives the read rate and the median and p99 ms per frame. Then
a CameraReader decodes a looping 1280×720 video at 10 frames/s, and fresh processes report
VmRSS with and without a camera.
Usage: python bench/camera_decode.py [--frames N] [--looks a,b] [--cpu-seconds S]
                                     [--cpu-backends zxing,opencv]
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
from drivers.qr_decoders import BACKENDS, Cascade, QrDecoder, load_decoder  # noqa: E402
from simulators.camera import LOOKS, clutter, make_video, scene_codes  # noqa: E402
from simulators.dataset import qr_url  # noqa: E402

SIZE = (1280, 720)
SEED = 20261101
LABELS = {"zxing": "zxing-cpp", "pyzbar": "pyzbar", "opencv": "OpenCV QRCodeDetector"}


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


TWO_CODE = "two-code"


def frame_set(look: str, n: int) -> list[tuple[list[bytes], np.ndarray]]:
    """n grey frames of distinct codes in one look, with the payloads each should decode to."""
    rng = np.random.default_rng(SEED + (list(LOOKS) + [TWO_CODE]).index(look))
    background = clutter(SIZE, rng)
    out = []
    for _ in range(n):
        count = 2 if look == TWO_CODE else 1
        texts = [qr_url(f"500112CQ{int(rng.integers(10**10)):010d}") for _ in range(count)]
        frame, _boxes = scene_codes(texts, LOOKS.get(look, LOOKS["clean"]), size=SIZE, rng=rng,
                                    background=background)
        out.append(([t.encode() for t in texts], cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)))
    return out


def measure(cascade: Cascade | QrDecoder, frames: list[tuple[list[bytes], np.ndarray]],
            ) -> tuple[int, int, list[float]]:
    """(frames read in full, frames with only some of their codes, ms per frame)."""
    times, full, part = [], 0, 0
    for want, gray in frames:
        start = time.perf_counter()
        found = {code.data for code in cascade.decode(gray)}
        times.append((time.perf_counter() - start) * 1000)
        full += set(want) <= found
        part += bool(found & set(want)) and not set(want) <= found
    return full, part, times


def decode_rows(name: str, sets: dict[str, list[tuple[list[bytes], np.ndarray]]]) -> list[str]:
    decoder, why = load_decoder(name)
    if decoder.name != name:
        return [f"| all | {LABELS[name]} | not available: {why} | | | | |"]
    rows = []
    for look, frames in sets.items():
        plain_read, _plain_part, plain_ms = measure(decoder, frames)
        read, part, ms = measure(Cascade(decoder, alternate=False), frames)
        alt_read, _alt_part, alt_ms = measure(Cascade(decoder, alternate=True), frames)
        rate = [f"{100 * r / len(frames):.0f} %" for r in (plain_read, alt_read, read)]
        rows.append(f"| {look} | {LABELS[name]} | {' / '.join(rate)} | {part} | "
                    f"{statistics.median(plain_ms):.1f} / {pct(plain_ms, 99):.1f} | "
                    f"{statistics.median(alt_ms):.1f} / {pct(alt_ms, 99):.1f} | "
                    f"{statistics.median(ms):.1f} / {pct(ms, 99):.1f} |")
    return rows


def decode_table(n: int, looks: list[str]) -> None:
    sets = {look: frame_set(look, n) for look in looks}
    print(f"### Read rate and ms per {SIZE[0]}×{SIZE[1]} frame, {n} frames a look\n")
    print("read and ms (median / p99) three ways: plain (both polarities) / the cascade trying "
          "one enhancement per empty frame in turn (alternating; on distinct frames, as here, "
          "it under-counts what a still scene gets) / the full cascade (CLAHE, then CLAHE + "
          "blur; OpenCV: CLAHE + blur only). partial: two-code frames where the full cascade "
          "found only one of the two codes\n")
    print("| look | decoder | read plain / alt / full | partial | ms plain | ms alternating | "
          "ms full cascade |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for name in BACKENDS:
        for row in decode_rows(name, sets):
            print(row, flush=True)
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
import station.app.daemon, drivers.serial_scanner  # the daemon without a camera
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
    parser.add_argument("--frames", type=int, default=60, help="frames per look")
    parser.add_argument("--looks", default=",".join([*LOOKS, TWO_CODE]))
    parser.add_argument("--cpu-seconds", type=float, default=20.0)
    parser.add_argument("--cpu-backends", default="zxing,opencv")
    args = parser.parse_args()
    print(f"camera QR decoding on {platform.node()} ({platform.machine()}, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}); {versions()}\n")
    decode_table(args.frames, args.looks.split(","))
    with tempfile.TemporaryDirectory() as tmp:
        codes = [qr_url(f"500112CQ{n:010d}") for n in range(1, 6)]
        video = make_video(Path(tmp) / "loop.avi", codes, size=SIZE, fps=10, frames_per_code=20)
        cpu_table(video, args.cpu_backends.split(","), args.cpu_seconds)
        rss_table(video)


if __name__ == "__main__":
    main()
