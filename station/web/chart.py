"""Refusals by reason and day as a server-rendered SVG stacked bar chart (no script, no assets)."""

from __future__ import annotations

from station.core.texts import REASONS
from station.web.html import e
from station.web.texts import reason_in, t

PALETTE = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1",
           "#ff9da7", "#9c755f", "#17becf", "#1f3a93", "#8c564b", "#bcbd22", "#d62728",
           "#7f7f7f")  # one distinct colour per reason, in rule order
W, H, LEFT, TOP, BOTTOM, RIGHT = 860, 300, 44, 12, 40, 12


def colour(code: str) -> str:
    order = list(REASONS)
    index = order.index(code) if code in order else len(order) + sum(map(ord, code))
    return PALETTE[index % len(PALETTE)]


def _ticks(top: int) -> list[int]:
    """About five round gridline values from 0 to at least `top`."""
    step = 1
    while top / step > 5:
        step = step * 5 // 2 if str(step).startswith("2") else step * 2
    return list(range(0, top + step, step))


def refusal_chart(dates: list[str], counts: dict[str, dict[str, int]], lang: str) -> str:
    """A stacked bar per day, one colour per reason (rule order), with a legend and titles."""
    reasons = sorted(counts, key=lambda c: (list(REASONS).index(c) if c in REASONS else 99, c))
    totals = [sum(counts[r].get(d, 0) for r in reasons) for d in dates]
    ticks = _ticks(max([*totals, 1]))
    ymax = ticks[-1]
    plot_w, plot_h = W - LEFT - RIGHT, H - TOP - BOTTOM
    slot = plot_w / max(len(dates), 1)
    bar = max(2.0, slot * 0.7)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" width="{W}" '
             f'height="{H}" role="img" aria-label="{e(t("nav_refusals", lang))}" '
             f'font-size="11" font-family="sans-serif">']
    for v in ticks:
        y = TOP + plot_h - v / ymax * plot_h
        parts.append(f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" '
                     f'stroke="#dde" /><text x="{LEFT - 6}" y="{y + 4:.1f}" '
                     f'text-anchor="end">{v}</text>')
    label_every = max(1, round(len(dates) / 15))
    for i, day in enumerate(dates):
        x = LEFT + i * slot + (slot - bar) / 2
        y = TOP + plot_h
        for code in reasons:
            n = counts[code].get(day, 0)
            if not n:
                continue
            h = n / ymax * plot_h
            y -= h
            parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                         f'fill="{colour(code)}" data-reason="{e(code)}" data-day="{e(day)}" '
                         f'data-n="{n}"><title>{e(day)} {e(reason_in(code, lang))}: {n}'
                         f'</title></rect>')
        if i % label_every == 0:
            parts.append(f'<text x="{x + bar / 2:.1f}" y="{TOP + plot_h + 14}" '
                         f'text-anchor="middle">{e(day[5:])}</text>')
    parts.append(f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{TOP + plot_h}" y2="{TOP + plot_h}" '
                 f'stroke="#445" /></svg>')
    return "".join(parts) + legend(reasons, lang)


def legend(reasons: list[str], lang: str) -> str:
    items = "".join(f'<li><svg width="12" height="12"><rect width="12" height="12" '
                    f'fill="{colour(c)}"/></svg> {e(reason_in(c, lang))} '
                    f'<span class="muted">{e(c)}</span></li>' for c in reasons)
    return f'<ul class="legend">{items}</ul>'
