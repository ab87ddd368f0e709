"""The demo's third part: one fill with the operator's checklists ([checks] ask = "screen") and
the photo the rig's camera takes when the permit is granted."""

from __future__ import annotations

import time
from pathlib import Path

from simulators.dataset import demo_cylinders, qr_url
from simulators.harness import OPERATORS, RigSpec, SimStation, wait_for
from station.app.demo_fills import FLOW_G_PER_S, Fill, watch
from station.core.checklist import Answer
from station.store import answers
from station.store.db import Store
from station.store.photos import PhotoStore
from station.today import station_today


def play_checked_fill(workdir: Path) -> int:
    """One fill at a station asking the checklists, with a camera at rig-01; 0 when the
    record carries both answers and a photo whose hash matches its file, else 1."""
    from simulators.camera import Shot, write_video

    folder = workdir / "checked"
    folder.mkdir(parents=True, exist_ok=True)
    video = write_video(folder / "rig-01-camera.avi", [Shot((), 20)], size=(1280, 720))
    station = SimStation(folder, (RigSpec("rig-01", 1, camera=str(video)),), deadline_s=1.0,
                         rig_options={"start_delay_s": None},
                         extra_config='[checks]\nask = "screen"\n')
    station.start()
    try:
        return _play(station)
    finally:
        station.stop_daemon()
        station.stop()


def _play(station: SimStation) -> int:
    rec = demo_cylinders(station_today())["valid"]
    tare_g, target_g = round(rec.get("tare_kg", 15.0) * 1000), 14500
    model = station.rig_sim.rig(1)
    model.flow_g_per_s, model.start_delay_s = FLOW_G_PER_S, 0.3
    station.badge("rig-01", OPERATORS[0][1])
    station.place("rig-01", tare_g)
    print(f"\n  {rec['id']}: accepted; the rig's screen asks the pre-fill checklist "
          "(no permit until it is answered):", flush=True)
    decision = station.scan("rig-01", qr_url(rec["info_code"]), settle=False)
    pre = wait_for(lambda: station.live("rig-01").get("question"), 5, "the pre-fill checklist")
    for item in pre["items"]:
        print(f"    ☐ {item['label']}")
    permit_before = model.snapshot()["fill_permit"]
    tapped = time.monotonic()
    _answer(station, pre, "    operator taps 全部合格 (one tap)")
    wait_for(lambda: model.snapshot()["fill_permit"] or model.snapshot()["valve_open"], 5,
             "the permit")
    print(f"    permit granted {(time.monotonic() - tapped) * 1000:.0f} ms after the tap")
    watch(station, Fill("valid", "", "ok"), tare_g, target_g)
    post = wait_for(lambda: (station.live("rig-01").get("question") or {}).get("stage") == "post"
                    and station.live("rig-01")["question"], 10, "the post-fill leak check")
    print("  fill ended; the screen asks the post-fill leak check:")
    for item in post["items"]:
        print(f"    ☐ {item['label']}")
    _answer(station, post, "    operator taps 全部合格 (no leak)")
    row = station.wait_fill("rig-01", decision["id"])
    photos = PhotoStore(station.workdir / "photos", 10**9)
    photo_ok = bool(row["photo_sha256"]) and \
        photos.check(row["record_id"], row["photo_sha256"]) is None
    size = photos.path_of(row["record_id"]).stat().st_size if photo_ok else 0
    print(f"  record …{row['record_id'][-8:]}: pre_check={row['pre_check']!r} "
          f"post_check={row['post_check']!r}\n  checklists: {row['checks']}\n"
          f"  photo: {size} bytes, sha256 {(row['photo_sha256'] or '-')[:16]}… "
          f"{'matches its file' if photo_ok else 'MISSING'}")
    good = not permit_before and row["checks"] and photo_ok and row["post_check"] == "ok"
    return 0 if good else 1


def _answer(station: SimStation, q: dict, said: str) -> None:
    """What the rig's tablet does on a tap: the answer queued for the daemon (station web's
    POST /api/rig/rig-01/checks stores exactly this after checking it answers the question)."""
    print(said, flush=True)
    store = Store(str(station.store_path))
    try:
        answers.post(store, Answer(stage=q["stage"], rig="rig-01", cylinder_id=q["cylinder_id"],
                                   decision_id=q["decision_id"], token=q["token"],
                                   by=OPERATORS[0][0]))
    finally:
        store.close()
