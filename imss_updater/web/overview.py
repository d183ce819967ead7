"""The status page's overview: schedule and next run, the daemon's heartbeat, the download
lock, licence expiry and the services' state, as translated lines.

Costs no SQL statement of its own (it works on the rows and run status the page read) and
runs the two service status commands at most every ``services.CACHE_SECONDS``."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from imss_updater import overview
from imss_updater.daemon.schedule import Schedule, schedule_for
from imss_updater.database.run_status import RunStatus
from imss_updater.run.services import ServiceCache, ServiceState
from imss_updater.settings import Settings
from imss_updater.web.context import t, when


@dataclass(frozen=True)
class Fact:
    id: str
    label: str
    text: str
    warning: bool = False


def age(moment: datetime.datetime, now: datetime.datetime) -> str:
    amount, unit = overview.age_parts(now - moment)
    return t(f"age.{unit}", amount=amount)


def zone_name() -> str:
    return datetime.datetime.now().astimezone().strftime("%Z")


def schedule_words(schedule: Schedule) -> str:
    time = f"{schedule.hour:02d}:{schedule.minute:02d}"
    if schedule.frequency == "15min":
        return t("schedule.15min")
    if schedule.frequency == "hourly":
        return t("schedule.hourly", minute=f"{schedule.minute:02d}")
    if schedule.frequency == "daily":
        return t("schedule.daily", time=time, zone=zone_name())
    return t("schedule.weekly", weekday=t(f"weekday.{schedule.weekday}"), time=time, zone=zone_name())


def facts(settings: Settings | None, run: RunStatus, lock_holder: int | None) -> list[Fact]:
    """Given the settings (None while invalid), the run status and the lock holder, return
    the schedule, next run, daemon and lock lines."""
    now = datetime.datetime.now(datetime.UTC)
    shown: list[Fact] = []
    if settings is None:
        shown.append(Fact("schedule", t("overview.schedule"), t("overview.schedule_invalid"), True))
        schedule = None
    else:
        schedule = schedule_for(settings)
        text = (t("overview.schedule_on", words=schedule_words(schedule)) if schedule
                else t("overview.schedule_off"))
        shown.append(Fact("schedule", t("overview.schedule"), text, schedule is None))
    alive = overview.daemon_alive(run.daemon_heartbeat, now)
    if schedule is not None or settings is None:
        next_text = when(run.next_run_at) if run.next_run_at and alive else t("overview.next_run_none")
        shown.append(Fact("next-run", t("overview.next_run"), next_text, not alive))
    if alive and run.daemon_heartbeat is not None:
        shown.append(Fact("daemon", t("overview.daemon"), t(
            "overview.daemon_alive", pid=run.daemon_pid or "?", age=age(run.daemon_heartbeat, now),
            time=when(run.daemon_heartbeat))))
    else:
        shown.append(Fact("daemon", t("overview.daemon"),
                          t("overview.daemon_dead", time=when(run.daemon_heartbeat)), True))
    shown.append(Fact("lock", t("overview.lock"), t("overview.lock_held", pid=lock_holder)
                      if lock_holder else t("overview.lock_free")))
    return shown


def license_lines(settings: Settings | None) -> list[Fact]:
    if settings is None:
        return []
    lines = []
    for state in overview.licenses(settings.licenses, datetime.date.today()):
        text = t(f"overview.license_{state.state}", name=state.name,
                 date=state.expiry.isoformat() if state.expiry else "", days=state.days_left)
        lines.append(Fact(f"license-{state.name}", state.name, text, state.state != "active"))
    return lines


def service_state(cache: ServiceCache, command: tuple[str, ...] | None) -> tuple[str, bool]:
    """Given the status command (None while the settings are invalid), return the
    service's state as text and whether it needs attention."""
    if command is None:
        return t("overview.service_unknown", reason=t("overview.settings_invalid")), True
    state: ServiceState = cache.state(command)
    if state.running is None:
        return t("overview.service_unknown", reason=state.reason), True
    if state.running:
        return t("overview.service_running"), False
    return t("overview.service_stopped"), True
