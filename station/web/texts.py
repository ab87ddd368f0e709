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
}


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
