"""The daemon's upkeep between runs: staleness flags (seed 001) and retention, and how often
the loop does each."""

from __future__ import annotations

import datetime
import logging
import time
from pathlib import Path

from imss_updater import notify
from imss_updater.database.db import Database, DatabaseError
from imss_updater.database.retention import purge_older_than
from imss_updater.run.updater import Updater
from imss_updater.settings import Settings

log = logging.getLogger(__name__)

STALENESS_SECONDS = 600.0
RETENTION_SECONDS = 3600.0  # old events, notifications and attempts are deleted this often


class Upkeep:
    """Paces the upkeep steps of the daemon's loop for the installation at ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.last_staleness = 0.0
        self.next_retention = 0.0  # monotonic time of the next retention pass

    def check_staleness(self, database: Database, settings: Settings | None) -> bool:
        """``refresh_staleness`` at most every STALENESS_SECONDS (at once after a run);
        return True if a notification was queued."""
        now = datetime.datetime.now(datetime.UTC)
        if now.timestamp() - self.last_staleness < STALENESS_SECONDS:
            return False
        self.last_staleness = now.timestamp()
        return refresh_staleness(database, self.root, settings, now)

    def after_run(self) -> None:
        """A run has ended: it may have made a component current, so look at once."""
        self.last_staleness = 0.0

    def apply_retention(self, database: Database, settings: Settings | None) -> None:
        """Delete events, notifications and delivery attempts older than Log/RetentionDays:
        at start, then once an hour (sooner while a backlog of old rows remains)."""
        if settings is None or time.monotonic() < self.next_retention:
            return
        complete = apply_retention(database, settings.retention_days)
        self.next_retention = time.monotonic() + (RETENTION_SECONDS if complete else 0.0)


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
