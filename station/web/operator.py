"""The operator screen at the scale: the verdict in very large type, updated by polling."""

from __future__ import annotations

import json
from typing import Any

from .html import e
from .texts import both

POLL_MS = 300  # a change reaches the screen within the daemon's poll + this + one request

STYLE = """
html,body{margin:0;height:100%}
body{font-family:"Noto Sans CJK SC","Noto Sans SC","Source Han Sans SC","WenQuanYi Micro Hei",
 "Microsoft YaHei",sans-serif;color:#fff;background:#37474f;display:flex;flex-direction:column}
body.mode-ok{background:#1b7f3a}body.mode-refused{background:#c0211b}
body.mode-offline{background:#4a4f55}
#top{display:flex;justify-content:space-between;padding:1vh 2vw;font-size:3vh;
 background:#0003}
#verdict{text-align:center;padding:2vh 2vw 0}
#headline{font-size:min(13vw,22vh);font-weight:900;line-height:1.05;letter-spacing:.05em}
#headline-en{font-size:3.2vh;opacity:.9}
#reason{text-align:center;min-height:10vh;padding:1vh 2vw}
#reason-zh{font-size:min(7vw,10vh);font-weight:bold;line-height:1.15}
#reason-en{font-size:2.6vh;opacity:.9}
#warnings{text-align:center;font-size:4vh;color:#ffe082}
#facts{display:grid;grid-template-columns:repeat(4,1fr);gap:1vh 2vw;padding:2vh 3vw;
 margin-top:auto;background:#0002}
.fact .k{font-size:2.4vh;opacity:.85}.fact .v{font-size:4.6vh;font-weight:bold;
 overflow-wrap:anywhere}
#progress{padding:1.5vh 3vw 3vh;background:#0002}
#status{font-size:4vh;font-weight:bold;margin-bottom:.8vh}
#bar{height:5vh;background:#0004;border-radius:1vh;overflow:hidden}
#fill{height:100%;width:0;background:#fff;transition:width .25s linear}
#mass{font-size:4.5vh;font-variant-numeric:tabular-nums;margin-top:.6vh}
#barbox.hidden{display:none}
#conn{position:fixed;left:0;right:0;bottom:0;background:#000c;text-align:center;
 font-size:3vh;padding:1vh}
#conn.hidden{display:none}
"""

SCRIPT = """
(function(){
"use strict";
const initial = JSON.parse(document.getElementById("initial").textContent);
const T = initial.texts, url = "/api/rig/" + encodeURIComponent(initial.state.rig);
const $ = (id) => document.getElementById(id);
let lastOk = Date.now();
function set(id, text){ const el = $(id); text = text == null ? "" : String(text);
  if (el.textContent !== text) el.textContent = text; }
function kg(g){ return g == null ? "-" : (g / 1000).toFixed(2); }
function render(s){
  document.body.className = "mode-" + s.mode;
  const d = document.body.dataset;
  d.mode = s.mode; d.decision = s.decision_id == null ? "" : s.decision_id;
  d.net = s.net_g == null ? "" : s.net_g; d.phase = s.phase;
  set("headline", s.headline.zh); set("headline-en", s.headline.en);
  set("reason-zh", s.reason ? s.reason.zh : ""); set("reason-en", s.reason ? s.reason.en : "");
  set("warnings", (s.warnings || []).map((w) => w.zh + " / " + w.en).join("  ·  "));
  set("cylinder", s.cylinder_id || "-"); set("medium", s.medium || "-");
  set("next-inspection", s.next_inspection || "-");
  set("operator", s.operator || T.no_operator.zh + " / " + T.no_operator.en);
  set("fault", s.connected && s.fault ? T.fault.zh + ": " + s.fault : "");
  const show = s.target_g > 0 && s.net_g != null && !s.stale;
  $("barbox").className = show ? "" : "hidden";
  if (show) {
    const pct = Math.max(0, Math.min(100, 100 * s.net_g / s.target_g));
    $("fill").style.width = pct.toFixed(1) + "%";
    set("mass", kg(s.net_g) + " / " + kg(s.target_g) + " kg");
  }
  set("status", s.status ? s.status.zh + " / " + s.status.en : "");
}
async function tick(){
  const ctl = new AbortController(), timer = setTimeout(() => ctl.abort(), 2000);
  try {
    const r = await fetch(url, {cache: "no-store", signal: ctl.signal});
    if (r.ok) { render(await r.json()); lastOk = Date.now(); }
  } catch (err) { /* shown below when it lasts */ }
  clearTimeout(timer);
  const lost = Date.now() - lastOk > 3000;
  $("conn").className = lost ? "" : "hidden";
  if (lost) { document.body.className = "mode-offline"; document.body.dataset.mode = "offline"; }
  setTimeout(tick, POLL_MS);
}
render(initial.state);
setTimeout(tick, POLL_MS);
})();
"""

TEXT_KEYS = ("no_operator", "fault", "connection_lost")


def page(state: dict[str, Any], nonce: str) -> str:
    """The whole screen; the first picture is rendered by the same script that updates it."""
    data = json.dumps({"state": state, "texts": {k: both(k) for k in TEXT_KEYS}},
                      ensure_ascii=False)
    data = data.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    lost = both("connection_lost")

    def fact(key: str, ident: str) -> str:
        k = both(key)
        return (f'<div class="fact"><div class="k">{e(k["zh"])} {e(k["en"])}</div>'
                f'<div class="v" id="{ident}">-</div></div>')

    title = both("screen_title")
    return (
        f'<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width,initial-scale=1">'
        f'<title>{e(state["rig"])} · {e(title["zh"])}</title>'
        f'<style nonce="{nonce}">{STYLE}</style></head>'
        f'<body class="mode-{e(state["mode"])}" data-mode="{e(state["mode"])}">'
        f'<div id="top"><span>{e(title["zh"])} {e(state["rig"])}</span>'
        f'<span id="fault"></span></div>'
        f'<div id="verdict"><div id="headline"></div><div id="headline-en"></div></div>'
        f'<div id="reason"><div id="reason-zh"></div><div id="reason-en"></div></div>'
        f'<div id="warnings"></div>'
        f'<div id="facts">{fact("cylinder", "cylinder")}{fact("medium", "medium")}'
        f'{fact("next_inspection", "next-inspection")}{fact("operator", "operator")}</div>'
        f'<div id="progress"><div id="status"></div><div id="barbox" class="hidden">'
        f'<div id="bar"><div id="fill"></div></div><div id="mass"></div></div></div>'
        f'<div id="conn" class="hidden">{e(lost["zh"])} / {e(lost["en"])}</div>'
        f'<script type="application/json" id="initial">{data}</script>'
        f'<script nonce="{nonce}">{SCRIPT.replace("POLL_MS", str(POLL_MS))}</script>'
        f'</body></html>')
