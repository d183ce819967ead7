"""Seeing the fleet (SPEC 7): `fleet status`, the console's Fleet page, the logs page's node
filter, and notifications naming the node. Real PostgreSQL, real CLI and daemon processes,
the console through the Flask test client."""

from __future__ import annotations

import datetime
import json
import re
import time
from pathlib import Path

import psycopg2
from flask import Flask
from flask.testing import FlaskClient

from imss_updater.database.db import Database
from tests.support.browser import log_on
from tests.support.daemon import DaemonFactory
from tests.support.gateway import Gateway
from tests.support.nodes import node_cli
from tests.support.smtp import ServerFactory

MIRROR = "127.0.0.1:8081"  # only recorded here: nothing serves it


def _run(gateway: Gateway, node: str, root: Path, *args: str) -> str:
    done = node_cli(gateway.dsn, node, root, *args)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _make_leader(dsn: str, node: str) -> None:
    # The election (another part of the fleet) records the leader's role; here it is written
    # directly, the one seam: which node leads is not what these tests are about.
    connection = psycopg2.connect(dsn)
    with connection, connection.cursor() as cursor:
        cursor.execute("UPDATE tb_fleet_node SET role = 'leader' WHERE node = %s", (node,))
    connection.close()


def two_nodes(gateway: Gateway, tmp_path: Path) -> dict[str, Path]:
    """Nodes a (the leader, with a mirror address) and b on the gateway's database: both
    installed virus pattern 15.697.00, then a installed 15.698.00 and b did not."""
    roots = {node: tmp_path / f"root-{node}" for node in ("a", "b")}
    for root in roots.values():
        root.mkdir()
    _run(gateway, "a", roots["a"], "db", "init", "--mirror", MIRROR)
    _run(gateway, "b", roots["b"], "db", "init")
    gateway.tree.add_pattern("P.4", "1569700")
    gateway.publish()
    for node in ("a", "b"):
        _run(gateway, node, roots[node], "update", "virus_pattern")
    gateway.tree.add_pattern("P.4", "1569800")
    gateway.publish()
    _run(gateway, "a", roots["a"], "update", "virus_pattern")
    _make_leader(gateway.dsn, "a")
    return roots


def log_on_again(app: Flask) -> str:
    """Log on in a new browser; return the status page it then sees."""
    client = app.test_client()
    assert log_on(client).status_code == 302
    return client.get("/").get_data(as_text=True)


def _age_heartbeat(dsn: str, node: str, seconds: int) -> None:
    connection = psycopg2.connect(dsn)
    with connection, connection.cursor() as cursor:
        cursor.execute("UPDATE tb_fleet_node SET heartbeat = now() - %s * interval '1 second'"
                       " WHERE node = %s", (seconds, node))
    connection.close()


def test_fleet_status_lists_every_node_with_its_role_mirror_and_versions_behind_the_leader(
    gateway: Gateway, tmp_path: Path
) -> None:
    roots = two_nodes(gateway, tmp_path)
    shown = json.loads(_run(gateway, "b", roots["b"], "fleet", "status", "--json"))
    assert shown["leader"] == "a"
    nodes = {item["node"]: item for item in shown["nodes"]}
    assert {"a", "b"} <= set(nodes)
    a, b = nodes["a"], nodes["b"]
    assert (a["role"], a["leader"], a["mirror_url"]) == ("leader", True, f"http://{MIRROR}/activeupdate/")
    assert (b["role"], b["leader"], b["mirror_url"]) == ("member", False, None)
    assert a["last_check"] is not None and b["last_check"] is not None
    pattern = {node: {c["id"]: c for c in nodes[node]["components"]}["virus_pattern"] for node in ("a", "b")}
    assert pattern["a"] == {"id": "virus_pattern", "version": "15.698.00", "behind_leader": False,
                            "leader_version": None}
    assert pattern["b"] == {"id": "virus_pattern", "version": "15.697.00", "behind_leader": True,
                            "leader_version": "15.698.00"}
    assert (a["behind_leader"], b["behind_leader"]) == (False, True)
    blocks = _blocks(_run(gateway, "a", roots["a"], "fleet", "status"))
    assert blocks["a"][0].startswith("a  leader  DOWN (heartbeat never)")  # no daemon ran on a
    behind = r"virus_pattern\s+15\.697\.00  BEHIND the leader \(15\.698\.00\)"
    assert re.search(behind, "\n".join(blocks["b"]))
    assert "BEHIND" not in "\n".join(blocks["a"])


def _blocks(text: str) -> dict[str, list[str]]:
    """The text of `fleet status` by node: its state line, then its component lines."""
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        if not line.startswith(" "):
            current = found.setdefault(line.split("  ", 1)[0], [])
        current.append(line)
    return found


