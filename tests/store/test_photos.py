"""Fill photos: kept whole with their hash, refused when not a JPEG, rotated under a budget
without ever losing the photo of a fill the city has not received."""

import os

import pytest

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
