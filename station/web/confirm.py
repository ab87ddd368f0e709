"""The confirmation page of an audited manager action: what will happen, a note, confirm."""

from __future__ import annotations

from station.web.html import csrf_field, e, note
from station.web.pages import Viewer

# action → (where its list is, the form field its target travels in on the old paths)
BACK = {"unblock": "/blocklist", "handle": "/issues", "retry": "/outbox"}


def page(v: Viewer, action: str, target: str, error: bool = False, typed: str = "") -> str:
    """A form that POSTs to /act with the action, its target, a required note and the CSRF
    token; the list it came from as the way back."""
    warn = note(v.t("note_needed"), True) if error else ""
    return (f'<form method="post" action="/act" class="confirm" id="confirm">{warn}'
            f'{csrf_field(v.csrf)}<input type="hidden" name="action" value="{e(action)}">'
            f'<input type="hidden" name="target" value="{e(target)}">'
            f'<p><strong>{e(v.t("confirm_" + action, target=target))}</strong></p>'
            f'<label>{e(v.t("note"))}<textarea name="note" required maxlength="500">'
            f'{e(typed) if typed else ""}</textarea></label>'
            f'<p><button type="submit" name="confirm" value="1">{e(v.t("confirm"))}</button> '
            f'<a href="{BACK[action]}">{e(v.t("cancel"))}</a></p></form>')
