"""The console's own reads and writes, through ``Database.transaction`` (no driver import).

Each function is one statement, so a page's query count is the number of calls it makes.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

from imss_updater.database.db import Database, Event


@dataclass(frozen=True)
class EventFilter:
    kind: str | None = None
    component: str | None = None
    outcome: str | None = None
    since: datetime.datetime | None = None
    until: datetime.datetime | None = None  # exclusive
    node: str | None = None  # None: every node's events (SPEC 7)


def events_page(database: Database, where: EventFilter, *, limit: int, offset: int) -> list[Event]:
    """Return up to ``limit`` events matching ``where``, newest first, after ``offset``."""
    clauses: list[str] = []
    parameters: list[Any] = []
    for column, value in (("node", where.node), ("kind", where.kind), ("component", where.component),
                          ("outcome", where.outcome)):
        if value is not None:
            clauses.append(f"{column} = %s")
            parameters.append(value)
    if where.since is not None:
        clauses.append("time >= %s")
        parameters.append(where.since)
    if where.until is not None:
        clauses.append("time < %s")
        parameters.append(where.until)
    condition = (" WHERE " + " AND ".join(clauses)) if clauses else ""
    with database.transaction() as cursor:
        cursor.execute(
            "SELECT id, time, kind, component, version, outcome, message, message_ja, reason, node"
            f" FROM tb_update_event{condition} ORDER BY time DESC, id DESC LIMIT %s OFFSET %s",
            (*parameters, limit, offset),
        )
        return [Event(*row) for row in cursor.fetchall()]


def failure_counts(database: Database) -> dict[str, int]:
    """Return the number of this node's failure events per component (all kinds, all time)."""
    with database.transaction() as cursor:
        cursor.execute(
            "SELECT component, count(*) FROM tb_update_event WHERE node = %s AND outcome = 'failure'"
            " GROUP BY component",
            (database.node,),
        )
        return {str(row[0]): int(row[1]) for row in cursor.fetchall()}


def update_counts(database: Database) -> dict[tuple[str, str], int]:
    """Return the number of this node's scheduled and manual update events per (component,
    outcome)."""
    with database.transaction() as cursor:
        cursor.execute(
            "SELECT component, outcome, count(*) FROM tb_update_event WHERE node = %s"
            " AND kind IN ('scheduled', 'manual') GROUP BY component, outcome",
            (database.node,),
        )
        return {(str(row[0]), str(row[1])): int(row[2]) for row in cursor.fetchall()}


def notification_failure_counts(database: Database) -> dict[tuple[str, str], int]:
    """Return the number of failed notification delivery attempts per (channel, outcome):
    ``retry`` (failed, tried again later) and ``failed`` (given up), all time."""
    with database.transaction() as cursor:
        cursor.execute(
            "SELECT channel, outcome, count(*) FROM tb_notification_attempt WHERE outcome <> 'sent'"
            " GROUP BY channel, outcome"
        )
        return {(str(row[0]), str(row[1])): int(row[2]) for row in cursor.fetchall()}


def record_login(database: Database, address: str, ok: bool) -> None:
    """Record one log-on attempt (the log of who tried from where; the delay itself is
    ``accounts.claim_attempt``) and forget attempts older than a day."""
    with database.transaction() as cursor:
        cursor.execute("INSERT INTO tb_web_login_attempt (address, ok) VALUES (%s, %s)", (address, ok))
        cursor.execute("DELETE FROM tb_web_login_attempt WHERE time < now() - interval '1 day'")


def in_fleet(database: Database) -> bool:
    """Return True when Fleet/Enabled is yes or more than one node is registered (SPEC 7)."""
    with database.transaction() as cursor:
        cursor.execute(
            "SELECT (SELECT count(*) FROM tb_fleet_node) > 1 OR EXISTS (SELECT 1 FROM tb_global_setting"
            " WHERE section = 'Fleet' AND name = 'Enabled'"
            " AND lower(trim(value)) IN ('yes', 'true', 'on', '1'))"
        )
        row = cursor.fetchone()
        return bool(row and row[0])


def ping(database: Database) -> None:
    """Raise DatabaseError if the database does not answer."""
    with database.transaction() as cursor:
        cursor.execute("SELECT 1")
