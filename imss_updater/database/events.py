"""The update event log (tb_update_event)."""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg2.extensions

from imss_updater.database.connection import Connection


@dataclass(frozen=True)
class Event:
    id: int
    time: datetime.datetime
    kind: str
    component: str
    version: str | None
    outcome: str
    message: str
    message_ja: str
    reason: str | None
    node: str = ""  # the gateway it happened on (SPEC 7)


@dataclass(frozen=True)
class NewEvent:
    """An event to record: ``kind`` scheduled/manual/rollback, ``outcome`` success/failure."""

    kind: str
    component: str
    version: str | None
    outcome: str
    message: str
    message_ja: str
    reason: str | None = None
    time: datetime.datetime | None = None  # None: now (an event written later keeps its time)


class EventsMixin(Connection):
    """Record and list events."""

    # -- events ---------------------------------------------------------------------------

    def add_event(self, event: NewEvent) -> int:
        with self.transaction() as cursor:
            return insert_event(cursor, event, self.node)

    def add_events(self, events: Sequence[NewEvent]) -> None:
        """Record ``events`` in one transaction: all of them or none."""
        with self.transaction() as cursor:
            for event in events:
                insert_event(cursor, event, self.node)

    def events(
        self,
        *,
        kind: str | None = None,
        component: str | None = None,
        outcome: str | None = None,
        since: datetime.datetime | None = None,
        limit: int = 100,
        offset: int = 0,
        node: str | None = None,
    ) -> list[Event]:
        """Return this node's events (or ``node``'s) newest first, filtered by whichever
        arguments are given."""
        clauses: list[str] = []
        parameters: list[Any] = []
        for column, value in (("node", node or self.node), ("kind", kind), ("component", component),
                              ("outcome", outcome)):
            if value is not None:
                clauses.append(f"{column} = %s")
                parameters.append(value)
        if since is not None:
            clauses.append("time >= %s")
            parameters.append(since)
        where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
        with self.transaction() as cursor:
            cursor.execute(
                "SELECT id, time, kind, component, version, outcome, message, message_ja, reason,"
                f" node FROM tb_update_event{where} ORDER BY time DESC, id DESC LIMIT %s OFFSET %s",
                (*parameters, limit, offset),
            )
            return [Event(*row) for row in cursor.fetchall()]


def insert_event(cursor: psycopg2.extensions.cursor, event: NewEvent, node: str) -> int:
    """Record ``event`` as ``node``'s; return its id."""
    cursor.execute(
        "INSERT INTO tb_update_event (node, time, kind, component, version, outcome, message,"
        " message_ja, reason) VALUES (%s, coalesce(%s, now()), %s, %s, %s, %s, %s, %s, %s)"
        " RETURNING id",
        (node, event.time, event.kind, event.component, event.version, event.outcome, event.message,
         event.message_ja, event.reason),
    )
    row = cursor.fetchone()
    return int(row[0]) if row else 0
