"""Notifications of scheduled-update events by mail and SNMP trap (SPEC sections 1, 2, 4).

Flow: after a scheduled run, ``enqueue_run`` turns the RunReport into one event per
(event group, outcome) (``events``), renders it with the ``Notification`` templates
(``templates``) and stores one outbox row per channel and receiver (``outbox``); nothing
is sent inside the run. ``deliver_pending`` later sends what is due (``mail``, ``snmp``),
retries transient errors with backoff a bounded number of times, and records every attempt.
A broken relay or receiver never raises out of here: its error is data in the attempt log.
"""

from __future__ import annotations

import datetime
import functools
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from imss_updater.catalog import Component, SourceRole
from imss_updater.database.db import Database
from imss_updater.notify import config, events, mail, snmp, templates
from imss_updater.notify.config import NotifySettings, Receiver
from imss_updater.notify.events import DeliveryError, Event
from imss_updater.notify.outbox import Delivery, NewNotification, Outbox, Pending, Verdict
from imss_updater.run.updater import RunReport
from imss_updater.settings import Problem
from imss_updater.versions import Version, VersionError

__all__ = [
    "AttemptResult",
    "Delivery",
    "DeliveryReport",
    "deliver_pending",
    "deliveries",
    "enqueue_run",
    "enqueue_stale",
    "send_test",
]

log = logging.getLogger(__name__)

MAX_BACKOFF_SECONDS = 3600.0


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


@dataclass(frozen=True)
class AttemptResult:
    channel: str  # mail, trap
    recipient: str
    event: str
    outcome: str  # sent, retry, failed
    error: str | None = None

    def as_json(self) -> dict[str, object]:
        return {
            "channel": self.channel,
            "recipient": self.recipient,
            "event": self.event,
            "outcome": self.outcome,
            "error": self.error,
        }


