"""Per-node state (SPEC 7): several gateways on one PostgreSQL, each with its own installed
versions, events, status and heartbeat; an existing database upgrades with its rows given to
the node that runs `db init`. Real PostgreSQL, real CLI processes."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import psycopg2
import pytest

from imss_updater import config
from imss_updater.catalog import DEFAULT_CATALOG
from imss_updater.database.db import Database
from tests.support.gateway import Gateway
from tests.support.nodes import node_cli

OLD_HEARTBEAT = datetime.datetime(2026, 11, 30, 8, 0, tzinfo=datetime.UTC)


def _old_database(dsn: str) -> None:
    """A database as the previous release left it: migrations 001-012, one component with
    its state, events, a version seen, a notified failure and the status row with a heartbeat."""
    with Database(dsn, node="unused") as database:
        database.init(up_to=12)
    component = DEFAULT_CATALOG[0]
    connection = psycopg2.connect(dsn)  # the old schema has no node column: plain SQL
    with connection, connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO tb_component (id, name_en, name_ja, kind, source, au_key, license, feature,"
            " event_group, live_path, sort_order) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (component.id, component.name_en, component.name_ja, component.kind.value,
             component.source.value, component.au_key, component.license, component.feature,
             component.event_group.value, component.live_path, component.sort_order),
        )
        cursor.execute("INSERT INTO tb_component_state (id, current_version, previous_version)"
                       " VALUES (%s, '15.697.00', '15.695.00')", (component.id,))
        for version in ("15.695.00", "15.697.00"):
            cursor.execute(
                "INSERT INTO tb_update_event (kind, component, version, outcome, message, message_ja)"
                " VALUES ('scheduled', %s, %s, 'success', 'updated', '更新しました')",
                (component.id, version),
            )
        cursor.execute("INSERT INTO tb_version_seen (component, version) VALUES (%s, '1569700')",
                       (component.id,))
        cursor.execute("INSERT INTO tb_notify_failure (event_group, component, reason, first_notified_at,"
                       " last_notified_at) VALUES ('pattern', %s, 'timed out', now(), now())",
                       (component.id,))
        cursor.execute("UPDATE tb_update_status SET last_run_text = 'old run', last_run_ok = true,"
                       " daemon_heartbeat = %s, daemon_pid = 4242", (OLD_HEARTBEAT,))
    connection.close()


def _count(dsn: str, table: str, node: str) -> int:
    connection = psycopg2.connect(dsn)
    with connection, connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {table} WHERE node = %s", (node,))  # a constant name
        row = cursor.fetchone()
    connection.close()
    return int(row[0]) if row else 0


def test_db_init_upgrades_a_previous_release_database_giving_every_row_to_the_local_node(
    db_dsn: str, tmp_path: Path
) -> None:
    _old_database(db_dsn)
    done = node_cli(db_dsn, "a", tmp_path / "root", "db", "init", "--json")
    assert done.returncode == 0, done.stderr
    assert "013_fleet_nodes.sql" in json.loads(done.stdout)["applied"]
    component = DEFAULT_CATALOG[0].id
    with Database(db_dsn, node="a") as database:
        state = database.component_states()[component]
        assert (state.current_version, state.previous_version) == ("15.697.00", "15.695.00")
        assert [event.version for event in database.events()] == ["15.697.00", "15.695.00"]
        assert {event.node for event in database.events()} == {"a"}
        status = database.run_status()
        assert (status.last_run_text, status.daemon_pid, status.daemon_heartbeat) == ("old run", 4242,
                                                                                       OLD_HEARTBEAT)
        assert {"1569700", "15.697.00"} <= {row.version for row in database.version_history()}
        fleet = database.fleet()
    assert [(node.node, node.heartbeat) for node in fleet.nodes] == [("a", OLD_HEARTBEAT)]
    for table, rows in (("tb_update_event", 2), ("tb_version_seen", 1), ("tb_notify_failure", 1),
                        ("tb_update_status", 1)):
        assert _count(db_dsn, table, "a") == rows, table
    # Nothing is left without a node, and the rest of the catalog's rows are a's too.
    assert _count(db_dsn, "tb_component_state", "a") == len(DEFAULT_CATALOG)


def test_a_second_node_joining_an_upgraded_database_starts_fresh_and_leaves_the_first_alone(
    db_dsn: str, tmp_path: Path
) -> None:
    _old_database(db_dsn)
    assert node_cli(db_dsn, "a", tmp_path / "root-a", "db", "init").returncode == 0
    done = node_cli(db_dsn, "b", tmp_path / "root-b", "status", "--json")
    assert done.returncode == 0, done.stderr
    shown = {item["id"]: item["current"] for item in json.loads(done.stdout)["components"]}
    assert set(shown.values()) == {None}
    with Database(db_dsn, node="a") as database:
        assert database.component_states()[DEFAULT_CATALOG[0].id].current_version == "15.697.00"
        assert [node.node for node in database.fleet().nodes] == ["a", "b"]


def test_migration_013_refuses_to_run_on_a_connection_that_names_no_node(db_dsn: str) -> None:
    with Database(db_dsn, node="a") as database:
        database.init(up_to=12)
    connection = psycopg2.connect(db_dsn)
    migration = (Path(config.__file__).parent / "sql" / "013_fleet_nodes.sql").read_text()
    with pytest.raises(psycopg2.Error, match=r"imss\.node"), connection, connection.cursor() as cursor:
        cursor.execute(migration)
    connection.close()


def test_two_nodes_on_one_database_keep_their_own_versions_events_status_and_heartbeat(
    gateway: Gateway, tmp_path: Path
) -> None:
    roots = {node: tmp_path / f"root-{node}" for node in ("a", "b")}
    for node, root in roots.items():
        root.mkdir()
        assert node_cli(gateway.dsn, node, root, "db", "init").returncode == 0
    gateway.tree.add_pattern("P.4", "1569700")
    gateway.publish()
    for node in ("a", "b"):
        done = node_cli(gateway.dsn, node, roots[node], "update", "virus_pattern")
        assert done.returncode == 0, done.stderr
    gateway.tree.add_pattern("P.4", "1569800")
    gateway.publish()
    done = node_cli(gateway.dsn, "a", roots["a"], "update", "virus_pattern")
    assert done.returncode == 0, done.stderr

    def shown(node: str) -> str | None:
        done = node_cli(gateway.dsn, node, roots[node], "status", "--json")
        assert done.returncode == 0, done.stderr
        return {item["id"]: item["current"] for item in json.loads(done.stdout)["components"]}[
            "virus_pattern"]

    assert (shown("a"), shown("b")) == ("15.698.00", "15.697.00")
    logged = {node: json.loads(node_cli(gateway.dsn, node, roots[node], "logs", "--json").stdout)["events"]
              for node in ("a", "b")}
    assert [event["version"] for event in logged["a"]] == ["15.698.00", "15.697.00"]
    assert [event["version"] for event in logged["b"]] == ["15.697.00"]
    assert {event["node"] for event in logged["a"]} == {"a"}
    with Database(gateway.dsn, node="a") as a, Database(gateway.dsn, node="b") as b:
        a.record_daemon(pid=1001, next_run=None, settings_problem=None)  # what a's daemon writes
        assert a.run_status().daemon_pid == 1001
        assert b.run_status().daemon_pid is None and b.run_status().daemon_heartbeat is None
        assert b.run_status().last_run_at < a.run_status().last_run_at  # type: ignore[operator]
        fleet = a.fleet()
    heartbeats = {node.node: node.heartbeat for node in fleet.nodes}
    assert heartbeats["a"] is not None and heartbeats["b"] is None
    assert fleet.installed["a"]["virus_pattern"] == "1569800"
    assert fleet.installed["b"]["virus_pattern"] == "1569700"
    assert (roots["a"] / "lib").exists() and (roots["b"] / "lib").exists()
