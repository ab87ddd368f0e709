"""The operator's checklists through the real RigLoop, in-process: the permit waits for the
pre-fill answer posted by the rig's screen, a stale or replayed answer changes nothing, a
defect refuses, and the post-fill answer travels into the record, its chain and its outbox."""

import json

import pytest
from loopback import EMPTY_G, QR, Stepped

from drivers.loopback_rig import ManualClock
from simulators.rig_model import RigModel
from station.core.checklist import Answer
from station.store import answers, chain

CHECKS = '[checks]\nask = "screen"\n'


class Station:
    def __init__(self, tmp_path):
        self.clock = ManualClock(0.0)
        self.model = RigModel(start_delay_s=None, flow_g_per_s=5000, now=0.0)
        self.daemon = Stepped(tmp_path, self.model, self.clock, 3000, extra=CHECKS)
        self.daemon.connect()

    def run(self, seconds):
        for _ in range(round(seconds / 0.2)):
            self.clock.advance(0.2)
            self.daemon.poll()

    def coil(self, name):
        return self.model.snapshot(now=self.clock())[name]

    def question(self):
        return self.daemon.store.live()["rig-01"].get("question")

    def answer(self, q, not_ok=(), **over):
        fields = {"stage": q["stage"], "rig": "rig-01", "cylinder_id": q["cylinder_id"],
                  "decision_id": q["decision_id"], "token": q["token"],
                  "not_ok": frozenset(not_ok), "by": "张三"} | over
        return answers.post(self.daemon.store, Answer(**fields))

    def outcomes(self):
        return [r["outcome"] for r in self.daemon.rows(
            "SELECT outcome FROM checklist_answers ORDER BY id")]


@pytest.fixture
def station(tmp_path):
    st = Station(tmp_path)
    st.model.place_cylinder(EMPTY_G, now=st.clock())
    st.run(0.4)
    st.daemon.read(QR)
    st.run(0.4)
    yield st
    st.daemon.close()


def test_the_permit_waits_for_the_answer_and_the_record_carries_both(station):
    q = station.question()
    assert q["stage"] == "pre" and len(q["items"]) == 7 and not station.coil("fill_permit")
    assert station.daemon.store.live()["rig-01"]["phase"] == "accepted"
    station.answer(q, token="guessed")                       # a forged or stale token
    station.answer(q, decision_id=q["decision_id"] - 1)      # an answer to an older decision
    station.run(0.4)
    assert not station.coil("fill_permit") and station.model.permit_grants == 0
    station.answer(q)                                        # 全部合格
    station.run(0.4)
    assert station.coil("fill_permit") and station.question() is None
    assert station.outcomes()[0].startswith("refused: token")
    assert station.outcomes()[1].startswith("refused: decision_id") and station.outcomes()[2] == "taken"
    station.answer(q)                                        # the same answer replayed
    station.model.press_start(now=station.clock())
    station.run(4.0)
    post = station.question()
    assert post["stage"] == "post" and [i["key"] for i in post["items"]] == [
        "leak_valve", "leak_seam"]
    assert station.daemon.rows("SELECT state FROM fills")[0]["state"] == "open"  # waits
    station.answer(post, not_ok={"leak_valve"})
    station.run(0.4)
    (fill,) = station.daemon.rows("SELECT * FROM fills")
    assert fill["state"] == "closed" and fill["post_check"] == "ok; defect:leak_valve"
    assert fill["pre_check"] == "ok"
    checks = json.loads(fill["checks"])
    assert checks["pre"]["not_ok"] == [] and checks["post"]["not_ok"] == ["leak_valve"]
    assert station.outcomes()[3].startswith("refused")       # the replay changed nothing
    (sent,) = station.daemon.rows("SELECT payload FROM outbox")
    assert json.loads(sent["payload"])["post_check"] == "ok; defect:leak_valve"
    assert chain.verify(station.daemon.store.conn) == []
    assert station.model.permit_grants == 1


def test_a_refusing_defect_refuses_with_the_item_named_and_grants_nothing(station):
    station.answer(station.question(), not_ok={"valve_type"})
    station.run(0.4)
    assert station.model.permit_grants == 0 and not station.coil("fill_permit")
    decisions = station.daemon.rows("SELECT permit, reason, detail FROM decisions ORDER BY id")
    assert decisions[-1]["reason"] == "CHECK_DEFECT" and "瓶阀为标准阀" in decisions[-1]["detail"]
    live = station.daemon.store.live()["rig-01"]
    assert live["verdict"]["defects"] == ["瓶阀为标准阀"] and station.coil("lamp_red")
    assert station.daemon.rows("SELECT * FROM fills") == []


def test_without_a_tablet_the_controllers_checks_ok_button_answers_all_ok(tmp_path):
    """[checks] ask = "button": no permit until the button is pressed; a press answers the
    pre-fill list "all OK" once; no post-fill question (the record closes at once)."""
    from drivers.rig import RigStatus  # noqa: F401  (the button is RigStatus.checks_ok)
    from station import config as config_mod

    clock = ManualClock(0.0)
    regs = config_mod.RegisterMap(checks_ok=4)
    model = RigModel(start_delay_s=None, flow_g_per_s=5000, now=0.0, registers=regs)
    daemon = Stepped(tmp_path, model, clock, 3000, extra='[checks]\nask = "button"\n',
                     tail="[rigs.registers]\nchecks_ok = 4\n")
    try:
        daemon.connect()

        def run(seconds):
            for _ in range(round(seconds / 0.2)):
                clock.advance(0.2)
                daemon.poll()

        model.place_cylinder(EMPTY_G, now=clock())
        run(0.4)
        daemon.read(QR)
        run(1.0)
        assert model.permit_grants == 0 and daemon.store.live()["rig-01"]["question"]
        model.set_checks_ok(True, now=clock())
        run(0.4)
        model.set_checks_ok(False, now=clock())
        assert model.permit_grants == 1
        model.press_start(now=clock())
        run(4.0)
        (fill,) = daemon.rows("SELECT * FROM fills")
        assert fill["state"] == "closed" and fill["post_check"] == "ok"
        assert json.loads(fill["checks"])["pre"] == {"by": "张三", "not_ok": [], "refused": []}
    finally:
        daemon.close()


def test_button_mode_needs_the_buttons_input_on_every_rig(tmp_path):
    from loopback import config_text

    from station import config as config_mod
    from station.errors import ConfigError

    path = tmp_path / "station.toml"
    path.write_text(config_text(extra='[checks]\nask = "button"\n'), encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        config_mod.load(path, env={"STATION_APP_SECRET": "s"})
    assert (err.value.section, err.value.key) == ("rigs[0].registers", "checks_ok")
