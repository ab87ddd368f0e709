"""Every text the web pages show, in Chinese and English (refusal reasons: station.core.texts)."""

from __future__ import annotations

from station.core.texts import Text, reason_text

LANGS = ("zh", "en")

T: dict[str, Text] = {
    # operator screen
    "screen_title": Text("充装工位", "Filling rig"),
    "unknown_rig": Text("没有这个充装工位", "no such rig"),
    "cylinder": Text("气瓶编号", "cylinder"),
    "medium": Text("充装介质", "medium"),
    "next_inspection": Text("下次检验", "next inspection"),
    "operator": Text("充装人员", "operator"),
    "no_operator": Text("未登录", "nobody logged in"),
    "fault": Text("设备故障", "rig fault"),
    "connection_lost": Text("与服务器的连接中断，正在重连",
                            "lost the connection to the server: retrying"),
    # manager pages: frame
    "site": Text("充装站管理", "Station management"),
    "nav_records": Text("充装记录", "Fill records"),
    "nav_refusals": Text("拒充统计", "Refusals"),
    "nav_issues": Text("待处理", "To handle"),
    "nav_blocklist": Text("禁充名单", "Block list"),
    "nav_outbox": Text("上报队列", "Outbox"),
    "nav_health": Text("设备状态", "Devices"),
    "nav_screens": Text("工位屏幕", "Rig screens"),
    "sign_out": Text("退出登录", "Sign out"),
    "signed_in_as": Text("当前用户", "signed in as"),
    "other_lang": Text("English", "中文"),
    # log-in
    "login_title": Text("管理员登录", "Manager log-in"),
    "user_name": Text("用户名", "name"),
    "password": Text("密码", "password"),
    "log_in": Text("登录", "Log in"),
    "login_failed": Text("用户名或密码错误", "wrong name or password"),
    "locked": Text("失败次数过多，账户已锁定，请 {minutes} 分钟后再试",
                   "too many failed attempts: locked; try again in {minutes} min"),
    "login_busy": Text("系统繁忙，请稍后再试", "busy: try again in a moment"),
    "signed_out": Text("已退出登录", "signed out"),
    "session_expired": Text("请先登录", "please log in"),
    # errors
    "forbidden": Text("请求被拒绝（表单已失效，请刷新页面后重试）",
                      "request refused (the form expired: reload the page and try again)"),
    "not_found": Text("页面不存在", "page not found"),
    "store_down": Text("数据库暂不可用", "the store cannot be read right now"),
    "server_error": Text("服务器内部错误", "internal server error"),
    "too_large": Text("请求过大", "request too large"),
    # records
    "date_from": Text("起始日期", "from"),
    "date_to": Text("截止日期", "to"),
    "rig": Text("工位", "rig"),
    "any": Text("全部", "any"),
    "check": Text("充后检查", "post-fill check"),
    "sync": Text("上报状态", "delivery"),
    "override_only": Text("仅主管放行", "overrides only"),
    "filter": Text("筛选", "Filter"),
    "reset": Text("清除", "Reset"),
    "csv": Text("导出 CSV", "Export CSV"),
    "n_records": Text("共 {n} 条记录，第 {page}/{pages} 页", "{n} records, page {page} of {pages}"),
    "prev": Text("上一页", "previous"),
    "next": Text("下一页", "next"),
    "bad_filter": Text("已忽略无效的筛选条件：{what}", "invalid filter ignored: {what}"),
    "col_started": Text("开始时间", "started"),
    "col_rig": Text("工位", "rig"),
    "col_operator": Text("充装人员", "operator"),
    "col_cylinder": Text("气瓶", "cylinder"),
    "col_medium": Text("介质", "medium"),
    "col_net": Text("净重 kg", "net kg"),
    "col_target": Text("目标 kg", "target kg"),
    "col_pre": Text("充前检查", "pre-check"),
    "col_post": Text("充后检查", "post-check"),
    "col_photo": Text("照片", "photo"),
    "col_override": Text("主管放行", "override"),
    "col_sync": Text("上报", "delivery"),
    "col_record": Text("记录号", "record id"),
    "none": Text("无", "none"),
    "sync_pending": Text("待上报", "pending"),
    "sync_delivered": Text("已上报", "delivered"),
    "sync_dead": Text("被拒收", "dead (refused)"),
    "sync_none": Text("不上报（未用许可）", "never sent (unused permit)"),
    # refusals
    "refusals_title": Text("近 {days} 天拒充原因（按天）", "Refusals by reason, last {days} days"),
    "refusals_total": Text("合计", "total"),
    "reason": Text("原因", "reason"),
    "count": Text("次数", "count"),
    "no_refusals": Text("这段时间没有拒充", "no refusals in this period"),
    "days": Text("天数", "days"),
    # issues
    "issues_title": Text("待处理的超装与主管放行", "Open overfills and overrides"),
    "kind_overfill": Text("超装", "overfill"),
    "kind_override": Text("主管放行", "override"),
    "mark_handled": Text("标记为已处理", "Mark handled"),
    "handled_ok": Text("已标记为已处理", "marked handled"),
    "handled_gone": Text("该记录已处理或不存在", "already handled, or no such record"),
    "no_issues": Text("没有待处理事项", "nothing to handle"),
    "recently_handled": Text("最近处理", "recently handled"),
    "handled_by": Text("处理人", "handled by"),
    "handled_at": Text("处理时间", "handled at"),
    # block list
    "blocklist_title": Text("本站禁充名单", "This station's block list"),
    "block_key": Text("气瓶编号 / 信息码 / 标签", "cylinder id / information code / tag"),
    "block_reason": Text("原因", "reason"),
    "added_at": Text("加入时间", "added"),
    "added_by": Text("操作人", "by"),
    "add": Text("加入", "Add"),
    "remove": Text("移除", "Remove"),
    "blocked_ok": Text("已加入禁充名单", "added to the block list"),
    "unblocked_ok": Text("已从禁充名单移除", "removed from the block list"),
    "unblock_gone": Text("名单中没有该项", "not on the block list"),
    "block_needs": Text("请填写编号和原因", "give the key and a reason"),
    "empty_list": Text("名单为空", "the list is empty"),
    # outbox
    "outbox_title": Text("上报市平台队列", "Delivery to the city"),
    "pending": Text("待上报", "pending"),
    "delivered": Text("已上报", "delivered"),
    "dead": Text("被拒收", "dead (refused)"),
    "oldest_pending": Text("最早待上报", "oldest pending"),
    "hours": Text("{h} 小时前", "{h} h ago"),
    "last_error": Text("最近错误", "last error"),
    "dead_letters": Text("被市平台拒收的记录", "Records the city refused"),
    "city_message": Text("市平台答复", "the city's message"),
    "retry": Text("重新上报", "Send again"),
    "retried_ok": Text("已重新排队上报", "queued to be sent again"),
    "retry_gone": Text("没有这条被拒收的记录", "no such dead record"),
    # health
    "health_title": Text("各工位设备状态", "Device health per rig"),
    "connected": Text("连接", "connected"),
    "yes": Text("是", "yes"),
    "no": Text("否", "no"),
    "screen_shows": Text("工位屏幕显示", "operator screen shows"),
    "last_heartbeat": Text("最近心跳", "last heartbeat"),
    "seconds_ago": Text("{s} 秒前", "{s} s ago"),
    "never": Text("从未", "never"),
    "last_error_event": Text("最近故障", "last error"),
    "phase": Text("状态", "phase"),
    "recent_events": Text("最近事件", "recent events"),
    "live_stale": Text("无实时数据（控制程序未运行？）", "no live data (is the daemon running?)"),
    # the record chain (health page and every manager page's footer)
    "chain_head": Text("记录链头", "Record chain head"),
    "chain_title": Text("防篡改记录链", "Tamper-evident record chain"),
    "chain_seq": Text("链头序号", "head sequence"),
    "chain_hash": Text("链头哈希（前 16 位）", "head hash (first 16 digits)"),
    "chain_at": Text("记录时间", "record time"),
    "chain_record": Text("记录", "record"),
    "chain_kind_decision": Text("判定", "decision"),
    "chain_kind_fill": Text("充装记录", "fill record"),
    "chain_empty": Text("尚无记录", "no records yet"),
    "chain_gone": Text("该记录已不在库中", "record no longer in the store"),
    "chain_not_verified": Text("此处只显示链头，不校验整条链；校验请运行 station verify 或 "
                               "station doctor",
                               "the head only, not verified here: run station verify or "
                               "station doctor to verify the whole chain"),
    # index
    "index_title": Text("充装站", "Filling station"),
    "manager_pages": Text("管理页面（需登录）", "Manager pages (log-in)"),
    # block list: a key no reading could ever give (station.core.keys.block_key)
    "block_invalid": Text("未加入：该编号不可能与任何标签匹配（应为气瓶档案ID、信息化编码、"
                          "12位镂空码或RFID编号）",
                          "not added: no reading could ever match this key (it must be a "
                          "cylinder id, information code, 12-digit traceable number or RFID "
                          "UID)"),
    # issue 16: the manager's home page, finding things, audited actions, print report
    "nav_home": Text("今日概览", "Today"),
    "nav_decisions": Text("判定记录", "Decisions"),
    "nav_report": Text("日报", "Day report"),
    "home_title": Text("今日概览（{day}）", "Today at a glance ({day})"),
    "home_fills": Text("充装", "fills"),
    "home_permits": Text("许可", "permits"),
    "home_refusals": Text("拒充", "refusals"),
    "home_open_issues": Text("待处理超装与主管放行", "open overfills and overrides"),
    "home_pending": Text("待上报记录", "records not yet delivered"),
    "home_oldest": Text("最早一条已等待 {h} 小时", "the oldest has waited {h} h"),
    "home_backlog_warn": Text("超过 {limit} 小时未上报，请检查与市平台的连接",
                              "older than {limit} h: check the link to the city"),
    "home_dead": Text("被市平台拒收", "refused by the city (dead letters)"),
    "home_backup": Text("最近备份", "last backup"),
    "home_backup_none": Text("尚无备份记录", "no backup recorded yet"),
    "home_backup_ok": Text("成功", "ok"),
    "home_backup_failed": Text("失败", "failed"),
    "home_rigs_down": Text("离线的充装工位", "rigs down"),
    "home_readers_down": Text("离线的读码器", "readers down"),
    "home_all_up": Text("全部正常", "all up"),
    "home_no_refusals": Text("今天没有拒充", "no refusals today"),
    "search": Text("查找气瓶", "Find a cylinder"),
    "search_hint": Text("气瓶编号、信息码、12位编码、产品编号、二维码网址或其中一部分",
                        "id, information code, 12-digit number, product number, QR URL, or a "
                        "part of one"),
    "search_go": Text("查找", "Search"),
    "search_title": Text("查找：{q}", "Search: {q}"),
    "search_none": Text("没有找到与之相符的气瓶或标签", "no cylinder or tag matches"),
    "search_tags": Text("未关联气瓶的标签（读到但未识别）", "tags read but never tied to a cylinder"),
    "matched_by": Text("匹配项", "matched by"),
    "times_read": Text("读到次数", "times read"),
    "last_read": Text("最近读到", "last read"),
    "cylinder_title": Text("气瓶 {id}", "Cylinder {id}"),
    "city_record": Text("市平台档案（最近一次读取）", "City record (as last seen)"),
    "city_record_none": Text("本站未缓存该气瓶的市平台档案", "no city record cached here"),
    "fetched_at": Text("读取时间", "fetched"),
    "keys": Text("编号与标签", "ids and tags"),
    "blocked_state": Text("禁充名单", "block list"),
    "not_blocked": Text("不在禁充名单中", "not on the block list"),
    "decisions_here": Text("本站判定", "decisions here"),
    "fills_here": Text("本站充装记录", "fill records here"),
    "overrides": Text("主管放行", "overrides"),
    "actions": Text("管理操作记录", "manager actions"),
    "decisions_title": Text("判定记录", "Decisions"),
    "verdict": Text("判定", "verdict"),
    "verdict_permit": Text("允许充装", "permit"),
    "verdict_refuse": Text("禁止充装", "refuse"),
    "col_time": Text("时间", "time"),
    "col_reading": Text("读到内容", "reading"),
    "col_source": Text("来源", "source"),
    "col_latency": Text("耗时 ms", "latency ms"),
    "col_reason": Text("原因", "reason"),
    "col_decision": Text("判定号", "decision id"),
    "col_handled": Text("处理", "handled"),
    "code": Text("代码", "code"),
    "n_decisions": Text("共 {n} 条判定，第 {page}/{pages} 页",
                        "{n} decisions, page {page} of {pages}"),
    # audited actions: a confirmation and a note, then who, when and the note on the pages
    "confirm_title": Text("请确认", "Please confirm"),
    "confirm_unblock": Text("从禁充名单移除 {target}", "remove {target} from the block list"),
    "confirm_handle": Text("将记录 {target} 标记为已处理", "mark record {target} handled"),
    "confirm_retry": Text("重新上报被拒收的记录 {target}", "send dead record {target} again"),
    "note": Text("备注（必填：原因、核实情况）", "note (required: why, what was checked)"),
    "note_needed": Text("请填写备注后再确认", "write a note, then confirm"),
    "confirm": Text("确认", "Confirm"),
    "cancel": Text("取消", "Cancel"),
    "action_unblock": Text("移除禁充", "removed from block list"),
    "action_handle": Text("标记已处理", "marked handled"),
    "action_retry": Text("重新上报", "sent again"),
    "action_user": Text("操作人", "by"),
    "action_at": Text("时间", "when"),
    "action_target": Text("对象", "on"),
    "action_note": Text("备注", "note"),
    "action_nothing": Text("（无可更改）", "(nothing to change)"),
    "recent_actions": Text("最近的管理操作", "recent manager actions"),
    # the printable day report
    "report_title": Text("充装日报 {day}", "Day report {day}"),
    "report_day": Text("日期", "day"),
    "report_show": Text("显示", "Show"),
    "print": Text("打印", "Print"),
    "report_by_rig": Text("按工位", "per rig"),
    "report_by_operator": Text("按充装人员", "per operator"),
    "printed_at": Text("打印时间", "printed"),
    # a city record's fields on the cylinder page (the wire contract's names)
    "rec_id": Text("档案ID", "id"), "rec_info_code": Text("信息化编码", "information code"),
    "rec_product_no": Text("12位编码（产品编号）", "12-digit number (product no.)"),
    "rec_rfid_uid": Text("RFID 编号", "RFID UID"),
    "rec_user_unit_name": Text("使用单位", "user unit"),
    "rec_medium_code": Text("充装介质", "medium"), "rec_status": Text("状态", "status"),
    "rec_next_inspection_date": Text("下次检验", "next inspection"),
    "rec_last_inspection_date": Text("上次检验", "last inspection"),
    "rec_manufacture_date": Text("制造年月", "made"),
    "rec_manufacturer": Text("制造单位", "manufacturer"),
    "rec_unit_internal_no": Text("单位内编号", "unit's own number"),
    "rec_registration_cert_no": Text("使用登记证号", "registration certificate"),
    "rec_tare_kg": Text("皮重 kg", "tare kg"),
    "rec_fill_capacity_kg": Text("充装量 kg", "fill capacity kg"),
    "rec_volume_l": Text("容积 L", "volume L"),
    "rec_nominal_pressure_mpa": Text("公称压力 MPa", "nominal pressure MPa"),
}

