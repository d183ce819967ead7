"""Bootstrap settings: what is needed before the database can be read (SPEC section 4).

They come from environment variables, overridden by command-line options.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from imss_updater.database.connection import local_node
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
    node: str = field(default_factory=local_node)  # this gateway's name in the fleet (SPEC 7)
    mirror: str | None = None  # host:port where it serves the mirror when it leads

    @property
    def embedded(self) -> bool:
        return self.dsn is None


def from_environment(env: Mapping[str, str], overrides: Mapping[str, str | None]) -> Bootstrap:
    """Given the environment and command-line overrides (None: not given), return Bootstrap.

    Raise BootstrapError if a port, the web or mirror address or the node name is malformed.
    """

    def pick(option: str, variable: str, default: str | None) -> str | None:
        given = overrides.get(option)
        if given is not None:
            return given
        return env.get(variable) or default

    web = pick("web", "IMSS_WEB", DEFAULT_WEB) or DEFAULT_WEB
    host, port_text = _address("IMSS_WEB", web)
    mirror = pick("mirror", "IMSS_MIRROR", None)
    if mirror is not None:
        _address("IMSS_MIRROR", mirror)
    node = pick("node", "IMSS_NODE", None) or local_node()
    if len(node) > 255 or not node.isprintable() or node != node.strip():
        raise BootstrapError(f"IMSS_NODE must be a printable name without surrounding spaces,"
                             f" got {node[:80]!r}")
    db_port_text = pick("db_port", "IMSS_DB_PORT", str(DEFAULT_DB_PORT)) or str(DEFAULT_DB_PORT)
    if not db_port_text.isdigit() or not 0 < int(db_port_text) < 65536:
        raise BootstrapError(f"IMSS_DB_PORT must be a port number, got {db_port_text!r}")
    return Bootstrap(
        dsn=pick("dsn", "IMSS_DSN", None),
        root=Path(pick("root", "IMSS_ROOT", DEFAULT_ROOT) or DEFAULT_ROOT),
        state=Path(pick("state", "IMSS_STATE", DEFAULT_STATE) or DEFAULT_STATE),
        web_host=host.strip("[]"),
        web_port=int(port_text),
        db_port=int(db_port_text),
        node=node,
        mirror=mirror,
    )


def _address(variable: str, text: str) -> tuple[str, str]:
    """Return (host, port) of ``host:port``; raise BootstrapError naming ``variable``."""
    host, _colon, port_text = text.rpartition(":")
    if not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise BootstrapError(f"{variable} must be host:port, got {text!r}")
    return host, port_text


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
    """Yield a connected Database for this node (see ``database_dsn``); a brand-new embedded
    database is initialized at once. Raise DatabaseError or EmbeddedDbError with the reason."""
    with (database_dsn(bootstrap, keep_running=keep_running) as dsn,
          Database(dsn, node=bootstrap.node) as database):
        if bootstrap.dsn is None and database.schema_version() == 0:
            database.init()  # a brand-new embedded database is ready to use at once
        yield database


def require_schema(database: Database) -> None:
    """Raise DatabaseError if ``db init`` has not been run on this database; register the
    database's node in it if it is new there (a gateway joining a shared database)."""
    if database.schema_version() == 0:
        raise DatabaseError("the database has no schema yet: run `imss-updater db init`")
    database.ensure_node()
