"""The operator screen at the scale: the verdict in very large type, updated by polling."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from station.web.html import e
from station.web.texts import t

POLL_MS = 300  # a change reaches the screen within the daemon's poll + this + one request
LOST_MS = 3000  # no answer for this long: the screen says the connection is lost

# Colours by hmi colour; sizes in viewport units so one layout holds at 1280×800, 800×1280
# and 390×844. CJK headlines break only at their spaces (" — "), ids never mid-word.
STYLE = """
html,body{margin:0;height:100%}
body{font-family:"Noto Sans CJK SC","Noto Sans SC","Source Han Sans SC","WenQuanYi Micro Hei",
 "Microsoft YaHei",sans-serif;color:#fff;background:#455a64;display:flex;flex-direction:column}
body.c-green{background:#1b7f3a}body.c-red{background:#c0211b}body.c-amber{background:#b26a00}
body.c-blue{background:#1554a8}body.c-grey{background:#455a64}body.c-dark{background:#263238}
#top{display:flex;justify-content:space-between;gap:2vw;padding:1vh 2vw;font-size:min(3vh,4.5vw);
 background:#0003;white-space:nowrap}
#main{flex:1;display:flex;flex-direction:column;justify-content:center;align-items:center;
 text-align:center;padding:1vh 3vw;min-height:0}
#headline{font-size:min(11vw,16vh);font-weight:900;line-height:1.1;word-break:keep-all;
 overflow-wrap:normal}
#detail{font-size:min(6.5vw,8vh);font-weight:bold;line-height:1.2;margin-top:1vh;
 word-break:keep-all}
#massbox{width:100%;margin-top:1vh}
#mass{font-size:min(9vw,12vh);font-weight:900;font-variant-numeric:tabular-nums;
 white-space:nowrap}#of{font-size:.5em;font-weight:bold;opacity:.9}
#bar{height:min(6vh,8vw);background:#0005;border-radius:1vh;overflow:hidden;margin:1vh 0}
#fill{height:100%;width:0;background:#fff;transition:width .25s linear}
body[data-state=filling] #headline,body[data-state=settling] #headline{font-size:min(7vw,9vh)}
body[data-state=filling] #mass,body[data-state=settling] #mass{font-size:min(16vw,22vh)}
#en{font-size:min(2.4vh,3.6vw);opacity:.85;margin-top:1vh}
#warnings{font-size:min(4vh,5vw);color:#ffe082;margin-top:1vh}
#facts{display:flex;flex-wrap:wrap;justify-content:space-around;gap:1vh 4vw;padding:1.5vh 3vw;
 background:#0002}
.fact .k{font-size:min(2.4vh,3.6vw);opacity:.85}
.fact .v{font-size:min(4.6vh,6vw);font-weight:bold;white-space:nowrap}
.hidden{display:none!important}
#checks{background:#0004;padding:1.5vh 3vw;font-size:min(3.4vh,4.6vw)}
#checks-title{font-weight:bold;margin-bottom:1vh}
#checks-items{display:flex;flex-wrap:wrap;gap:1vh 1.5vw}
#checks button{font:inherit;color:#fff;border:0.4vh solid #fff;border-radius:1vh;
 padding:1.2vh 2vw;background:#1b7f3a;min-height:6vh}
#checks .item[data-mark=not_ok]{background:#c0211b}#checks .item[data-mark=skipped]{
 background:#607d8b;text-decoration:line-through}
#checks-actions{display:flex;gap:2vw;margin-top:1.5vh;align-items:center}
#checks-all{font-size:1.4em!important;font-weight:900}#checks-send{background:#b26a00!important}
#conn{position:fixed;left:0;right:0;bottom:0;background:#000d;text-align:center;
 font-size:min(4vh,5vw);padding:1.5vh}
