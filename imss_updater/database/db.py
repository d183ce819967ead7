"""PostgreSQL: ``Database``, the one class callers use, made of one mixin per table group.

Only the modules of this package import psycopg2. The schema lives in ``sql/`` (see
``schema.py``): numbered migrations applied once each and ``defaults.sql``, whose rows are
inserted only where missing, so ``db init`` is idempotent.
"""

from __future__ import annotations

from imss_updater.database.components import ComponentsMixin, ComponentState, InstalledPackage
from imss_updater.database.connection import DatabaseError, mask_dsn
from imss_updater.database.events import Event, EventsMixin, NewEvent
from imss_updater.database.fleet import FleetMixin, FleetNode, FleetView
from imss_updater.database.history import HistoryMixin, VersionSeen
from imss_updater.database.run_status import RunStatus, RunStatusMixin
from imss_updater.database.schema import SQL_DIR, SchemaMixin, migrations
from imss_updater.database.settings_rows import SettingsMixin
from imss_updater.database.sources import CachedIndex, SourceCooldown, SourcesMixin

__all__ = [
    "SQL_DIR",
    "CachedIndex",
    "ComponentState",
    "Database",
    "DatabaseError",
    "Event",
    "FleetNode",
    "FleetView",
    "InstalledPackage",
    "NewEvent",
    "RunStatus",
    "SourceCooldown",
    "VersionSeen",
    "mask_dsn",
    "migrations",
]


class Database(SchemaMixin, SettingsMixin, ComponentsMixin, RunStatusMixin, SourcesMixin, EventsMixin,
               HistoryMixin, FleetMixin):
    """One connection to the updater's database. Use as a context manager."""