@dataclass
class DeliveryReport:
    attempts: list[AttemptResult] = field(default_factory=list)
    pending: int = 0  # still queued for a later call

    @property
    def sent(self) -> int:
        return sum(1 for attempt in self.attempts if attempt.outcome == "sent")

    @property
    def retried(self) -> int:
        return sum(1 for attempt in self.attempts if attempt.outcome == "retry")

    @property
    def failed(self) -> int:
        return sum(1 for attempt in self.attempts if attempt.outcome == "failed")


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
    (a trap per receiver); nothing when everything was up to date. Bad notification rows
    are logged and fall back to the SPEC defaults, so failures are still queued. Return
    how many notifications were queued. Raise DatabaseError if the database fails.
    """
    if report.kind != "scheduled":
        return 0
    rows = database.settings_rows()
    settings = _settings(rows)
    sources = {component.id: _source(rows, component) for component in catalog}
    queued: list[NewNotification] = []
    for event in events.from_run(catalog, report, time=now(), host=settings.host, sources=sources):
        assert event.group is not None
        rule = settings.rules[(event.group, event.outcome)]
        queued += _fan_out(database, settings, event, rule.mail, rule.trap, rule.subject, rule.message, now)
    return Outbox(database).add(queued, now=now()) if queued else 0


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
    settings = _settings(rows)
    state = database.component_states().get(component.id)
    version = _display(state.current_version if state else None)
    event = events.stale_event(
        component, version, last_success, stale, time=now(), host=settings.host,
        source=_source(rows, component),
    )
    rule = settings.rules[(component.event_group.value, "failure")]
    subject, message = templates.BUILT_IN[settings.language]["stale" if stale else "fresh"]
    queued = _fan_out(database, settings, event, rule.mail, rule.trap, subject, message, now)
    return Outbox(database).add(queued, now=now()) if queued else 0


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
    subject, body = events.compose(event, subject_template, body_template, settings.language)
    payload = events.payload(event, subject, settings.language)
    found: list[NewNotification] = []

    def notification(channel: str, recipient: str) -> NewNotification:
        return NewNotification(
            event.kind, event.group, event.outcome, channel, recipient, subject, body, payload
        )

    if want_mail:
        if settings.mail is not None:
            found.append(notification("mail", ", ".join(settings.mail.recipients)))
        elif settings.mail_problems:
            _unusable(database, "mail", event, settings.mail_problems, now)
    if want_trap:
        if settings.trap is not None:
            found += [notification("trap", str(receiver)) for receiver in settings.trap.receivers]
        elif settings.trap_problems:
            _unusable(database, "trap", event, settings.trap_problems, now)
    return found


def _unusable(
    database: Database,
    channel: str,
    event: Event,
    problems: Sequence[Problem],
    now: Callable[[], datetime.datetime],
) -> None:
    """A wanted channel is configured but unusable: say so where the administrator looks."""
    error = "not sent: invalid settings: " + "; ".join(str(problem) for problem in problems)
    log.error("%s notification (%s) %s", channel, event.label, error)
    Outbox(database).log_attempt(now(), channel, event.label, "-", Verdict("failed", error))


# -- delivery -------------------------------------------------------------------------------


def deliver_pending(
    database: Database, *, now: Callable[[], datetime.datetime] = utc_now
) -> DeliveryReport:
    """Send every queued notification that is due, and record each attempt.

    A transient error (network, timeout, 4xx, an inform without answer) is retried by a
    later call after a backoff (``RetryBackoff`` seconds, doubled per attempt, at most an
    hour), up to ``MaxAttempts`` attempts; a permanent one (certificate, authentication,
    5xx, invalid settings) fails at once. Never sleeps and never raises for a delivery
    problem; raise DatabaseError if the database itself fails.
    """
    report = DeliveryReport()
    box = Outbox(database)
    ids = box.due(now())
    if ids:
        settings = _settings(database.settings_rows())
        for notification_id in ids:
            moment = now()
            done = box.attempt(notification_id, moment, functools.partial(_deliver, settings, moment=moment))
            if done is None:
                continue
            pending, verdict = done
            report.attempts.append(AttemptResult(
                pending.channel, pending.recipient, pending.label, verdict.outcome, verdict.error
            ))
            _log_attempt(pending.channel, pending.recipient, pending.label, verdict)
    report.pending = box.pending_count()
    return report


def _deliver(settings: NotifySettings, pending: Pending, *, moment: datetime.datetime) -> Verdict:
    try:
        note = _send(
            settings, pending.channel, pending.recipient, pending.subject, pending.body, pending.payload
        )
    except DeliveryError as error:
        reason = _mask(error.reason, settings.secrets())
        attempts = pending.attempts + 1
        if error.transient and attempts < settings.max_attempts:
            delay = min(settings.retry_backoff * 2 ** (attempts - 1), MAX_BACKOFF_SECONDS)
            return Verdict("retry", reason, moment + datetime.timedelta(seconds=delay))
        if error.transient:
            reason += f" (gave up after {attempts} attempts)"
        return Verdict("failed", reason)
    return Verdict("sent", _mask(note, settings.secrets()) if note else None)


def _send(
    settings: NotifySettings,
    channel: str,
    recipient: str,
    subject: str,
    body: str,
    payload: Mapping[str, object],
) -> str | None:
    """Send on one channel; return a note or None. Raise DeliveryError."""
    try:
        if channel == "mail":
            if settings.mail is None:
                reason = _not_configured("mail", settings.mail_problems, "SMTPServer")
                raise DeliveryError(reason, transient=False)
            recipients = [address.strip() for address in recipient.split(",") if address.strip()]
            return mail.send(settings.mail, recipients, subject, body)
        if settings.trap is None:
            reason = _not_configured("trap", settings.trap_problems, "SNMPServer")
            raise DeliveryError(reason, transient=False)
        snmp.send(settings.trap, _receiver(recipient), payload)
        return None
    except DeliveryError:
        raise
    except Exception as error:  # a bug in a channel must not stop the other messages
        log.debug("unexpected error sending %s to %s", channel, recipient, exc_info=True)
        raise DeliveryError(f"internal error: {error.__class__.__name__}: {error}", transient=True) from error


def _not_configured(channel: str, problems: Sequence[Problem], row: str) -> str:
    if problems:
        return "invalid settings: " + "; ".join(str(problem) for problem in problems)
    return f"{channel} is not configured (Notification/{row} is empty)"


def _receiver(text: str) -> Receiver:
    return config.parse_receivers(text)[0]


def _log_attempt(channel: str, recipient: str, label: str, verdict: Verdict) -> None:
    if verdict.outcome == "sent":
        log.info("%s notification (%s) sent to %s%s", channel, label, recipient,
                 f" ({verdict.error})" if verdict.error else "")
    elif verdict.outcome == "retry":
        log.warning("%s notification (%s) to %s will be retried at %s: %s", channel, label, recipient,
                    verdict.next_attempt_at.isoformat() if verdict.next_attempt_at else "?", verdict.error)
    else:
        log.error("%s notification (%s) to %s failed: %s", channel, label, recipient, verdict.error)


# -- test and log -----------------------------------------------------------------------------


def send_test(
    database: Database, *, mail: bool, trap: bool, now: Callable[[], datetime.datetime] = utc_now
) -> list[AttemptResult]:
    """Send a test message now on each channel asked for (neither: both) and return the
    outcome of each (a trap per receiver). Every attempt is recorded; an unconfigured
    channel is a failed attempt saying so. Never raises for a delivery problem."""
    if not mail and not trap:
        mail = trap = True
    settings = _settings(database.settings_rows())
    event = events.self_test_event(time=now(), host=settings.host)
    subject_template, body_template = templates.BUILT_IN[settings.language]["test"]
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
            note = _send(settings, channel, recipient, subject, body, payload)
            verdict = Verdict("sent", _mask(note, settings.secrets()) if note else None)
        except DeliveryError as error:
            verdict = Verdict("failed", _mask(error.reason, settings.secrets()))
        box.log_attempt(now(), channel, "test", recipient, verdict)
        _log_attempt(channel, recipient, "test", verdict)
        results.append(AttemptResult(channel, recipient, "test", verdict.outcome, verdict.error))
    return results


def deliveries(database: Database, limit: int = 100) -> list[Delivery]:
    """Return the delivery-attempt log, newest first (for ``notify log`` and the web page)."""
    return Outbox(database).deliveries(limit)


# -- helpers --------------------------------------------------------------------------------


def _settings(rows: Mapping[tuple[str, str], str]) -> NotifySettings:
    settings, problems = config.load(rows)
    for problem in problems:
        log.warning("notification setting %s", problem)
    return settings


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


def _mask(text: str, secrets: Sequence[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, "***")
    return text
