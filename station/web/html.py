"""HTML building blocks: escaping, the managers' page frame, forms with their CSRF token."""

from __future__ import annotations

import html
from collections.abc import Iterable
from urllib.parse import urlencode

from station.web.texts import t

STYLE = """
:root{font-family:"Noto Sans CJK SC","Noto Sans SC","Source Han Sans SC","WenQuanYi Micro Hei",
 "Microsoft YaHei",sans-serif;color:#1b1f24;background:#f4f5f7}
body{margin:0}header{background:#1f3a5f;color:#fff;padding:.5em 1em;display:flex;
 flex-wrap:wrap;gap:.2em 1.2em;align-items:center}
header a{color:#fff;text-decoration:none}header a.on{text-decoration:underline;font-weight:bold}
header .site{font-weight:bold;margin-right:1em}header .me{margin-left:auto}
header form{display:inline;margin:0}header button{background:none;border:1px solid #fff;
 color:#fff;border-radius:3px;cursor:pointer}
main{padding:1em;max-width:1400px}h1{font-size:1.3em;margin:.2em 0 .6em}
table{border-collapse:collapse;background:#fff;font-size:.9em}
th,td{border:1px solid #d0d4da;padding:.25em .5em;text-align:left;vertical-align:top}
th{background:#e8ebef}td.num{text-align:right;font-variant-numeric:tabular-nums}
.note{padding:.5em .8em;border-radius:4px;margin:.5em 0;background:#e7f3e8;color:#1d5b26}
.warn{background:#fdecea;color:#8a1c12}.muted{color:#667}
form.filters{display:flex;flex-wrap:wrap;gap:.5em 1em;align-items:end;margin-bottom:1em}
form.filters label{display:flex;flex-direction:column;font-size:.85em}
input,select,button{font:inherit;padding:.2em .4em}
.bad{color:#b3261e;font-weight:bold}.ok{color:#1d7a35}
.login{max-width:22em;margin:3em auto;background:#fff;padding:1.5em;border-radius:6px;
 box-shadow:0 1px 4px #0002}.login label{display:block;margin:.6em 0}
.login input{width:100%;box-sizing:border-box}
footer{padding:.5em 1em 1em;color:#667;font-size:.85em}
.badge{display:inline-block;min-width:1.1em;padding:0 .35em;margin-left:.25em;border-radius:.6em;
 background:#fff;color:#1f3a5f;font-size:.8em;text-align:center;font-weight:bold}
.badge.bad{background:#e0453a;color:#fff}
header form.search input{width:12em}
.cards{display:flex;flex-wrap:wrap;gap:.8em;margin:.5em 0 1em}
.card{background:#fff;border:1px solid #d0d4da;border-radius:6px;padding:.6em .9em;min-width:9em}
.card .n{font-size:1.8em;font-weight:bold;display:block}.card a{color:inherit}
.card.alarm{border-color:#e0453a;background:#fdecea}.card.alarm .n{color:#b3261e}
.card small{display:block;color:#667}
.confirm{background:#fff;padding:1em;border-radius:6px;max-width:40em}
.confirm textarea{width:100%;box-sizing:border-box;min-height:4em}
@media print{header,footer,form,.noprint{display:none!important}body{background:#fff}
 main{padding:0;max-width:none}table{font-size:9pt}th{background:#eee!important}
 a{color:inherit;text-decoration:none}@page{size:A4;margin:12mm}}
@media (max-width:800px){main{padding:.5em}table{font-size:.8em}
 header form.search input{width:8em}}
"""


def e(value: object) -> str:
    """Escape any value for HTML text or a quoted attribute; None shows as a dash."""
    return "-" if value is None else html.escape(str(value), quote=True)


def csrf_field(token: str) -> str:
    return f'<input type="hidden" name="csrf" value="{e(token)}">'


