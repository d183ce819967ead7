"""Notifications of scheduled-update events by mail and SNMP trap (SPEC sections 1, 2, 4).

Flow: after a scheduled run, ``enqueue_run`` turns the RunReport into one event per
(event group, outcome) (``events``), keeps of the failures only those due again and adds
the "recovered" messages (``repeat``: RepeatFailureHours, NotifyRecovery), renders them with
the ``Notification`` templates (``templates``) and stores one outbox row per channel and
receiver (``outbox``); nothing is sent inside the run. ``deliver_pending`` (``delivery``)
later sends what is due (``mail``, ``snmp``), each attempt bounded in time, retries
transient errors with backoff a bounded number of times, and records every attempt; the
daemon runs it in one worker per channel (``worker``). A broken relay or receiver never
raises out of here: its error is data in the attempt log.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Callable, Mapping, Sequence

from imss_updater.catalog import Component, SourceRole
from imss_updater.database.db import Database
from imss_updater.i18n import N_, Reason
from imss_updater.notify import events, repeat, templates
from imss_updater.notify.config import NotifySettings
from imss_updater.notify.delivery import (
    AttemptResult,
    DeliveryReport,
    deliver_pending,
    load_settings,
    log_attempt,
    send,
    utc_now,
)
from imss_updater.notify.events import DeliveryError, Event, EventItem
from imss_updater.notify.outbox import Delivery, NewNotification, Outbox, Verdict
from imss_updater.notify.reasons import masked, problems_reason
from imss_updater.run.planner import unusable
from imss_updater.run.updater import RunReport
from imss_updater.settings import SettingsError
from imss_updater.settings import load as load_update_settings
from imss_updater.settings_values import Problem
from imss_updater.versions import Version, VersionError

__all__ = [
    "AttemptResult",
    "Delivery",
    "DeliveryReport",
    "deliver_pending",
    "deliveries",
    "enqueue_run",
    "enqueue_stale",
    "node_notifications",
    "node_unusable",
    "send_test",
]

log = logging.getLogger(__name__)

# -- queueing -------------------------------------------------------------------------------


def enqueue_run(
    database: Database,
    catalog: Sequence[Component],
    report: RunReport,
    *,
    now: Callable[[], datetime.datetime] = utc_now,
) -> int:
    """Given a finished run's report, queue the notifications its events call for.

    Only a scheduled run notifies. One message per (event group, outcome) with components,
    on each channel its ``<G>Update<O>Mail``/``Trap`` row turns on and that is configured
    (a trap per receiver); nothing when everything was up to date. A failure already
    notified with the same reason is left out until ``RepeatFailureHours`` have passed; the
    first run in which a notified failure's component works again queues a "recovered"
    message on the group's failure channels (``NotifyRecovery``). Bad notification rows
    are logged and fall back to the SPEC defaults, so failures are still queued. Return
    how many notifications were queued. Raise DatabaseError if the database fails.
    """
    if report.kind != "scheduled":
        return 0
    moment = now()
    rows = database.settings_rows()
    settings = load_settings(rows, database.node)
    sources = {component.id: _source(rows, component) for component in catalog}
    box = Outbox(database)
    memory = box.notified_failures()
    decision = repeat.decide(
        events.from_run(catalog, report, time=moment, host=settings.host, sources=sources),
        _working(database, catalog, report, rows, memory, moment),
        memory,
        moment,
        repeat.Policy(settings.repeat_failure_hours, settings.notify_recovery),
        host=settings.host,
        sources=sources,
    )
    for group, component in decision.held_back:
        log.info("%s failure of %s not notified again yet (Notification/RepeatFailureHours=%d)",
                 group, component, settings.repeat_failure_hours)
    queued: list[NewNotification] = []
    reached: set[str] = set()
    for event in decision.events:
        assert event.group is not None
        if event.outcome == "recovered":
            rule = settings.rules[(event.group, "failure")]  # told of the failure, told of its end
            subject, message = templates.recovered_templates(settings.language, event.group)
        else:
            rule = settings.rules[(event.group, event.outcome)]
            subject, message = rule.subject, rule.message
        queued += _fan_out(database, settings, event, rule.mail, rule.trap, subject, message, now)
        if event.outcome == "failure" and _reaches(settings, rule.mail, rule.trap):
            reached.add(event.group)
    remember = decision.remembered_for(reached)
    if queued or remember or decision.forget:
        box.add(queued, now=moment, remember=remember, forget=decision.forget)
    return len(queued)


def _working(
    database: Database,
    catalog: Sequence[Component],
    report: RunReport,
    rows: Mapping[tuple[str, str], str],
    memory: Mapping[repeat.Key, repeat.Notified],
    moment: datetime.datetime,
) -> list[tuple[str, EventItem]]:
    """Return the components with a notified failure that this run found working without
    an outcome of their own: the run went through (it has outcomes, or everything was up to
    date, and no restart failed), and they are scheduled and licensed, so they were checked
    and were already up to date."""
    if not memory or report.restart_error is not None or not (report.outcomes or report.up_to_date):
        return []
    try:
        settings = load_update_settings(rows, [component.id for component in catalog])
    except SettingsError:
        return []
    with_outcome = {outcome.component for outcome in report.outcomes}
    by_id = {component.id: component for component in catalog}
    states = database.component_states()
    found: list[tuple[str, EventItem]] = []
    for group, component_id in memory:
        component = by_id.get(component_id)
        if (
            component is None or component_id in with_outcome
            or component.event_group.value != group
            or component_id not in settings.scheduled_components
            or unusable(component, settings, moment.astimezone().date()) is not None
        ):
            continue
        state = states.get(component_id)
        version = _display(state.current_version if state else None)
        found.append((group, EventItem(
            component_id, component.name_en, component.name_ja, version, "success"
        )))
    return found


def _reaches(settings: NotifySettings, want_mail: bool, want_trap: bool) -> bool:
    """Whether a message wanted on these channels reaches the administrator or the attempt
    log (a channel configured, or configured but unusable and said so)."""
    mail_known = settings.mail is not None or bool(settings.mail_problems)
    trap_known = settings.trap is not None or bool(settings.trap_problems)
    return (want_mail and mail_known) or (want_trap and trap_known)


def enqueue_stale(
    database: Database,
    component: Component,
    last_success: datetime.datetime | None,
    stale: bool,
    *,
    now: Callable[[], datetime.datetime] = utc_now,
) -> int:
    """Queue a notification that ``component`` became stale (``stale``) or fresh again.

    The caller calls this once per change of state. It goes to the channels of the
    component group's failure rows (``<G>UpdateFailureMail``/``Trap``): whoever is told
    about failures is told about staleness and its end. Return how many were queued.
    """
    rows = database.settings_rows()
    settings = load_settings(rows, database.node)
    state = database.component_states().get(component.id)
    version = _display(state.current_version if state else None)
    event = events.stale_event(
        component, version, last_success, stale, time=now(), host=settings.host,
        source=_source(rows, component),
    )
    rule = settings.rules[(component.event_group.value, "failure")]
    subject, message = templates.built_in(settings.language, "stale" if stale else "fresh")
    queued = _fan_out(database, settings, event, rule.mail, rule.trap, subject, message, now)
    return Outbox(database).add(queued, now=now()) if queued else 0


def node_channels(settings: NotifySettings) -> tuple[bool, bool]:
    """Whether a fleet node's going down or coming back is wanted by mail and by trap: on the
    channels of any event group's failure rows, as a node that is down updates no group."""
    rules = [settings.rules[(group, "failure")] for group in events.GROUP_ORDER]
    return any(rule.mail for rule in rules), any(rule.trap for rule in rules)


