"""Bootstrap settings: what is needed before the database can be read (SPEC section 4).

They come from environment variables, overridden by command-line options.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from imss_updater.database.db import Database, DatabaseError
from imss_updater.database.embedded_db import EmbeddedDatabase
from imss_updater.store import ownership

DEFAULT_ROOT = "/opt/trend/imss"
DEFAULT_STATE = "/var/lib/imss-updater"
DEFAULT_WEB = "127.0.0.1:8445"
DEFAULT_DB_PORT = 5432


class BootstrapError(ValueError):
    """A bootstrap value is unusable; the message names the variable or option."""


@dataclass(frozen=True)
class Bootstrap:
    dsn: str | None  # None: the embedded database
    root: Path
    state: Path
    web_host: str
    web_port: int
    db_port: int
    node: str = field(default_factory=socket.gethostname)  # IMSS_NODE (SPEC 7)
    mirror: str | None = None  # IMSS_MIRROR host:port, where this node serves the mirror as leader

    @property
    def embedded(self) -> bool:
        return self.dsn is None


def from_environment(env: Mapping[str, str], overrides: Mapping[str, str | None]) -> Bootstrap:
    """Given the environment and command-line overrides (None: not given), return Bootstrap.

    Raise BootstrapError if a port or the web address is malformed.
    """

    def pick(option: str, variable: str, default: str | None) -> str | None:
        given = overrides.get(option)
        if given is not None:
            return given
        return env.get(variable) or default

    web = pick("web", "IMSS_WEB", DEFAULT_WEB) or DEFAULT_WEB
    host, _colon, port_text = web.rpartition(":")
    if not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise BootstrapError(f"IMSS_WEB must be host:port, got {web!r}")
    db_port_text = pick("db_port", "IMSS_DB_PORT", str(DEFAULT_DB_PORT)) or str(DEFAULT_DB_PORT)
    if not db_port_text.isdigit() or not 0 < int(db_port_text) < 65536:
        raise BootstrapError(f"IMSS_DB_PORT must be a port number, got {db_port_text!r}")
    mirror = env.get("IMSS_MIRROR") or None
    if mirror is not None:
        mirror_host, _colon, mirror_port = mirror.rpartition(":")
        if not mirror_host or not mirror_port.isdigit() or not 0 < int(mirror_port) < 65536:
            raise BootstrapError(f"IMSS_MIRROR must be host:port, got {mirror!r}")
    return Bootstrap(
        dsn=pick("dsn", "IMSS_DSN", None),
        root=Path(pick("root", "IMSS_ROOT", DEFAULT_ROOT) or DEFAULT_ROOT),
        state=Path(pick("state", "IMSS_STATE", DEFAULT_STATE) or DEFAULT_STATE),
        web_host=host.strip("[]"),
        web_port=int(port_text),
        db_port=int(db_port_text),
        node=env.get("IMSS_NODE") or socket.gethostname(),
        mirror=mirror,
    )


def require_private_directories(bootstrap: Bootstrap, *, state: bool, root: bool) -> None:
    """When running as root, raise BootstrapError unless the state directory (if ``state``)
    and the install root (if ``root``) are owned by root, not writable by group or others,
    and inside directories only root can change: otherwise another local user could plant
    files or links that root then uses. The reason names the path and the fix. Checks
    nothing for other users, nor for a directory not created yet (its parents are checked)."""
    checks = [(bootstrap.state, "state directory")] if state else []
    if root:
        checks.append((bootstrap.root, "install root"))
    for path, what in checks:
        try:
            ownership.require_private(path, what)
        except ownership.UntrustedPathError as error:
            raise BootstrapError(error.reason) from error


@contextmanager
def database_dsn(bootstrap: Bootstrap, *, keep_running: bool = False) -> Iterator[str]:
    """Yield the DSN of the configured database, ready for connections.

    With no DSN, that is the embedded cluster under the state directory: created on first
    use, started if it is not running, and (unless ``keep_running``) stopped again
    afterwards if this call started it. Raise EmbeddedDbError with the reason.
    """
    if bootstrap.dsn is not None:
        yield bootstrap.dsn
        return
    embedded = EmbeddedDatabase(bootstrap.state, port=bootstrap.db_port)
    embedded.ensure_initialized()
    started = False
    if not embedded.is_running():
        embedded.start()
        started = True
    try:
        yield embedded.dsn()
    finally:
        if started and not keep_running:
            embedded.stop()


@contextmanager
def open_database(bootstrap: Bootstrap, *, keep_running: bool = False) -> Iterator[Database]:
    """Yield a connected Database (see ``database_dsn``); a brand-new embedded database is
    initialized at once. Raise DatabaseError or EmbeddedDbError with the reason."""
    with database_dsn(bootstrap, keep_running=keep_running) as dsn, Database(dsn) as database:
        if bootstrap.dsn is None and database.schema_version() == 0:
            database.init()  # a brand-new embedded database is ready to use at once
        yield database


def require_schema(database: Database) -> None:
    """Raise DatabaseError if ``db init`` has not been run on this database."""
    if database.schema_version() == 0:
        raise DatabaseError("the database has no schema yet: run `imss-updater db init`")
