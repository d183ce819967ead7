"""Test support for the fleet: the leader record, ending a backend, an announcement listener."""

from __future__ import annotations

import json
import select
import threading

import psycopg2

from imss_updater.fleet import CHANNEL


def terminate(dsn: str, pid: int | None) -> None:
    """End server process ``pid`` (as a DBA, or a network cut, would)."""
    assert pid is not None
    connection = psycopg2.connect(dsn)
    try:
        with connection, connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", (pid,))
    finally:
        connection.close()


def lock_backend(dsn: str, node: str) -> int | None:
    """The server process of ``node``'s lock connection, or None."""
    connection = psycopg2.connect(dsn)
    try:
        with connection, connection.cursor() as cursor:
            cursor.execute("SELECT pid FROM pg_stat_activity WHERE application_name = %s",
                           (f"imss-updater fleet lock {node}",))
            row = cursor.fetchone()
    finally:
        connection.close()
    return None if row is None else int(row[0])


def leader_row(dsn: str) -> tuple[str, int] | None:
    """(node, term) of the recorded leader, or None."""
    return _leader(dsn, "node, term")


def announced_release(dsn: str) -> tuple[str, int, str | None] | None:
    """(node, term, release) the recorded leader announced last, or None."""
    return _leader(dsn, "node, term, release")


def _leader(dsn: str, columns: str) -> tuple[object, ...] | None:  # type: ignore[return]
    connection = psycopg2.connect(dsn)
    try:
        with connection, connection.cursor() as cursor:
            cursor.execute("SELECT to_regclass('tb_fleet_leader') IS NOT NULL")
            found = cursor.fetchone()
            if not found or not found[0]:
                return None
            cursor.execute(f"SELECT {columns} FROM tb_fleet_leader")  # columns are ours
            row = cursor.fetchone()
    finally:
        connection.close()
    return None if row is None else tuple(row)


def roles(dsn: str) -> dict[str, str]:
    """Each node's recorded role (tb_fleet_node)."""
    connection = psycopg2.connect(dsn)
    try:
        with connection, connection.cursor() as cursor:
            cursor.execute("SELECT node, role FROM tb_fleet_node")
            return {str(node): str(role) for node, role in cursor.fetchall()}
    finally:
        connection.close()


class Listener:
    """LISTEN imss_fleet on a connection of the test's, collecting payloads in a thread."""

    def __init__(self, dsn: str) -> None:
        self.connection = psycopg2.connect(dsn)
        self.connection.autocommit = True
        with self.connection.cursor() as cursor:
            cursor.execute(f"LISTEN {CHANNEL}")
        self.payloads: list[dict[str, object]] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stopping.is_set():
            if select.select([self.connection], [], [], 0.2)[0]:
                self.connection.poll()
                self.payloads.extend(json.loads(n.payload) for n in self.connection.notifies)
                self.connection.notifies.clear()

    def close(self) -> None:
        self.stopping.set()
        self.thread.join()
        self.connection.close()
