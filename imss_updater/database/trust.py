"""What the updater remembers about trust (SPEC 3.1), in PostgreSQL: which sources have
served a signed index (index pins), which components were installed from a signed package
(signature pins), and the SHA-256 of every package installed (the replay memory).

The rows are written with the install itself (``Database.record_installed(package=...)``);
this module reads them and clears pins on an administrator's request.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass

from imss_updater.database.db import Database


@dataclass(frozen=True)
class SeenPackage:
    """A package installed before: its component and version (server.ini form)."""

    component: str
    version: str
    signed: bool


@dataclass(frozen=True)
class SignaturePin:
    component: str
    version: str
    pinned_at: datetime.datetime


@dataclass(frozen=True)
class IndexPin:
    base_url: str
    pinned_at: datetime.datetime
    verified_at: datetime.datetime


def pin_key(base_url: str) -> str:
    """Return the key a source's index pin is stored under (its base URL, no final slash)."""
    return base_url.rstrip("/")


def package_seen(database: Database, sha256: str) -> SeenPackage | None:
    """Return the component and version a package with this hash was installed as, or None."""
    with database.transaction() as cursor:
        cursor.execute(
            "SELECT component, version, signed FROM tb_package_seen WHERE sha256 = %s", (sha256,)
        )
        row = cursor.fetchone()
        return None if row is None else SeenPackage(row[0], row[1], bool(row[2]))


def signature_pins(database: Database) -> dict[str, SignaturePin]:
    """Return the components installed from a validly signed package, by id."""
    with database.transaction() as cursor:
        cursor.execute("SELECT component, version, pinned_at FROM tb_signature_pin")
        return {row[0]: SignaturePin(*row) for row in cursor.fetchall()}


def signature_pinned(database: Database, component_id: str) -> bool:
    with database.transaction() as cursor:
        cursor.execute("SELECT 1 FROM tb_signature_pin WHERE component = %s", (component_id,))
        return cursor.fetchone() is not None


def clear_signature_pins(database: Database, component_ids: Sequence[str]) -> list[str]:
    """Forget that these components were signed; return the ids that had a pin."""
    with database.transaction() as cursor:
        cursor.execute(
            "DELETE FROM tb_signature_pin WHERE component = ANY(%s) RETURNING component",
            (list(component_ids),),
        )
        return sorted(row[0] for row in cursor.fetchall())


def index_pins(database: Database) -> list[IndexPin]:
    with database.transaction() as cursor:
        cursor.execute("SELECT base_url, pinned_at, verified_at FROM tb_index_pin ORDER BY base_url")
        return [IndexPin(*row) for row in cursor.fetchall()]


def index_pinned(database: Database, base_url: str) -> bool:
    with database.transaction() as cursor:
        cursor.execute("SELECT 1 FROM tb_index_pin WHERE base_url = %s", (pin_key(base_url),))
        return cursor.fetchone() is not None


def pin_index(database: Database, base_url: str) -> None:
    """Remember that ``base_url`` served a valid index signature (now)."""
    with database.transaction() as cursor:
        cursor.execute(
            "INSERT INTO tb_index_pin (base_url) VALUES (%s)"
            " ON CONFLICT (base_url) DO UPDATE SET verified_at = now()",
            (pin_key(base_url),),
        )


def clear_index_pin(database: Database, base_url: str) -> bool:
    """Forget that ``base_url`` signed its index, and the signed index cached for it (so the
    next one is not compared with it); return True if there was a pin."""
    key = pin_key(base_url)
    with database.transaction() as cursor:
        cursor.execute("DELETE FROM tb_index_pin WHERE base_url = %s", (key,))
        found = bool(cursor.rowcount)
        cursor.execute(
            "DELETE FROM tb_source_cache WHERE url = %s OR url = %s",
            (key + "/server.ini", key + "//server.ini"),
        )
        return found
