"""Log lines: key=value, untrusted text escaped so it cannot forge lines or colour a terminal."""

from station.logfmt import escape, kv


def test_escape_controls_bidi_and_keeps_chinese():
    assert escape("a\r\nb") == "a\\x0d\\x0ab"
    assert escape("\x1b[31m") == "\\x1b[31m"
    assert escape("x\u202ey") == "x\\u202ey"
    assert escape("张三") == "张三"
    assert escape("a\\x0a") == "a\\\\x0a"  # a literal backslash cannot fake an escape


def test_kv_quotes_and_escapes():
    line = kv("decision", rig="rig-01", reading='evil\nevent=fake "x"', ms=1.234, none=None)
    assert "\n" not in line
    assert line.startswith("event=decision rig=rig-01 reading=")
    assert 'ms=1.23' in line and "none=-" in line
    assert line.count("event=") == 2  # the fake one stays inside the quoted value
    assert 'reading="evil\\x0aevent=fake \\"x\\""' in line