def post_button(action: str, label: str, csrf: str, hidden: dict[str, str] | None = None,
                css: str = "") -> str:
    """A one-button form that POSTs to `action` with its CSRF token."""
    fields = "".join(f'<input type="hidden" name="{e(k)}" value="{e(v)}">'
                     for k, v in (hidden or {}).items())
    cls = f' class="{e(css)}"' if css else ""
    return (f'<form method="post" action="{e(action)}"{cls}>{csrf_field(csrf)}{fields}'
            f'<button type="submit">{e(label)}</button></form>')


def href(path: str, items: Iterable[tuple[str, str]] = ()) -> str:
    query = urlencode(list(items))
    return path + ("?" + query if query else "")


NAV = (("/home", "nav_home"), ("/records", "nav_records"), ("/decisions", "nav_decisions"), ("/refusals", "nav_refusals"), ("/issues", "nav_issues"),
       ("/blocklist", "nav_blocklist"), ("/outbox", "nav_outbox"), ("/health", "nav_health"),
       ("/report", "nav_report"), ("/", "nav_screens"))


def frame(title: str, body: str, *, lang: str, path: str, query: list[tuple[str, str]],
          user: str | None, csrf: str | None, nonce: str, footer: str = "",
          badges: dict[str, tuple[int, bool]] | None = None) -> str:
    """The managers' page: header with navigation (a count badge after a link in `badges`:
    path → (count, alarming); none for 0), the search box, language switch and sign-out, then
    body and the footer (already-escaped HTML)."""
    other = "en" if lang == "zh" else "zh"
    switch = href(path, [(k, v) for k, v in query if k != "lang"] + [("lang", other)])
    links = "".join(f'<a href="{p}"{" class=on" if p == path else ""}>{e(t(key, lang))}'
                    f'{badge(*(badges or {}).get(p, (0, False)))}</a>'
                    for p, key in NAV) if user else ""
    if user:
        links += (f'<form method="get" action="/search" class="search" role="search">'
                  f'<input name="q" type="search" placeholder="{e(t("search", lang))}" '
                  f'title="{e(t("search_hint", lang))}" maxlength="300"></form>')
    me = ""
    if user and csrf:
        me = (f'<span class="me">{e(t("signed_in_as", lang))}: {e(user)} '
              f'{post_button("/logout", t("sign_out", lang), csrf)}</span>')
    return (f'<!doctype html><html lang="{"zh-CN" if lang == "zh" else "en"}"><head>'
            f'<meta charset="utf-8"><meta name="viewport" content="width=device-width">'
            f'<title>{e(title)} · {e(t("site", lang))}</title>'
            f'<style nonce="{nonce}">{STYLE}</style></head><body><header>'
            f'<span class="site">{e(t("site", lang))}</span>{links}'
            f'<a href="{e(switch)}" lang="{other}">{e(t("other_lang", lang))}</a>{me}'
            f'</header><main><h1>{e(title)}</h1>{body}</main>'
            f'{f"<footer>{footer}</footer>" if footer else ""}</body></html>')


def table(headers: list[str], rows: Iterable[list[str]], empty: str = "") -> str:
    """A table from already-escaped cells (callers escape with e())."""
    body = "".join("<tr>" + "".join(cell if cell.startswith("<td") else f"<td>{cell}</td>"
                                    for cell in row) + "</tr>" for row in rows)
    if not body:
        return f'<p class="muted">{e(empty)}</p>' if empty else ""
    head = "".join(f"<th>{e(h)}</th>" for h in headers)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def num(value: object) -> str:
    return f'<td class="num">{e(value)}</td>'


def note(text: str, bad: bool = False) -> str:
    return f'<p class="note{" warn" if bad else ""}" role="status">{e(text)}</p>'


def badge(n: int, alarming: bool = False) -> str:
    """A count after a navigation link ('' for none)."""
    if n <= 0:
        return ""
    return f' <span class="badge{" bad" if alarming else ""}" data-n="{n}">{n}</span>'
