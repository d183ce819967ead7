"""The embedded PostgreSQL cluster, against a real server."""

from __future__ import annotations

import logging
import os
import shutil
import socket
import stat
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import psycopg2
import pytest
from psycopg2 import sql
from psycopg2.extensions import make_dsn, parse_dsn

from imss_updater.database import embedded_db
from imss_updater.database.embedded_db import EmbeddedDatabase, EmbeddedDbError
from tests.support.pg import admin_connection, free_port, make_state_dir

SPECIAL_PASSWORD = "p@ss:w/rd%20;'x y"


def _psql(
    cluster: EmbeddedDatabase, passfile: Path, query: str
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PGPASSFILE": str(passfile)}
    env.pop("PGPASSWORD", None)
    return subprocess.run(
        ["psql", "-h", "127.0.0.1", "-p", str(cluster.port), "-w", "-X", "-At",
         "-c", query, "imss", "sa"],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )


def _current_user(dsn: str) -> tuple[str, str]:
    with psycopg2.connect(dsn) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT current_user, current_database()")
        row = cursor.fetchone()
    connection.close()
    assert row is not None
    return str(row[0]), str(row[1])


# -- the shared running cluster --------------------------------------------------------


def test_psql_connects_to_imss_as_sa_with_the_password_file(
    pg_cluster: EmbeddedDatabase,
) -> None:
    query = "SELECT current_user || '@' || current_database()"
    result = _psql(pg_cluster, pg_cluster.passfile, query)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "sa@imss"


def test_connections_without_the_password_are_refused(
    pg_cluster: EmbeddedDatabase, tmp_path: Path
) -> None:
    result = _psql(pg_cluster, tmp_path / "no-such-pgpass", "SELECT 1")
    assert result.returncode != 0
    assert "password" in result.stderr


def test_password_file_is_private_to_its_owner(pg_cluster: EmbeddedDatabase) -> None:
    assert stat.S_IMODE(pg_cluster.passfile.stat().st_mode) == 0o600


def test_ensure_initialized_while_running_keeps_cluster_and_password(
    pg_cluster: EmbeddedDatabase,
) -> None:
    password_file_before = pg_cluster.passfile.read_text()
    version_file = pg_cluster.data_dir / "PG_VERSION"
    inode_before = version_file.stat().st_ino

    pg_cluster.ensure_initialized()
    pg_cluster.start()

    assert pg_cluster.is_running()
    assert pg_cluster.passfile.read_text() == password_file_before
    assert version_file.stat().st_ino == inode_before
    assert _current_user(pg_cluster.dsn()) == ("sa", "imss")


def test_db_dsn_is_a_fresh_empty_database_owned_by_sa(db_dsn: str) -> None:
    with psycopg2.connect(db_dsn) as connection, connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()"
        )
        owner = cursor.fetchone()
        cursor.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
        tables = cursor.fetchone()
    connection.close()
    assert owner == ("sa",)
    assert tables == (0,)
    assert parse_dsn(db_dsn)["dbname"].startswith("test_")


def test_role_with_special_characters_in_password_connects_by_key_value_and_uri(
    pg_cluster: EmbeddedDatabase, db_dsn: str
) -> None:
    role = f"user_{uuid.uuid4().hex[:12]}"
    dbname = parse_dsn(db_dsn)["dbname"]
    with admin_connection(pg_cluster) as connection, connection.cursor() as cursor:
        cursor.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD %s").format(sql.Identifier(role)),
            (SPECIAL_PASSWORD,),
        )
    try:
        key_value = make_dsn(host="127.0.0.1", port=pg_cluster.port, dbname=dbname, user=role,
                             password=SPECIAL_PASSWORD)
        uri = (f"postgresql://{quote(role, safe='')}:{quote(SPECIAL_PASSWORD, safe='')}"
               f"@127.0.0.1:{pg_cluster.port}/{quote(dbname, safe='')}")
        assert _current_user(key_value) == (role, dbname)
        assert _current_user(uri) == (role, dbname)
    finally:
        with admin_connection(pg_cluster) as connection, connection.cursor() as cursor:
            cursor.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


