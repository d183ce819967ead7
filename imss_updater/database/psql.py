"""``imss-updater psql``: psql on the configured database as its role, no password typing.

The password never goes on psql's command line (where ``ps`` shows it): it is passed in
psql's environment (``PGPASSWORD``), or as the embedded cluster's password file.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from psycopg2.extensions import make_dsn, parse_dsn

from imss_updater.database.embedded_db import EmbeddedDbError, find_server_bin


class PsqlNotFound(Exception):
    """No psql client is installed."""


def find_psql() -> str:
    """Return the psql to run: the one on PATH, else the PostgreSQL server's own."""
    on_path = shutil.which("psql")
    if on_path:
        return on_path
    try:
        candidate = find_server_bin() / "psql"
    except EmbeddedDbError as error:  # no server installed either
        raise PsqlNotFound("psql is not installed (Debian: apt-get install postgresql-client)") from error
    if not Path(candidate).exists():
        raise PsqlNotFound("psql is not installed (Debian: apt-get install postgresql-client)")
    return str(candidate)


def invocation(dsn: str, psql: str) -> tuple[list[str], dict[str, str]]:
    """Given a libpq DSN, return (argv, extra environment) that open psql on it."""
    parameters = parse_dsn(dsn)
    environment: dict[str, str] = {}
    password = parameters.pop("password", None)
    if password:
        environment["PGPASSWORD"] = password
    passfile = parameters.pop("passfile", None)
    if passfile:
        environment["PGPASSFILE"] = passfile
    return [psql, make_dsn(**parameters)], environment
