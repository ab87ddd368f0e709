"""Fill photos: kept whole with their hash, refused when not a JPEG, rotated under a budget
without ever losing the photo of a fill the city has not received."""

import os

import pytest
from support import small_config

from station.store.photos import PhotoError, PhotoStore, sha256_of

JPEG = b"\xff\xd8\xff\xe0" + b"\x11" * 1000 + b"\xff\xd9"


def test_a_photo_is_kept_with_its_hash_and_checked(tmp_path):
    store = PhotoStore(tmp_path / "photos", budget_bytes=10_000)
    photo = store.save("0193c5e0-aaaa", JPEG)
    assert photo.path.read_bytes() == JPEG and photo.sha256 == sha256_of(JPEG)
    assert store.check("0193c5e0-aaaa", photo.sha256) is None
    photo.path.write_bytes(JPEG.replace(b"\x11", b"\x12", 1))
    assert store.check("0193c5e0-aaaa", photo.sha256) == "photo changed (hash differs)"
    photo.path.unlink()
    assert store.check("0193c5e0-aaaa", photo.sha256) == "photo missing"
    assert not list((tmp_path / "photos").glob("*.partial"))


@pytest.mark.parametrize("rid, data, why", [
    ("r1", b"GIF89a" + b"\x00" * 10, "not a JPEG"),
    ("r1", b"\xff\xd8" + b"\x00" * 10, "not a JPEG"),        # cut short: no end marker
    ("r1", b"\xff\xd8" + b"\x00" * 5000 + b"\xff\xd9", "over the cap"),
    ("../etc/passwd", JPEG, "not a record id"),
    ("", JPEG, "not a record id"),
])
def test_what_is_not_one_jpeg_of_one_record_is_refused_and_nothing_is_left(tmp_path, rid, data,
                                                                           why):
    store = PhotoStore(tmp_path, budget_bytes=10_000, max_photo_bytes=4096)
    with pytest.raises(PhotoError, match=why):
        store.save(rid, data)
    assert list(tmp_path.iterdir()) == []


def test_rotation_deletes_oldest_delivered_first_and_never_an_undelivered_one(tmp_path):
    store = PhotoStore(tmp_path, budget_bytes=2 * len(JPEG))
    for n, rid in enumerate(["r1", "r2", "r3", "r4"]):
        os.utime(store.save(rid, JPEG).path, (1000 + n, 1000 + n))
    asked = []

    def delivered(ids):
        asked.append(sorted(ids))
        return {"r2", "r3", "r4"}  # r1, the oldest, has not reached the city

    rot = store.rotate(delivered)
    assert rot.deleted == ("r2", "r3") and not rot.over_budget
    assert sorted(p.stem for p in tmp_path.glob("*.jpg")) == ["r1", "r4"]
    assert asked == [["r1", "r2", "r3", "r4"]]


def test_over_budget_with_only_undelivered_photos_keeps_them_all_and_says_so(tmp_path):
    store = PhotoStore(tmp_path, budget_bytes=len(JPEG))
    for rid in ("r1", "r2", "r3"):
        store.save(rid, JPEG)
    rot = store.rotate(lambda ids: set())
    assert rot.deleted == () and rot.over_budget and rot.total_bytes == 3 * len(JPEG)
    assert len(list(tmp_path.glob("*.jpg"))) == 3


def test_under_budget_rotation_asks_nothing(tmp_path):
    store = PhotoStore(tmp_path, budget_bytes=10 * len(JPEG))
    store.save("r1", JPEG)
    rot = store.rotate(lambda ids: pytest.fail("asked the store while under budget"))
    assert rot == (rot.__class__((), len(JPEG), False))


def test_verify_names_a_changed_or_vanished_photo_but_not_a_rotated_one(tmp_path):
    store = PhotoStore(tmp_path, budget_bytes=len(JPEG))
    hashes = [(rid, store.save(rid, JPEG).sha256) for rid in ("r1", "r2", "r3")]
    store.rotate(lambda ids: {"r1"})  # r1 delivered: rotated away, logged
    assert store.verify(hashes) == ([], 2, 1)
    (tmp_path / "r2.jpg").write_bytes(JPEG[:-3] + b"\x00\xff\xd9")
    (tmp_path / "r3.jpg").unlink()  # deleted behind the station's back
    problems, checked, rotated = store.verify(hashes)
    assert problems == ["fill r2: photo changed (hash differs)", "fill r3: photo missing"]
    assert (checked, rotated) == (0, 1)


CONFIG = small_config()


def test_station_verify_checks_each_fills_photo_against_its_record(tmp_path, monkeypatch,
                                                                   capsys):
    from station.app.cli import main
    from station.store.db import Store

    monkeypatch.setenv("STATION_APP_SECRET", "x")
    (tmp_path / "station.toml").write_text(CONFIG, encoding="utf-8")
    photo = PhotoStore(tmp_path / "photos", 10_000).save("r1", JPEG)
    Store(str(tmp_path / "s.db")).close_fill(
        {"record_id": "r1", "rig": "rig-01", "medium": "G13", "source": "city", "tare_g": 1,
         "target_g": 1, "post_check": "ok", "photo_sha256": photo.sha256}, {"record_id": "r1"})
    with pytest.raises(SystemExit) as done:
        main(["verify", "--config", str(tmp_path / "station.toml")])
    assert done.value.code == 0 and "photos ok: 1 checked" in capsys.readouterr().out
    photo.path.write_bytes(JPEG.replace(b"\x11", b"\x13", 1))  # another picture put in its place
    with pytest.raises(SystemExit) as done:
        main(["verify", "--config", str(tmp_path / "station.toml")])
    out = capsys.readouterr().out
    assert done.value.code == 1 and "FAIL fill r1: photo changed" in out
