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
from imss_updater.web.context import _, language, ngettext, when
from imss_updater.web.labels import label


@dataclass(frozen=True)
class Fact:
    id: str
    label: str
    text: str
    warning: bool = False


def age_words(amount: int, unit: str) -> str:
    """Return an age such as (3, "days") in the request's language, plural-aware."""
    if unit == "s":
        return ngettext("%(num)d s", "%(num)d s", amount)
    if unit == "min":
        return ngettext("%(num)d min", "%(num)d min", amount)
    if unit == "h":
        return ngettext("%(num)d h", "%(num)d h", amount)
    return ngettext("%(num)d day", "%(num)d days", amount)


def age(moment: datetime.datetime, now: datetime.datetime) -> str:
    amount, unit = overview.age_parts(now - moment)
    return age_words(amount, unit)


def zone_name() -> str:
    return datetime.datetime.now().astimezone().strftime("%Z")


def schedule_words(schedule: Schedule) -> str:
    return schedule.words(zone_name()).render(language())


def facts(settings: Settings | None, run: RunStatus, lock_holder: int | None) -> list[Fact]:
    """Given the settings (None while invalid), the run status and the lock holder, return
    the schedule, next run, daemon and lock lines."""
    now = datetime.datetime.now(datetime.UTC)
    shown: list[Fact] = []
    if settings is None:
        shown.append(Fact("schedule", _("Scheduled update"), _("Unknown: the settings are invalid"), True))
        schedule = None
    else:
        schedule = schedule_for(settings)
        text = (_("On: %(words)s", words=schedule_words(schedule)) if schedule
                else _("Off (Update/ScheduledUpdate = no)"))
        shown.append(Fact("schedule", _("Scheduled update"), text, schedule is None))
    alive = overview.daemon_alive(run.daemon_heartbeat, now)
    if schedule is not None or settings is None:
        next_text = when(run.next_run_at) if run.next_run_at and alive else _("Not planned")
        shown.append(Fact("next-run", _("Next scheduled run"), next_text, not alive))
    if alive and run.daemon_heartbeat is not None:
        shown.append(Fact("daemon", _("Updater"), _(
            "Running (process %(pid)s, last heartbeat %(age)s ago, %(time)s)", pid=run.daemon_pid or "?",
            age=age(run.daemon_heartbeat, now),
            time=when(run.daemon_heartbeat))))
    else:
        shown.append(Fact("daemon", _("Updater"),
                          _("The updater is not running (last heartbeat %(time)s)",
                            time=when(run.daemon_heartbeat)), True))
    held = _("Held by process %(pid)s: an update is in progress", pid=lock_holder) if lock_holder else None
    shown.append(Fact("lock", _("Download lock"), held or _("Free")))
    return shown


def license_lines(settings: Settings | None) -> list[Fact]:
    if settings is None:
        return []
    lines = []
    for state in overview.licenses(settings.licenses, datetime.date.today()):
        text = _(label("overview.license", state.state), name=_(label("license", state.name)),
                 date=state.expiry.isoformat() if state.expiry else "", days=state.days_left)
        lines.append(Fact(f"license-{state.name}", _(label("license", state.name)), text,
                          state.state != "active"))
    return lines


def service_state(cache: ServiceCache, command: tuple[str, ...] | None) -> tuple[str, bool]:
    """Given the status command (None while the settings are invalid), return the
    service's state as text and whether it needs attention."""
    if command is None:
        return _("Unknown (%(reason)s)", reason=_("the settings are invalid")), True
    state: ServiceState = cache.state(command)
    if state.running is None:
        return _("Unknown (%(reason)s)", reason=state.reason_in(language())), True
    if state.running:
        return _("Running"), False
    return _("Stopped"), True
