"""Diagnosis steps 1 and 2 of seed 004 Q8, asked before any network step.

Step 1: is this gateway updating by itself at all: are scheduled updates on, is every
component in use on the schedule (a rollback takes one off it), which components are stale.
Step 2: are the available versions known: has a check ever succeeded, and what the source
offered at the last check (Unknown: the source was not reached; 0.0: it does not
carry the component). Read from the database only; nothing is contacted or written.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence

from imss_updater import overview
from imss_updater.catalog import Component, SourceRole
from imss_updater.database.db import ComponentState, RunStatus
from imss_updater.diagnose.steps import Recorder
from imss_updater.diagnose.texts import LIST, SEMICOLON, Column, Text, joined, words
from imss_updater.i18n import N_, Reason
from imss_updater.run.planner import Availability, is_stale
from imss_updater.run.report import parse_or_none
from imss_updater.run.updater import is_control_manager
from imss_updater.settings import Settings

WEEKDAYS = {"sun": N_("Sunday"), "mon": N_("Monday"), "tue": N_("Tuesday"), "wed": N_("Wednesday"),
            "thu": N_("Thursday"), "fri": N_("Friday"), "sat": N_("Saturday")}
AGES = {"s": N_("%(amount)s s"), "min": N_("%(amount)s min"), "h": N_("%(amount)s h"),
        "days": N_("%(amount)s days")}
CONSOLE_SCHEDULE = N_("the console's Settings > Scheduled Update page")


def schedule_words(settings: Settings) -> Reason:
    """Return the schedule in words (gateway local time)."""
    frequency = settings.schedule_frequency
    time = settings.schedule_time.strftime("%H:%M")
    if frequency == "15min":
        return Reason(N_("every 15 minutes"))
    if frequency == "hourly":
        return Reason(N_("every hour at minute %(minute)s"), {"minute": f"{settings.schedule_minute:02d}"})
    if frequency == "daily":
        return Reason(N_("every day at %(time)s (gateway local time)"), {"time": time})
    weekday = settings.schedule_weekday
    shown = words(weekday, Reason(WEEKDAYS[weekday])) if weekday in WEEKDAYS else weekday
    return Reason(N_("every %(weekday)s at %(time)s (gateway local time)"), {"weekday": shown, "time": time})


def age(amount: int, unit: str) -> Reason:
    """An age as ``overview.age_words`` words it (``5 days``), in any language."""
    return Reason(N_("%(amount)s day") if unit == "days" and amount == 1 else AGES[unit], {"amount": amount})


def in_use(settings: Settings, catalog: Sequence[Component], today: datetime.date) -> list[Component]:
    """The components this gateway updates: licensed and their feature enabled."""
    return [c for c in catalog
            if settings.license_active(c.license, today) and settings.feature_enabled(c.feature)]


def names(components: Sequence[Component]) -> Reason:
    """The components' names in the language shown (tb_component's name_en and name_ja)."""
    return joined((words(c.name_en, c.name_ja) for c in components), LIST)


class ScheduleChecks(Recorder):
    """Seed 004 Q8 steps 1 and 2 (see the module docstring)."""

    # -- step 1: is the gateway updating by itself? -------------------------------------------

    def check_scheduled_update(self, settings: Settings) -> None:
        name = Reason(N_("scheduled update"))
        if settings.scheduled_update:
            self.add(name, True, Reason(N_("on: %(schedule)s"), {"schedule": schedule_words(settings)}))
            return
        self.add(name, False,
                 Reason(N_("off (Update/ScheduledUpdate=no): components are updated only when someone "
                           "runs an update by hand")),
                 Reason(N_("turn it on: tick \"Enable scheduled update\" on %(page)s, or run "
                           "`imss-updater config set Update ScheduledUpdate yes`"),
                        {"page": Reason(CONSOLE_SCHEDULE)}))

    def check_scheduled_components(self, settings: Settings, catalog: Sequence[Component]) -> None:
        name = Reason(N_("components on the schedule"))
        used = in_use(settings, catalog, self.today)
        off = [c for c in used if c.id not in settings.scheduled_components]
        unused = len(catalog) - len(used)
        note: Text = (Reason(N_("; %(count)s not in use (not licensed or disabled)"), {"count": unused})
                      if unused else "")
        if not off:
            self.add(name, True, Reason(
                N_("all %(count)s components in use are updated on the schedule%(note)s"),
                {"count": len(used), "note": note}))
            return
        wanted = ",".join(c.id for c in catalog if c.id in settings.scheduled_components or c in off)
        self.add(name, False,
                 Reason(N_("%(count)s component(s) in use are not updated on the schedule: "
                           "%(names)s%(note)s"), {"count": len(off), "names": names(off), "note": note}),
                 Reason(N_("a rollback takes a component off the schedule: tick it again on %(page)s, or "
                           "run `imss-updater config set Update ScheduledComponents %(wanted)s`"),
                        {"page": Reason(CONSOLE_SCHEDULE), "wanted": wanted}))

    def check_stale(self, settings: Settings, catalog: Sequence[Component],
                    states: Mapping[str, ComponentState], now: datetime.datetime) -> None:
        name = Reason(N_("stale components"))
        stale: list[Reason] = []
        for component in in_use(settings, catalog, self.today):
            state = states.get(component.id)
            last = state.last_success_at if state else None
            limit = settings.stale_after_days.get(component.id)
            if last is None or not is_stale(last, limit, now):
                continue
            stale.append(Reason(
                N_("%(name)s (last updated %(date)s, %(age)s ago; Staleness/%(id)s=%(limit)s)"),
                {"name": words(component.name_en, component.name_ja), "date": last.date().isoformat(),
                 "age": age(*overview.age_parts(now - last)), "id": component.id, "limit": limit}))
        if not stale:
            self.add(name, True, Reason(N_("none: every component in use was updated within its "
                                           "Staleness limit (or has no limit)")))
            return
        self.add(name, False,
                 Reason(N_("%(count)s not updated for too long: %(components)s"),
                        {"count": len(stale), "components": joined(stale)}),
                 Reason(N_("the next steps tell why: are newer versions known (available versions), and "
                           "can the source be reached (the network steps)")))

    # -- step 2: are the available versions known? --------------------------------------------

    def check_last_check(self, run: RunStatus) -> None:
        name = Reason(N_("last check"))
        if run.last_check_at is None:
            self.add(name, None, Reason(
                N_("skipped: no check has run yet, so no available version is known (run "
                   "`imss-updater check`; the network steps below fetch server.ini as a check would)")))
            return
        at = run.last_check_at.astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")
        text = run.last_check_text or ""
        said = Column(text) if text else None  # a stored Reason (i18n.stored) or an older plain text
        if run.last_check_ok:
            self.add(name, True,
                     Reason(N_("the last check at %(at)s succeeded: %(text)s"), {"at": at, "text": said})
                     if said else Reason(N_("the last check at %(at)s succeeded"), {"at": at}))
            return
        self.add(name, False,
                 Reason(N_("the last check at %(at)s failed: %(text)s"), {"at": at, "text": said})
                 if said else Reason(N_("the last check at %(at)s failed"), {"at": at}),
                 Reason(N_("the source could not be reached or read: the network steps below show where")))

    def check_available(self, settings: Settings, catalog: Sequence[Component],
                        states: Mapping[str, ComponentState], run: RunStatus) -> None:
        name = Reason(N_("available versions"))
        if run.last_check_at is None:
            self.skip(name, Reason(N_("no check has run yet")))
            return
        unknown: list[Component] = []
        absent: list[Component] = []
        absent_noted: list[Component] = []
        newer: list[Reason] = []
        known = 0
        for component in in_use(settings, catalog, self.today):
            state = states.get(component.id)
            status = state.available_status if state else Availability.UNKNOWN
            source = (settings.update_server if component.source is SourceRole.UPDATE
                      else settings.tmase_server)
            if status == Availability.UNKNOWN or state is None:
                unknown.append(component)
            elif status == Availability.ABSENT:
                # 0.0 from a Control Manager means it has not downloaded the component (Q4),
                # unless a Control Manager never carries it; an ActiveUpdate source just does not.
                if is_control_manager(source) and component.on_control_manager:
                    absent.append(component)
                else:
                    absent_noted.append(component)
            else:
                known += 1
                offered = parse_or_none(state.available_version)
                current = parse_or_none(state.current_version)
                if offered is not None and (current is None or offered > current):
                    newer.append(Reason(N_("%(name)s %(installed)s -> %(offered)s"), {
                        "name": words(component.name_en, component.name_ja),
                        "installed": current.display if current else "-", "offered": offered.display}))
        findings: list[Text] = [Reason(N_("%(count)s known"), {"count": known})]
        if newer:
            findings.append(Reason(N_("newer than installed: %(versions)s"),
                                   {"versions": joined(newer, LIST)}))
        if absent_noted:
            findings.append(Reason(N_("not carried by the source (0.0): %(names)s"),
                                   {"names": names(absent_noted)}))
        detail = joined(findings, SEMICOLON)
        if unknown:
            self.add(name, False, Reason(N_("Unknown for %(names)s; %(detail)s"),
                                         {"names": names(unknown), "detail": detail}),
                     Reason(N_("the source was not reached or could not be read at the last check: the "
                               "network steps below (name resolution, proxy, connection, TLS) show where it "
                               "fails")))
        elif absent:
            self.add(name, False,
                     Reason(N_("0.0 for %(names)s: the Control Manager server offers no version; %(detail)s"),
                            {"names": names(absent), "detail": detail}),
                     Reason(N_("the Control Manager server has not downloaded these components: review its "
                               "download settings so it downloads every component this gateway uses")))
        else:
            self.add(name, True, detail, Reason(
                N_("the update runs at the next scheduled time, or now with `imss-updater update`; if a "
                   "newer version is never installed, collect `imss-updater logs` and `imss-updater "
                   "status` for support")) if newer else "")
