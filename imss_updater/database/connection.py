"""The PostgreSQL connection: one transaction at a time, LISTEN/NOTIFY, and the errors.

Every other part of ``Database`` (schema, settings, components, events, ...) is a mixin
over this class, so they all run their statements through ``transaction``.
"""

from __future__ import annotations

import re
import select
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Self

import psycopg2
import psycopg2.extensions


class DatabaseError(Exception):
    """The database could not be reached or refused a statement; the message says why."""


def local_node() -> str:
    """This gateway's default node name (SPEC 7): its host name."""
    return socket.gethostname() or "localhost"


def mask_dsn(dsn: str) -> str:
    """Return ``dsn`` with any password replaced by ``***`` (key/value or URI form)."""
    masked = re.sub(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", r"\1***", dsn)
    return re.sub(r"(postgres(?:ql)?://[^:/@]*:)[^@]*@", r"\1***@", masked)


class Connection:
    """One connection to the updater's database, on behalf of one node (the gateway it runs
    on, SPEC 7; default: this host's name). Use as a context manager.

    The session value ``imss.node`` is set to the node: the node columns default to it.
    """

    def __init__(self, dsn: str, *, node: str | None = None, connect_timeout: int = 10) -> None:
        self.dsn = dsn
        self.node = node or local_node()
        try:
            self.connection = psycopg2.connect(dsn, connect_timeout=connect_timeout)
        except psycopg2.Error as error:
            reason = f"cannot connect to the database ({mask_dsn(dsn)}): {_first_line(error)}"
            raise DatabaseError(reason) from error
        try:
            with self.connection, self.connection.cursor() as cursor:
                cursor.execute("SELECT set_config('imss.node', %s, false)", (self.node,))
        except psycopg2.Error as error:
            self.connection.close()
            reason = f"cannot connect to the database ({mask_dsn(dsn)}): {_first_line(error)}"
            raise DatabaseError(reason) from error

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        if not self.connection.closed:
            self.connection.close()

    @contextmanager
    def transaction(self) -> Iterator[psycopg2.extensions.cursor]:
        """Yield a cursor inside one transaction: committed on success, rolled back on error.

        Raise DatabaseError for any database failure, with its first line as the reason.
        """
        try:
            with self.connection, self.connection.cursor() as cursor:
                yield cursor
        except psycopg2.Error as error:
            raise DatabaseError(f"database error: {_first_line(error)}") from error

    # -- LISTEN/NOTIFY --------------------------------------------------------------------

    def listen(self, channel: str) -> None:
        """Subscribe this connection to ``channel``; it switches to autocommit for good."""
        self.connection.autocommit = True
        try:
            with self.connection.cursor() as cursor:
                cursor.execute(f"LISTEN {channel}")  # channel is a constant of ours, not input
        except psycopg2.Error as error:
            raise DatabaseError(f"database error: {_first_line(error)}") from error

    def wait_notifications(self, timeout: float) -> list[str]:
        """Wait up to ``timeout`` seconds; return the payloads of notifications received.

        Raise DatabaseError if the connection is lost (the caller reconnects).
        """
        try:
            ready, _, _ = select.select([self.connection], [], [], timeout)
            if not ready:
                return []
            self.connection.poll()
        except (psycopg2.Error, OSError, ValueError) as error:
            raise DatabaseError(f"lost the database connection: {_first_line(error)}") from error
        payloads = [notify.payload for notify in self.connection.notifies]
        self.connection.notifies.clear()
        return payloads


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else error.__class__.__name__
