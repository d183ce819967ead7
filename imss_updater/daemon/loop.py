"""``imss-updater run``: the scheduler (and the status page) in one long-running process.

The main thread owns the loop: it (re)plans the next scheduled run from the settings,
keeps the database connection healthy, flushes what could not be recorded, feeds the
systemd watchdog, and waits. Scheduled updates run in APScheduler's single worker thread,
so two runs never overlap. A listener thread wakes the loop when ``tb_global_setting``
changes (LISTEN/NOTIFY), and the loop also re-reads the settings every ``REPLAN_SECONDS``
in case notifications are lost. Signals only set flags: SIGUSR1 asks for a scheduled
update now, SIGTERM/SIGINT stop the daemon within ``STOP_GRACE_SECONDS``."""

from __future__ import annotations

import datetime
import logging
import os
import random
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.date import DateTrigger

from imss_updater import config
from imss_updater.daemon import backlog, fleet_member, runs, sdnotify, status_page, upkeep
from imss_updater.daemon.health import Health
from imss_updater.daemon.listener import listen
from imss_updater.daemon.schedule import Schedule, missed_run, next_run, schedule_for
from imss_updater.database.db import Database, DatabaseError, NewEvent
from imss_updater.database.embedded_db import EmbeddedDatabase, EmbeddedDbError
from imss_updater.fleet.leader import Fleet, follow
from imss_updater.notify.worker import Deliveries
from imss_updater.run.updater import Progress, RunCancelled, RunError, RunReport
from imss_updater.settings import Settings, SettingsError, load
from imss_updater.store import install, lock
from imss_updater.store.spool import EventSpool

log = logging.getLogger(__name__)

JOB_ID = "scheduled-update"
REPLAN_SECONDS = 30.0
STALENESS_SECONDS = 600.0
STOP_GRACE_SECONDS = 8.0
MISSED_RUN_DELAY_SECONDS = 30.0
MIN_RUN_GAP_SECONDS = 60.0  # whatever the planner says, scheduled runs start at most once a minute
DELIVERY_STOP_SECONDS = 3.0  # a channel's attempt is cut short at stop; this is to record it
RETENTION_SECONDS = 3600.0  # old events, notifications and attempts are deleted this often
CATCH_UP_JOB_ID = "catch-up"
CATCH_UP_GAP_SECONDS = 60.0

Planner = Callable[[Schedule, datetime.datetime, datetime.tzinfo, float], datetime.datetime]
"""(schedule, now, zone, random delay) -> when the next scheduled run starts (schedule.next_run)."""


def local_timezone() -> datetime.tzinfo:
    """The gateway's local time zone (schedules are in local time, like the appliance)."""
    from tzlocal import get_localzone  # APScheduler's own dependency

    zone: datetime.tzinfo = get_localzone()
    return zone


def main(bootstrap: config.Bootstrap, *, once: bool, as_json: bool) -> int:
    if once:
        return runs.run_once(bootstrap, as_json=as_json)
    embedded = None if bootstrap.dsn else EmbeddedDatabase(bootstrap.state, port=bootstrap.db_port)
    daemon = Daemon(bootstrap, embedded)
    code = daemon.serve()
    if daemon.job_still_running():
        # The update thread is blocked in a read that no timeout will end soon; everything it
        # held is released by the exit itself (lock, sockets), and its files are cleaned up.
        logging.shutdown()
        os._exit(code)
    return code


