"""Test support for the fleet (SPEC 7).

The leader side: the leader record, ending a backend, an announcement listener. The member
side: ``Mirror`` is a real HTTP server on 127.0.0.1 serving a byte-for-byte copy of an AUTree
under ``/activeupdate/``, as the leader's mirror does; ``record_leader`` writes the leader
record a member reads; ``announce`` sends the leader's NOTIFY.
"""

from __future__ import annotations

import json
import select
import shutil
import threading
from pathlib import Path

import psycopg2

from imss_updater.database import fleet_member as fleet_db
from imss_updater.database.db import Database
from imss_updater.fleet import CHANNEL
from tests.support.autree import AUTree
from tests.support.servers import ServerFactory, StaticServer


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


class Mirror:
    def __init__(self, directory: Path, http_server: ServerFactory) -> None:
        self.directory = directory
        self.tree_dir = directory / "activeupdate"
        self.tree_dir.mkdir(parents=True, exist_ok=True)
        self.server: StaticServer = http_server(directory)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}{fleet_db.MIRROR_PATH}"

    def sync(self, tree: AUTree) -> None:
        """Copy the origin's tree byte for byte (server.ini and its .sig included)."""
        shutil.rmtree(self.tree_dir)
        shutil.copytree(tree.directory, self.tree_dir)

    def file(self, relative: str) -> Path:
        return self.tree_dir / relative


def record_leader(dsn: str, node: str, mirror_address: str | None, term: int = 1) -> None:
    with Database(dsn) as database, database.transaction() as cursor:
        cursor.execute(
            "CREATE TABLE IF NOT EXISTS tb_fleet_node (node text PRIMARY KEY, mirror_address text,"
            " role text NOT NULL DEFAULT 'member', heartbeat timestamptz, last_check timestamptz,"
            " source_mode text NOT NULL DEFAULT 'origin')"
        )
        cursor.execute(
            "CREATE TABLE IF NOT EXISTS tb_fleet_leader (node text NOT NULL,"
            " since timestamptz NOT NULL DEFAULT now(), term bigint NOT NULL)"
        )
        cursor.execute(
            "INSERT INTO tb_fleet_node (node, mirror_address, role, heartbeat)"
            " VALUES (%s, %s, 'leader', now()) ON CONFLICT (node)"
            " DO UPDATE SET mirror_address = EXCLUDED.mirror_address, role = 'leader'",
            (node, mirror_address),
        )
        cursor.execute("UPDATE tb_fleet_node SET role = 'member' WHERE node <> %s", (node,))
        cursor.execute("DELETE FROM tb_fleet_leader")
        cursor.execute("INSERT INTO tb_fleet_leader (node, term) VALUES (%s, %s)", (node, term))


def announce(dsn: str, node: str, term: int, release: str) -> None:
    payload = json.dumps({"leader": node, "term": term, "release": release})
    with Database(dsn) as database, database.transaction() as cursor:
        cursor.execute("SELECT pg_notify(%s, %s)", (fleet_db.ANNOUNCE_CHANNEL, payload))


def member_source(dsn: str, node: str) -> fleet_db.MemberSource:
    with Database(dsn) as database:
        return fleet_db.member_source(database, node)