def test_fleet_status_shows_a_node_up_while_its_daemon_beats_and_down_after_three_missed_beats(
    gateway: Gateway, tmp_path: Path, start_daemon: DaemonFactory
) -> None:
    roots = two_nodes(gateway, tmp_path)
    daemon = start_daemon(env={"IMSS_NODE": "a"}, args=("--dsn", gateway.dsn, "--root", str(roots["a"])))
    deadline = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=60)
    with Database(gateway.dsn, node="a") as database:
        while not {node.node: node.heartbeat for node in database.fleet().nodes}["a"]:
            assert datetime.datetime.now(datetime.UTC) < deadline, daemon.log()
            assert daemon.process.poll() is None, daemon.log()
            time.sleep(0.2)
    nodes = {item["node"]: item for item in
             json.loads(_run(gateway, "b", roots["b"], "fleet", "status", "--json"))["nodes"]}
    assert nodes["a"]["down"] is False and nodes["a"]["heartbeat_age_seconds"] is not None
    assert nodes["b"]["down"] is True and nodes["b"]["heartbeat"] is None  # no daemon ever ran on b
    daemon.stop()
    _age_heartbeat(gateway.dsn, "a", 91)  # three 30-second heartbeats missed
    nodes = {item["node"]: item for item in
             json.loads(_run(gateway, "b", roots["b"], "fleet", "status", "--json"))["nodes"]}
    assert nodes["a"]["down"] is True and nodes["a"]["heartbeat_age_seconds"] >= 91
    assert "DOWN (heartbeat" in _run(gateway, "b", roots["b"], "fleet", "status")


def test_the_fleet_page_marks_versions_behind_the_leader_in_red_and_in_words(
    logged_in: FlaskClient, gateway: Gateway, tmp_path: Path
) -> None:
    two_nodes(gateway, tmp_path)
    page = logged_in.get("/fleet").get_data(as_text=True)
    assert "The leader is a." in page
    rows = dict(re.findall(r'<tr id="node-\d+" data-node="([^"]+)"[^>]*>(.*?)</tr>', page, re.S))
    assert {"a", "b"} <= set(rows)
    behind = re.search(r'<td class="version behind" data-component="virus_pattern">(.*?)</td>', rows["b"],
                       re.S)
    assert behind and "15.697.00" in behind.group(1)
    assert "(behind the leader: 15.698.00)" in behind.group(1)  # words, not colour alone
    assert 'class="version behind"' not in rows["a"]
    assert f"http://{MIRROR}/activeupdate/" in rows["a"]
    assert "Leader" in rows["a"] and "Member" in rows["b"]
    assert 'href="/logs?node=b"' in rows["b"]
    japanese = logged_in.get("/fleet", headers={"Accept-Language": "ja"}).get_data(as_text=True)
    assert "リーダーより古い: 15.698.00" in japanese


def test_the_navigation_links_the_fleet_page_only_in_a_fleet(
    logged_in: FlaskClient, console_app: Flask, gateway: Gateway, tmp_path: Path
) -> None:
    # The console reads the flag at log-on and then once a minute: forget() stands for the minute.
    nav = console_app.extensions["imss_console"].fleet_nav
    assert 'id="nav-fleet"' not in logged_in.get("/").get_data(as_text=True)  # a single gateway
    gateway.set("Fleet", "Enabled", "yes")
    nav.forget()
    assert 'id="nav-fleet"' in logged_in.get("/").get_data(as_text=True)
    gateway.set("Fleet", "Enabled", "no")
    nav.forget()
    assert 'id="nav-fleet"' not in logged_in.get("/logs").get_data(as_text=True)
    _run(gateway, "b", tmp_path, "db", "init")  # a second node joins the database
    nav.forget()
    assert 'id="nav-fleet"' in logged_in.get("/logs").get_data(as_text=True)
    assert 'id="nav-fleet"' in log_on_again(console_app)


def test_the_logs_page_shows_every_nodes_events_with_a_node_column_and_filters_by_node(
    logged_in: FlaskClient, console_app: Flask, gateway: Gateway, tmp_path: Path
) -> None:
    two_nodes(gateway, tmp_path)
    console_app.extensions["imss_console"].fleet_nav.forget()  # read at log-on, before b joined
    page = logged_in.get("/logs").get_data(as_text=True)
    assert 'id="log-node"' in page
    nodes = re.findall(r'<td class="node">([^<]*)</td>', page)
    assert nodes.count("a") == 2 and nodes.count("b") == 1
    only_b = logged_in.get("/logs?node=b").get_data(as_text=True)
    assert re.findall(r'<td class="node">([^<]*)</td>', only_b) == ["b"]
    assert '<option value="b" selected' in only_b
    assert logged_in.get("/logs?node=nobody").status_code == 400


def test_notifications_name_the_node_as_host_in_a_fleet_whatever_the_shared_host_name_row(
    gateway: Gateway, tmp_path: Path, smtp_server: ServerFactory
) -> None:
    relay = smtp_server("plain")
    for name, value in {"SMTPServer": relay.host, "SMTPPort": str(relay.port), "MailFrom": "imss@gw.example",
                        "MailTo": "ops@example.com", "HostName": "shared.example"}.items():
        gateway.set("Notification", name, value)
    gateway.set("Fleet", "Enabled", "yes")
    gateway.set("Update", "RandomDelaySeconds", "0")
    gateway.tree.add_pattern("P.4", "1569700")
    gateway.tree.corrupt_payload("P.4")
    gateway.publish()
    root = tmp_path / "root-gw-east"
    root.mkdir()
    done = node_cli(gateway.dsn, "gw-east", root, "run", "--once")
    assert done.returncode == 1, done.stderr  # the pattern failed
    subjects = [received.message["Subject"] for received in relay.received]
    assert "[gw-east] Pattern file update FAILED" in subjects
    body = next(r.message.get_content() for r in relay.received if "Pattern" in r.message["Subject"])
    assert "on gw-east at" in body and "shared.example" not in body


def test_the_fleet_page_redirects_to_log_on_without_a_session(client: FlaskClient) -> None:
    response = client.get("/fleet")
    assert response.status_code == 302
    assert "/login" in response.headers["Location"]
