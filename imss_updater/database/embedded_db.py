"""The embedded database: a private PostgreSQL cluster under the state directory.

When no ``IMSS_DSN`` is given the updater keeps its settings in its own cluster, laid out
under the state directory as::

    <state>/pgdata          the cluster (owned by ``postgres`` when we run as root)
    <state>/pgsock          its Unix socket directory
    <state>/pgpass          the password of role ``sa`` in .pgpass format, mode 0600
    <state>/postgresql.log  the server log (pg_ctl -l)

It listens on ``host:port`` (default 127.0.0.1:5432) and holds database ``imss`` owned by
role ``sa``, so that ``PGPASSFILE=<state>/pgpass psql -h 127.0.0.1 imss sa`` works as on
the appliance. Every connection, over TCP or the socket, needs the password
(scram-sha-256).

PostgreSQL refuses to run as root. When we are root, the data directory belongs to the
``postgres`` user and every server command runs as that user, so the state directory and
all its parents must be traversable by ``postgres`` (mode 0755, or at least o+x).
Changing the port or host of an existing cluster takes effect at the next start.

``postgres`` can write ``pgdata``; root never follows a link there: the files root reads or
writes in it are opened with ``O_NOFOLLOW`` relative to the directory, read only if they
are plain files of ``postgres``'s, and replaced by rename, never written through. The state
directory must be root's alone (``ownership.require_private``), and a password file that
someone else could have written or read is never used: a new password is set instead.
"""

from __future__ import annotations

import logging
import os
import pwd
import re
import secrets
from pathlib import Path

from psycopg2.extensions import make_dsn

from imss_updater import process
from imss_updater.database import pgpass, serverfiles
from imss_updater.store import ownership

log = logging.getLogger(__name__)

POSTGRESQL_ROOT = Path("/usr/lib/postgresql")
SERVER_USER = "postgres"
DATABASE = "imss"
ROLE = "sa"
_SETTINGS_FILE = "imss_updater.conf"
_COMMAND_TIMEOUT = 120.0
_START_TIMEOUT = 60


class EmbeddedDbError(Exception):
    """The embedded cluster cannot be set up, started or stopped; the message says why."""


def find_server_bin(root: Path | None = None) -> Path:
    """Return the ``bin`` directory of the newest PostgreSQL under ``root``
    (default /usr/lib/postgresql). Raise EmbeddedDbError if no server is installed."""
    base = POSTGRESQL_ROOT if root is None else root
    candidates: list[tuple[tuple[int, ...], Path]] = []
    if base.is_dir():
        for entry in base.iterdir():
            if re.fullmatch(r"\d+(\.\d+)*", entry.name) and (entry / "bin" / "postgres").exists():
                candidates.append((tuple(int(part) for part in entry.name.split(".")), entry))
    if not candidates:
        raise EmbeddedDbError("PostgreSQL server is not installed: apt-get install postgresql-15")
    return max(candidates)[1] / "bin"