class Daemon:
    """Holds the scheduler; ``serve`` returns 0 after SIGTERM or SIGINT."""

    def __init__(
        self,
        bootstrap: config.Bootstrap,
        embedded: EmbeddedDatabase | None,
        *,
        timezone: datetime.tzinfo | None = None,
    ) -> None:
        self.bootstrap = bootstrap
        self.embedded = embedded
        self.embedded_started = False
        self.timezone = timezone or local_timezone()
        self.stopping = threading.Event()
        self.wake = threading.Event()
        self.run_now = threading.Event()
        self.cancel = threading.Event()
        self.job_running = threading.Event()
        self.signal_queued = threading.Event()  # a SIGUSR1 run waits for the worker
        self.signal_count = 0
        self.database_health = Health("database")
        self.schema_ready = False
        self.ready_sent = False
        self.settings: Settings | None = None  # the last good settings
        self.settings_problem: str | None = None
        self.spec: Schedule | None = None
        self.next_run: datetime.datetime | None = None
        self.planner: Planner = next_run  # the one seam a test replaces (a planner that returns the past)
        self.last_start: float | None = None  # time.monotonic() when the last run started
        self.gap_guard_logged = False
        self.unrecorded: list[NewEvent] = []
        self.spool = EventSpool(bootstrap.state)
        self.catch_up = False  # a scheduled run fell during a database outage
        self.last_catch_up = 0.0
        self.last_staleness = 0.0
        self.after_run: runs.RunHook | None = self._after_run
        self.progress: Progress | None = None
        self.timed: Callable[[Callable[[], RunReport | None]], RunReport | None] = lambda run: run()
        self.background: list[Callable[[], None]] = []  # extra services' stop functions
        # Notifications: a worker thread per channel, outside the scheduler, so that neither
        # a slow relay nor a dead receiver delays an update, the other channel, or a stop.
        self.deliveries = Deliveries(lambda: self.dsn)
        self.next_retention = 0.0  # monotonic time of the next retention pass
        self.fleet: Fleet | None = None  # with Fleet/Enabled=yes
        self.scheduler = BackgroundScheduler(
            # One worker for updates: never two at once.
            executors={"default": ThreadPoolExecutor(max_workers=1)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
            timezone=self.timezone,
        )

    @property
    def dsn(self) -> str:
        if self.bootstrap.dsn is not None:
            return self.bootstrap.dsn
        assert self.embedded is not None
        return self.embedded.dsn()

    # -- lifecycle ---------------------------------------------------------------------------

    def serve(self) -> int:
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(signal.SIGUSR1, self._on_usr1)
        self.scheduler.start()
        self.deliveries.start()
        listener = threading.Thread(target=listen, args=(lambda: self.dsn, self.stopping, self.wake),
                                    name="settings-listener", daemon=True)
        listener.start()
        fleet_member.start(self)  # the leader's announcements (a member updates, staggered)
        self.start_web()
        log.info("imss-updater daemon started (pid %s, root %s)", os.getpid(), self.bootstrap.root)
        try:
            while not self.stopping.is_set():
                pause = self.tick()
                self.wake.wait(pause)
                self.wake.clear()
        finally:
            self._shutdown()
        return 0

    def _on_stop(self, signum: int, frame: FrameType | None) -> None:
        self.stopping.set()
        self.cancel.set()
        self.wake.set()

    def _on_usr1(self, signum: int, frame: FrameType | None) -> None:
        self.run_now.set()
        self.wake.set()

    def _shutdown(self) -> None:
        sdnotify.notify("STOPPING=1")
        log.info("stopping")
        self.scheduler.shutdown(wait=False)
        stop_started = time.monotonic()
        self.deliveries.stop()  # cuts a stuck mail or trap short at once
        if not self._wait_for_job(STOP_GRACE_SECONDS):
            # The run is blocked (a stalled read): clean up its downloads ourselves; the lock
            # is released when this process exits, and the next run repairs the rest.
            log.warning("the running update did not stop in time; cleaning up after it")
            install.remove_in_flight(self.bootstrap.root)
        # The workers are daemon threads: the process never waits on them for longer.
        left = STOP_GRACE_SECONDS + 1.0 - (time.monotonic() - stop_started)
        self.deliveries.join(max(0.2, min(DELIVERY_STOP_SECONDS, left)))
        if self.fleet is not None:
            self.fleet.stop()
        for stop in self.background:
            try:
                stop()
            except Exception:
                log.debug("stopping a service failed", exc_info=True)
        if self.embedded is not None and self.embedded_started:
            try:
                self.embedded.stop()
            except EmbeddedDbError as error:
                log.error("%s", error)
        log.info("imss-updater daemon stopped")

    def _wait_for_job(self, seconds: float) -> bool:
        deadline = threading.Event()
        timer = threading.Timer(seconds, deadline.set)
        timer.start()
        try:
            while self.job_running.is_set() and not deadline.is_set():
                deadline.wait(0.05)
        finally:
            timer.cancel()
        return not self.job_running.is_set()

    def job_still_running(self) -> bool:
        return self.job_running.is_set()

    # -- the loop ----------------------------------------------------------------------------

    def tick(self) -> float:
        """Do one round of upkeep; return how long to wait before the next."""
        if not self.ensure_database():
            self._feed_watchdog()
            return self.database_health.backoff
        try:
            with Database(self.dsn, node=self.bootstrap.node) as database:
                self.replan(database)
                self.follow_fleet(database)
                self.flush_unrecorded(database)
                self.check_staleness(database)
                database.record_daemon(pid=os.getpid(), next_run=self.next_run,
                                       settings_problem=self.settings_problem)
                self.apply_retention(database)
            self.database_health.succeeded()
        except DatabaseError as error:
            self.database_health.failed(str(error))
            self._feed_watchdog()
            return self.database_health.backoff
        if self.catch_up and not self.job_running.is_set():
            self.catch_up_now()
        if self.run_now.is_set():
            self.run_now.clear()
            if not self.signal_queued.is_set():
                # Its own id: APScheduler skips a job whose previous instance still runs, and a
                # run asked for during another run must still happen after it.
                self.signal_queued.set()
                self.signal_count += 1
                self.scheduler.add_job(self.job, id=f"signal-{self.signal_count}")
            log.info("scheduled update requested by SIGUSR1")
        if not self.ready_sent and self.scheduler.running:
            self.ready_sent = sdnotify.notify("READY=1", "STATUS=scheduler and database up") or True
        self._feed_watchdog()
        watchdog = sdnotify.watchdog_seconds()
        return min(REPLAN_SECONDS, watchdog / 3) if watchdog else REPLAN_SECONDS

    def _feed_watchdog(self) -> None:
        if self.scheduler.running:
            sdnotify.notify("WATCHDOG=1")

    def ensure_database(self) -> bool:
        """Make sure the database is up (starting the embedded cluster if it is ours) and its
        schema current; return False (after logging once) while it is not."""
        try:
            if self.embedded is not None:
                self.embedded.ensure_initialized()
                if not self.embedded.is_running():
                    self.embedded.start()
                    self.embedded_started = True
            if not self.schema_ready:
                with Database(self.dsn, node=self.bootstrap.node) as database:
                    database.init()
                    database.record_mirror_address(self.bootstrap.mirror)
                self.schema_ready = True
        except (DatabaseError, EmbeddedDbError) as error:
            self.database_health.failed(str(error))
            return False
        return True

    def replan(self, database: Database) -> None:
        """Read the settings; on a change of schedule, plan the next run again. A bad row keeps
        the last good settings and is reported (log once, status, heartbeat)."""
        catalog = database.catalog()
        try:
            settings = load(database.settings_rows(), [component.id for component in catalog])
        except SettingsError as error:
            if str(error) != self.settings_problem:
                log.error("keeping the last good settings: %s", error)
            self.settings_problem = str(error)
            if self.settings is None:
                return
            settings = self.settings
        else:
            if self.settings_problem:
                log.info("settings are valid again")
            self.settings_problem = None
        self.settings = settings
        spec = schedule_for(settings)
        if spec != self.spec:
            self.spec = spec
            self.schedule(database, first=self.next_run is None)
        elif spec is not None and self.scheduler.get_job(JOB_ID) is None and not self.job_running.is_set():
            self.schedule(database, first=False)

    def schedule(self, database: Database, *, first: bool) -> None:
        """Plan the next scheduled run (or none when the schedule is off)."""
        if self.spec is None:
            if self.scheduler.get_job(JOB_ID):
                self.scheduler.remove_job(JOB_ID)
            self.next_run = None
            log.info("scheduled update is off")
            return
        now = datetime.datetime.now(datetime.UTC)  # not local: local datetimes add by wall clock
        status = database.run_status()
        if first and missed_run(self.spec, status.last_scheduled_at, now, self.timezone):
            # Coalesced: however many runs were missed while we were down, run once, soon.
            delay = random.uniform(0, min(float(self.spec.jitter), MISSED_RUN_DELAY_SECONDS))  # noqa: S311
            when = self.not_too_soon(now + datetime.timedelta(seconds=delay), now)
            if status.last_scheduled_at is None:  # a new install: nothing was missed
                log.info("first start: the first scheduled update runs at %s",
                         when.astimezone(self.timezone).isoformat(timespec="seconds"))
            else:
                log.info("a scheduled run was missed while the updater was down: running once at %s",
                         when.astimezone(self.timezone).isoformat(timespec="seconds"))
        else:
            delay = random.uniform(0, float(self.spec.jitter))  # noqa: S311
            when = self.not_too_soon(self.planner(self.spec, now, self.timezone, delay), now)
            log.info("scheduled update (%s): next run at %s", self.spec.describe(),
                     when.astimezone(self.timezone).isoformat(timespec="seconds"))
        self.next_run = when
        self.scheduler.add_job(self.job, DateTrigger(run_date=when, timezone=self.timezone),
                               id=JOB_ID, replace_existing=True)

    def not_too_soon(self, when: datetime.datetime, now: datetime.datetime) -> datetime.datetime:
        """Return ``when``, or the earliest moment a scheduled run may start if ``when`` is
        sooner: not in the past and at least MIN_RUN_GAP_SECONDS after the last run started
        (measured on the monotonic clock, so a clock step cannot defeat it). Logged once."""
        wait = 0.0
        if self.last_start is not None:
            wait = max(0.0, MIN_RUN_GAP_SECONDS - (time.monotonic() - self.last_start))
        earliest = now.astimezone(datetime.UTC) + datetime.timedelta(seconds=wait)
        if when.astimezone(datetime.UTC) >= earliest:
            return when
        report = log.debug if self.gap_guard_logged else log.warning
        self.gap_guard_logged = True
        report("the schedule planned a run at %s, in the past or within a minute of the last run;"
               " starting it at %s instead (scheduled runs start at most once a minute)",
               when.astimezone(self.timezone).isoformat(timespec="seconds"),
               earliest.astimezone(self.timezone).isoformat(timespec="seconds"))
        return earliest

    def flush_unrecorded(self, database: Database) -> None:
        """Write the events a run could not record while the database was down (the spool
        file, and those kept in memory when even the spool could not take them)."""
        while self.unrecorded:
            database.add_event(self.unrecorded[0])
            self.unrecorded.pop(0)
        try:
            written = backlog.flush(self.spool, database)
        except OSError as error:
            log.error("cannot read the kept events in %s: %s", self.spool.path, error)
            return
        if written:  # their notifications were queued just now: send them
            self._deliver()

    def catch_up_now(self) -> None:
        """The database is back after a scheduled run fell in its outage: run it now (at
        most once a minute, should the database keep failing the run)."""
        self.catch_up = False
        now = datetime.datetime.now(self.timezone)
        when = max(now, datetime.datetime.fromtimestamp(self.last_catch_up + CATCH_UP_GAP_SECONDS,
                                                        self.timezone))
        self.last_catch_up = when.timestamp()
        log.info("the database is back: running the scheduled update missed during its outage at %s",
                 when.isoformat(timespec="seconds"))
        self.scheduler.add_job(self.job, DateTrigger(run_date=when, timezone=self.timezone),
                               id=CATCH_UP_JOB_ID, replace_existing=True)

    def check_staleness(self, database: Database) -> None:
        now = datetime.datetime.now(datetime.UTC)
        if now.timestamp() - self.last_staleness < STALENESS_SECONDS:
            return
        self.last_staleness = now.timestamp()
        if upkeep.refresh_staleness(database, self.bootstrap.root, self.settings, now):
            self._deliver()

    def apply_retention(self, database: Database) -> None:
        """Delete events, notifications and delivery attempts older than Log/RetentionDays:
        at start, then once an hour (sooner while a backlog of old rows remains)."""
        if self.settings is None or time.monotonic() < self.next_retention:
            return
        complete = upkeep.apply_retention(database, self.settings.retention_days)
        self.next_retention = time.monotonic() + (RETENTION_SECONDS if complete else 0.0)

    def follow_fleet(self, database: Database) -> None:
        """Stand for election while Fleet/Enabled=yes, else resign (fleet/leader.py); a new
        leader mirrors the source's release at once, and reports nodes going down or up."""
        self.fleet = follow(self.fleet, self.settings, self.bootstrap, lambda: self.dsn, lambda: (
            self.stopping.is_set()
            or self.scheduler.add_job(self.job, id="fleet-takeover", replace_existing=True)))
        if self.fleet is not None:
            self.fleet.watch(database, self._deliver)

    # -- notifications -----------------------------------------------------------------------
    def _after_run(self, database: Database, report: RunReport) -> None:
        runs.queue_notifications(database, report)
        self.deliveries.wake()

    def _deliver(self) -> None:
        self.deliveries.wake()

    # -- the job -----------------------------------------------------------------------------

    def job(self) -> None:
        """One scheduled update, in the scheduler's worker thread."""
        self.signal_queued.clear()  # whatever starts now also answers a pending SIGUSR1
        if self.stopping.is_set():
            return
        self.job_running.set()
        self.last_start = time.monotonic()
        try:
            scheduled_update = runs.scheduled_update if self.fleet is None else self.fleet.scheduled_update
            report = self.timed(lambda: scheduled_update(  # the metrics time it
                self.bootstrap, self.dsn, cancel=self.cancel, fallback_settings=self.settings,
                unrecorded=self.unrecorded, after_run=self.after_run, progress=self.progress,
                spool=self.spool,
            ))
            if report is not None:
                log.info("scheduled update: %s", report.summary())
        except RunCancelled:
            log.info("scheduled update interrupted: the updater is stopping")
        except RunError as error:
            log.warning("scheduled update did not run: %s", error)
        except DatabaseError as error:
            log.error("scheduled update did not run: %s (it runs once the database is back)", error)
            self.catch_up = True
        except (SettingsError, lock.LockUnusable) as error:
            log.error("scheduled update did not run: %s", error)
        except Exception:
            log.exception("scheduled update failed unexpectedly")
        finally:
            self.job_running.clear()
            self.last_staleness = 0.0  # the run may have made a component current: look now
            self.wake.set()  # plan the next one

    # -- the status page ---------------------------------------------------------------------

    def start_web(self) -> None:
        """Serve the status page in this process (see ``status_page.start``)."""
        started = status_page.start(
            self.bootstrap, self.dsn,
            scheduler_ok=lambda: self.scheduler.running and not self.stopping.is_set(),
        )
        if started is not None:
            self.progress, self.timed, close = started
            self.background.append(close)
