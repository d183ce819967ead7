"""Each component's version history: first seen at the source (tb_version_seen) and
first installed (the success events of updates and imports)."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from imss_updater.database.connection import Connection


@dataclass(frozen=True)
class VersionSeen:
    component: str
    version: str  # as recorded: raw (first seen) or display (installed) text
    first_seen_at: datetime.datetime | None
    installed_at: datetime.datetime | None


class HistoryMixin(Connection):
    """Read the version history of every component."""

    def version_history(self) -> list[VersionSeen]:
        """Return, for this node, one row per (component, version text) seen at the source or installed by an
        update or an import (rollbacks are not arrivals), oldest first. A version recorded
        under two spellings (``1569700`` seen, ``15.697.00`` installed) comes as two rows:
        the caller merges them by parsed version."""
        with self.transaction() as cursor:
            cursor.execute(
                "SELECT coalesce(seen.component, installed.component),"
                " coalesce(seen.version, installed.version), seen.first_seen_at, installed.at"
                " FROM (SELECT component, version, first_seen_at FROM tb_version_seen WHERE node = %s) seen"
                " FULL OUTER JOIN ("
                "  SELECT component, version, min(time) AS at FROM tb_update_event"
                "  WHERE node = %s AND outcome = 'success' AND kind IN ('scheduled', 'manual')"
                "  AND version IS NOT NULL"
                "  GROUP BY component, version"
                " ) installed ON installed.component = seen.component AND installed.version = seen.version"
                " ORDER BY 3 NULLS LAST, 4",
                (self.node, self.node),
            )
            return [VersionSeen(*row) for row in cursor.fetchall()]