def node_notifications(
    settings: NotifySettings, node: str, heartbeat: datetime.datetime, down: bool,
    *, now: datetime.datetime,
) -> list[NewNotification]:
    """Return the outbox rows saying that fleet node ``node`` (last heartbeat ``heartbeat``)
    went down (``down``) or came back, sent by this node (the leader). Pure: the caller
    queues them (``outbox.insert``) in the transaction that records the report, and calls
    ``node_unusable`` after it."""
    event = events.node_event(node, heartbeat, down, time=now, host=settings.host)
    subject, message = templates.built_in(settings.language, "down" if down else "up")
    return _notifications(settings, event, *node_channels(settings), subject, message)


def node_unusable(database: Database, settings: NotifySettings, node: str, heartbeat: datetime.datetime,
                  down: bool, *, now: Callable[[], datetime.datetime] = utc_now) -> None:
    """Record in the attempt log that the node message is wanted on a channel whose settings
    are unusable (what ``_fan_out`` does for the other events)."""
    event = events.node_event(node, heartbeat, down, time=now(), host=settings.host)
    _log_unusable(database, settings, event, *node_channels(settings), now)


def _fan_out(
    database: Database,
    settings: NotifySettings,
    event: Event,
    want_mail: bool,
    want_trap: bool,
    subject_template: str,
    body_template: str,
    now: Callable[[], datetime.datetime],
) -> list[NewNotification]:
    found = _notifications(settings, event, want_mail, want_trap, subject_template, body_template)
    _log_unusable(database, settings, event, want_mail, want_trap, now)
    return found


