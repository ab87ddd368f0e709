"""[checks], [[checks.pre]], [[checks.post]] and [photos]: what the operator checks, a photo per fill."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from station.config.spec import opt, read, unique
from station.confread import Section
from station.core.checklist import DEFAULT_POST, DEFAULT_PRE, KEY_RE, CheckItem
from station.core.codes import MEDIA

ASK = ("screen", "button", "off")


@dataclass(frozen=True)
class ChecksConfig:
    """How the pre-/post-fill checklists are answered (station.core.checklist).

    `ask`: "screen" — on the rig's operator screen (a tablet), the permit waits for the answer;
    "button" — for a station without tablets: the permit waits for the controller's "checks OK"
    button (`[rigs.registers] checks_ok`, a discrete input), which answers the pre-fill list
    "all OK"; the post-fill list is not asked (the record says so); "off" — today's behaviour:
    no checklist, the records carry only what the rig measured.
    """

    ask: str = opt("off", choices=ASK)
    answer_within_s: float = opt(300.0, 10, 3600)  # a question unanswered this long lapses
    pre: tuple[CheckItem, ...] = DEFAULT_PRE
    post: tuple[CheckItem, ...] = DEFAULT_POST


@dataclass(frozen=True)
class PhotosConfig:
    """A JPEG per fill from the rig's camera, kept beside the store (station.store.photos)."""

    dir: str = opt("", allow_empty=True)  # "" : `photos` beside the store; relative: to the file
    budget_mb: int = opt(2048, 10, 10_000_000)  # the folder's budget; rotation keeps it under


def item(sec: Section) -> CheckItem:
    """One [[checks.pre]] / [[checks.post]] table → CheckItem."""
    key = sec.get_str("key", maxlen=24, pattern=KEY_RE.pattern)
    label = sec.get_str("label", maxlen=40)
    media = tuple(sec.get_str_list("media", [], choices=tuple(MEDIA)))
    out = CheckItem(key, label, sec.get_bool("required", True), sec.get_bool("refuses", True),
                    frozenset(media))
    sec.done()
    return out


def checks(sec: Section) -> ChecksConfig:
    """[checks] with its lists; a list left out keeps the built-in LPG list, an empty one
    (`pre = []`) asks nothing at that stage."""
    lists = {}
    for stage in ("pre", "post"):
        if stage in sec.data:
            items = tuple(item(s) for s in sec.subs(stage))
            unique(sec, stage, [i.key for i in items], "key")
            lists[stage] = items
    cfg = ChecksConfig(**read(sec, ChecksConfig), **lists)
    sec.done()
    return cfg


def photos(sec: Section, file: str, store: str) -> PhotosConfig:
    """[photos]; the folder defaults to `photos` beside the store."""
    values = read(sec, PhotosConfig)
    folder = values["dir"] or str(Path(store).parent / "photos")
    if not Path(folder).is_absolute():
        folder = str((Path(file).resolve().parent / folder).resolve())
    sec.done()
    return PhotosConfig(dir=folder, budget_mb=values["budget_mb"])
