"""The embedded cluster cannot be turned against root by the users who can write near it:
``postgres`` (who owns pgdata) and whoever made the state directory beforehand."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest
from psycopg2.extensions import make_dsn

from imss_updater.database.embedded_db import EmbeddedDatabase, EmbeddedDbError
from tests.support.pg import free_port, make_state_dir

SECRET = "root's secret\n"

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("runuser") is None,
    reason="needs root and runuser: only root hands the cluster to postgres",
)


def as_user(user: str, *argv: str) -> None:
    result = subprocess.run(["runuser", "-u", user, "--", *argv], capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr


@pytest.fixture(scope="module")
def cluster() -> Iterator[EmbeddedDatabase]:
    """An initialized, stopped cluster of this module's own; each test leaves it usable."""
    base = make_state_dir()
    database = EmbeddedDatabase(base / "state", port=free_port())
    try:
        database.ensure_initialized()
        yield database
    finally:
        try:
            database.stop()
        finally:
            shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    """A file only root may read or write (in a directory only root can enter)."""
    path = tmp_path / "shadow"
    path.write_text(SECRET)
    path.chmod(0o600)
    return path


def assert_untouched(victim: Path) -> None:
    status = victim.stat()
    assert victim.read_text() == SECRET
    assert (status.st_uid, status.st_gid, status.st_mode & 0o777) == (0, 0, 0o600)


def assert_not_copied(directory: Path) -> None:
    for path in directory.rglob("*"):
        if path.is_file() and not path.is_symlink():
            assert SECRET.encode() not in path.read_bytes(), f"{path} holds the secret"


def connects(database: EmbeddedDatabase) -> bool:
    connection = psycopg2.connect(database.dsn())
    connection.close()
    return True


def test_links_postgres_plants_in_pgdata_are_neither_written_through_nor_read(
    cluster: EmbeddedDatabase, victim: Path,
) -> None:
    data = cluster.data_dir
    as_user("postgres", "ln", "-s", str(victim), str(data / "imss_updater.conf.new"))
    as_user("postgres", "ln", "-s", str(victim), str(data / "postgresql.conf.new"))
    as_user("postgres", "ln", "-sf", str(victim), str(data / "pg_hba.conf"))
    as_user("postgres", "ln", "-sf", str(victim), str(data / "imss_updater.conf"))

    cluster.ensure_initialized()

    assert_untouched(victim)
    assert_not_copied(data)
    assert not (data / "pg_hba.conf").is_symlink()
    assert (data / "pg_hba.conf").stat().st_uid == (data / "PG_VERSION").stat().st_uid
    try:
        cluster.start()
        assert connects(cluster)
    finally:
        cluster.stop()


def test_main_configuration_linked_by_postgres_is_refused_without_reading_it(
    cluster: EmbeddedDatabase, victim: Path,
) -> None:
    main = cluster.data_dir / "postgresql.conf"
    aside = cluster.data_dir / "postgresql.conf.real"
    as_user("postgres", "mv", str(main), str(aside))
    as_user("postgres", "ln", "-s", str(victim), str(main))
    try:
        with pytest.raises(EmbeddedDbError) as refused:
            cluster.ensure_initialized()
        assert str(refused.value) == f"{main} is a symbolic link: not read; restore the file"
        assert_untouched(victim)
        assert_not_copied(cluster.data_dir)
    finally:
        as_user("postgres", "mv", "-f", str(aside), str(main))
    cluster.ensure_initialized()


def test_links_left_in_the_state_directory_are_replaced_not_followed(
    cluster: EmbeddedDatabase, victim: Path, tmp_path: Path,
) -> None:
    # What a state directory that once belonged to someone else may still hold.
    cluster.logfile.unlink(missing_ok=True)
    cluster.logfile.symlink_to(victim)
    cluster.socket_dir.rmdir()
    cluster.socket_dir.symlink_to(tmp_path)

    cluster.ensure_initialized()
    try:
        cluster.start()
        assert connects(cluster)
    finally:
        cluster.stop()

    assert_untouched(victim)
    assert not cluster.logfile.is_symlink() and not cluster.socket_dir.is_symlink()
    assert tmp_path.stat().st_uid == 0


def test_password_file_others_can_read_is_not_used_and_a_new_password_is_set(
    cluster: EmbeddedDatabase, caplog: pytest.LogCaptureFixture,
) -> None:
    before = cluster.passfile.read_text()
    cluster.passfile.chmod(0o644)
    caplog.set_level(logging.WARNING)

    cluster.ensure_initialized()

    assert cluster.passfile.read_text() != before
    assert cluster.passfile.stat().st_mode & 0o777 == 0o600
    assert (f"password file {cluster.passfile} is not used (can be opened by other users "
            "(mode 0644)); setting a new password for role sa") in caplog.text
    try:
        cluster.start()
        assert connects(cluster)
    finally:
        cluster.stop()


def test_state_directory_made_beforehand_by_another_user_cannot_choose_the_password() -> None:
    base = make_state_dir()
    state = base / "state"
    try:
        state.mkdir(mode=0o755)
        os.chown(state, 65534, 65534)  # made by nobody before the updater first ran
        chosen = "chosen-by-nobody"
        as_user("nobody", "sh", "-c", f"umask 077; echo '*:*:*:sa:{chosen}' > {state}/pgpass")
        database = EmbeddedDatabase(state, port=free_port())

        with pytest.raises(EmbeddedDbError) as refused:
            database.ensure_initialized()
        assert str(refused.value) == (
            f"state directory {state} is owned by uid 65534 (nobody); run: chown root:root "
            f"{state} && chmod 0755 {state}"
        )

        os.chown(state, 0, 0)  # what the administrator is told to do; pgpass stays nobody's
        database.ensure_initialized()

        status = database.passfile.stat()
        assert (status.st_uid, status.st_mode & 0o777) == (0, 0o600)
        assert chosen not in database.passfile.read_text()
        database.start()
        try:
            assert connects(database)
            with pytest.raises(psycopg2.OperationalError):
                psycopg2.connect(make_dsn(host=database.host, port=database.port, dbname="imss",
                                          user="sa", password=chosen, passfile="/dev/null"))
        finally:
            database.stop()
    finally:
        shutil.rmtree(base, ignore_errors=True)
