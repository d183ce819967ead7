"""Retention (``Log/RetentionDays``): old update events, notifications and delivery attempts
are deleted, so that the tables do not grow by a row per run forever.

Deletes go in batches, each its own short transaction (never one long lock over a big
table), and a call does a bounded number of them; the daemon calls again until nothing
older is left. A notification still pending is never deleted, whatever its age.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from imss_updater.database.db import Database

# (what, table, time column, extra condition)
_TABLES = (
    ("events", "tb_update_event", "time", ""),
    ("attempts", "tb_notification_attempt", "time", ""),
    ("notifications", "tb_notification", "created_at", " AND state <> 'pending'"),
)


@dataclass(frozen=True)
class Purged:
    events: int
    notifications: int
    attempts: int
    complete: bool  # nothing older than the cutoff is left

    @property
    def total(self) -> int:
        return self.events + self.notifications + self.attempts


def purge_older_than(
    database: Database, cutoff: datetime.datetime, *, batch_size: int = 5000, max_batches: int = 20
) -> Purged:
    """Delete update events, finished notifications and delivery attempts older than
    ``cutoff``, ``batch_size`` rows per transaction and at most ``max_batches``
    transactions in all. Return how many rows went, and whether that was all of them.
    Raise DatabaseError if the database fails."""
    counts = {"events": 0, "notifications": 0, "attempts": 0}
    batches = 0
    complete = True
    for what, table, column, extra in _TABLES:
        while True:
            if batches >= max_batches:
                complete = False
                break
            batches += 1
            with database.transaction() as cursor:
                cursor.execute(
                    f"DELETE FROM {table} WHERE id IN (SELECT id FROM {table}"  # the names are constants
                    f" WHERE {column} < %s{extra} ORDER BY id LIMIT %s)",
                    (cutoff, batch_size),
                )
                deleted = cursor.rowcount
            counts[what] += deleted
            if deleted < batch_size:
                break
    return Purged(counts["events"], counts["notifications"], counts["attempts"], complete)
