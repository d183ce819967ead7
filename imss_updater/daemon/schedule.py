"""When the scheduled update runs: the schedule settings turned into instants in absolute time.

Pure code: every function takes the time it plans from (``after`` / ``now``) and the zone,
so a whole year of clock changes can be simulated without sleeping.

- ``15min`` and ``hourly`` are steps in real time. Their marks are the instants whose local
  wall-clock minute is a quarter-hour (15min) or ``ScheduleMinute`` (hourly); in every zone
  whose clock changes by a multiple of the interval (all but Australia/Lord_Howe's 30-minute
  change for hourly) these are exactly fixed UTC steps, so both occurrences of a repeated
  hour run and a skipped hour costs nothing. Two marks closer than the interval (a
  half-hour change under an hourly schedule) keep the first one only: runs are never closer
  than the interval, at the price of one longer gap at such a change.
- ``daily`` and ``weekly`` are local wall-clock times: a time skipped by the spring-forward
  change runs at the first instant after the gap, a time repeated at fall-back runs once,
  at its first occurrence. The real interval is then the wall-clock interval minus or plus
  the clock change (a 23- or 25-hour day).
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from dataclasses import dataclass

from imss_updater.i18n import N_, Reason
from imss_updater.settings import WEEKDAYS, Settings

UTC = datetime.UTC
MINUTE = datetime.timedelta(minutes=1)
INTERVALS = {
    "15min": datetime.timedelta(minutes=15),
    "hourly": datetime.timedelta(hours=1),
    "daily": datetime.timedelta(days=1),
    "weekly": datetime.timedelta(days=7),
}
MAX_15MIN_DELAY_SECONDS = 600
WEEKDAY_NAMES = {
    "sun": N_("Sunday"),
    "mon": N_("Monday"),
    "tue": N_("Tuesday"),
    "wed": N_("Wednesday"),
    "thu": N_("Thursday"),
    "fri": N_("Friday"),
    "sat": N_("Saturday"),
}


@dataclass(frozen=True)
class Schedule:
    """The scheduled update's timing: ``frequency`` is one of ``INTERVALS``; ``minute`` the
    minute of the hour (hourly) or of ``hour`` (daily, weekly); ``weekday`` a ``WEEKDAYS``
    name (weekly); ``jitter`` the largest random delay in seconds added to each run."""

    frequency: str
    minute: int = 0
    hour: int = 0
    weekday: str | None = None
    jitter: int = 0

    @property
    def interval(self) -> datetime.timedelta:
        return INTERVALS[self.frequency]

    def words(self, zone: str) -> Reason:
        """The schedule as an administrator reads it, in any language; a daily or weekly time
        says it is the gateway's local time (``zone`` names it)."""
        if self.frequency == "15min":
            return Reason(N_("every 15 minutes"))
        if self.frequency == "hourly":
            return Reason(N_("every hour at minute %(minute)s"), {"minute": f"{self.minute:02d}"})
        time = f"{self.hour:02d}:{self.minute:02d}"
        if self.frequency == "daily":
            return Reason(N_("every day at %(time)s (gateway local time, %(zone)s)"),
                          {"time": time, "zone": zone})
        weekday = Reason(WEEKDAY_NAMES.get(self.weekday or "", self.weekday or ""))
        return Reason(N_("every %(weekday)s at %(time)s (gateway local time, %(zone)s)"),
                      {"weekday": weekday, "time": time, "zone": zone})

    def describe(self) -> str:
        """The schedule in the log's words (English, unchanged: ``status --json`` keeps them)."""
        if self.frequency == "15min":
            return "every 15 minutes"
        if self.frequency == "hourly":
            return f"hourly at minute {self.minute:02d}"
        when = f"{self.hour:02d}:{self.minute:02d}"
        if self.frequency == "daily":
            return f"daily at {when}"
        return f"weekly on {self.weekday} at {when}"


def schedule_for(settings: Settings) -> Schedule | None:
    """Given the settings, return when the scheduled update runs, or None when it is off."""
    if not settings.scheduled_update:
        return None
    frequency = settings.schedule_frequency
    # A random delay spreads many gateways over the update source (seed 000); a 15-minute
    # schedule never waits longer than its own period.
    jitter = settings.random_delay_seconds
    if frequency == "15min":
        return Schedule(frequency, jitter=min(jitter, MAX_15MIN_DELAY_SECONDS))
    if frequency == "hourly":
        return Schedule(frequency, minute=settings.schedule_minute, jitter=jitter)
    time = settings.schedule_time
    return Schedule(
        frequency, minute=time.minute, hour=time.hour,
        weekday=settings.schedule_weekday if frequency == "weekly" else None, jitter=jitter,
    )


def next_fire(schedule: Schedule, after: datetime.datetime, timezone: datetime.tzinfo) -> datetime.datetime:
    """Return the first scheduled time strictly after ``after`` (an aware datetime), without
    the random delay, as an aware datetime in ``timezone``. Consecutive results are at least
    the interval apart (for daily and weekly: less the clock change between them)."""
    if schedule.frequency in ("15min", "hourly"):
        moment = _next_step(schedule, after.astimezone(UTC), timezone)
    else:
        moment = _next_wall_clock(schedule, after.astimezone(UTC), timezone)
    return moment.astimezone(timezone)


