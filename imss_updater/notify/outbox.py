"""The notification outbox and the delivery-attempt log in PostgreSQL (sql/003_notifications.sql),
and the memory of notified failures (sql/011_notify_repeat.sql, see ``repeat``).

Works through ``Database.transaction()``; no driver import here. A due notification is
claimed with ``FOR UPDATE SKIP LOCKED`` and stays locked while it is sent, so two
deliverers (the daemon and ``notify test``, say) never send the same message twice.
Queued notifications and the memory of what they notify are written in one transaction.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from imss_updater import i18n
from imss_updater.database.db import Database
from imss_updater.i18n import Reason
from imss_updater.notify.repeat import Key, Notified


@dataclass(frozen=True)
class NewNotification:
    kind: str  # update, stale, test, node
    group: str | None
    outcome: str
    channel: str  # mail, trap
    recipient: str  # comma-separated addresses, or host:port
    subject: str
    body: str
    payload: dict[str, Any]


@dataclass(frozen=True)
class Pending:
    id: int
    kind: str
    group: str | None
    outcome: str
    channel: str
    recipient: str
    subject: str
    body: str
    payload: dict[str, Any]
    attempts: int  # before this one

    @property
    def label(self) -> str:
        return event_label(self.kind, self.group, self.outcome)


@dataclass(frozen=True)
class Verdict:
    """What one attempt came to: ``sent``, ``retry`` (at ``next_attempt_at``) or ``failed``."""

    outcome: str
    error: Reason | None = None  # why (or a note on a sent message), stored with ``i18n.stored``
    next_attempt_at: datetime.datetime | None = None
    counts: bool = True  # False: interrupted by a stop, not counted against MaxAttempts


@dataclass(frozen=True)
class Delivery:
    """One row of the attempt log, as the CLI and the status page show it."""

    id: int
    time: datetime.datetime
    channel: str
    event: str
    recipient: str
    outcome: str  # sent, retry, failed
    stored_error: str | None  # the column: a Reason as ``i18n.stored`` keeps it, or older English
    notification_id: int | None

    @property
    def error(self) -> str | None:
        """The error in English (``--json``, logs)."""
        return self.error_in(i18n.DEFAULT_LANGUAGE)

    def error_in(self, language: str) -> str | None:
        """The error in ``language`` (None when the attempt had none)."""
        return i18n.stored_text(self.stored_error, language) if self.stored_error else None

    def as_json(self) -> dict[str, object]:
        return {
            "time": self.time.isoformat(),
            "channel": self.channel,
            "event": self.event,
            "recipient": self.recipient,
            "outcome": self.outcome,
            "error": self.error,
            "notification": self.notification_id,
        }


def event_label(kind: str, group: str | None, outcome: str) -> str:
    """Return e.g. "update pattern failure", or "test"."""
    if kind == "test":
        return "test"
    return " ".join(part for part in (kind, group, outcome) if part)


def insert(cursor: Any, notifications: Sequence[NewNotification], now: datetime.datetime) -> None:
    """Queue ``notifications`` (due at ``now``) with ``cursor``, inside the caller's
    transaction: for a caller that records what they notify in the same transaction."""
    for item in notifications:
        cursor.execute(
            "INSERT INTO tb_notification (created_at, event, event_group, outcome, channel,"
            " recipient, subject, body, payload, next_attempt_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (now, item.kind, item.group, item.outcome, item.channel, item.recipient,
             item.subject, item.body, json.dumps(item.payload, ensure_ascii=False), now),
        )


_COLUMNS = "id, event, event_group, outcome, channel, recipient, subject, body, payload, attempts"


class Outbox:
    """The queue of notifications and the log of attempts, over one Database."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def add(
        self,
        notifications: Sequence[NewNotification],
        *,
        now: datetime.datetime,
        remember: Sequence[Notified] = (),
        forget: Sequence[Key] = (),
    ) -> int:
        """Queue ``notifications`` (due at ``now``), record the failures they notify
        (``remember``) and drop those that ended (``forget``), in one transaction; return
        how many notifications were queued."""
        with self.database.transaction() as cursor:
            for group, component in forget:
                cursor.execute(
                    "DELETE FROM tb_notify_failure WHERE node = %s AND event_group = %s"
                    " AND component = %s",
                    (self.database.node, group, component),
                )
            for notified in remember:
                cursor.execute(
                    "INSERT INTO tb_notify_failure (node, event_group, component, reason,"
                    " first_notified_at, last_notified_at) VALUES (%s, %s, %s, %s, %s, %s)"
                    " ON CONFLICT (node, event_group, component) DO UPDATE SET reason = EXCLUDED.reason,"
                    " last_notified_at = EXCLUDED.last_notified_at",
                    (self.database.node, notified.group, notified.component, notified.reason,
                     notified.first_notified_at, notified.last_notified_at),
                )
            insert(cursor, notifications, now)
        return len(notifications)

    def notified_failures(self) -> dict[Key, Notified]:
        """Return the failures notified since their component last worked, by (group, component)."""
        with self.database.transaction() as cursor:
            cursor.execute(
                "SELECT event_group, component, reason, first_notified_at, last_notified_at"
                " FROM tb_notify_failure WHERE node = %s",
                (self.database.node,),
            )
            found = [Notified(*row) for row in cursor.fetchall()]
        return {notified.key: notified for notified in found}

    def due(self, now: datetime.datetime, limit: int = 200, channel: str | None = None) -> list[int]:
        """Return the ids of pending notifications due at ``now`` (on ``channel`` only, if
        given), oldest first."""
        with self.database.transaction() as cursor:
            cursor.execute(
                "SELECT id FROM tb_notification WHERE state = 'pending' AND next_attempt_at <= %s"
                " AND (%s IS NULL OR channel = %s) ORDER BY next_attempt_at, id LIMIT %s",
                (now, channel, channel, limit),
            )
            return [int(row[0]) for row in cursor.fetchall()]

    def attempt(
        self, notification_id: int, now: datetime.datetime, deliver: Callable[[Pending], Verdict]
    ) -> tuple[Pending, Verdict] | None:
        """Claim notification ``notification_id`` if it is still due and nobody else holds it,
        call ``deliver`` with it, and record the verdict and the attempt in the same
        transaction. Return None when it was not claimable."""
        with self.database.transaction() as cursor:
            cursor.execute(
                f"SELECT {_COLUMNS} FROM tb_notification WHERE id = %s AND state = 'pending'"
                " AND next_attempt_at <= %s FOR UPDATE SKIP LOCKED",
                (notification_id, now),
            )
            row = cursor.fetchone()
            if row is None:
                return None
            pending = Pending(
                id=int(row[0]), kind=row[1], group=row[2], outcome=row[3], channel=row[4],
                recipient=row[5], subject=row[6], body=row[7], payload=_json(row[8]), attempts=int(row[9]),
            )
            verdict = deliver(pending)
            state = {"sent": "sent", "failed": "failed"}.get(verdict.outcome, "pending")
            cursor.execute(
                "UPDATE tb_notification SET attempts = attempts + %s, state = %s, last_error = %s,"
                " next_attempt_at = coalesce(%s, next_attempt_at),"
                " done_at = CASE WHEN %s <> 'pending' THEN %s ELSE NULL END WHERE id = %s",
                (1 if verdict.counts else 0, state, _stored(verdict.error), verdict.next_attempt_at, state,
                 now, notification_id),
            )
            cursor.execute(
                "INSERT INTO tb_notification_attempt (time, notification_id, channel, event,"
                " recipient, outcome, error) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                (now, notification_id, pending.channel, pending.label, pending.recipient,
                 verdict.outcome, _stored(verdict.error)),
            )
            return pending, verdict

    def log_attempt(
        self, now: datetime.datetime, channel: str, event: str, recipient: str, verdict: Verdict
    ) -> None:
        """Record an attempt that has no queued notification (a test message)."""
        with self.database.transaction() as cursor:
            cursor.execute(
                "INSERT INTO tb_notification_attempt (time, notification_id, channel, event,"
                " recipient, outcome, error) VALUES (%s, NULL, %s, %s, %s, %s, %s)",
                (now, channel, event, recipient, verdict.outcome, _stored(verdict.error)),
            )

    def deliveries(self, limit: int = 100) -> list[Delivery]:
        """Return the attempt log, newest first."""
        with self.database.transaction() as cursor:
            cursor.execute(
                "SELECT id, time, channel, event, recipient, outcome, error, notification_id"
                " FROM tb_notification_attempt ORDER BY time DESC, id DESC LIMIT %s",
                (limit,),
            )
            return [Delivery(*row) for row in cursor.fetchall()]

    def pending_count(self) -> int:
        with self.database.transaction() as cursor:
            cursor.execute("SELECT count(*) FROM tb_notification WHERE state = 'pending'")
            row = cursor.fetchone()
            return int(row[0]) if row else 0


def _stored(reason: Reason | None) -> str | None:
    return i18n.stored(reason) if reason is not None else None


def _json(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    loaded = json.loads(value)
    return loaded if isinstance(loaded, dict) else {}
