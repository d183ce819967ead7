"""Test support: a fleet leader as a member sees it (SPEC 7).

``Mirror`` is a real HTTP server on 127.0.0.1 serving a byte-for-byte copy of an AUTree
under ``/activeupdate/``, as the leader's mirror does; ``record_leader`` writes the leader
record a member reads (the node row with its mirror address, and the leader row), creating
the fleet tables as migrations 013/014 define them where this schema does not have them.
``announce`` sends the leader's NOTIFY.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from imss_updater.database import fleet_member as fleet_db
from imss_updater.database.db import Database
from tests.support.autree import AUTree
from tests.support.servers import ServerFactory, StaticServer


class Mirror:
    def __init__(self, directory: Path, http_server: ServerFactory) -> None:
        self.directory = directory
        self.tree_dir = directory / "activeupdate"
        self.tree_dir.mkdir(parents=True, exist_ok=True)
        self.server: StaticServer = http_server(directory)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}{fleet_db.MIRROR_PATH}"

    def sync(self, tree: AUTree) -> None:
        """Copy the origin's tree byte for byte (server.ini and its .sig included)."""
        shutil.rmtree(self.tree_dir)
        shutil.copytree(tree.directory, self.tree_dir)

    def file(self, relative: str) -> Path:
        return self.tree_dir / relative


def record_leader(dsn: str, node: str, mirror_address: str | None, term: int = 1) -> None:
    with Database(dsn) as database, database.transaction() as cursor:
        cursor.execute(
            "CREATE TABLE IF NOT EXISTS tb_fleet_node (node text PRIMARY KEY, mirror_address text,"
            " role text NOT NULL DEFAULT 'member', heartbeat timestamptz, last_check timestamptz,"
            " source_mode text NOT NULL DEFAULT 'origin')"
        )
        cursor.execute(
            "CREATE TABLE IF NOT EXISTS tb_fleet_leader (node text NOT NULL,"
            " since timestamptz NOT NULL DEFAULT now(), term bigint NOT NULL)"
        )
        cursor.execute(
            "INSERT INTO tb_fleet_node (node, mirror_address, role, heartbeat)"
            " VALUES (%s, %s, 'leader', now()) ON CONFLICT (node)"
            " DO UPDATE SET mirror_address = EXCLUDED.mirror_address, role = 'leader'",
            (node, mirror_address),
        )
        cursor.execute("UPDATE tb_fleet_node SET role = 'member' WHERE node <> %s", (node,))
        cursor.execute("DELETE FROM tb_fleet_leader")
        cursor.execute("INSERT INTO tb_fleet_leader (node, term) VALUES (%s, %s)", (node, term))


def announce(dsn: str, node: str, term: int, release: str) -> None:
    payload = json.dumps({"leader": node, "term": term, "release": release})
    with Database(dsn) as database, database.transaction() as cursor:
        cursor.execute("SELECT pg_notify(%s, %s)", (fleet_db.ANNOUNCE_CHANNEL, payload))


def member_source(dsn: str, node: str) -> fleet_db.MemberSource:
    with Database(dsn) as database:
        return fleet_db.member_source(database, node)
