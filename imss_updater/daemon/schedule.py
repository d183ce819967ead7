"""When the scheduled update runs: pure translation of the schedule settings into a cron spec."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from apscheduler.triggers.cron import CronTrigger

from imss_updater.settings import Settings


@dataclass(frozen=True)
class CronSpec:
    """Fields for a cron trigger; None means "every"."""

    minute: str
    hour: str | None = None
    day_of_week: str | None = None
    jitter: int = 0

    def describe(self) -> str:
        when = f"minute {self.minute}"
        if self.hour is not None:
            when = f"{int(self.hour):02d}:{int(self.minute):02d}"
        if self.day_of_week is not None:
            when = f"{self.day_of_week} {when}"
        return when


def cron_spec(settings: Settings) -> CronSpec | None:
    """Given the settings, return when the scheduled update runs, or None when it is off."""
    if not settings.scheduled_update:
        return None
    frequency = settings.schedule_frequency
    # A random delay spreads many gateways over the update source (seed 000); a 15-minute
    # schedule never waits longer than its own period.
    jitter = settings.random_delay_seconds
    if frequency == "15min":
        jitter = min(jitter, 600)
    if frequency == "15min":
        return CronSpec(minute="*/15", jitter=jitter)
    if frequency == "hourly":
        return CronSpec(minute=str(settings.schedule_minute), jitter=jitter)
    time = settings.schedule_time
    if frequency == "daily":
        return CronSpec(minute=str(time.minute), hour=str(time.hour), jitter=jitter)
    return CronSpec(
        minute=str(time.minute), hour=str(time.hour), day_of_week=settings.schedule_weekday,
        jitter=jitter,
    )


def trigger(spec: CronSpec, timezone: datetime.tzinfo, *, with_jitter: bool = True) -> CronTrigger:
    """Return the APScheduler trigger for ``spec`` in ``timezone`` (local time on the gateway)."""
    return CronTrigger(
        minute=spec.minute,
        hour=spec.hour,
        day_of_week=spec.day_of_week,
        jitter=spec.jitter if with_jitter else None,
        timezone=timezone,
    )


def next_fire(spec: CronSpec, after: datetime.datetime, timezone: datetime.tzinfo) -> datetime.datetime:
    """Return the first scheduled time strictly after ``after`` (without the random delay).

    A daily or weekly time skipped by the spring-forward change runs an hour later by the
    clock; one that happens twice at fall-back runs once (the second occurrence, fold=1, is
    skipped). The 15-minute and hourly schedules keep their real intervals through both.
    """
    cron = trigger(spec, timezone, with_jitter=False)
    moment = cron.get_next_fire_time(None, after + datetime.timedelta(microseconds=1))
    if moment is not None and spec.hour is not None and moment.fold == 1:
        # Ask again from just past the repeated hour (in real time, not wall-clock time).
        past = (moment.astimezone(datetime.UTC) + datetime.timedelta(hours=1)).astimezone(timezone)
        moment = cron.get_next_fire_time(None, past)
    assert moment is not None  # a cron spec without an end date always fires again
    result: datetime.datetime = moment
    return result


def missed_run(
    spec: CronSpec | None,
    last_run: datetime.datetime | None,
    now: datetime.datetime,
    timezone: datetime.tzinfo,
) -> bool:
    """Return True when a scheduled time passed between ``last_run`` and ``now`` without a run
    (the daemon was down): the caller then runs once, however many were missed.

    With no record of any run, a missed run is assumed only if the schedule is on: a freshly
    installed gateway updates once soon after start.
    """
    if spec is None:
        return False
    if last_run is None:
        return True
    return next_fire(spec, last_run, timezone) <= now