# The operator's checklists on the rig screen (issue 17): the web keeps no device; the daemon
# takes the answer at its next poll.
CHECKLIST: dict[str, Text] = {
    "checks_pre": Text("充装前检查：不合格的项目请点选标红，然后提交；全部合格请点“全部合格”",
                       "pre-fill check: tap items that are NOT OK, then send; or tap all OK"),
    "checks_post": Text("充装后检查（检漏）：不合格的项目请点选标红，然后提交",
                        "post-fill check (leaks): tap items that are NOT OK, then send"),
    "checks_all_ok": Text("全部合格", "all OK"),
    "checks_send": Text("提交", "send"),
    "checks_sending": Text("正在提交…", "sending…"),
    "checks_sent": Text("已提交，等待确认", "sent: waiting for the station"),
    "checks_failed": Text("提交失败，请重试", "not sent: try again"),
    "checks_stale": Text("该检查已结束或已更换气瓶，请看屏幕上当前的检查", "this checklist has ended"),
    "checks_bad": Text("检查结果格式不正确", "malformed checklist answer"),
}
T.update(CHECKLIST)

# Every state, check and event a person sees (issue 16, item 4): value → Chinese, English.
STATES: dict[str, Text] = {
    # post-fill checks and record states
    "ok": Text("合格", "ok"), "overfill": Text("超装", "overfill"),
    "underfill": Text("欠装", "underfill"), "interrupted": Text("中断", "interrupted"),
    "defect": Text("充后检查不合格", "post-fill check: defect"),
    "cancelled": Text("已取消（未使用许可）", "cancelled (permit unused)"),
    "residual": Text("残液", "residual"), "closed": Text("已完成", "closed"),
    "open": Text("进行中", "open"),
    "(scale not stable)": Text("（秤未稳定）", "(scale not stable)"),
    # rig phases
    "idle": Text("空闲", "idle"), "accepted": Text("已受理", "accepted"),
    "permitted": Text("已许可", "permitted"), "filling": Text("充装中", "filling"),
    "ended": Text("充装结束", "ended"),
    # rig events
    "rig_connected": Text("工位已连接", "rig connected"), "rig_lost": Text("工位断开", "rig lost"),
    "permit_granted": Text("已发放许可", "permit granted"),
    "permit_withdrawn": Text("许可已撤回", "permit withdrawn"),
    "permit_failed": Text("许可写入失败", "permit write failed"),
    "pre_check_refused": Text("充前检查未通过", "pre-check refused"),
    "override_refused": Text("主管放行被拒绝", "override refused"),
    "reading_ignored": Text("读码被忽略", "reading ignored"),
    "badge_ignored": Text("工卡被忽略", "badge ignored"),
    "login": Text("登录", "log-in"), "logout": Text("退出", "log-out"),
    # end reasons, sources, delivery
    "done": Text("到达目标", "done"), "ESTOP": Text("急停", "emergency stop"),
    "cylinder removed": Text("气瓶被移走", "cylinder removed"),
    "city": Text("市平台", "city"), "cache": Text("本地缓存", "cache"),
    "pending": Text("待上报", "pending"), "delivered": Text("已上报", "delivered"),
    "dead": Text("被拒收", "dead (refused)"), "none": Text("不上报", "never sent"),
    # a cylinder's status in the city record
    "in_use": Text("在用", "in use"), "scrapped": Text("已报废", "scrapped"),
    "stopped": Text("已停用", "stopped"),
}

