"""``imss-updater run``: the scheduler in one long-running process, and ``run --once``.

The main thread only waits for signals; SIGTERM sets a flag, SIGUSR1 asks for a
scheduled update now. APScheduler runs the update in its one worker thread, so two
runs never overlap. Settings are read fresh for every run, and the schedule is
re-planned when the schedule rows change.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
from types import FrameType

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger

from imss_updater import config
from imss_updater.db import Database, DatabaseError
from imss_updater.embedded_db import EmbeddedDatabase
from imss_updater.planner import Mode
from imss_updater.schedule import CronSpec, cron_spec
from imss_updater.settings import SettingsError, load
from imss_updater.updater import RunError, RunReport, Updater

log = logging.getLogger(__name__)

JOB_ID = "scheduled-update"
REPLAN_SECONDS = 30


def scheduled_update(bootstrap: config.Bootstrap, dsn: str) -> RunReport | None:
    """Run exactly what the schedule runs: a scheduled update of the scheduled components.

    Return None when the scheduled update is turned off (Update/ScheduledUpdate=no).
    """
    with Database(dsn) as database:
        catalog = database.catalog()
        settings = load(database.settings_rows(), [component.id for component in catalog])
        if not settings.scheduled_update:
            log.info("scheduled update is off (Update/ScheduledUpdate=no)")
            return None
        return Updater(database, bootstrap.root).update(Mode.SCHEDULED, None)


def main(bootstrap: config.Bootstrap, *, once: bool, as_json: bool) -> int:
    embedded = None if bootstrap.dsn else EmbeddedDatabase(bootstrap.state, port=bootstrap.db_port)
    started = False
    if embedded is not None:
        embedded.ensure_initialized()
        if not embedded.is_running():
            embedded.start()
            started = True
    dsn = bootstrap.dsn or (embedded.dsn() if embedded else "")
    try:
        with Database(dsn) as database:
            database.init()  # idempotent: the daemon always starts on a current schema
        if once:
            return _once(bootstrap, dsn, as_json)
        return Daemon(bootstrap, dsn).serve()
    finally:
        if embedded is not None and started:
            embedded.stop()


def _once(bootstrap: config.Bootstrap, dsn: str, as_json: bool) -> int:
    report = scheduled_update(bootstrap, dsn)
    if report is None:
        print(json.dumps({"skipped": "scheduled update is off"}) if as_json else "scheduled update is off")
        return 0
    if as_json:
        print(json.dumps(report.as_json(), ensure_ascii=False, indent=2))
    else:
        for outcome in report.outcomes:
            print(("OK    " if outcome.ok else "FAIL  ") + outcome.message)
        print(report.summary())
    return 0 if report.ok else 1


class Daemon:
    """Holds the scheduler; ``serve`` returns 0 after SIGTERM or SIGINT."""

    def __init__(self, bootstrap: config.Bootstrap, dsn: str) -> None:
        self.bootstrap = bootstrap
        self.dsn = dsn
        self.stopping = threading.Event()
        self.wake = threading.Event()
        self.run_now = threading.Event()
        self.spec: CronSpec | None = None
        self.scheduler = BackgroundScheduler(
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 3600}
        )

    def serve(self) -> int:
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(signal.SIGUSR1, self._on_usr1)
        self.scheduler.start()
        log.info("imss-updater daemon started (root %s)", self.bootstrap.root)
        try:
            while not self.stopping.is_set():
                self.replan()
                if self.run_now.is_set():
                    self.run_now.clear()
                    self.scheduler.add_job(self.job, id="manual-trigger", replace_existing=True)
                self.wake.wait(REPLAN_SECONDS)
                self.wake.clear()
        finally:
            self.scheduler.shutdown(wait=True)
            log.info("imss-updater daemon stopped")
        return 0

    def _on_stop(self, signum: int, frame: FrameType | None) -> None:
        self.stopping.set()
        self.wake.set()

    def _on_usr1(self, signum: int, frame: FrameType | None) -> None:
        self.run_now.set()
        self.wake.set()

    def replan(self) -> None:
        """Read the schedule rows and (re)schedule the job if they changed."""
        try:
            with Database(self.dsn) as database:
                catalog = database.catalog()
                settings = load(database.settings_rows(), [component.id for component in catalog])
        except (DatabaseError, SettingsError) as error:
            log.warning("keeping the current schedule: %s", error)
            return
        spec = cron_spec(settings)
        if spec == self.spec:
            return
        self.spec = spec
        if spec is None:
            if self.scheduler.get_job(JOB_ID):
                self.scheduler.remove_job(JOB_ID)
            log.info("scheduled update is off")
            return
        trigger = CronTrigger(
            minute=spec.minute, hour=spec.hour, day_of_week=spec.day_of_week, jitter=spec.jitter
        )
        self.scheduler.add_job(self.job, trigger, id=JOB_ID, replace_existing=True)
        log.info("scheduled update: %s", spec.describe())

    def job(self) -> None:
        try:
            report = scheduled_update(self.bootstrap, self.dsn)
        except (RunError, DatabaseError, SettingsError) as error:
            log.error("scheduled update did not run: %s", error)
            return
        except Exception:
            log.exception("scheduled update crashed")
            return
        if report is not None:
            log.info("scheduled update: %s", report.summary())
