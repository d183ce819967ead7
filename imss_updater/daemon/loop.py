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
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType

from imss_updater import config
from imss_updater.daemon import backlog, fleet_member, planning, runs, sdnotify, status_page
from imss_updater.daemon.health import Health
from imss_updater.daemon.listener import listen
from imss_updater.daemon.planning import Planner
from imss_updater.daemon.schedule import schedule_for
from imss_updater.daemon.upkeep import Upkeep
from imss_updater.database.db import Database, DatabaseError, NewEvent
from imss_updater.database.embedded_db import EmbeddedDatabase, EmbeddedDbError
from imss_updater.fleet.leader import Fleet, follow
from imss_updater.notify.worker import Deliveries
from imss_updater.run.updater import Progress, RunReport
from imss_updater.settings import Settings, SettingsError, load
from imss_updater.store import install
from imss_updater.store.spool import EventSpool

log = logging.getLogger(__name__)

REPLAN_SECONDS = 30.0
STOP_GRACE_SECONDS = 8.0
DELIVERY_STOP_SECONDS = 3.0  # a channel's attempt is cut short at stop; this is to record it


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
        self.unrecorded: list[NewEvent] = []
        self.spool = EventSpool(bootstrap.state)
        self.upkeep = Upkeep(bootstrap.root)
        self.after_run: runs.RunHook | None = self._after_run
        self.progress: Progress | None = None
        self.timed: Callable[[Callable[[], RunReport | None]], RunReport | None] = lambda run: run()
        self.background: list[Callable[[], None]] = []  # extra services' stop functions
        # Notifications: a worker thread per channel, outside the scheduler, so that neither
        # a slow relay nor a dead receiver delays an update, the other channel, or a stop.
        self.deliveries = Deliveries(lambda: self.dsn)
        self.fleet: Fleet | None = None  # with Fleet/Enabled=yes
        self.scheduler = planning.new_scheduler(self.timezone)
        self.plan = planning.RunPlan(self.scheduler, self.timezone, self.job)

    @property
    def planner(self) -> Planner:
        """What the next scheduled run is planned with: the one seam a test replaces."""
        return self.plan.planner

    @planner.setter
    def planner(self, planner: Planner) -> None:
        self.plan.planner = planner

    @property
    def next_run(self) -> datetime.datetime | None:
        """When the next scheduled run starts (None: the schedule is off)."""
        return self.plan.next_run

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
                if backlog.flush_all(self.unrecorded, self.spool, database):
                    self._deliver()  # their notifications were queued just now: send them
                if self.upkeep.check_staleness(database, self.settings):
                    self._deliver()
                database.record_daemon(pid=os.getpid(), next_run=self.next_run,
                                       settings_problem=self.settings_problem)
                self.upkeep.apply_retention(database, self.settings)
            self.database_health.succeeded()
        except DatabaseError as error:
            self.database_health.failed(str(error))
            self._feed_watchdog()
            return self.database_health.backoff
        if self.plan.catch_up and not self.job_running.is_set():
            self.plan.catch_up_now()
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
        self.plan.follow(database, schedule_for(settings), running=self.job_running.is_set())

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
        self.plan.started()

        def run() -> RunReport | None:
            scheduled_update = runs.scheduled_update if self.fleet is None else self.fleet.scheduled_update
            return self.timed(lambda: scheduled_update(  # the metrics time it
                self.bootstrap, self.dsn, cancel=self.cancel, fallback_settings=self.settings,
                unrecorded=self.unrecorded, after_run=self.after_run, progress=self.progress,
                spool=self.spool,
            ))

        try:
            if runs.run_logged(run):
                self.plan.catch_up = True  # the database failed it: run it once it is back
        finally:
            self.job_running.clear()
            self.upkeep.after_run()  # the run may have made a component current: look now
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