# CSV column headings (records and export; Chinese by default, `--lang en` / `?lang=en`).
COLUMNS: dict[str, Text] = {
    "record_id": Text("记录号", "record_id"), "fill_date": Text("充装日期", "fill_date"),
    "started": Text("开始时间", "started"), "ended": Text("结束时间", "ended"),
    "rig": Text("工位", "rig"), "operator": Text("充装人员", "operator"),
    "cylinder_id": Text("气瓶编号", "cylinder_id"), "info_code": Text("信息码", "info_code"),
    "medium": Text("介质", "medium"), "tare_kg": Text("皮重kg", "tare_kg"),
    "prefill_kg": Text("充前重kg", "prefill_kg"), "net_kg": Text("净重kg", "net_kg"),
    "target_kg": Text("目标kg", "target_kg"), "pre_check": Text("充前检查", "pre_check"),
    "post_check": Text("充后检查", "post_check"), "end_reason": Text("结束原因", "end_reason"),
    "source": Text("数据来源", "source"), "override_by": Text("放行主管", "override_by"),
    "override_reason": Text("放行原因", "override_reason"), "sync": Text("上报状态", "sync"),
    "attempts": Text("上报次数", "attempts"), "last_error": Text("最近错误", "last_error"),
    "trace_id": Text("追踪号", "trace_id"), "kind": Text("类别", "kind"),
    "id": Text("编号", "id"), "time": Text("时间", "time"), "reader": Text("读码器", "reader"),
    "reading": Text("读到内容", "reading"), "reading_kind": Text("读码类型", "reading_kind"),
    "permit": Text("许可", "permit"), "reason": Text("原因代码", "reason"),
    "warnings": Text("警告", "warnings"), "detail": Text("详情", "detail"),
    "cache_age_s": Text("缓存时长s", "cache_age_s"), "latency_ms": Text("耗时ms", "latency_ms"),
}


