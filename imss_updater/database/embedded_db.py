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
"""

from __future__ import annotations

import logging
import os
import pwd
import re
import secrets
import shutil
from pathlib import Path

from psycopg2.extensions import make_dsn

from imss_updater import process

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
        self._make_dir(self.state_dir, 0o755, owned_by_server=False)
        self._check_reachable()
        self._make_dir(self.socket_dir, 0o755, owned_by_server=True)
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
        if staging.exists():
            shutil.rmtree(staging)
        self._make_dir(staging, 0o700, owned_by_server=True)
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
        text = main_conf.read_text(encoding="utf-8")
        if include not in text:
            self._write_server_file(main_conf, text.rstrip("\n") + "\n\n" + include)

    # -- the password file ------------------------------------------------------------

    def _password(self) -> str:
        """Return the password of ``sa``: the one in the password file, or a new one."""
        existing = _read_passfile_password(self.passfile)
        if existing is not None:
            return existing
        password = secrets.token_urlsafe(24)
        if (self.data_dir / "PG_VERSION").exists():
            # The cluster exists but its password file was lost: set a new password.
            if self.is_running():
                raise EmbeddedDbError(
                    f"password file {self.passfile} is missing: stop the embedded database "
                    "and run again to set a new password"
                )
            log.warning("password file %s is missing; setting a new password for role %s",
                        self.passfile, ROLE)
            self._single_user(
                self.data_dir, f"ALTER ROLE {ROLE} PASSWORD {_sql_literal(password)};\n", password
            )
        # Written before the cluster is created, so a retry after a crash reuses it.
        self._write_passfile(password)
        return password

    def _write_passfile(self, password: str) -> None:
        lines = "".join(
            f"{_pgpass_field(host)}:{int(self.port)}:*:{ROLE}:{_pgpass_field(password)}\n"
            # libpq matches a socket connection by the socket directory's path.
            for host in dict.fromkeys((self.host, str(self.socket_dir)))
        )
        if self.passfile.exists() and self.passfile.read_text(encoding="utf-8") == lines:
            return
        staging = self.passfile.with_name(self.passfile.name + ".new")
        descriptor = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(lines)
        os.chmod(staging, 0o600)
        os.replace(staging, self.passfile)

    # -- helpers ----------------------------------------------------------------------

    def _server_bin(self) -> Path:
        if self._bin is None:
            self._bin = find_server_bin()
            # An existing cluster needs the major version that created it, if installed.
            version_file = self.data_dir / "PG_VERSION"
            if version_file.exists():
                version = version_file.read_text(encoding="utf-8").strip()
                matching = self._bin.parent.parent / version / "bin"
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

    def _make_dir(self, path: Path, mode: int, *, owned_by_server: bool) -> None:
        try:
            created = not path.exists()
            path.mkdir(parents=True, exist_ok=True)
            if created or owned_by_server:
                os.chmod(path, mode)
            ids = self._server_ids() if owned_by_server else None
            if ids is not None:
                os.chown(path, *ids)
        except OSError as error:
            raise EmbeddedDbError(f"cannot create {path}: {error.strerror}") from error

    def _write_server_file(self, path: Path, text: str) -> None:
        if path.exists() and path.read_text(encoding="utf-8") == text:
            return
        staging = path.with_name(path.name + ".new")
        staging.write_text(text, encoding="utf-8")
        os.chmod(staging, 0o600)
        ids = self._server_ids()
        if ids is not None:
            os.chown(staging, *ids)
        os.replace(staging, path)

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
        if not self.logfile.exists():
            self.logfile.touch(mode=0o640)
        ids = self._server_ids()
        if ids is not None:
            os.chown(self.logfile, *ids)

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


def _pgpass_field(text: str) -> str:
    return text.replace("\\", "\\\\").replace(":", "\\:")


def _split_pgpass_line(line: str) -> list[str]:
    fields: list[str] = []
    current: list[str] = []
    characters = iter(line)
    for character in characters:
        if character == "\\":
            current.append(next(characters, ""))
        elif character == ":":
            fields.append("".join(current))
            current = []
        else:
            current.append(character)
    fields.append("".join(current))
    return fields


def _read_passfile_password(path: Path) -> str | None:
    """Return the password of role ``sa`` recorded in ``path``, or None if there is none."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        fields = _split_pgpass_line(line)
        if len(fields) == 5 and fields[3] == ROLE and fields[4]:
            return fields[4]
    return None
