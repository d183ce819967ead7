"""The fleet's leader lock: a session-level advisory lock on a connection of its own.

The leader is the session that holds ``pg_try_advisory_lock(LOCK_CLASS, LOCK_OBJECT)``.
PostgreSQL frees a session lock the moment the session ends, whatever ends it, so the
connection is set up to end soon after its process can no longer use it (``timeouts``):

- the process is killed: the kernel closes the socket, the backend ends at once;
- the process hangs, or the network between it and the server is cut: the session sends
  nothing, and the server's ``idle_session_timeout`` ends it (the leader's heartbeat runs
  a statement on it more often than that); TCP keepalives on both sides and libpq's
  ``tcp_user_timeout`` notice a dead peer within the same bound;
- a statement that hangs (a wedged server) ends by ``statement_timeout``.

``tb_fleet_leader`` (migration 014) records who took the lock, since when, and a term that
grows by one on every takeover.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any, Self

import psycopg2
import psycopg2.extensions

from imss_updater.database.connection import DatabaseError, mask_dsn

LOCK_CLASS = 0x494D5353  # "IMSS"
LOCK_OBJECT = 0x464C4554  # "FLET"
CHANNEL = "imss_fleet"

_HOLDS_LOCK = (
    "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"
    " AND classid = %s AND objid = %s AND objsubid = 2 AND granted)"
)


@dataclass(frozen=True)
class LeaderRecord:
    node: str
    term: int
    since: datetime.datetime
    mirror_address: str | None
    release: str | None


@dataclass(frozen=True)
class Timeouts:
    """How soon a dead or hung leader's session ends, in seconds (see the module text)."""

    idle_session: float
    statement: float
    keepalive_idle: int

    @classmethod
    def for_failover(cls, failover_seconds: float) -> Timeouts:
        """Half the failover time for an idle (hung) session; a quarter for a statement."""
        return cls(idle_session=failover_seconds / 2, statement=failover_seconds / 4,
                   keepalive_idle=max(1, int(failover_seconds / 4)))