def state(value: object, lang: str) -> str:
    """A state, check or event in the reader's language: known words translated, a value with
    a tail ("overfill (scale not stable)", "residual 0.40 kg") by its first word and the
    rest; an unknown value as itself; None as a dash."""
    if value is None or value == "":
        return "-"
    text = str(value)
    whole = STATES.get(text)
    if whole is not None:
        return whole.en if lang == "en" else whole.zh
    head, _, rest = text.partition(" ")
    if head in STATES and rest:
        tail = STATES.get(rest)
        rest_text = (tail.en if lang == "en" else tail.zh) if tail else rest
        return f"{state(head, lang)} {rest_text}"
    return text


def csv_headers(columns: tuple[str, ...], lang: str) -> dict[str, str]:
    """Column key → heading for a CSV file (Chinese unless lang is "en")."""
    return {c: (COLUMNS[c].en if lang == "en" else COLUMNS[c].zh) if c in COLUMNS else c
            for c in columns}


def t(key: str, lang: str, **fmt: object) -> str:
    """The text for a key in a language, formatted; an unknown key shows as itself."""
    text = T.get(key)
    value = key if text is None else (text.en if lang == "en" else text.zh)
    return value.format(**fmt) if fmt else value


def both(key: str) -> dict[str, str]:
    text = T[key]
    return {"zh": text.zh, "en": text.en}


def reason(code: str) -> dict[str, str]:
    """A refusal reason or warning code in both languages (station.core.texts)."""
    text = reason_text(code)
    return {"zh": text.zh, "en": text.en}


def reason_in(code: str, lang: str) -> str:
    text = reason_text(code)
    return text.en if lang == "en" else text.zh
