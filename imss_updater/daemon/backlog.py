"""What the database could not take while it was away, written once it is back.

Failure events a run could not record are in the spool file of the state directory
(``store.spool``); ``flush`` writes them to the event log with their own times and queues
the notifications a scheduled run's failures still owe (the run's own after-run hook could
not queue them without the database). The daemon calls it on every round of upkeep, the
command line before each command, so nothing waits for the daemon.
"""

from __future__ import annotations

import logging

from imss_updater import notify
from imss_updater.database.db import Database, DatabaseError, NewEvent
from imss_updater.run.report import Outcome, RunReport
from imss_updater.store.spool import EventSpool

log = logging.getLogger(__name__)


def flush(spool: EventSpool, database: Database) -> int:
    """Write the spooled events to ``database`` (all in one transaction), queue the
    notifications still owed, then empty the spool; return how many events were written.

    Raise DatabaseError if the database fails (the spool keeps what is not done yet) and
    OSError if the spool file cannot be read.
    """
    try:
        if spool.path.stat().st_size == 0:
            return 0
    except FileNotFoundError:
        return 0
    with spool.flushing() as (entries, mark):
        to_record = [entry for entry in entries if not entry.recorded]
        if to_record:
            database.add_events([entry.event for entry in to_record])
            mark("recorded", [entry.id for entry in to_record])
        to_notify = [entry for entry in entries if entry.notify and not entry.notified]
        if to_notify:
            report = RunReport("scheduled", outcomes=[
                Outcome(entry.event.component, entry.event.version, False, entry.event.message,
                        entry.event.reason, message_ja=entry.event.message_ja)
                for entry in to_notify
            ])
            try:
                queued = notify.enqueue_run(database, database.catalog(), report)
            except DatabaseError:
                raise
            except Exception:  # a notification problem must not keep the events waiting forever
                log.exception("could not queue the notifications of the kept events")
                queued = 0
            mark("notified", [entry.id for entry in to_notify])
            if queued:
                log.info("%d notification(s) queued for failures kept while the database was away",
                         queued)
    if to_record:
        log.info("%d event(s) kept while the database was away are now in the event log",
                 len(to_record))
    return len(to_record)


def flush_all(unrecorded: list[NewEvent], spool: EventSpool, database: Database) -> int:
    """Write the events a run could not record while the database was down: those kept in
    memory when even the spool could not take them (``unrecorded``, emptied as they are
    written), then the spool file's. Return how many spooled events were written (their
    notifications were queued just now). Raise DatabaseError if the database fails; a spool
    file that cannot be read is logged."""
    while unrecorded:
        database.add_event(unrecorded[0])
        unrecorded.pop(0)
    try:
        return flush(spool, database)
    except OSError as error:
        log.error("cannot read the kept events in %s: %s", spool.path, error)
        return 0


def flush_quietly(spool: EventSpool, database: Database) -> None:
    """``flush``, for a caller that does not need the events now: a problem is logged only."""
    try:
        flush(spool, database)
    except (DatabaseError, OSError) as error:
        log.warning("kept events not written now: %s", error)
