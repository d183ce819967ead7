"""The schema lives in ``sql/``: numbered migrations applied once each (recorded in
``tb_schema_version``) and ``defaults.sql``, whose rows are inserted only where missing,
so ``db init`` is idempotent and never overwrites what an administrator changed.
"""

from __future__ import annotations

import importlib.resources
import logging
import re
from pathlib import Path

import psycopg2.extensions

from imss_updater.catalog import DEFAULT_CATALOG
from imss_updater.database.connection import Connection
from imss_updater.database.fleet import ensure_node_rows

log = logging.getLogger(__name__)

SQL_DIR = Path(str(importlib.resources.files("imss_updater") / "sql"))  # package data
_MIGRATION = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")


class SchemaMixin(Connection):
    """Create and upgrade the schema."""

    def schema_version(self) -> int:
        with self.transaction() as cursor:
            cursor.execute("SELECT to_regclass('tb_schema_version') IS NOT NULL")
            row = cursor.fetchone()
            if not row or not row[0]:
                return 0
            cursor.execute("SELECT coalesce(max(version), 0) FROM tb_schema_version")
            found = cursor.fetchone()
            return int(found[0]) if found else 0

    def init(self, *, up_to: int | None = None) -> list[str]:
        """Create or upgrade the schema, then add missing default rows and this node's rows
        (an upgrade to per-node tables gives the rows already there to this node).

        Return the names of the migrations applied now. ``up_to`` stops after that
        migration number and skips the defaults (used to build an older schema in tests).
        """
        applied: list[str] = []
        with self.transaction() as cursor:
            # One init at a time: two gateways' installers racing must not both migrate.
            cursor.execute("SELECT pg_advisory_xact_lock(7243001)")
            cursor.execute(
                "CREATE TABLE IF NOT EXISTS tb_schema_version ("
                " version integer PRIMARY KEY, name text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            cursor.execute("SELECT version FROM tb_schema_version")
            done = {row[0] for row in cursor.fetchall()}
            for number, path in migrations():
                if up_to is not None and number > up_to:
                    break
                if number in done:
                    continue
                log.info("applying schema migration %s", path.name)
                cursor.execute(path.read_text(encoding="utf-8"))
                cursor.execute(
                    "INSERT INTO tb_schema_version (version, name) VALUES (%s, %s)", (number, path.name)
                )
                applied.append(path.name)
            if up_to is None:
                cursor.execute((SQL_DIR / "defaults.sql").read_text(encoding="utf-8"))
                self._insert_default_catalog(cursor)
                ensure_node_rows(cursor, self.node)
        return applied

    @staticmethod
    def _insert_default_catalog(cursor: psycopg2.extensions.cursor) -> None:
        for component in DEFAULT_CATALOG:
            cursor.execute(
                "INSERT INTO tb_component (id, name_en, name_ja, kind, source, au_key, license,"
                " feature, event_group, live_path, sort_order, on_control_manager)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (id) DO NOTHING",
                (
                    component.id, component.name_en, component.name_ja, component.kind.value,
                    component.source.value, component.au_key, component.license, component.feature,
                    component.event_group.value, component.live_path, component.sort_order,
                    component.on_control_manager,
                ),
            )


def migrations() -> list[tuple[int, Path]]:
    """Return the numbered migration files of ``sql/`` in order."""
    found = []
    for path in sorted(SQL_DIR.glob("*.sql")):
        match = _MIGRATION.match(path.name)
        if match:
            found.append((int(match.group(1)), path))
    return found