# -- a cluster of our own, for the lifecycle ---------------------------------------------


@pytest.fixture(scope="module")
def fresh_cluster() -> Iterator[EmbeddedDatabase]:
    """An initialized but stopped cluster; every test leaves it stopped."""
    state_dir = make_state_dir()
    cluster = EmbeddedDatabase(state_dir / "state", port=free_port())
    try:
        cluster.ensure_initialized()
        yield cluster
    finally:
        try:
            cluster.stop()
        finally:
            shutil.rmtree(state_dir, ignore_errors=True)


def test_fresh_cluster_starts_and_stops_idempotently(fresh_cluster: EmbeddedDatabase) -> None:
    fresh_cluster.ensure_initialized()
    assert not fresh_cluster.is_running()
    fresh_cluster.stop()
    try:
        fresh_cluster.start()
        fresh_cluster.start()
        assert fresh_cluster.is_running()
        assert _current_user(fresh_cluster.dsn()) == ("sa", "imss")
    finally:
        fresh_cluster.stop()
        fresh_cluster.stop()
    assert not fresh_cluster.is_running()


def test_start_on_a_port_in_use_names_the_log(fresh_cluster: EmbeddedDatabase) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        # Earlier tests' connections may leave the port in TIME_WAIT; a listener still wins.
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", fresh_cluster.port))
        squatter.listen()
        with pytest.raises(EmbeddedDbError) as raised:
            fresh_cluster.start()
    message = str(raised.value)
    assert "Address already in use" in message
    assert str(fresh_cluster.logfile) in message
    assert not fresh_cluster.is_running()


def test_lost_password_file_is_replaced_and_the_new_password_never_logged(
    fresh_cluster: EmbeddedDatabase, caplog: pytest.LogCaptureFixture
) -> None:
    old_password_file = fresh_cluster.passfile.read_text()
    fresh_cluster.passfile.unlink()
    caplog.set_level(logging.DEBUG)

    fresh_cluster.ensure_initialized()

    new_password = fresh_cluster.passfile.read_text().splitlines()[0].rsplit(":", 1)[1]
    assert fresh_cluster.passfile.read_text() != old_password_file
    assert new_password not in caplog.text
    try:
        fresh_cluster.start()
        assert new_password not in caplog.text
        assert _current_user(fresh_cluster.dsn()) == ("sa", "imss")
    finally:
        fresh_cluster.stop()


# -- no cluster needed -----------------------------------------------------------------


def test_missing_server_binaries_say_what_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(embedded_db, "POSTGRESQL_ROOT", tmp_path / "none")
    with pytest.raises(EmbeddedDbError, match=r"apt-get install postgresql-15"):
        embedded_db.find_server_bin()


def test_newest_installed_server_is_chosen(tmp_path: Path) -> None:
    for version in ("9.6", "15", "13"):
        (tmp_path / version / "bin").mkdir(parents=True)
        (tmp_path / version / "bin" / "postgres").touch()
    assert embedded_db.find_server_bin(tmp_path) == tmp_path / "15" / "bin"


@pytest.mark.skipif(os.geteuid() != 0, reason="only root hands the cluster to postgres")
def test_state_dir_the_postgres_user_cannot_reach_is_reported(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o700)
    os.chmod(locked, 0o700)
    with pytest.raises(EmbeddedDbError, match="not reachable by user postgres"):
        EmbeddedDatabase(locked / "state", port=free_port()).ensure_initialized()


def test_dsn_quotes_a_state_dir_with_spaces(tmp_path: Path) -> None:
    database = EmbeddedDatabase(tmp_path / "my state's dir", port=6543)
    assert parse_dsn(database.dsn()) == {
        "host": "127.0.0.1",
        "port": "6543",
        "dbname": "imss",
        "user": "sa",
        "passfile": str(tmp_path / "my state's dir" / "pgpass"),
    }