def next_run(
    schedule: Schedule, now: datetime.datetime, timezone: datetime.tzinfo, delay_seconds: float
) -> datetime.datetime:
    """Given the time ``now`` and a random delay drawn from 0..``schedule.jitter`` seconds,
    return when the next scheduled run starts: always later than ``now``."""
    # In UTC: Python adds to (and compares) datetimes of one zone by wall clock, which is an
    # hour off across a clock change.
    moment = next_fire(schedule, now, timezone).astimezone(UTC) + datetime.timedelta(seconds=delay_seconds)
    return moment.astimezone(timezone)


def missed_run(
    schedule: Schedule | None,
    last_run: datetime.datetime | None,
    now: datetime.datetime,
    timezone: datetime.tzinfo,
) -> bool:
    """Return True when a scheduled time passed between ``last_run`` and ``now`` without a run
    (the daemon was down): the caller then runs once, however many were missed.

    With no record of any run, a missed run is assumed only if the schedule is on: a freshly
    installed gateway updates once soon after start.
    """
    if schedule is None:
        return False
    if last_run is None:
        return True
    return next_fire(schedule, last_run, timezone) <= now


# -- 15min and hourly: steps in real time ------------------------------------------------------


def _is_mark(schedule: Schedule, moment: datetime.datetime, timezone: datetime.tzinfo) -> bool:
    local = moment.astimezone(timezone)
    if local.second != 0:
        return False
    if schedule.frequency == "15min":
        return local.minute % 15 == 0
    return local.minute == schedule.minute


def _marks(schedule: Schedule, start: datetime.datetime, until: datetime.datetime,
           timezone: datetime.tzinfo) -> Iterator[datetime.datetime]:
    """The wall-clock marks from ``start`` (a whole UTC minute) up to ``until``, in UTC.

    Every zone's offset is a whole number of minutes today, so scanning UTC minutes finds
    every mark."""
    moment = start
    while moment <= until:
        if _is_mark(schedule, moment, timezone):
            yield moment
        moment += MINUTE


def _next_step(schedule: Schedule, after: datetime.datetime, timezone: datetime.tzinfo) -> datetime.datetime:
    interval = schedule.interval
    # Walk forward from two intervals back, keeping a mark only when it is at least the
    # interval after the last one kept: every call sees the same marks near ``after``, so
    # the plan is the same whichever moment it is asked from.
    start = _floor_minute(after - 2 * interval)
    kept: datetime.datetime | None = None
    for mark in _marks(schedule, start, after + interval + datetime.timedelta(hours=2), timezone):
        if kept is not None and mark - kept < interval:
            continue
        kept = mark
        if mark > after:
            return mark
    # A zone whose offset has seconds in it (local mean time, before about 1970) has no
    # wall-clock marks: fixed steps in UTC, so the schedule still runs.
    phase = datetime.timedelta(minutes=schedule.minute if schedule.frequency == "hourly" else 0)
    epoch = datetime.datetime(1970, 1, 1, tzinfo=UTC) + phase
    return epoch + ((after - epoch) // interval + 1) * interval


def _floor_minute(moment: datetime.datetime) -> datetime.datetime:
    return moment.replace(second=0, microsecond=0)


# -- daily and weekly: local wall-clock times --------------------------------------------------


def _next_wall_clock(schedule: Schedule, after: datetime.datetime,
                     timezone: datetime.tzinfo) -> datetime.datetime:
    target_weekday = WEEKDAYS.index(schedule.weekday) if schedule.weekday is not None else None
    first_day = after.astimezone(timezone).date() - datetime.timedelta(days=1)
    for offset in range(10):  # a week and the day around ``after`` in any zone
        day = first_day + datetime.timedelta(days=offset)
        # WEEKDAYS starts on Sunday; date.weekday() on Monday.
        if target_weekday is not None and (day.weekday() + 1) % 7 != target_weekday:
            continue
        moment = _resolve(datetime.datetime.combine(day, datetime.time(schedule.hour, schedule.minute)),
                          timezone)
        if moment > after:
            return moment
    raise AssertionError("unreachable: every weekday occurs within ten days")


def _resolve(wall: datetime.datetime, timezone: datetime.tzinfo) -> datetime.datetime:
    """Return the instant (UTC) a naive local wall-clock time stands for: the first
    occurrence of a repeated time, the first instant after the gap for a skipped one."""
    first = wall.replace(tzinfo=timezone, fold=0).astimezone(UTC)
    second = wall.replace(tzinfo=timezone, fold=1).astimezone(UTC)
    if first <= second:
        return first  # unique (equal) or repeated (fold=0 is the first occurrence)
    # Skipped: fold=1 reads it with the offset after the change (an instant before the gap),
    # fold=0 with the one before (an instant after it). The change lies between them.
    after_offset = first.astimezone(timezone).utcoffset()
    low, high = int(second.timestamp()), int(first.timestamp())  # offsets are whole seconds
    while high - low > 1:  # invariant: low has the offset before the change, high the one after
        middle = (low + high) // 2
        if datetime.datetime.fromtimestamp(middle, timezone).utcoffset() == after_offset:
            high = middle
        else:
            low = middle
    return datetime.datetime.fromtimestamp(high, UTC)
