"""Retention (Log/RetentionDays): rows back-dated in a real database are deleted in batches,
by the function and by a real daemon at start; recent rows and pending messages stay."""

from __future__ import annotations

import datetime
from collections.abc import Iterator

import pytest

from imss_updater.database.db import Database, NewEvent
from imss_updater.database.retention import purge_older_than
from imss_updater.notify.outbox import NewNotification, Outbox, Verdict
from tests.support.daemon import DaemonFactory, wait_until
from tests.support.gateway import Gateway

NOW = datetime.datetime.now(datetime.UTC)
DAY = datetime.timedelta(days=1)


@pytest.fixture
def database(db_dsn: str) -> Iterator[Database]:
    with Database(db_dsn) as database:
        database.init()
        yield database


def add_rows(database: Database, moment: datetime.datetime, count: int, *, state: str = "sent") -> None:
    """``count`` events, notifications (in ``state``) and delivery attempts dated ``moment``."""
    box = Outbox(database)
    for _index in range(count):
        event_id = database.add_event(NewEvent("scheduled", "virus_pattern", None, "failure", "m", "m", "x"))
        box.add([NewNotification("update", "pattern", "failure", "mail", "ops@example.com", "s", "b", {})],
                now=moment)
        box.log_attempt(moment, "mail", "update pattern failure", "ops@example.com", Verdict("sent"))
        with database.transaction() as cursor:
            cursor.execute("UPDATE tb_update_event SET time = %s WHERE id = %s", (moment, event_id))
            cursor.execute(
                "UPDATE tb_notification SET state = %s WHERE state = 'pending' AND created_at = %s",
                (state, moment),
            )


def counts(database: Database) -> tuple[int, int, int]:
    with database.transaction() as cursor:
        found = []
        for table in ("tb_update_event", "tb_notification", "tb_notification_attempt"):
            cursor.execute(f"SELECT count(*) FROM {table}")  # constant names
            row = cursor.fetchone()
            found.append(int(row[0]) if row else -1)
        return found[0], found[1], found[2]


def test_rows_older_than_the_cutoff_are_deleted_in_batches_and_recent_ones_kept(database: Database) -> None:
    add_rows(database, NOW - 200 * DAY, 7)
    add_rows(database, NOW - 10 * DAY, 2)
    first = purge_older_than(database, NOW - 180 * DAY, batch_size=3, max_batches=4)
    assert not first.complete  # bounded work per call: 7 events in 3 batches, 3 attempts in 1
    assert (first.events, first.notifications, first.attempts) == (7, 0, 3)
    rest = purge_older_than(database, NOW - 180 * DAY, batch_size=3, max_batches=100)
    assert rest.complete
    assert first.total + rest.total == 7 * 3
    assert counts(database) == (2, 2, 2)
    assert purge_older_than(database, NOW - 180 * DAY).total == 0


def test_a_pending_notification_is_kept_whatever_its_age(database: Database) -> None:
    add_rows(database, NOW - 400 * DAY, 1, state="pending")
    purged = purge_older_than(database, NOW - 180 * DAY)
    assert (purged.events, purged.notifications, purged.attempts) == (1, 0, 1)
    assert counts(database) == (0, 1, 0)


def test_the_daemon_deletes_rows_older_than_retention_days_at_start(
    gateway: Gateway, start_daemon: DaemonFactory
) -> None:
    gateway.set("Log", "RetentionDays", "30")
    gateway.set("Update", "ScheduledUpdate", "no")  # only the upkeep runs
    with gateway.database() as database:
        add_rows(database, NOW - 31 * DAY, 3)
        add_rows(database, NOW - 29 * DAY, 1)
    daemon = start_daemon(gateway)

    def purged() -> bool:
        with gateway.database() as database:
            return counts(database) == (1, 1, 1)

    wait_until(purged, timeout=60, what="the retention pass")
    assert "retention (30 days): deleted 3 events, 3 notifications, 3 delivery attempts" in daemon.log()
    assert daemon.stop()[0] == 0
