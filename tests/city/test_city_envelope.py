"""parse_envelope: the city's answer envelope, data as a string or an object, and garbage."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from station.city.client import parse_envelope
from station.errors import CityError

ITEMS = {"total": 1, "page": 1, "items": [{"id": "C001", "status": "在用"}]}


def env(**doc) -> bytes:
    return json.dumps(doc, ensure_ascii=False).encode("utf-8")


@pytest.mark.parametrize("body, expected", [
    (env(code="200", message="ok", data=json.dumps(ITEMS)), ("200", "ok", ITEMS)),
    (env(code="200", message="ok", data=json.dumps(ITEMS, ensure_ascii=False)),
     ("200", "ok", ITEMS)),
    (env(code="200", message="ok", data=ITEMS), ("200", "ok", ITEMS)),
    (env(code="200", data=[1, 2]), ("200", "", [1, 2])),
    (env(code="404", message="未找到"), ("404", "未找到", None)),
    (env(code="200", message="ok", data=""), ("200", "ok", None)),
    (env(code="200", message="ok", data="  "), ("200", "ok", None)),
    (env(code="200", data=None), ("200", "", None)),
    (env(code="200", data="null"), ("200", "", None)),
    (env(code="400", message="operator too long", data="字段错误"),
     ("400", "operator too long", "字段错误")),
    (env(code="500", message=None), ("500", "", None)),
    (env(code="409", message=42), ("409", "42", None)),
    (env(code="200", data=json.dumps({"token": "t", "expires_in": 7200}), extra="ignored"),
     ("200", "", {"token": "t", "expires_in": 7200})),
], ids=["data-string", "data-string-utf8", "data-object", "data-list", "absent", "empty",
        "blank", "null", "null-string", "plain-text", "message-null", "message-number",
        "extra-key"])
def test_envelope_table(body, expected):
    assert parse_envelope(body) == expected


@pytest.mark.parametrize("body", [
    b"", b"<html><body>502 Bad Gateway</body></html>", b"\xff\xfe\x00garbage", b"[]",
    b'"200"', b"null", b"42", b'{"message": "ok"}', b'{"code": true}', b'{"code": null}',
    b'{"code": ""}', b'{"code": ["200"]}', b'{"code": "200"', b"[" * 100_000,
], ids=["empty", "html", "binary", "array", "string", "null", "number", "no-code", "bool-code",
        "null-code", "empty-code", "list-code", "truncated", "deep"])
def test_garbage_raises_transient_city_error(body):
    with pytest.raises(CityError) as err:
        parse_envelope(body)
    assert err.value.transient is True


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20)
envelopes = st.dictionaries(st.sampled_from(["code", "message", "data", "x"]),
                            json_values | st.sampled_from(["200", "404", '{"items": []}']))


def _only_returns_or_raises_city_error(body: bytes) -> None:
    try:
        code, message, _data = parse_envelope(body)
    except CityError as err:
        assert err.transient is True
        return
    assert isinstance(code, str) and code
    assert isinstance(message, str)


@given(st.binary(max_size=200))
def test_fuzz_bytes(body):
    _only_returns_or_raises_city_error(body)


@given(envelopes | json_values)
def test_fuzz_json_documents(doc):
    _only_returns_or_raises_city_error(json.dumps(doc).encode())


@given(st.text(max_size=100), json_values)
def test_fuzz_data_strings(code, data):
    body = env(code=code or "200", data=json.dumps(data) if data is not None else None)
    code_out, _, data_out = parse_envelope(body)
    assert code_out == (code or "200")
    assert data_out == data  # a JSON-encoded payload comes back as it was, "" included


# ---- charset and types as real deployments send them (issue 13) --------------------------------
GBK_DOC = {"code": "404", "message": "未找到该气瓶档案"}


@pytest.mark.parametrize("body, ctype", [
    (json.dumps(GBK_DOC, ensure_ascii=False).encode("gbk"), "application/json; charset=GBK"),
    (json.dumps(GBK_DOC, ensure_ascii=False).encode("gb2312"), "application/json;charset=gb2312"),
    (json.dumps(GBK_DOC, ensure_ascii=False).encode("gb18030"), 'text/json; charset="GB18030"'),
    (b"\xef\xbb\xbf" + json.dumps(GBK_DOC, ensure_ascii=False).encode(), "application/json"),
    (json.dumps(GBK_DOC, ensure_ascii=False).encode(), None),
    (json.dumps(GBK_DOC, ensure_ascii=False).encode("utf-16"), "application/json; charset=utf-16"),
], ids=["gbk", "gb2312", "gb18030-quoted", "utf8-bom", "no-content-type", "utf-16"])
def test_body_read_by_the_charset_it_names(body, ctype):
    assert parse_envelope(body, ctype) == ("404", "未找到该气瓶档案", None)


def test_gbk_body_read_as_utf8_is_not_the_city_word():
    body = json.dumps(GBK_DOC, ensure_ascii=False).encode("gbk")
    with pytest.raises(CityError) as err:
        parse_envelope(body, "application/json")
    assert err.value.transient is True


def test_unknown_charset_is_transient():
    with pytest.raises(CityError, match="unknown charset"):
        parse_envelope(b'{"code": "200"}', "application/json; charset=x-klingon")


@pytest.mark.parametrize("doc, code", [({"code": 404}, "404"), ({"code": 200, "data": "{}"}, "200"),
                                       ({"code": "403"}, "403")])
def test_code_as_a_string_or_an_integer(doc, code):
    assert parse_envelope(json.dumps(doc).encode())[0] == code
