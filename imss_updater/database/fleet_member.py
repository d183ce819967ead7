"""A fleet member's view of the fleet (SPEC 7), in PostgreSQL: who leads, where its mirror
is, and which source this node uses now.

Every assumption about the tables the other fleet parts own is in this module, so that
it is the one place to adapt: ``tb_fleet_node(node, mirror_address, role, heartbeat, ...,
source_mode)`` (migration 013), the leader record ``tb_fleet_leader(node, since, term)``
(migration 014), the node a ``Database`` speaks for (``database.node``) and the announcement
channel. Until the leader record exists, the leader is the node whose role is 'leader'.
The member's own state is ``tb_fleet_member`` (migration 015).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from imss_updater.database.db import Database

ANNOUNCE_CHANNEL = "imss_fleet"  # the leader NOTIFYs a release here (JSON: node, term, release)
MIRROR_PATH = "/activeupdate"  # the leader serves its mirror at http://IMSS_MIRROR/activeupdate/
SOURCE_MODES = ("origin", "mirror", "fallback")


@dataclass(frozen=True)
class Leader:
    node: str
    mirror_address: str | None  # host:port, None: it serves no mirror

    @property
    def mirror_url(self) -> str | None:
        return f"http://{self.mirror_address}{MIRROR_PATH}" if self.mirror_address else None


@dataclass(frozen=True)
class MirrorBehind:
    """The leader's mirror lacks the origin's release (sql/017): since when, and why."""

    node: str  # the leader whose mirror it is
    since: datetime.datetime
    reason: str  # English, the causes naming the URLs


@dataclass(frozen=True)
class MemberSource:
    mode: str  # one of SOURCE_MODES
    mirror_url: str | None
    unreachable_since: datetime.datetime | None
    mirror_behind: MirrorBehind | None = None  # the leader's mirror, when behind the origin


def node_of(database: Database) -> str:
    """The node this connection speaks for."""
    return database.node


def _exists(database: Database, table: str) -> bool:
    with database.transaction() as cursor:
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", (table,))
        row = cursor.fetchone()
        return bool(row and row[0])


def leader(database: Database) -> Leader | None:
    """The current leader and its mirror address, or None when no node leads (or the fleet
    tables are not there yet)."""
    if not _exists(database, "tb_fleet_node"):
        return None
    recorded = _exists(database, "tb_fleet_leader")
    with database.transaction() as cursor:
        if recorded:
            cursor.execute(
                "SELECT l.node, n.mirror_address FROM tb_fleet_leader l"
                " LEFT JOIN tb_fleet_node n ON n.node = l.node ORDER BY l.term DESC LIMIT 1"
            )
        else:
            cursor.execute(
                "SELECT node, mirror_address FROM tb_fleet_node WHERE role = 'leader'"
                " ORDER BY heartbeat DESC NULLS LAST LIMIT 1"
            )
        row = cursor.fetchone()
        return None if row is None else Leader(row[0], row[1] or None)


def mirror_behind(database: Database, node: str) -> MirrorBehind | None:
    """Whether ``node``'s mirror is behind the origin, as that node (a leader) recorded."""
    with database.transaction() as cursor:
        cursor.execute("SELECT mirror_behind_since, mirror_behind_reason FROM tb_fleet_node"
                       " WHERE node = %s", (node,))
        row = cursor.fetchone()
    if row is None or row[0] is None:
        return None
    return MirrorBehind(node, row[0], row[1] or "")


def member_source(database: Database, node: str) -> MemberSource:
    with database.transaction() as cursor:
        cursor.execute(
            "SELECT source_mode, mirror_url, mirror_unreachable_since FROM tb_fleet_member"
            " WHERE node = %s", (node,)
        )
        row = cursor.fetchone()
        return MemberSource("origin", None, None) if row is None else MemberSource(*row)


def record_member_source(database: Database, node: str, source: MemberSource) -> None:
    """Record the member's source (and copy the mode to tb_fleet_node.source_mode)."""
    with database.transaction() as cursor:
        cursor.execute(
            "INSERT INTO tb_fleet_member (node, source_mode, mirror_url, mirror_unreachable_since)"
            " VALUES (%s, %s, %s, %s) ON CONFLICT (node) DO UPDATE SET"
            " source_mode = EXCLUDED.source_mode, mirror_url = EXCLUDED.mirror_url,"
            " mirror_unreachable_since = EXCLUDED.mirror_unreachable_since, changed_at = now()",
            (node, source.mode, source.mirror_url, source.unreachable_since),
        )
    if _exists(database, "tb_fleet_node"):
        with database.transaction() as cursor:
            cursor.execute("UPDATE tb_fleet_node SET source_mode = %s WHERE node = %s",
                           (source.mode, node))
