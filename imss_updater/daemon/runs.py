"""What one scheduled run is, inside the daemon or alone (``run --once``): the run itself,
its outcome in the daemon's log, the notifications it calls for, and the events kept while
the database was away."""

from __future__ import annotations

import datetime
import json
import logging
import sys
import threading
from collections.abc import Callable

from imss_updater import config, notify
from imss_updater.daemon import backlog
from imss_updater.database.db import Database, DatabaseError, NewEvent
from imss_updater.notify.worker import CHANNELS
from imss_updater.run.planner import Mode
from imss_updater.run.updater import Progress, RunCancelled, RunError, RunReport, Updater
from imss_updater.settings import Settings, SettingsError
from imss_updater.store import lock
from imss_updater.store.spool import EventSpool

log = logging.getLogger(__name__)

RunHook = Callable[[Database, RunReport], None]
"""Called after each scheduled run with its report (queues the mail and traps)."""


def scheduled_update(
    bootstrap: config.Bootstrap,
    dsn: str,
    *,
    cancel: threading.Event | None = None,
    fallback_settings: Settings | None = None,
    unrecorded: list[NewEvent] | None = None,
    after_run: RunHook | None = None,
    progress: Progress | None = None,
    spool: EventSpool | None = None,
    make_updater: Callable[..., Updater] = Updater,
) -> RunReport | None:
    """Run exactly what the schedule runs: a scheduled update of the scheduled components.
    ``make_updater`` builds the Updater (a fleet node's takes its source from the mirror).

    Return None when the scheduled update is turned off (Update/ScheduledUpdate=no).
    Failure events the database refuses go to ``spool``; those the after-run hook then
    notified are marked so in it. Raise DatabaseError if the run cannot start.
    """
    with Database(dsn, node=bootstrap.node) as database:
        updater = make_updater(database, bootstrap.root, cancel=cancel, progress=progress,
                               fallback_settings=fallback_settings, unrecorded=unrecorded, spool=spool)
        try:
            _catalog, settings = updater.load()
            scheduled = settings.scheduled_update
        except SettingsError:
            # The run records the problem as its failure, unless the schedule is off anyway.
            scheduled = database.settings_rows().get(("Update", "ScheduledUpdate"), "yes").strip() != "no"
        if not scheduled:
            log.info("scheduled update is off (Update/ScheduledUpdate=no)")
            return None
        database.record_scheduled_run(datetime.datetime.now(datetime.UTC))
        report = updater.update(Mode.SCHEDULED, None)
        if after_run is not None:
            try:
                after_run(database, report)
            except DatabaseError as error:  # the kept failures are notified when it is back
                log.error("notifications not queued now: %s", error)
            except Exception:  # a hook (notifications) must never fail the update
                log.exception("after-run hook failed")
            else:
                if spool is not None and updater.spooled:
                    spool.mark("notified", updater.spooled)
        return report


def run_logged(run: Callable[[], RunReport | None]) -> bool:
    """Call ``run`` (the daemon's scheduled update) and log its outcome in one line, whatever
    it raises. Return True when the database failed it: it is to run once the database is back."""
    try:
        report = run()
        if report is not None:
            log.info("scheduled update: %s", report.summary())
    except RunCancelled:
        log.info("scheduled update interrupted: the updater is stopping")
    except RunError as error:
        log.warning("scheduled update did not run: %s", error)
    except DatabaseError as error:
        log.error("scheduled update did not run: %s (it runs once the database is back)", error)
        return True
    except (SettingsError, lock.LockUnusable) as error:
        log.error("scheduled update did not run: %s", error)
    except Exception:
        log.exception("scheduled update failed unexpectedly")
    return False


def flush_spool(spool: EventSpool, dsn: str, node: str) -> None:
    """Write what the spool kept while the database was away, as ``node``'s (the spool is in
    the node's own state directory); a problem is logged only."""
    try:
        with Database(dsn, node=node) as database:
            backlog.flush_quietly(spool, database)
    except DatabaseError as error:
        log.warning("kept events not written now: %s", error)


def queue_notifications(database: Database, report: RunReport) -> None:
    """The after-run hook: queue the mail and traps this scheduled run calls for."""
    queued = notify.enqueue_run(database, database.catalog(), report)
    if queued:
        log.info("%d notification(s) queued", queued)


def deliver_notifications(dsn: str) -> None:
    """Send what is queued, each channel in a thread of its own (a silent mail relay does
    not hold up the traps); a delivery problem is recorded, never raised."""
    threads = [threading.Thread(target=_deliver_channel, args=(dsn, channel), name=f"notify-{channel}")
               for channel in CHANNELS]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def _deliver_channel(dsn: str, channel: str) -> None:
    try:
        with Database(dsn) as database:
            result = notify.deliver_pending(database, channel=channel)
    except DatabaseError as error:
        log.debug("%s notifications not delivered now: %s", channel, error)
        return
    if result.attempts:
        log.info("%s notifications: %d sent, %d to retry, %d failed", channel, result.sent,
                 result.retried, result.failed)


def _once(bootstrap: config.Bootstrap, dsn: str, as_json: bool) -> int:
    spool = EventSpool(bootstrap.state)
    flush_spool(spool, dsn, bootstrap.node)
    report = scheduled_update(bootstrap, dsn, after_run=queue_notifications, spool=spool)
    # Sent after the run, outside its lock: a dead relay never holds up an update.
    deliver_notifications(dsn)
    if report is None:
        print(json.dumps({"skipped": "scheduled update is off"}) if as_json else "scheduled update is off")
        return 0
    if as_json:
        print(json.dumps(report.as_json(), ensure_ascii=False, indent=2))
    else:
        for outcome in report.outcomes:
            print(("OK    " if outcome.ok else "FAIL  ") + outcome.message)
        print(report.summary())
    reason = report.failure_reason()
    if reason is not None:  # as every command: one line with the reason on stderr
        print(f"imss-updater: {reason.splitlines()[0]}", file=sys.stderr)
    return 0 if report.ok else 1


def run_once(bootstrap: config.Bootstrap, *, as_json: bool) -> int:
    """``run --once``: exactly what the schedule would do, once, on a current schema (the
    embedded database is started for it if needed and stopped again)."""
    with config.database_dsn(bootstrap) as dsn:
        with Database(dsn, node=bootstrap.node) as database:
            database.init()  # idempotent: every run starts on a current schema
        return _once(bootstrap, dsn, as_json)
