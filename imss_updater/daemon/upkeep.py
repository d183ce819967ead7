"""The daemon's upkeep between runs: staleness flags (seed 001) and retention."""

from __future__ import annotations

import datetime
import logging
from pathlib import Path

from imss_updater import notify
from imss_updater.database.db import Database, DatabaseError
from imss_updater.database.retention import purge_older_than
from imss_updater.run.updater import Updater
from imss_updater.settings import Settings

log = logging.getLogger(__name__)


def refresh_staleness(
    database: Database, root: Path, settings: Settings | None, now: datetime.datetime
) -> bool:
    """Flag the components not updated for too long (and clear the flags of those that are
    current again), queueing one notification per change; return True if any was queued.
    Raise DatabaseError if the database fails."""
    updater = Updater(database, root, fallback_settings=settings)
    changes = updater.refresh_staleness(now)
    for component, stale, last_success in changes:
        try:
            notify.enqueue_stale(database, component, last_success, stale)
        except DatabaseError:
            raise
        except Exception:  # a notification problem never stops the daemon's upkeep
            log.exception("could not queue the staleness notification")
    return bool(changes)


def apply_retention(database: Database, days: int) -> bool:
    """Delete events, notifications and delivery attempts older than ``days`` (one bounded
    pass); return True when nothing older is left."""
    cutoff = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=days)
    purged = purge_older_than(database, cutoff)
    if purged.total:
        log.info("retention (%d days): deleted %d events, %d notifications, %d delivery attempts",
                 days, purged.events, purged.notifications, purged.attempts)
    return purged.complete
