"""Component history: every version each component had, when its source first offered it
(as a check saw it) and when this gateway installed it, so an administrator sees how far
behind the source the gateway ran. Three SQL statements whatever the history's length."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from flask import Blueprint, render_template
from flask.typing import ResponseReturnValue

from imss_updater import overview
from imss_updater.database.db import VersionSeen
from imss_updater.run.report import parse_or_none
from imss_updater.web.context import console, language
from imss_updater.web.overview import age_words

blueprint = Blueprint("history", __name__)


@dataclass
class VersionLine:
    version: str  # display text
    first_seen_at: datetime.datetime | None
    installed_at: datetime.datetime | None
    current: bool = False

    @property
    def delay(self) -> str | None:
        """How long after the source offered it the gateway installed it."""
        if self.first_seen_at is None or self.installed_at is None:
            return None
        amount, unit = overview.age_parts(self.installed_at - self.first_seen_at)
        return age_words(amount, unit)


@dataclass(frozen=True)
class ComponentHistory:
    id: str
    name: str
    lines: list[VersionLine]


def merge(rows: list[VersionSeen], component_id: str, current: str | None) -> list[VersionLine]:
    """Given the history rows, return one component's versions, newest first, each version
    once whatever its spelling (a pattern's raw ``1569700`` and displayed ``15.697.00``)."""
    merged: dict[object, VersionLine] = {}
    current_version = parse_or_none(current)
    for row in rows:
        if row.component != component_id:
            continue
        version = parse_or_none(row.version)
        key: object = version if version is not None else row.version
        line = merged.setdefault(key, VersionLine(version.display if version else row.version, None, None))
        line.first_seen_at = _earliest(line.first_seen_at, row.first_seen_at)
        line.installed_at = _earliest(line.installed_at, row.installed_at)
        line.current = line.current or (version is not None and version == current_version)
    ordered = sorted(merged.items(), key=lambda item: _order(item[0]), reverse=True)
    return [line for _, line in ordered]


def _order(key: object) -> tuple[int, tuple[int, ...], str]:
    fields = getattr(key, "fields", None)
    return (1, fields, "") if fields is not None else (0, (), str(key))


def _earliest(first: datetime.datetime | None, second: datetime.datetime | None) -> datetime.datetime | None:
    if first is None or second is None:
        return first or second
    return min(first, second)


@blueprint.route("/history")
def page() -> ResponseReturnValue:
    with console().pool.connection() as database:
        catalog = database.catalog()
        states = database.component_states()
        rows = database.version_history()
    components = []
    for component in catalog:
        state = states.get(component.id)
        components.append(ComponentHistory(
            component.id,
            component.name_ja if language() == "ja" else component.name_en,
            merge(rows, component.id, state.current_version if state else None),
        ))
    return render_template("history.html", components=components)
