"""The status page's fleet line: where this node takes its updates from (SPEC 7): the
leader's mirror, or the origin in fallback (and since when the mirror is unreachable)."""

from __future__ import annotations

from imss_updater.database.db import Database
from imss_updater.run import fleet_member
from imss_updater.settings import Settings
from imss_updater.web.context import _, language
from imss_updater.web.overview import Fact


def facts(database: Database, settings: Settings | None) -> list[Fact]:
    source, enabled = fleet_member.source_of(database, settings)
    line = fleet_member.source_line(source, enabled=enabled)
    if line is None:
        return []
    warning = (source.mode == "fallback" or source.unreachable_since is not None
               or source.mirror_behind is not None)
    return [Fact("fleet-source", _("Update source (fleet)"), line.render(language()), warning)]