"""

SCRIPT = """
(function(){
"use strict";
const initial = JSON.parse(document.getElementById("initial").textContent);
const url = "/api/rig/" + encodeURIComponent(initial.state.rig), PAGE = initial.state.page;
const $ = (id) => document.getElementById(id);
let lastOk = Date.now(), wakeLock = null, lastKey = initial.state.key, audio = null;
let current = null;  /* the checklist question on screen */
function beep(){  /* [web] screen_sound: 0.3 s at 880 Hz (a kiosk must allow autoplay) */
  try {
    audio = audio || new AudioContext();
    const osc = audio.createOscillator(), gain = audio.createGain();
    osc.frequency.value = 880; gain.gain.value = 0.3;
    osc.connect(gain).connect(audio.destination);
    osc.start(); osc.stop(audio.currentTime + 0.3);
  } catch (err) { /* no sound here: the lamps and the buzzer still say it */ }
  document.body.dataset.beeps = String(Number(document.body.dataset.beeps || 0) + 1);
}
function set(id, text){ const el = $(id); text = text == null ? "" : String(text);
  if (el.textContent !== text) el.textContent = text; }
function cycle(b){  /* ok → not OK (→ not applicable, optional items) → ok */
  const order = b.dataset.required === "1" ? ["ok", "not_ok"] : ["ok", "not_ok", "skipped"];
  b.dataset.mark = order[(order.indexOf(b.dataset.mark) + 1) % order.length];
}
function renderChecks(q){
  const box = $("checks");
  if (!q) { box.className = "hidden"; box.dataset.token = ""; current = null; return; }
  box.className = ""; current = q;
  if (box.dataset.token === q.token) return;  /* the same question: keep the operator's marks */
  box.dataset.token = q.token; box.dataset.stage = q.stage;
  set("checks-title", q.stage === "pre" ? initial.texts.checks_pre : initial.texts.checks_post);
  set("checks-status", "");
  const list = $("checks-items"); list.textContent = "";
  for (const it of q.items) {
    const b = document.createElement("button");
    b.type = "button"; b.className = "item"; b.textContent = it.label;
    b.dataset.key = it.key; b.dataset.mark = "ok"; b.dataset.required = it.required ? "1" : "0";
    b.addEventListener("click", () => cycle(b));
    list.appendChild(b);
  }
}
async function answer(all){  /* all: one tap "全部合格"; else the marks as set */
  const q = current; if (!q) return;
  const items = [...document.querySelectorAll("#checks-items .item")];
  const pick = (m) => all ? "" : items.filter((b) => b.dataset.mark === m)
    .map((b) => b.dataset.key).join(",");
  const body = new URLSearchParams({stage: q.stage, decision_id: String(q.decision_id),
    cylinder_id: q.cylinder_id || "", token: q.token, not_ok: pick("not_ok"),
    skipped: pick("skipped")});
  set("checks-status", initial.texts.checks_sending);
  try {
    const r = await fetch(url + "/checks", {method: "POST", body: body, cache: "no-store"});
    const j = await r.json();
    set("checks-status", r.ok ? initial.texts.checks_sent : (j.error || String(r.status)));
    document.body.dataset.answered = r.ok ? q.token : "";
  } catch (err) { set("checks-status", initial.texts.checks_failed); }
}
function kg(g){ return g == null ? "-" : (g / 1000).toFixed(2); }
function render(s){
  document.body.className = "c-" + s.colour;
  const d = document.body.dataset;
  d.state = s.state; d.mode = s.mode; d.phase = s.phase;
  d.decision = s.decision_id == null ? "" : s.decision_id;
  d.net = s.net_g == null ? "" : s.net_g;
  set("headline", s.headline.zh); set("detail", s.detail); set("en", s.headline.en);
  set("warnings", (s.warnings || []).map((w) => w.zh).join("  ·  "));
  set("cylinder", s.cylinder_id || "-"); set("medium", s.medium || "-");
  set("next-inspection", s.next_inspection || "-");
  set("operator", s.operator || initial.texts.no_operator);
  const show = s.target_g > 0 && s.net_g != null;
  $("massbox").className = show ? "" : "hidden";
  if (show) {
    const pct = Math.max(0, Math.min(100, 100 * s.net_g / s.target_g));
    $("fill").style.width = pct.toFixed(1) + "%";
    set("net", kg(s.net_g)); set("of", " / " + kg(s.target_g) + " kg");
  }
  $("facts").className = s.cylinder_id ? "" : "hidden";
  renderChecks(s.question);
  if (s.key !== lastKey) { lastKey = s.key; if (initial.sound && s.alarm) beep(); }
}
async function wake(){  /* keep the tablet's screen on where the browser allows it */
  try {
    if (!wakeLock && "wakeLock" in navigator && document.visibilityState === "visible") {
      wakeLock = await navigator.wakeLock.request("screen");
      document.body.dataset.wake = "on";
      wakeLock.addEventListener("release", () => { wakeLock = null; });
    }
  } catch (err) { document.body.dataset.wake = "refused"; }
}
async function tick(){
  const ctl = new AbortController(), timer = setTimeout(() => ctl.abort(), 2000);
  try {
    const r = await fetch(url, {cache: "no-store", signal: ctl.signal});
    const s = await r.json();  /* a 503 carries the screen too (the store unreadable) */
    if (s.page && s.page !== PAGE) { location.reload(); return; }  /* a newer server */
    if (s.state) { render(s); lastOk = Date.now(); }
  } catch (err) {  /* a web restart, a network blip: shown below when it lasts */
    document.body.dataset.fails = String(Number(document.body.dataset.fails || 0) + 1);
  }
  clearTimeout(timer);
  const lost = Date.now() - lastOk > LOST_MS;
  $("conn").className = lost ? "" : "hidden";
  if (lost) { document.body.className = "c-dark"; document.body.dataset.mode = "offline";
    document.body.dataset.state = "web_gone"; }
  setTimeout(tick, POLL_MS);
}
document.addEventListener("visibilitychange", wake);
$("checks-all").addEventListener("click", () => answer(true));
$("checks-send").addEventListener("click", () => answer(false));
render(initial.state);
wake();
setTimeout(tick, POLL_MS);
})();
"""

PAGE_ID = hashlib.sha256((STYLE + SCRIPT).encode("utf-8")).hexdigest()[:12]

def page(state: dict[str, Any], nonce: str, sound: bool = False) -> str:
    """The whole screen; the first picture is rendered by the same script that updates it.
    Chinese only, but for the small English line (#en) under the headline. `sound`: beep
    when a new alarm (refusal, overfill, …) is shown ([web] screen_sound)."""
    texts = {k: t(k, "zh") for k in ("no_operator", "checks_pre", "checks_post",
                                      "checks_sending", "checks_sent", "checks_failed")}
    data = json.dumps({"state": state, "sound": sound, "texts": texts}, ensure_ascii=False)
    data = data.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")

    def fact(key: str, ident: str) -> str:
        return (f'<div class="fact"><div class="k">{e(t(key, "zh"))}</div>'
                f'<div class="v" id="{ident}">-</div></div>')

    title = t("screen_title", "zh")
    script = SCRIPT.replace("LOST_MS", str(LOST_MS)).replace("POLL_MS", str(POLL_MS))
    return (
        f'<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width,initial-scale=1">'
        f'<title>{e(state["rig"])} · {e(title)}</title>'
        f'<style nonce="{nonce}">{STYLE}</style></head>'
        f'<body class="c-{e(state["colour"])}" data-state="{e(state["state"])}">'
        f'<div id="top"><span>{e(title)} {e(state["rig"])}</span>'
        f'<span>{e(t("operator", "zh"))}：<b id="operator"></b></span></div>'
        f'<div id="main"><div id="headline"></div><div id="detail"></div>'
        f'<div id="massbox" class="hidden"><div id="mass"><span id="net"></span>'
        f'<span id="of"></span></div>'
        f'<div id="bar"><div id="fill"></div></div></div>'
        f'<div id="en" lang="en"></div><div id="warnings"></div></div>'
        f'<div id="facts">{fact("cylinder", "cylinder")}{fact("medium", "medium")}'
        f'{fact("next_inspection", "next-inspection")}</div>'
        f'<div id="checks" class="hidden"><div id="checks-title"></div>'
        f'<div id="checks-items"></div><div id="checks-actions">'
        f'<button type="button" id="checks-all">{e(t("checks_all_ok", "zh"))}</button>'
        f'<button type="button" id="checks-send">{e(t("checks_send", "zh"))}</button>'
        f'<span id="checks-status"></span></div></div>'
        f'<div id="conn" class="hidden">{e(t("connection_lost", "zh"))}</div>'
        f'<script type="application/json" id="initial">{data}</script>'
        f'<script nonce="{nonce}">{script}</script>'
        f'</body></html>')
