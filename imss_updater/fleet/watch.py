"""The leader reports fleet nodes going down and coming back (issue 10 section 5): one
notification per change, sent by the leader alone.

On each upkeep tick of the leading node, every other node's state (down after three missed
heartbeats, ``fleet_view.node_down``) is compared with what was last reported of it
(``tb_fleet_node.reported_down``, sql/016). A change queues the notification and records
the report in one transaction, the nodes' rows locked (``FOR UPDATE``) meanwhile: a new
leader after a failover, or an old one that has not noticed yet, finds the report already
made, so it is neither repeated nor lost. A node that never sent a heartbeat (registered
by ``db init`` only) is not reported down; the leader does not report itself.
"""

from __future__ import annotations

import datetime
import logging
from dataclasses import dataclass

from imss_updater import notify
from imss_updater.database.db import Database
from imss_updater.fleet_view import node_down
from imss_updater.notify.delivery import load_settings
from imss_updater.notify.outbox import NewNotification, insert

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Change:
    node: str
    heartbeat: datetime.datetime
    down: bool  # True: went down; False: came back


def report_nodes(database: Database) -> list[Change]:
    """Queue one notification per node of the fleet (other than ``database.node``) whose
    state changed since it was last reported, record the reports, and return the changes.
    The caller has checked that this node leads. Raise DatabaseError if the database fails."""
    settings = load_settings(database.settings_rows(), database.node)
    changes: list[Change] = []
    with database.transaction() as cursor:
        cursor.execute(
            "SELECT node, heartbeat, reported_down, now() FROM tb_fleet_node"
            " WHERE node <> %s AND heartbeat IS NOT NULL ORDER BY node FOR UPDATE",
            (database.node,),
        )
        queued: list[NewNotification] = []
        for node, heartbeat, reported_down, now in cursor.fetchall():
            down = node_down(heartbeat, now)
            if down == reported_down:
                continue
            changes.append(Change(node, heartbeat, down))
            queued += notify.node_notifications(settings, node, heartbeat, down, now=now)
            cursor.execute("UPDATE tb_fleet_node SET reported_down = %s WHERE node = %s", (down, node))
        if queued:
            insert(cursor, queued, now)
    for change in changes:
        log.log(logging.WARNING if change.down else logging.INFO, "fleet: node %s is %s (last heartbeat %s)",
                change.node, "down" if change.down else "up again",
                change.heartbeat.isoformat(timespec="seconds"))
        notify.node_unusable(database, settings, change.node, change.heartbeat, change.down)
    return changes
