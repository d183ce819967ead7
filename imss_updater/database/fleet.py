"""Every gateway sharing the database (SPEC 7): tb_fleet_node, and each node's own rows.

A node is registered by ``db init`` and the daemon's start (``Database.init``), and by any
command that opens the database: its status row and a state row per component are created
when missing, so a gateway joining a database another gateway set up starts as a fresh one.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

import psycopg2.extensions

from imss_updater.database.connection import Connection


@dataclass(frozen=True)
class FleetNode:
    node: str
    mirror_address: str | None  # IMSS_MIRROR (host:port) of that node, None: none
    role: str  # 'leader' or 'member', as recorded by the fleet's election
    heartbeat: datetime.datetime | None  # written by that node's daemon
    last_check: datetime.datetime | None
    source_mode: str  # 'origin', 'mirror' or 'fallback'
    registered_at: datetime.datetime
    mirror_behind_since: datetime.datetime | None = None  # its mirror lacks the origin's release
    mirror_behind_reason: str | None = None  # why, in English (the causes, naming the URLs)


@dataclass(frozen=True)
class FleetView:
    """The whole fleet as one read sees it: the nodes, each node's installed version per
    component id (None: nothing installed), and the database's clock (heartbeat ages)."""

    now: datetime.datetime
    nodes: list[FleetNode]
    installed: dict[str, dict[str, str | None]]


class FleetMixin(Connection):
    """Register this node; read every node."""

    def ensure_node(self) -> None:
        """Create this node's missing rows (status, component states, fleet entry)."""
        with self.transaction() as cursor:
            ensure_node_rows(cursor, self.node)

    def record_mirror_address(self, address: str | None) -> None:
        """Record where this node serves the mirror when it leads (IMSS_MIRROR, or None)."""
        with self.transaction() as cursor:
            cursor.execute(
                "INSERT INTO tb_fleet_node (node, mirror_address) VALUES (%s, %s)"
                " ON CONFLICT (node) DO UPDATE SET mirror_address = EXCLUDED.mirror_address"
                " WHERE tb_fleet_node.mirror_address IS DISTINCT FROM EXCLUDED.mirror_address",
                (self.node, address),
            )

    def record_mirror_behind(self, reason: str | None, *, restart: bool = False) -> None:
        """Record that this node's mirror lacks the origin's release because of ``reason``
        (since the first such sync in a row; ``restart``: a new term's first sync, so since
        now), or, with None, that it holds it."""
        with self.transaction() as cursor:
            cursor.execute(
                "UPDATE tb_fleet_node SET mirror_behind_reason = %s, mirror_behind_since ="
                " CASE WHEN %s IS NULL THEN NULL WHEN %s THEN now()"
                " ELSE coalesce(mirror_behind_since, now()) END WHERE node = %s",
                (reason, reason, restart, self.node),
            )

    def fleet(self) -> FleetView:
        """Return every node, by name, with its installed versions."""
        with self.transaction() as cursor:
            cursor.execute("SELECT now()")
            row = cursor.fetchone()
            now: datetime.datetime = row[0] if row else datetime.datetime.now(datetime.UTC)
            cursor.execute(
                "SELECT node, mirror_address, role, heartbeat, last_check, source_mode, registered_at,"
                " mirror_behind_since, mirror_behind_reason FROM tb_fleet_node ORDER BY node"
            )
            nodes = [FleetNode(*found) for found in cursor.fetchall()]
            cursor.execute("SELECT node, id, current_version FROM tb_component_state")
            installed: dict[str, dict[str, str | None]] = {node.node: {} for node in nodes}
            for node, component_id, version in cursor.fetchall():
                installed.setdefault(node, {})[component_id] = version
        return FleetView(now=now, nodes=nodes, installed=installed)

    def node_names(self) -> list[str]:
        """Return the name of every registered node, sorted (the log's node filter)."""
        with self.transaction() as cursor:
            cursor.execute("SELECT node FROM tb_fleet_node ORDER BY node")
            return [str(row[0]) for row in cursor.fetchall()]


def ensure_node_rows(cursor: psycopg2.extensions.cursor, node: str) -> None:
    """Insert ``node``'s status row, its state row of every catalog component and its fleet
    entry where missing (never changes an existing row)."""
    cursor.execute("INSERT INTO tb_update_status (node) VALUES (%s) ON CONFLICT DO NOTHING", (node,))
    cursor.execute(
        "INSERT INTO tb_component_state (node, id) SELECT %s, id FROM tb_component"
        " ON CONFLICT DO NOTHING",
        (node,),
    )
    cursor.execute("INSERT INTO tb_fleet_node (node) VALUES (%s) ON CONFLICT DO NOTHING", (node,))