class LeaderLock:
    """One dedicated connection that tries for, holds, and checks the leader lock."""

    def __init__(self, dsn: str, timeouts: Timeouts, node: str = "") -> None:
        idle_ms, statement_ms = int(timeouts.idle_session * 1000), int(timeouts.statement * 1000)
        options = (f"-c idle_session_timeout={idle_ms} -c statement_timeout={statement_ms}"
                   f" -c idle_in_transaction_session_timeout={statement_ms}"
                   f" -c tcp_keepalives_idle={timeouts.keepalive_idle} -c tcp_keepalives_interval=1"
                   " -c tcp_keepalives_count=3")
        try:
            self.connection = psycopg2.connect(
                dsn, connect_timeout=max(2, int(timeouts.statement)), options=options,
                keepalives=1, keepalives_idle=timeouts.keepalive_idle, keepalives_interval=1,
                keepalives_count=3, tcp_user_timeout=statement_ms,
                application_name=f"imss-updater fleet lock {node}"[:63],
            )
        except psycopg2.Error as error:
            raise DatabaseError(f"cannot connect to the database ({mask_dsn(dsn)}): "
                                f"{_first_line(error)}") from error
        self.connection.autocommit = True

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        return bool(self.connection.closed)

    def close(self) -> None:
        if not self.connection.closed:
            self.connection.close()

    def backend_pid(self) -> int:
        """The server process of this session (tests end it with pg_terminate_backend)."""
        return int(self.connection.get_backend_pid())

    def try_acquire(self) -> bool:
        """Return True if this session holds the leader lock now (taken now or before)."""
        row = self._one("SELECT pg_try_advisory_lock(%s, %s)", (LOCK_CLASS, LOCK_OBJECT))
        return bool(row[0])

    def take_office(self, node: str, mirror_address: str | None) -> int:
        """Record ``node`` as the leader with the next term (and as the one node whose role
        is ``leader`` in tb_fleet_node); return that term. Call only while holding the lock."""
        row: tuple[Any, ...] = self._one(
            "WITH office AS (INSERT INTO tb_fleet_leader (id, node, term, since, mirror_address)"
            " VALUES (true, %s, 1, now(), %s)"
            " ON CONFLICT (id) DO UPDATE SET node = EXCLUDED.node, term = tb_fleet_leader.term + 1,"
            " since = now(), mirror_address = EXCLUDED.mirror_address, release = NULL,"
            " announced = NULL RETURNING term),"
            " roles AS (UPDATE tb_fleet_node SET role = CASE WHEN node = %s THEN 'leader' ELSE 'member' END"
            " WHERE role = 'leader' OR node = %s)"
            " SELECT term FROM office",
            (node, mirror_address, node, node),
        )
        return int(row[0])

    def still_leader(self, node: str, term: int) -> bool:
        """Return True if this session holds the lock and ``term`` is the recorded term of
        ``node``. Raise DatabaseError if the session is gone."""
        row = self._one(
            f"SELECT ({_HOLDS_LOCK}) AND EXISTS (SELECT 1 FROM tb_fleet_leader"
            " WHERE node = %s AND term = %s)",
            (LOCK_CLASS, LOCK_OBJECT, node, term),
        )
        return bool(row[0])

    def announce(self, node: str, term: int, release: str, payload: str) -> bool:
        """In one transaction on this session: if it still holds the lock and ``term`` is
        current, record ``release`` as announced and NOTIFY ``payload`` on CHANNEL (sent at
        commit); return whether it did. Raise DatabaseError if the session is gone."""
        try:
            self.connection.autocommit = False
            with self.connection, self.connection.cursor() as cursor:
                # A session that lost the lock (its backend ended) cannot commit this at all;
                # one that still runs checks the lock and the term inside the transaction.
                cursor.execute(
                    f"UPDATE tb_fleet_leader SET release = %s, announced = now()"
                    f" WHERE node = %s AND term = %s AND ({_HOLDS_LOCK})",
                    (release, node, term, LOCK_CLASS, LOCK_OBJECT),
                )
                if cursor.rowcount != 1:
                    return False
                cursor.execute("SELECT pg_notify(%s, %s)", (CHANNEL, payload))
            return True
        except psycopg2.Error as error:
            raise DatabaseError(f"lost the fleet lock connection: {_first_line(error)}") from error
        finally:
            if not self.connection.closed:
                self.connection.autocommit = True

    def _one(self, statement: str, parameters: tuple[object, ...]) -> tuple[Any, ...]:
        try:
            with self.connection.cursor() as cursor:
                cursor.execute(statement, parameters)
                row = cursor.fetchone()
        except psycopg2.Error as error:
            raise DatabaseError(f"lost the fleet lock connection: {_first_line(error)}") from error
        if row is None:
            raise DatabaseError("the database returned no row")
        return tuple(row)


def current_leader(dsn: str) -> LeaderRecord | None:
    """Return the recorded leader (it may have died since: see its node's heartbeat)."""
    with _short(dsn) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT node, term, since, mirror_address, release FROM tb_fleet_leader")
        row = cursor.fetchone()
    return None if row is None else LeaderRecord(row[0], int(row[1]), row[2], row[3], row[4])


def record_role(dsn: str, node: str, role: str) -> None:
    """Record this node's role (``leader`` or ``member``) in tb_fleet_node."""
    with _short(dsn) as connection, connection, connection.cursor() as cursor:
        cursor.execute("UPDATE tb_fleet_node SET role = %s WHERE node = %s", (role, node))


class _short:
    """A connection for one statement, as a context manager (DatabaseError on failure)."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.connection: psycopg2.extensions.connection | None = None

    def __enter__(self) -> psycopg2.extensions.connection:
        try:
            self.connection = psycopg2.connect(self.dsn, connect_timeout=5)
        except psycopg2.Error as error:
            raise DatabaseError(f"cannot connect to the database ({mask_dsn(self.dsn)}): "
                                f"{_first_line(error)}") from error
        return self.connection

    def __exit__(self, exc_type: object, exc: object, traceback: object) -> None:
        if self.connection is not None:
            self.connection.close()
        if isinstance(exc, psycopg2.Error):
            raise DatabaseError(f"database error: {_first_line(exc)}") from exc


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else error.__class__.__name__
