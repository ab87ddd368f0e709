"""station stats and station export: counts per day on a store with known records."""

import csv
import io
import json
from datetime import datetime, timedelta

import pytest
from records_maker import Records
from support import small_config

from station.errors import StationError
from station.store import export, stats
from station.store.db import Store
from station.today import LOCAL_TZ

DAY1 = datetime(2026, 3, 10, 9, 0, tzinfo=LOCAL_TZ)
DAY2 = DAY1 + timedelta(days=1)


@pytest.fixture
def store(tmp_path):
    store = Store(str(tmp_path / "s.db"))
    r = Records(store)
    r.fill(DAY1, lag_s=10)
    r.fill(DAY1 + timedelta(hours=1), post_check="overfill", lag_s=30)
    r.fill(DAY1 + timedelta(hours=2), override_by="王主管", delivery="pending")
    r.fill(DAY1 + timedelta(hours=3), cancelled=True)
    r.decision(DAY1 + timedelta(hours=4), permit=False, reason="SCRAPPED")
    r.decision(DAY1 + timedelta(hours=5), permit=False, reason="SCRAPPED")
    r.decision(DAY1 + timedelta(hours=6), permit=False, reason="CITY_UNAVAILABLE")
    r.fill(DAY2, post_check="underfill", lag_s=5)
    r.fill(DAY2 + timedelta(days=5))  # outside the range asked for
    yield store
    store.close()


def test_daily_counts(store):
    d1, d2 = stats.daily(store, DAY1.date(), DAY2.date())
    assert (d1.date, d1.fills, d1.overfills, d1.cancelled, d1.overrides) == \
        ("2026-03-10", 3, 1, 1, 1)
    assert d1.refusals == {"SCRAPPED": 2, "CITY_UNAVAILABLE": 1} and d1.refused == 3
    assert d1.permits == 4 and d1.delivered == 2
    assert (d1.lag_median_s, d1.lag_max_s) == (20.0, 30.0)
    assert (d2.fills, d2.underfills, d2.refused, d2.lag_median_s, d2.lag_max_s) == \
        (1, 1, 0, 5.0, 5.0)


def test_days_without_records_are_listed_and_json_carries_everything(store):
    days = stats.daily(store, DAY1.date() - timedelta(days=1), DAY2.date())
    assert [d.fills for d in days] == [0, 3, 1]
    doc = json.loads(stats.as_json(days))
    assert doc[1]["refusals"]["SCRAPPED"] == 2 and doc[1]["refused"] == 3
    assert "2026-03-10      3    1" in stats.table(days)


def test_dates_are_checked():
    with pytest.raises(StationError, match="yyyy-mm-dd"):
        stats.day_range("10/03/2026", None)
    with pytest.raises(StationError, match="after"):
        stats.day_range("2026-03-11", "2026-03-10")
    assert stats.day_range(None, "2026-03-30") == (DAY1.date().replace(day=1),
                                                   DAY1.date().replace(day=30))


def test_export_csv_has_both_kinds_in_range(store):
    text = export.as_csv(store, DAY1.date(), DAY2.date())
    assert text.startswith("\ufeffkind,id,time,")  # a BOM; headings as given (default: keys)
    rows = list(csv.DictReader(io.StringIO(text.removeprefix("\ufeff"))))
    kinds = [r["kind"] for r in rows]
    assert kinds.count("decision") == 8  # 5 fills' permits (one cancelled) and 3 refusals
    assert kinds.count("fill") == 5
    fills = [r for r in rows if r["kind"] == "fill"]
    assert [f["post_check"] for f in fills] == ["ok", "overfill", "ok", "cancelled",
                                                "underfill"]
    assert {f["sync"] for f in fills} == {"delivered", "pending", "none"}
    refusals = [r for r in rows if r["kind"] == "decision" and r["permit"] == "0"]
    assert [r["reason"] for r in refusals] == ["SCRAPPED", "SCRAPPED", "CITY_UNAVAILABLE"]
    assert refusals[0]["reading_kind"] == "qr_url"


def test_export_json(store):
    doc = json.loads(export.as_json(store, DAY2.date(), DAY2.date()))
    assert doc["from"] == doc["to"] == "2026-03-11"
    assert len(doc["fills"]) == 1 and doc["fills"][0]["post_check"] == "underfill"
    assert len(doc["decisions"]) == 1 and doc["decisions"][0]["permit"] == 1


CONFIG = small_config()


def test_the_commands(store, tmp_path, monkeypatch, capsys):
    from station.app.cli import main

    monkeypatch.setenv("STATION_APP_SECRET", "x")
    cfg = tmp_path / "station.toml"
    cfg.write_text(CONFIG, encoding="utf-8")
    out = tmp_path / "march.json"
    with pytest.raises(SystemExit) as done:
        main(["export", "--config", str(cfg), "--from", "2026-03-10", "--to", "2026-03-11",
              "--json", "--out", str(out)])
    assert done.value.code == 0 and len(json.loads(out.read_text())["fills"]) == 5
    with pytest.raises(SystemExit):
        main(["stats", "--config", str(cfg), "--from", "2026-03-10", "--to", "2026-03-10",
              "--json"])
    assert json.loads(capsys.readouterr().out)[0]["fills"] == 3
    with pytest.raises(SystemExit) as done:
        main(["stats", "--config", str(cfg), "--from", "2026-03-12", "--to", "2026-03-10"])
    assert done.value.code == 2 and "after" in capsys.readouterr().err


def test_export_and_records_csv_carry_a_bom_and_chinese_headings(store, tmp_path, monkeypatch,
                                                                  capsys):
    """Issue 16: Excel garbled Chinese (no BOM) and the headings were English only."""
    from station.app.cli import main

    monkeypatch.setenv("STATION_APP_SECRET", "x")
    cfg = tmp_path / "station.toml"
    cfg.write_text(CONFIG, encoding="utf-8")
    out = tmp_path / "march.csv"
    span = ["--from", "2026-03-10", "--to", "2026-03-11"]
    with pytest.raises(SystemExit) as done:
        main(["export", "--config", str(cfg), *span, "--out", str(out)])
    assert done.value.code == 0
    raw = out.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # the UTF-8 BOM
    text = raw.decode("utf-8-sig")
    assert text.startswith("类别,编号,时间,工位,充装人员,气瓶编号,")
    assert len(list(csv.DictReader(io.StringIO(text)))) == 13
    with pytest.raises(SystemExit):
        main(["export", "--config", str(cfg), *span, "--lang", "en"])
    assert capsys.readouterr().out.startswith("\ufeffkind,id,time,rig,")
    with pytest.raises(SystemExit):
        main(["records", "--config", str(cfg), "--csv", "--from", "2026-03-10"])
    records = capsys.readouterr().out
    assert records.startswith("\ufeff记录号,充装日期,开始时间,") and records.count("\n") == 7
    with pytest.raises(SystemExit):
        main(["records", "--config", str(cfg), "--csv", "--lang", "en"])
    assert capsys.readouterr().out.startswith("\ufeffrecord_id,fill_date,started,")
