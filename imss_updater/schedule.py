"""When the scheduled update runs: pure translation of the schedule settings into a cron spec."""

from __future__ import annotations

from dataclasses import dataclass

from imss_updater.settings import Settings

JITTER_SECONDS = {"15min": 60, "hourly": 120, "daily": 300, "weekly": 300}
"""A random delay that spreads many gateways over the update source (seed 000)."""


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
    jitter = JITTER_SECONDS[frequency]
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