def _notifications(
    settings: NotifySettings,
    event: Event,
    want_mail: bool,
    want_trap: bool,
    subject_template: str,
    body_template: str,
) -> list[NewNotification]:
    """Return the outbox rows of ``event`` on the channels wanted and configured (pure)."""
    subject, body = events.compose(event, subject_template, body_template, settings.language)
    payload = events.payload(event, subject, settings.language)
    found: list[NewNotification] = []

    def notification(channel: str, recipient: str) -> NewNotification:
        return NewNotification(
            event.kind, event.group, event.outcome, channel, recipient, subject, body, payload
        )

    if want_mail and settings.mail is not None:
        found.append(notification("mail", ", ".join(settings.mail.recipients)))
    if want_trap and settings.trap is not None:
        found += [notification("trap", str(receiver)) for receiver in settings.trap.receivers]
    return found


def _log_unusable(
    database: Database,
    settings: NotifySettings,
    event: Event,
    want_mail: bool,
    want_trap: bool,
    now: Callable[[], datetime.datetime],
) -> None:
    if want_mail and settings.mail is None and settings.mail_problems:
        _unusable(database, "mail", event, settings.mail_problems, now)
    if want_trap and settings.trap is None and settings.trap_problems:
        _unusable(database, "trap", event, settings.trap_problems, now)


def _unusable(
    database: Database,
    channel: str,
    event: Event,
    problems: Sequence[Problem],
    now: Callable[[], datetime.datetime],
) -> None:
    """A wanted channel is configured but unusable: say so where the administrator looks."""
    error = Reason(N_("not sent: invalid settings: %(problems)s"), {"problems": problems_reason(problems)})
    log.error("%s notification (%s) %s", channel, event.label, error)
    Outbox(database).log_attempt(now(), channel, event.label, "-", Verdict("failed", error))


# -- test and log -----------------------------------------------------------------------------


def send_test(
    database: Database, *, mail: bool, trap: bool, now: Callable[[], datetime.datetime] = utc_now
) -> list[AttemptResult]:
    """Send a test message now on each channel asked for (neither: both) and return the
    outcome of each (a trap per receiver). Every attempt is recorded; an unconfigured
    channel is a failed attempt saying so. Never raises for a delivery problem."""
    if not mail and not trap:
        mail = trap = True
    settings = load_settings(database.settings_rows(), database.node)
    event = events.self_test_event(time=now(), host=settings.host)
    subject_template, body_template = templates.built_in(settings.language, "test")
    subject, body = events.compose(event, subject_template, body_template, settings.language)
    payload = events.payload(event, subject, settings.language)
    targets: list[tuple[str, str]] = []
    if mail:
        targets.append(("mail", ", ".join(settings.mail.recipients) if settings.mail else "-"))
    if trap:
        receivers = settings.trap.receivers if settings.trap else ()
        targets += [("trap", str(receiver)) for receiver in receivers] or [("trap", "-")]
    results: list[AttemptResult] = []
    box = Outbox(database)
    for channel, recipient in targets:
        try:
            note = send(settings, channel, recipient, subject, body, payload)
            verdict = Verdict("sent", masked(note, settings.secrets()) if note else None)
        except DeliveryError as error:
            verdict = Verdict("failed", masked(error.reason, settings.secrets()))
        box.log_attempt(now(), channel, "test", recipient, verdict)
        log_attempt(channel, recipient, "test", verdict)
        results.append(AttemptResult(channel, recipient, "test", verdict.outcome, verdict.error))
    return results


def deliveries(database: Database, limit: int = 100) -> list[Delivery]:
    """Return the delivery-attempt log, newest first (for ``notify log`` and the web page)."""
    return Outbox(database).deliveries(limit)


# -- helpers --------------------------------------------------------------------------------


def _source(rows: Mapping[tuple[str, str], str], component: Component) -> str:
    name = "TMASEServerurl" if component.source is SourceRole.TMASE else "UpdateServer"
    return rows.get(("Update", name), "")


def _display(raw: str | None) -> str | None:
    if not raw:
        return None
    try:
        return Version.parse(raw).display
    except VersionError:
        return raw
