"""Every operator-facing text in one place: reason codes with their Chinese and English wording."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Text:
    zh: str
    en: str


# Refusal reasons, in rule order (interlock-rules.md). The order is the rule order.
REASONS: dict[str, Text] = {
    "RIG_FAULT": Text("充装设备故障，禁止充装", "rig controller fault, ESTOP or untrusted clock"),
    "NO_OPERATOR": Text("未登录充装人员", "no operator logged in at this rig"),
    "TAG_UNREADABLE": Text("标签无法识读", "tag unreadable"),
    "TAG_FOREIGN": Text("非本市追溯标签", "not a city traceability tag (foreign or forged)"),
    "AMBIGUOUS_TAGS": Text("识别到多个标签，请只留本瓶标签",
                           "more than one cylinder tag in view: which cylinder is it?"),
    "NO_CYLINDER": Text("秤上无气瓶，请先放稳气瓶再扫码",
                        "no cylinder placed on the scale for this reading"),
    "BLOCKLISTED": Text("本站禁充气瓶", "cylinder on this station's block list"),
    "CITY_UNAVAILABLE": Text("追溯系统不可用且无有效缓存",
                             "city system unavailable and no usable cached record"),
    "NOT_REGISTERED": Text("未登记气瓶（疑似黑气瓶）", "cylinder not registered (possible black cylinder)"),
    "BAD_RECORD": Text("气瓶档案信息异常", "cylinder record malformed"),
    "NO_USE_REGISTRATION": Text("未办理使用登记", "no use-registration certificate"),
    "SCRAPPED": Text("气瓶已报废", "cylinder scrapped"),
    "STOPPED": Text("气瓶已停用", "cylinder stopped (not in use)"),
    "FOREIGN_UNIT": Text("非本单位气瓶", "cylinder belongs to another unit"),
    "WRONG_MEDIUM": Text("充装介质不符", "medium differs from the rig's medium"),
    "INSPECTION_OVERDUE": Text("超期未检", "periodic inspection overdue"),
    "SERVICE_LIFE_EXCEEDED": Text("超过设计使用年限", "design service life exceeded"),
    "MASS_MISMATCH": Text("实瓶重量与档案不符", "cylinder lighter than its record's tare "
                          "(another cylinder's tag, or another size)"),
    "CYLINDER_FULL": Text("瓶内已满，禁止充装", "cylinder already at or above tare + target"),
}

WARNINGS: dict[str, Text] = {
    "INSPECTION_DUE_SOON": Text("即将到期检验", "periodic inspection due soon"),
    "RECENT_REFILL": Text("该气瓶近期已在本站充装", "cylinder filled at this station recently"),
}

ACCEPTED = Text("允许充装", "fill permitted")

# The station's own faults: not rule outcomes (no decision row can carry them), but the operator
# must see why the rig refuses.
FAULTS: dict[str, Text] = {
    "STORE_FAULT": Text("记录存储故障，禁止充装",
                        "station store unwritable: no fill until it can record"),
}

# Refusals of the pre-fill check in the fill cycle (the residual rule, interlock-rules.md).
PRE_FILL: dict[str, Text] = {
    "RESIDUAL_HIGH": Text("瓶内残液超量，禁止充装", "too much residual gas in the cylinder"),
    # the operator's pre-fill checklist (station.core.checklist): an item found not OK refuses
    "CHECK_DEFECT": Text("外观检查不合格", "pre-fill check: a defect found"),
    "CHECK_LAPSED": Text("未在规定时间内完成充装前检查", "pre-fill checklist not answered in time"),
}

# Operator events at the rig (badge log-in/out).
OPERATOR_LOGIN = Text("充装人员已登录", "operator logged in")
OPERATOR_LOGOUT = Text("充装人员已退出", "operator logged out")


def reason_text(code: str) -> Text:
    """The wording of a reason or warning code; an unknown code is shown as itself."""
    return (REASONS.get(code) or WARNINGS.get(code) or FAULTS.get(code) or PRE_FILL.get(code)
            or Text(code, code))


@dataclass(frozen=True)
class ScreenText:
    """One operator-screen state: the Chinese headline, what to do next, the English line."""

    headline: str
    todo: str
    en: str


# The operator screen's states (station.core.hmi.STATES): what it is, what to do, in English below.
SCREENS: dict[str, ScreenText] = {
    "daemon_gone": ScreenText("控制程序无响应", "禁止充装，请联系站长",
                              "station daemon not responding: do not fill, call the manager"),
    "controller_lost": ScreenText("充装设备未连接", "禁止充装，请检查控制器电源和网线",
                                  "rig controller not connected: check its power and cable"),
    "store_fault": ScreenText("记录存储故障", "禁止充装，请联系站长",
                              "station store fault: no fill until it can record"),
    "estop": ScreenText("急停已按下", "排除险情后复位急停按钮",
                        "emergency stop pressed: release it once it is safe"),
    "scale_overload": ScreenText("秤台超载", "请取下多余重物",
                                 "scale overload: take the extra weight off"),
    "scale_fault": ScreenText("秤台故障", "禁止充装，请联系维修",
                              "scale fault: no fill, call maintenance"),
    "filling": ScreenText("正在充装", "", "filling"),
    "settling": ScreenText("充装结束，称重中", "请勿移动气瓶", "valve closed: weighing"),
    "done_ok": ScreenText("充装完成", "请取下气瓶", "fill complete: take the cylinder off"),
    "overfill": ScreenText("超装 — 请主管处理", "", "OVERFILL: call the supervisor"),
    "underfill": ScreenText("欠装 — 请复核", "", "underfill: check the cylinder"),
    "interrupted": ScreenText("充装中断 — 请检查气瓶", "", "fill interrupted: check the cylinder"),
    "permitted": ScreenText("允许充装", "请按启动按钮", "fill permitted: press start"),
    "checking": ScreenText("请完成充装前检查", "逐项确认气瓶，全部合格后点“全部合格”或按检查合格按钮",
                           "pre-fill check: answer the checklist (screen or checks-OK button)"),
    "accepted": ScreenText("允许充装", "请将气瓶放稳在秤上",
                           "accepted: stand the cylinder still on the scale"),
    "refused": ScreenText("禁止充装", "", "FILL REFUSED"),
    "held": ScreenText("请将气瓶放上秤台", "",
                       "reading held: stand its cylinder on the scale"),
    "no_operator": ScreenText("请刷卡登录", "未登录充装人员，不能充装",
                              "no operator logged in: scan your badge"),
    "idle": ScreenText("请扫描气瓶标签", "", "ready: scan the cylinder's tag"),
}
