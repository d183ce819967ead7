"""Test support: a real PostgreSQL cluster per xdist worker, a fresh database per test.

``pg_cluster`` (session) is an EmbeddedDatabase in its own temp dir on a free 127.0.0.1
port, started once per worker and stopped at the end of the session. ``db_dsn`` creates a
brand-new empty database (owner ``sa``) for one test, returns its DSN and drops it after.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg2
import pytest
from psycopg2 import sql
from psycopg2.extensions import make_dsn

from imss_updater.database.db import Database
from imss_updater.database.embedded_db import EmbeddedDatabase, EmbeddedDbError, find_server_bin

if TYPE_CHECKING:
    from tests.support.gateway import Gateway


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def make_state_dir(prefix: str = "imss-pg-") -> Path:
    """Return a new temp directory that the ``postgres`` user can traverse (mode 0755)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    os.chmod(path, 0o755)  # noqa: S103 - the postgres user must traverse it
    return path


def start_cluster(state_dir: Path, attempts: int = 3) -> EmbeddedDatabase:
    """Initialize and start a cluster in ``state_dir`` on a free port; another worker can
    grab the port between probe and bind, so retry on a new one."""
    last_error: EmbeddedDbError | None = None
    for _attempt in range(attempts):
        cluster = EmbeddedDatabase(state_dir, port=free_port())
        cluster.ensure_initialized()
        try:
            cluster.start()
        except EmbeddedDbError as error:
            last_error = error
            continue
        return cluster
    assert last_error is not None
    raise last_error


def dsn_for(cluster: EmbeddedDatabase, dbname: str) -> str:
    """Return the DSN of database ``dbname`` in ``cluster`` as role ``sa``."""
    return make_dsn(cluster.dsn(), dbname=dbname)


@contextlib.contextmanager
def admin_connection(cluster: EmbeddedDatabase) -> Iterator[psycopg2.extensions.connection]:
    """An autocommit connection to database ``imss`` as ``sa``, closed afterwards."""
    connection = psycopg2.connect(cluster.dsn())
    connection.autocommit = True
    try:
        yield connection
    finally:
        connection.close()


def create_database(cluster: EmbeddedDatabase, dbname: str) -> str:
    """Create an empty database ``dbname`` owned by ``sa`` in ``cluster``; return its DSN."""
    with admin_connection(cluster) as connection, connection.cursor() as cursor:
        cursor.execute(sql.SQL("CREATE DATABASE {} OWNER sa").format(sql.Identifier(dbname)))
    return dsn_for(cluster, dbname)


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[EmbeddedDatabase]:
    """A running embedded cluster for this worker, stopped and removed at session end."""
    state_dir = make_state_dir()
    cluster: EmbeddedDatabase | None = None
    try:
        cluster = start_cluster(state_dir)
        yield cluster
    finally:
        try:
            if cluster is not None:
                cluster.stop()
        finally:
            shutil.rmtree(state_dir, ignore_errors=True)


@pytest.fixture
def db_dsn(pg_cluster: EmbeddedDatabase) -> Iterator[str]:
    """A DSN for a brand-new empty database owned by ``sa``, dropped after the test."""
    name = f"test_{uuid.uuid4().hex[:16]}"
    dsn = create_database(pg_cluster, name)
    try:
        yield dsn
    finally:
        with admin_connection(pg_cluster) as connection, connection.cursor() as cursor:
            cursor.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@contextlib.contextmanager
def own_cluster(gateway: Gateway, prefix: str) -> Iterator[EmbeddedDatabase]:
    """Move ``gateway`` (its settings, and ``gateway.dsn``) onto a PostgreSQL cluster of its
    own, so a test that stops it stops no other test's; stopped and removed afterwards."""
    state = make_state_dir(prefix)
    cluster = start_cluster(state)
    try:
        dsn = create_database(cluster, "own")
        with Database(dsn) as database, gateway.database() as original:
            database.init()
            for (section, name), value in original.settings_rows().items():
                database.set_setting(section, name, value)
        gateway.dsn = dsn
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(state, ignore_errors=True)


def stop_immediately(cluster: EmbeddedDatabase) -> None:
    """``pg_ctl stop -m immediate``: the database goes away under its clients."""
    subprocess.run(["runuser", "-u", "postgres", "--", str(find_server_bin() / "pg_ctl"), "-D",
                    str(cluster.data_dir), "stop", "-m", "immediate"], check=True, capture_output=True)
