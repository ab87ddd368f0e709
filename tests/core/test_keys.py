"""What people type is normalised once (issue 10, step 5): keys.typed_key and keys.block_key."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from station.core.keys import KeyRefused, block_key, typed_key, unmatchable

HOSTS = ("qr.cqtzsb.example",)


@pytest.mark.parametrize("typed,field,key", [
    ("cyl-000002", "code", "CYL-000002"),
    ("CYL－000014", "code", "CYL-000014"),  # full-width hyphen, as a Chinese IME types it
    ("CYL-000015 ", "code", "CYL-000015"),
    ("\u3000ＣＹＬ－０００００１\t", "code", "CYL-000001"),  # full-width letters, ideographic space
    ("CYL\u2014000001", "code", "CYL-000001"),  # em dash
    ("\ufeffe2801160600002084c1a2b3c", "code", "E2801160600002084C1A2B3C"),
    ("５００１２３４５６７８９", "code", "500123456789"),
    (" 张三\u3000", "name", "张三"),
    ("Rig-01", "name", "Rig-01"),
    (" https://QR.cqtzsb.example/c/Ab ", "tag", "https://QR.cqtzsb.example/c/Ab"),
    ("ｈｔｔｐｓ：／／qr.cqtzsb.example／c／Ab", "tag", "https://qr.cqtzsb.example/c/Ab"),
    ("cyl-000002", "tag", "CYL-000002"),
])
def test_typed_key(typed, field, key):
    assert typed_key(typed, field) == key
    assert typed_key(key, field) == key  # idempotent


def test_typed_key_refuses_an_unknown_field():
    with pytest.raises(ValueError):
        typed_key("x", "colour")


@pytest.mark.parametrize("typed,key", [
    ("cyl-000002", "CYL-000002"), ("CYL－000014", "CYL-000014"), ("CYL-000015 ", "CYL-000015"),
    ("500112cq0000000001", "500112CQ0000000001"), ("118230000001", "118230000001"),
    ("e2801160600002084c1a2b3c", "E2801160600002084C1A2B3C"),
    ("https://qr.cqtzsb.example/c/500112CQ0000000001", "500112CQ0000000001"),
])
def test_block_key_is_what_a_reading_gives(typed, key):
    assert block_key(typed, HOSTS) == key
    assert block_key(key, HOSTS) == key and not unmatchable(key)


@pytest.mark.parametrize("typed,why", [
    ("", "empty"), ("   ", "empty"), ("CYL 000001", "ASCII letters"), ("张三的瓶子", "other than ASCII"),
    ("A" * 51, "51 characters"), ("-CYL1", "starting with a letter or digit"),
    ("CYL\u200b000001", "invisible"), ("CYL/000001", "ASCII letters"),
    ("https://evil.example/c/A1", "not a city QR code URL"),
    ("https://qr.cqtzsb.example/c/../../admin", "not a city QR code URL"),
])
def test_a_key_no_reading_can_give_is_refused_with_the_reason(typed, why):
    with pytest.raises(KeyRefused) as err:
        block_key(typed, HOSTS)
    assert why in str(err.value) and err.value.why in str(err.value)
    assert unmatchable(typed)


@given(st.text(max_size=80), st.sampled_from(["code", "tag", "name"]))
def test_typed_key_is_idempotent_and_a_block_key_is_plain_ascii(text, field):
    key = typed_key(text, field)
    assert typed_key(key, field) == key and key == key.strip()
    try:
        blocked = block_key(text, HOSTS)
    except KeyRefused as err:
        assert err.why
    else:
        assert blocked.isascii() and 0 < len(blocked) <= 50 and block_key(blocked) == blocked
