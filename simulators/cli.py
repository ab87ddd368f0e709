"""The `station-sim` command: each simulator usable alone by a tester."""

from __future__ import annotations

import argparse
import json
from datetime import date

from station.today import station_today


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="station-sim", description="Simulators on real protocols.")
    sub = p.add_subparsers(dest="sim", required=True)
    city = sub.add_parser("city", help="the city traceability system (HTTP)")
    city.add_argument("--dataset", help="dataset JSON file (default: the built-in demo dataset)")
    city.add_argument("--host", default="127.0.0.1")
    city.add_argument("--port", type=int, default=8480)
    city.add_argument("--token-ttl", type=int, default=7200, help="token lifetime, seconds")
    rig = sub.add_parser("rig", help="rig controllers (Modbus TCP), one unit id per rig")
    rig.add_argument("--host", default="127.0.0.1")
    rig.add_argument("--port", type=int, default=5020)
    rig.add_argument("--units", default="1", help="comma-separated unit ids, e.g. 1,2,3")
    rig.add_argument("--start-delay", type=float, default=0.5,
                     help="seconds before the start button is pressed (negative: never)")
    rig.add_argument("--flow", type=float, default=2000.0, help="fill rate, g/s")
    scan = sub.add_parser("scanner", help="a serial scanner (pty) typing the codes you give")
    scan.add_argument("--link", help="also make this symlink to the pty (a stable port path)")
    scan.add_argument("--terminator", default="crlf", choices=("cr", "lf", "crlf"))
    scan.add_argument("--script", help="file with one reading per line (default: stdin)")
    rfid = sub.add_parser("rfid", help="a serial RFID reader (pty) repeating the tag in its field")
    rfid.add_argument("--link", help="also make this symlink to the pty (a stable port path)")
    rfid.add_argument("--rate", type=float, default=8.0, help="repeats a second")
    cam = sub.add_parser("camera", help="write a video of QR codes for a camera reader to replay")
    cam.add_argument("out", help="video file to write (.avi: MJPG, .mp4: mp4v)")
    cam.add_argument("codes", nargs="*", help="texts to encode (default: the demo dataset's)")
    cam.add_argument("--look", default="clean",
                     choices=("clean", "degraded", "hard", "inverted", "low-contrast", "etched",
                              "dot-peen", "glare", "low-light"))
    cam.add_argument("--fps", type=float, default=10)
    cam.add_argument("--frames-per-code", type=int, default=10)
    ds = sub.add_parser("dataset", help="print the built-in demo dataset as JSON")
    ds.add_argument("--today", help="yyyy-mm-dd to date the dataset from (default: today)")
    return p


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    if args.sim == "city":
        from .city import run_city

        run_city(args.dataset, args.host, args.port, args.token_ttl)
    elif args.sim == "rig":
        from .rig import run_rig

        units = [int(u) for u in args.units.split(",") if u.strip()]
        delay = None if args.start_delay < 0 else args.start_delay
        run_rig(args.host, args.port, units, delay, args.flow)
    elif args.sim == "scanner":
        from .scanner import run_scanner

        run_scanner(args.link, args.terminator, args.script)
    elif args.sim == "camera":
        from .camera import run_camera

        path = run_camera(args.out, args.codes, look=args.look, fps=args.fps,
                          frames_per_code=args.frames_per_code)
        print(f"wrote {path}; configure a reader: kind = \"camera\", source = \"{path}\", "
              "roi = [0, 0, 1280, 720]")
    elif args.sim == "rfid":
        from .rfid import run_rfid

        run_rfid(args.link, args.rate)
    else:
        from .dataset import demo_dataset

        today = date.fromisoformat(args.today) if args.today else station_today()
        print(json.dumps(demo_dataset(today), ensure_ascii=False, indent=1))
