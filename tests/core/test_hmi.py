"""The operator's picture of a rig: one row per state, and never an old verdict."""

import pytest

from station.core.hmi import GREEN, GREEN_BUZZ, OFF, RED, RED_BUZZ, STATES, current_verdict, screen
from station.core.texts import SCREENS

BASE = {"connected": True, "operator": "张三", "phase": "idle", "present": False}
OK = {"decision_id": 7, "permit": True, "code": "OK"}
NO = {"decision_id": 8, "permit": False, "code": "SCRAPPED"}


def result(check, net, target=14500):
    return {"check": check, "net_g": net, "target_g": target, "record_id": "r1"}


ROWS = [  # (picture changes, stale, state, headline, in the detail, colour, lamps)
    ({}, True, "daemon_gone", "控制程序无响应", "禁止充装", "dark", None),
    ({"connected": False}, False, "controller_lost", "充装设备未连接", "禁止充装", "dark", None),
    ({"store_fault": True}, False, "store_fault", "记录存储故障", "禁止充装", "red", RED_BUZZ),
    ({"verdict": {"permit": False, "code": "STORE_FAULT"}}, False, "store_fault",
     "记录存储故障", "联系站长", "red", RED_BUZZ),
    ({"estop": True, "phase": "filling"}, False, "estop", "急停已按下", "复位急停", "red", RED),
    ({"overload": True}, False, "scale_overload", "秤台超载", "取下", "red", RED),
    ({"scale_fault": True}, False, "scale_fault", "秤台故障", "维修", "red", RED),
    ({"phase": "filling", "verdict": OK}, False, "filling", "正在充装", "", "blue", GREEN),
    ({"phase": "settling", "verdict": OK}, False, "settling", "充装结束，称重中", "勿移动",
     "blue", GREEN),
    ({"phase": "ended", "verdict": OK, "result": result("ok", 14450)}, False, "done_ok",
     "充装完成", "净重 14.45 kg", "green", GREEN),
    ({"phase": "ended", "verdict": OK, "result": result("overfill", 15300)}, False, "overfill",
     "超装 — 请主管处理", "超出 0.80 kg", "red", RED_BUZZ),
    ({"phase": "ended", "verdict": OK, "result": result("underfill", 13700)}, False,
     "underfill", "欠装 — 请复核", "少 0.80 kg", "amber", GREEN_BUZZ),
    ({"phase": "ended", "verdict": OK, "result": result("interrupted", 3000)}, False,
     "interrupted", "充装中断 — 请检查气瓶", "净重 3.00 kg", "red", RED_BUZZ),
    ({"phase": "permitted", "verdict": OK}, False, "permitted", "允许充装", "启动", "green",
     GREEN),
    ({"phase": "accepted", "verdict": OK}, False, "accepted", "允许充装", "放稳", "green", GREEN),
    # the pre-fill checklist on the screen: no green lamp until it is answered (issue 17)
    ({"phase": "accepted", "verdict": OK, "question": {"stage": "pre"}}, False, "checking",
     "请完成充装前检查", "逐项确认", "amber", OFF),
    ({"phase": "ended", "verdict": OK, "result": result("ok", 14450),
      "question": {"stage": "post"}}, False, "done_ok", "充装完成", "净重", "green", GREEN),
    ({"phase": "ended", "verdict": {**NO, "code": "CHECK_DEFECT",
                                    "defects": ["护罩、手轮齐全完好", "瓶阀为标准阀"]}},
     False, "refused", "禁止充装", "外观检查不合格：护罩、手轮齐全完好、瓶阀为标准阀", "red",
     RED_BUZZ),
    ({"verdict": NO}, False, "refused", "禁止充装", "气瓶已报废", "red", RED_BUZZ),
    ({"verdict": {**NO, "code": "NO_OPERATOR"}, "operator": None}, False, "refused",
     "禁止充装", "未登录充装人员", "red", RED_BUZZ),
    ({"held": "https://t.example/q/123"}, False, "held", "请将气瓶放上秤台", "已扫码", "amber",
     OFF),
    ({"operator": None}, False, "no_operator", "请刷卡登录", "未登录", "grey", OFF),
    ({}, False, "idle", "请扫描气瓶标签", "", "grey", OFF),
    # an ended phase without a result (a pre-fill refusal): the refusal shows
    ({"phase": "ended", "verdict": {**NO, "code": "MASS_MISMATCH"}}, False, "refused",
     "禁止充装", "实瓶重量与档案不符", "red", RED_BUZZ),
]


@pytest.mark.parametrize("changes,stale,state,headline,detail,colour,lamps", ROWS,
                         ids=[f"{r[2]}-{i}" for i, r in enumerate(ROWS)])
def test_state_to_screen(changes, stale, state, headline, detail, colour, lamps):
    s = screen({**BASE, **changes}, stale=stale)
    assert (s.state, s.headline, s.colour, s.lamps) == (state, headline, colour, lamps)
    assert detail in s.detail
    assert s.en and all(ord(c) < 0x2E80 for c in s.en)  # the second line: English only


def test_every_state_has_a_row_and_a_text():
    assert {r[2] for r in ROWS} == set(STATES) == set(SCREENS)


def test_overfill_says_the_kg_over_in_english_too():
    s = screen({**BASE, "phase": "ended", "result": result("overfill", 15300)})
    assert s.en == "OVERFILL: call the supervisor: by 0.80 kg"


def test_web_store_unreadable_is_a_store_fault_screen():
    assert screen(BASE, store_unreadable=True).state == "store_fault"
    assert screen({}, store_unreadable=True).state == "store_fault"  # nothing else known


def test_a_new_verdict_or_result_is_a_new_key():
    a = screen({**BASE, "verdict": NO})
    b = screen({**BASE, "verdict": {**NO, "decision_id": 9}})
    assert a.key != b.key and a.key == screen({**BASE, "verdict": NO}).key


VERDICTS = [  # (shown, epoch now, phase, decision in the cycle, still shown)
    (None, (1, True), "idle", None, False),
    ({**OK}, (1, True), "accepted", 7, True),
    ({**OK}, (1, True), "ended", 7, True),
    ({**OK}, (1, True), "idle", None, False),  # withdrawn, expired or taken off: cleared
    ({**OK}, (2, True), "accepted", 9, False),  # another decision's cycle
    ({**NO, "epoch": [1, True]}, (1, True), "idle", None, True),
    ({**NO, "epoch": [1, True]}, (1, False), "idle", None, False),  # the cylinder left
    ({**NO, "epoch": [1, False]}, (2, True), "idle", None, False),  # a cylinder was put down
]


@pytest.mark.parametrize("shown,epoch,phase,decision,stands", VERDICTS)
def test_never_an_old_verdict(shown, epoch, phase, decision, stands):
    assert (current_verdict(shown, epoch, phase, decision) is not None) == stands
