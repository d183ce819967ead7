"""When the daemon's scheduler runs the next scheduled update.

``schedule.py`` says which instant a schedule names; this module puts the run on the
scheduler: the next run of the schedule (with its random delay), the one run owed for
those missed while the updater was down, the run that fell in a database outage, and the
guard that starts scheduled runs at most once a minute whatever the planner says.
"""

from __future__ import annotations

import datetime
import logging
import random
import time
from collections.abc import Callable

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.date import DateTrigger

from imss_updater.daemon.schedule import Schedule, missed_run, next_run
from imss_updater.database.db import Database

log = logging.getLogger(__name__)

JOB_ID = "scheduled-update"
MISSED_RUN_DELAY_SECONDS = 30.0
MIN_RUN_GAP_SECONDS = 60.0  # whatever the planner says, scheduled runs start at most once a minute
CATCH_UP_JOB_ID = "catch-up"
CATCH_UP_GAP_SECONDS = 60.0

Planner = Callable[[Schedule, datetime.datetime, datetime.tzinfo, float], datetime.datetime]
"""(schedule, now, zone, random delay) -> when the next scheduled run starts (schedule.next_run)."""


def new_scheduler(timezone: datetime.tzinfo) -> BackgroundScheduler:
    """Return the daemon's scheduler (not started): one worker, so two updates never overlap."""
    return BackgroundScheduler(
        # One worker for updates: never two at once.
        executors={"default": ThreadPoolExecutor(max_workers=1)},
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        timezone=timezone,
    )


class RunPlan:
    """The scheduled runs ``scheduler`` holds: each calls ``job`` (one scheduled update)."""

    def __init__(
        self, scheduler: BackgroundScheduler, timezone: datetime.tzinfo, job: Callable[[], None]
    ) -> None:
        self.scheduler = scheduler
        self.timezone = timezone
        self.job = job
        self.spec: Schedule | None = None
        self.next_run: datetime.datetime | None = None
        self.planner: Planner = next_run  # the one seam a test replaces (a planner that returns the past)
        self.last_start: float | None = None  # time.monotonic() when the last run started
        self.gap_guard_logged = False
        self.catch_up = False  # a scheduled run fell during a database outage
        self.last_catch_up = 0.0

    def follow(self, database: Database, spec: Schedule | None, *, running: bool) -> None:
        """Given the schedule the settings name now: on a change, plan the next run again;
        plan one too when none is planned and none is ``running``."""
        if spec != self.spec:
            self.spec = spec
            self.schedule(database, first=self.next_run is None)
        elif spec is not None and self.scheduler.get_job(JOB_ID) is None and not running:
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

    def started(self) -> None:
        """A scheduled run starts now (the next may start MIN_RUN_GAP_SECONDS later at the earliest)."""
        self.last_start = time.monotonic()

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
