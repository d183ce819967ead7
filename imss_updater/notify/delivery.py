"""Delivery of queued notifications, one attempt at a time, each bounded in time.

``deliver_pending`` sends what is due (on one channel when asked, so that mail and traps
are delivered by workers of their own, see ``worker``), retries transient errors with
backoff a bounded number of times, and records every attempt. Each attempt ends within its
channel's timeout (``SMTPTimeout`` for a whole mail, ``SNMPTimeout`` per SNMP try), or at
once when ``cancel`` is set. A broken relay or receiver never raises out of here: its error
is data in the attempt log.
"""

from __future__ import annotations

import datetime
import functools
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from imss_updater.database.db import Database
from imss_updater.i18n import N_, Reason
from imss_updater.notify import config, mail, snmp
from imss_updater.notify.config import NotifySettings, Receiver
from imss_updater.notify.events import DeliveryError, DeliveryInterrupted
from imss_updater.notify.outbox import Outbox, Pending, Verdict
from imss_updater.notify.reasons import masked, problems_reason
from imss_updater.settings_values import Problem

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
    reason: Reason | None = None  # the error (or a note on a sent message), in any language

    @property
    def error(self) -> str | None:
        """The error in English (``--json``, logs)."""
        return str(self.reason) if self.reason is not None else None

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


def deliver_pending(
    database: Database,
    *,
    now: Callable[[], datetime.datetime] = utc_now,
    channel: str | None = None,
    limit: int = 200,
    cancel: threading.Event | None = None,
) -> DeliveryReport:
    """Send the queued notifications that are due (at most ``limit``, on ``channel`` only
    when given), and record each attempt.

    A transient error (network, timeout, 4xx, an inform without answer) is retried by a
    later call after a backoff (``RetryBackoff`` seconds, doubled per attempt, at most an
    hour), up to ``MaxAttempts`` attempts; a permanent one (certificate, authentication,
    5xx, invalid settings) fails at once. When ``cancel`` is set the attempt under way ends
    and is retried later without counting, and no other starts. Never sleeps and never
    raises for a delivery problem; raise DatabaseError if the database itself fails.
    """
    report = DeliveryReport()
    box = Outbox(database)
    ids = box.due(now(), limit, channel)
    if ids:
        settings = load_settings(database.settings_rows(), database.node)
        for notification_id in ids:
            if cancel is not None and cancel.is_set():
                break
            moment = now()
            deliver = functools.partial(_deliver, settings, moment=moment, cancel=cancel)
            done = box.attempt(notification_id, moment, deliver)
            if done is None:
                continue
            pending, verdict = done
            report.attempts.append(AttemptResult(
                pending.channel, pending.recipient, pending.label, verdict.outcome, verdict.error
            ))
            log_attempt(pending.channel, pending.recipient, pending.label, verdict)
    report.pending = box.pending_count()
    return report


def _deliver(
    settings: NotifySettings, pending: Pending, *, moment: datetime.datetime,
    cancel: threading.Event | None,
) -> Verdict:
    try:
        note = send(
            settings, pending.channel, pending.recipient, pending.subject, pending.body,
            pending.payload, cancel=cancel,
        )
    except DeliveryInterrupted as error:
        return Verdict("retry", masked(error.reason, settings.secrets()), moment, counts=False)
    except DeliveryError as error:
        reason = masked(error.reason, settings.secrets())
        attempts = pending.attempts + 1
        if error.transient and attempts < settings.max_attempts:
            delay = min(settings.retry_backoff * 2 ** (attempts - 1), MAX_BACKOFF_SECONDS)
            return Verdict("retry", reason, moment + datetime.timedelta(seconds=delay))
        if error.transient:
            reason = Reason(N_("%(reason)s (gave up after %(attempts)s attempts)"),
                            {"reason": reason, "attempts": attempts})
        return Verdict("failed", reason)
    return Verdict("sent", masked(note, settings.secrets()) if note else None)


def send(
    settings: NotifySettings,
    channel: str,
    recipient: str,
    subject: str,
    body: str,
    payload: Mapping[str, object],
    *,
    cancel: threading.Event | None = None,
) -> Reason | None:
    """Send on one channel; return a note or None. Raise DeliveryError."""
    try:
        if channel == "mail":
            if settings.mail is None:
                reason = _not_configured(settings.mail_problems, N_(
                    "mail is not configured (Notification/SMTPServer is empty)"))
                raise DeliveryError(reason, transient=False)
            recipients = [address.strip() for address in recipient.split(",") if address.strip()]
            return mail.send(settings.mail, recipients, subject, body, cancel=cancel)
        if settings.trap is None:
            reason = _not_configured(settings.trap_problems, N_(
                "trap is not configured (Notification/SNMPServer is empty)"))
            raise DeliveryError(reason, transient=False)
        snmp.send(settings.trap, _receiver(recipient), payload, cancel=cancel)
        return None
    except DeliveryError:
        raise
    except Exception as error:  # a bug in a channel must not stop the other messages
        log.debug("unexpected error sending %s to %s", channel, recipient, exc_info=True)
        reason = Reason(N_("internal error: %(error)s"), {"error": f"{error.__class__.__name__}: {error}"})
        raise DeliveryError(reason, transient=True) from error


def _not_configured(problems: Sequence[Problem], empty: str) -> Reason:
    if problems:
        return Reason(N_("invalid settings: %(problems)s"), {"problems": problems_reason(problems)})
    return Reason(empty)


def _receiver(text: str) -> Receiver:
    return config.parse_receivers(text)[0]


def log_attempt(channel: str, recipient: str, label: str, verdict: Verdict) -> None:
    if verdict.outcome == "sent":
        log.info("%s notification (%s) sent to %s%s", channel, label, recipient,
                 f" ({verdict.error})" if verdict.error else "")
    elif verdict.outcome == "retry":
        log.warning("%s notification (%s) to %s will be retried at %s: %s", channel, label, recipient,
                    verdict.next_attempt_at.isoformat() if verdict.next_attempt_at else "?", verdict.error)
    else:
        log.error("%s notification (%s) to %s failed: %s", channel, label, recipient, verdict.error)


def load_settings(rows: Mapping[tuple[str, str], str], node: str | None = None) -> NotifySettings:
    """Return the notification settings of ``rows``, logging each bad row (which falls back
    to its default). ``%HOST%`` names ``node`` (the gateway, SPEC 7) unless Notification/HostName
    is set and the fleet is off: in a fleet every node shares that row, so it cannot name one."""
    fleet = rows.get(("Fleet", "Enabled"), "no").strip().lower() in ("yes", "true", "on", "1")
    named = rows.get(("Notification", "HostName"), "").strip()
    settings, problems = config.load(rows, host=node if fleet or not named else None)
    for problem in problems:
        log.warning("notification setting %s", problem)
    return settings

