"""The component catalog and each component's state: what is installed, what is offered."""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import psycopg2.extensions

from imss_updater.catalog import Component, EventGroup, Kind, SourceRole
from imss_updater.database.connection import Connection
from imss_updater.database.events import NewEvent, insert_event


@dataclass(frozen=True)
class ComponentState:
    id: str
    current_version: str | None
    previous_version: str | None
    installed_at: datetime.datetime | None
    last_success_at: datetime.datetime | None
    unsigned: bool
    restart_pending: bool
    available_version: str | None
    available_status: str  # known, absent, unknown
    available_reason: str | None
    checked_at: datetime.datetime | None
    stale: bool = False
    available_authenticated: bool = False  # offered by an index whose signature verified


@dataclass(frozen=True)
class InstalledPackage:
    """A package being installed, for the replay memory and the signature pin (SPEC 3.1)."""

    sha256: str
    version: str
    signed: bool


class ComponentsMixin(Connection):
    """Read the catalog; read and record tb_component_state."""

    def catalog(self) -> list[Component]:
        with self.transaction() as cursor:
            cursor.execute(
                "SELECT id, name_en, name_ja, kind, source, au_key, license, feature, event_group,"
                " live_path, sort_order, on_control_manager FROM tb_component ORDER BY sort_order, id"
            )
            return [
                Component(
                    id=row[0], name_en=row[1], name_ja=row[2], kind=Kind(row[3]),
                    source=SourceRole(row[4]), au_key=row[5], license=row[6], feature=row[7],
                    event_group=EventGroup(row[8]), live_path=row[9], sort_order=row[10],
                    on_control_manager=row[11],
                )
                for row in cursor.fetchall()
            ]

    def component_states(self) -> dict[str, ComponentState]:
        with self.transaction() as cursor:
            cursor.execute(
                "SELECT id, current_version, previous_version, installed_at, last_success_at,"
                " unsigned, restart_pending, available_version, available_status,"
                " available_reason, checked_at, stale, available_authenticated FROM tb_component_state"
                " WHERE node = %s",
                (self.node,),
            )
            return {row[0]: ComponentState(*row) for row in cursor.fetchall()}

    def record_availability(
        self,
        rows: Sequence[tuple[str, str | None, str, str | None]],
        *,
        ok: bool,
        text: str,
        authenticated: Mapping[str, bool] | None = None,
    ) -> None:
        """Store (id, available_version, status, reason) per component and the check result;
        ``authenticated`` says per id whether the index offering it was signed (SPEC 3.1)."""
        verified = authenticated or {}
        with self.transaction() as cursor:
            for component_id, version, status, reason in rows:
                cursor.execute(
                    "UPDATE tb_component_state SET available_version = %s, available_status = %s,"
                    " available_reason = %s, available_authenticated = %s, checked_at = now()"
                    " WHERE node = %s AND id = %s",
                    (version, status, reason, verified.get(component_id, False), self.node,
                     component_id),
                )
                if version is not None and status == "known":  # the history view's "first seen"
                    cursor.execute("INSERT INTO tb_version_seen (node, component, version)"
                                   " VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
                                   (self.node, component_id, version))
            cursor.execute(
                "UPDATE tb_update_status SET last_check_at = now(), last_check_ok = %s,"
                " last_check_text = %s WHERE node = %s",
                (ok, text, self.node),
            )
            cursor.execute("UPDATE tb_fleet_node SET last_check = now() WHERE node = %s", (self.node,))

    def record_installed(
        self,
        component_id: str,
        current: str | None,
        previous: str | None,
        *,
        success: bool,
        unsigned: bool | None = None,
        restart_pending: bool | None = None,
        event: NewEvent | None = None,
        package: InstalledPackage | None = None,
    ) -> None:
        """Store what is on disk for a component; ``success`` also stamps last_success_at.

        ``event``, when given, is recorded in the same transaction, so the log and the
        state never disagree after a crash; so is ``package``: its hash in the replay
        memory and, when signed, the component's signature pin.
        """
        with self.transaction() as cursor:
            if event is not None:
                insert_event(cursor, event, self.node)
            if package is not None:
                _insert_package(cursor, component_id, package)
            cursor.execute(
                "UPDATE tb_component_state SET current_version = %s, previous_version = %s,"
                " installed_at = CASE WHEN current_version IS DISTINCT FROM %s THEN now()"
                "   ELSE installed_at END,"
                " last_success_at = CASE WHEN %s THEN now() ELSE last_success_at END,"
                " unsigned = coalesce(%s, unsigned),"
                " restart_pending = coalesce(%s, restart_pending) WHERE node = %s AND id = %s",
                (current, previous, current, success, unsigned, restart_pending, self.node,
                 component_id),
            )

    def clear_restart_pending(self, component_ids: Sequence[str]) -> None:
        with self.transaction() as cursor:
            cursor.execute(
                "UPDATE tb_component_state SET restart_pending = false WHERE node = %s AND id = ANY(%s)",
                (self.node, list(component_ids)),
            )

    def set_stale(self, component_id: str, stale: bool) -> bool:
        """Set a component's stale flag; return True when it changed."""
        with self.transaction() as cursor:
            cursor.execute(
                "UPDATE tb_component_state SET stale = %s"
                " WHERE node = %s AND id = %s AND stale IS DISTINCT FROM %s",
                (stale, self.node, component_id, stale),
            )
            return bool(cursor.rowcount)


def _insert_package(
    cursor: psycopg2.extensions.cursor, component_id: str, package: InstalledPackage
) -> None:
    cursor.execute(
        "INSERT INTO tb_package_seen (sha256, component, version, signed) VALUES (%s, %s, %s, %s)"
        " ON CONFLICT (sha256) DO NOTHING",
        (package.sha256, component_id, package.version, package.signed),
    )
    if package.signed:
        cursor.execute(
            "INSERT INTO tb_signature_pin (component, version) VALUES (%s, %s)"
            " ON CONFLICT (component) DO UPDATE SET version = EXCLUDED.version",
            (component_id, package.version),
        )