class EmbeddedDatabase:
    """A private PostgreSQL cluster under ``state_dir`` listening on ``host:port``."""

    def __init__(self, state_dir: Path, port: int = 5432, host: str = "127.0.0.1") -> None:
        self.state_dir = Path(state_dir)
        self.port = port
        self.host = host
        self.data_dir = self.state_dir / "pgdata"
        self.socket_dir = self.state_dir / "pgsock"
        self.passfile = self.state_dir / "pgpass"
        self.logfile = self.state_dir / "postgresql.log"
        self._bin: Path | None = None
        self._server_user = SERVER_USER if os.geteuid() == 0 else None

    # -- public API -------------------------------------------------------------------

    def ensure_initialized(self) -> None:
        """Create the cluster, role ``sa``, database ``imss`` and the password file on first
        use; on later calls only rewrite the settings (host, port, socket) and the password
        file. Idempotent, and safe to call while the server runs. Raise EmbeddedDbError if
        the server is not installed, the state directory is unusable or a command fails."""
        try:
            ownership.require_private(self.state_dir, "state directory")
        except ownership.UntrustedPathError as error:
            raise EmbeddedDbError(error.reason) from error
        self._make_state_dir()
        self._check_reachable()
        self._make_server_dir(self.socket_dir, 0o755)
        if (self.data_dir / "PG_VERSION").exists():
            self._check_data_dir()
        password = self._password()
        if not (self.data_dir / "PG_VERSION").exists():
            self._create_cluster(password)
        self._write_settings(self.data_dir)
        self._write_passfile(password)

    def start(self) -> None:
        """Start the server and wait until it accepts connections; do nothing if it runs.
        Raise EmbeddedDbError if the cluster is not initialized or the server does not come
        up (for example its port is in use); the message quotes the log and names it."""
        if not (self.data_dir / "PG_VERSION").exists():
            raise EmbeddedDbError(
                f"embedded database is not initialized in {self.data_dir}: run ensure_initialized"
            )
        if self.is_running():
            log.debug("PostgreSQL in %s is already running", self.data_dir)
            return
        self._prepare_logfile()
        offset = self.logfile.stat().st_size
        log.info("starting PostgreSQL on %s:%s (log %s)", self.host, self.port, self.logfile)
        try:
            # With -l the postmaster writes to the log file and never holds our pipes.
            self._run(
                "pg_ctl", "start", "-w", "-t", str(_START_TIMEOUT), "-s",
                "-D", str(self.data_dir), "-l", str(self.logfile),
                timeout=_START_TIMEOUT + 30,
            )
        except EmbeddedDbError as error:
            detail = self._log_problem(offset) or str(error)
            raise EmbeddedDbError(
                f"PostgreSQL did not start on {self.host}:{self.port}: {detail} "
                f"(see {self.logfile})"
            ) from error

    def stop(self) -> None:
        """Stop the server (fast shutdown: sessions are cut, no data is lost); do nothing if
        it is not running. Raise EmbeddedDbError if pg_ctl fails."""
        if not self.is_running():
            return
        log.info("stopping PostgreSQL in %s", self.data_dir)
        self._run("pg_ctl", "stop", "-w", "-s", "-m", "fast", "-D", str(self.data_dir),
                  timeout=_COMMAND_TIMEOUT)

    def is_running(self) -> bool:
        """Return True if a postmaster is running on this cluster's data directory."""
        if not (self.data_dir / "PG_VERSION").exists():
            return False
        result = self._run("pg_ctl", "status", "-D", str(self.data_dir),
                           timeout=_COMMAND_TIMEOUT, check=False)
        return result.returncode == 0

    def dsn(self) -> str:
        """Return the libpq key/value DSN of database ``imss`` as role ``sa``; the password
        comes from the password file, never from the DSN."""
        return make_dsn(
            host=self.host, port=self.port, dbname=DATABASE, user=ROLE, passfile=str(self.passfile)
        )

    # -- cluster creation -------------------------------------------------------------

    def _create_cluster(self, password: str) -> None:
        # Build the cluster beside its final place and rename it when complete, so that a
        # crash half-way leaves no directory that looks initialized.
        staging = self.state_dir / "pgdata.new"
        self._make_server_dir(staging, 0o700, fresh=True)
        log.info("initializing PostgreSQL cluster in %s", self.data_dir)
        # trust is only the initdb default; _write_settings replaces pg_hba.conf before the
        # server ever runs.
        self._run(
            "initdb", "-D", str(staging), "-U", ROLE, "--auth=trust", "--encoding=UTF8",
            "--locale=C.UTF-8", "--no-instructions", timeout=_COMMAND_TIMEOUT,
        )
        self._write_settings(staging)
        self._single_user(
            staging,
            f"CREATE DATABASE {DATABASE} OWNER {ROLE};\n"
            f"ALTER ROLE {ROLE} PASSWORD {_sql_literal(password)};\n",
            password,
        )
        staging.rename(self.data_dir)

    def _single_user(self, data_dir: Path, statements: str, password: str) -> None:
        """Run SQL in single-user mode (no network, no authentication) on a stopped cluster."""
        self._run(
            "postgres", "--single", "-D", str(data_dir), "postgres",
            timeout=_COMMAND_TIMEOUT, input_text=statements, secrets=(password,),
        )

    def _write_settings(self, data_dir: Path) -> None:
        settings = (
            "# Written by imss-updater; rewritten at every start of the updater.\n"
            f"listen_addresses = {_conf_literal(self.host)}\n"
            f"port = {int(self.port)}\n"
            f"unix_socket_directories = {_conf_literal(str(self.socket_dir))}\n"
            "password_encryption = 'scram-sha-256'\n"
        )
        self._write_server_file(data_dir / _SETTINGS_FILE, settings)
        hba = (
            "# Written by imss-updater: every connection needs the password.\n"
            "local all all scram-sha-256\n"
            "host  all all all scram-sha-256\n"
        )
        self._write_server_file(data_dir / "pg_hba.conf", hba)
        main_conf = data_dir / "postgresql.conf"
        include = f"include = '{_SETTINGS_FILE}'\n"
        text = self._read_server_file(main_conf, required=True) or ""
        if include not in text:
            self._write_server_file(main_conf, text.rstrip("\n") + "\n\n" + include)

    # -- the password file ------------------------------------------------------------

    def _password(self) -> str:
        """Return the password of ``sa``: the one in the password file, or a new one if the
        file is missing or someone else could have chosen or read it."""
        existing, problem = self._passfile_password()
        if existing is not None:
            return existing
        password = secrets.token_urlsafe(24)
        if (self.data_dir / "PG_VERSION").exists():
            # The cluster exists but its password file was lost: set a new password.
            if self.is_running():
                raise EmbeddedDbError(
                    f"password file {self.passfile} {problem}: stop the embedded database "
                    "and run again to set a new password"
                )
            log.warning("password file %s %s; setting a new password for role %s",
                        self.passfile, problem, ROLE)
            self._single_user(
                self.data_dir, f"ALTER ROLE {ROLE} PASSWORD {_sql_literal(password)};\n", password
            )
        # Written before the cluster is created, so a retry after a crash reuses it.
        self._write_passfile(password)
        return password

    def _passfile_password(self) -> tuple[str | None, str]:
        """Return the password recorded in the password file, or None and why not."""
        try:
            return pgpass.read_password(self.passfile, ROLE)
        except OSError as error:
            raise EmbeddedDbError(f"cannot read {self.passfile}: {error.strerror}") from error

    def _write_passfile(self, password: str) -> None:
        # libpq matches a socket connection by the socket directory's path.
        hosts = dict.fromkeys((self.host, str(self.socket_dir)))
        try:
            pgpass.write(self.passfile, hosts, self.port, ROLE, password)
        except OSError as error:
            raise EmbeddedDbError(f"cannot write {self.passfile}: {error.strerror}") from error

    # -- helpers ----------------------------------------------------------------------

    def _server_bin(self) -> Path:
        if self._bin is None:
            self._bin = find_server_bin()
            # An existing cluster needs the major version that created it, if installed.
            version = self._read_server_file(self.data_dir / "PG_VERSION")
            if version is not None and re.fullmatch(r"\d+(\.\d+)*", version.strip()):
                matching = self._bin.parent.parent / version.strip() / "bin"
                if (matching / "postgres").exists():
                    self._bin = matching
        return self._bin

    def _run(
        self,
        program: str,
        *arguments: str,
        timeout: float,
        check: bool = True,
        input_text: str | None = None,
        secrets: tuple[str, ...] = (),
    ) -> process.CommandResult:
        argv = [str(self._server_bin() / program), *arguments]
        try:
            return process.run(
                argv, timeout=timeout, check=check, as_user=self._server_user,
                input_text=input_text, secrets=secrets,
            )
        except process.CommandError as error:
            raise EmbeddedDbError(error.reason) from error

    def _server_ids(self) -> tuple[int, int] | None:
        if self._server_user is None:
            return None
        try:
            entry = pwd.getpwnam(self._server_user)
        except KeyError as error:
            raise EmbeddedDbError(
                f"user {self._server_user} does not exist: install postgresql-15"
            ) from error
        return entry.pw_uid, entry.pw_gid

    def _server_uid(self) -> int:
        ids = self._server_ids()
        return os.geteuid() if ids is None else ids[0]

    def _make_state_dir(self) -> None:
        try:
            if not self.state_dir.exists():
                self.state_dir.mkdir(parents=True, exist_ok=True)
                os.chmod(self.state_dir, 0o755)  # noqa: S103 - postgres must traverse it
        except OSError as error:
            raise EmbeddedDbError(f"cannot create {self.state_dir}: {error.strerror}") from error

    def _make_server_dir(self, path: Path, mode: int, *, fresh: bool = False) -> None:
        try:
            serverfiles.make_server_dir(path, mode, self._server_ids(), fresh=fresh)
        except OSError as error:
            raise EmbeddedDbError(f"cannot create {path}: {error.strerror}") from error

    def _check_data_dir(self) -> None:
        """Raise EmbeddedDbError unless the cluster's directory is a real directory of the
        server user's (not a link someone planted, not another user's cluster)."""
        owner = self._server_uid()
        problem = serverfiles.directory_problem(self.data_dir, owner)
        if problem is not None:
            raise EmbeddedDbError(
                f"embedded database directory {self.data_dir} {problem}, not by "
                f"{ownership.user_name(owner)}: move it away to create a new cluster"
            )

    def _read_server_file(self, path: Path, *, required: bool = False) -> str | None:
        """Return the text of a file in the cluster directory, or None if missing or not a
        plain file of the server user's (never read then; ``required``: raise instead)."""
        try:
            text = serverfiles.read_server_file(path, self._server_uid())
        except ownership.UntrustedPathError as error:
            if required:
                raise EmbeddedDbError(f"{error.reason}: not read; restore the file") from error
            log.warning("%s: not read", error.reason)
            return None
        except OSError as error:
            raise EmbeddedDbError(f"cannot read {path}: {error.strerror}") from error
        if text is None and required:
            raise EmbeddedDbError(f"{path} is missing: restore the file")
        return text

    def _write_server_file(self, path: Path, text: str) -> None:
        try:
            serverfiles.write_server_file(path, text, self._server_ids())
        except OSError as error:
            raise EmbeddedDbError(f"cannot write {path}: {error.strerror}") from error

    def _check_reachable(self) -> None:
        if self._server_user is None:
            return
        result = process.run(["test", "-x", str(self.state_dir)], timeout=30,
                             as_user=self._server_user, check=False)
        if result.returncode != 0:
            raise EmbeddedDbError(
                f"state directory {self.state_dir} is not reachable by user {self._server_user}:"
                " make it and its parent directories traversable (chmod 0755)"
            )

    def _prepare_logfile(self) -> None:
        try:
            serverfiles.prepare_log_file(self.logfile, self._server_ids())
        except OSError as error:
            raise EmbeddedDbError(f"cannot create {self.logfile}: {error.strerror}") from error

    def _log_problem(self, offset: int) -> str:
        """Return the lines of the server log written since ``offset`` that say what went
        wrong, joined into one line, or an empty string."""
        try:
            with self.logfile.open("rb") as handle:
                handle.seek(offset)
                text = handle.read().decode("utf-8", errors="replace")
        except OSError:
            return ""
        problems = [
            re.sub(r"^.*?\b(LOG|FATAL|PANIC|ERROR):\s+", "", line).strip()
            for line in text.splitlines()
            if re.search(r"\b(FATAL|PANIC|ERROR):", line)
            or re.search(r"\bLOG:\s+could not", line)
        ]
        return "; ".join(dict.fromkeys(problems))


def _sql_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _conf_literal(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "''") + "'"
