"""The fleet's leader with real daemon processes on one PostgreSQL and one counting origin.

Each node is an ``imss-updater run`` process with its own install root, state directory,
IMSS_NODE and IMSS_MIRROR; the origin is the gateway's HTTP server, which records every
request, so "downloaded from the origin once" is counted, not assumed.
"""

from __future__ import annotations

import datetime
import http.client
import signal
from pathlib import Path

import pytest

from imss_updater.catalog import DEFAULT_CATALOG
from imss_updater.database.db import Database
from imss_updater.fleet.mirror import release_id
from imss_updater.store.install import ComponentStore
from tests.support.daemon import DaemonFactory, RunningDaemon, wait_until
from tests.support.fleet import (
    Listener,
    announced_release,
    leader_row,
    lock_backend,
    roles,
    terminate,
)
from tests.support.gateway import Gateway
from tests.support.pg import free_port, own_cluster, stop_immediately

FAILOVER = 6


class FleetNode:
    def __init__(self, gateway: Gateway, tmp_path: Path, name: str) -> None:
        self.name = name
        root = tmp_path / f"root-{name}"
        root.mkdir()
        self.gateway = Gateway(gateway.dsn, root, gateway.tree, gateway.server, gateway.bin_dir)
        self.state = tmp_path / f"state-{name}"
        self.mirror = f"127.0.0.1:{free_port()}"
        self.daemon: RunningDaemon | None = None
        with Database(gateway.dsn, node=name) as database:  # its schedule just ran
            database.ensure_node()
            database.record_scheduled_run(datetime.datetime.now(datetime.UTC))

    def start(self, start_daemon: DaemonFactory) -> RunningDaemon:
        self.daemon = start_daemon(self.gateway, env={
            "IMSS_NODE": self.name, "IMSS_MIRROR": self.mirror, "IMSS_STATE": str(self.state)})
        return self.daemon

    def log(self) -> str:
        return self.daemon.log() if self.daemon is not None else ""

    def installed(self, component_id: str) -> str | None:
        component = next(c for c in DEFAULT_CATALOG if c.id == component_id)
        current = ComponentStore(self.gateway.root, component.id, component.live_path).state().current
        return current.version if current else None

    def get(self, path: str) -> tuple[int, bytes]:
        host, port = self.mirror.split(":")
        connection = http.client.HTTPConnection(host, int(port), timeout=5)
        try:
            connection.request("GET", path)
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()


def fleet(gateway: Gateway) -> None:
    """Fleet mode, quick failover, no random delay (each FleetNode's schedule just ran, so
    only the takeover and SIGUSR1 start runs)."""
    for section, name, value in (("Fleet", "Enabled", "yes"), ("Fleet", "FailoverSeconds", str(FAILOVER)),
                                 ("Update", "RandomDelaySeconds", "0")):
        gateway.set(section, name, value)


def origin_gets(gateway: Gateway, path: str) -> int:
    return sum(1 for request in gateway.server.requests_for(path) if request.method == "GET")


@pytest.fixture
def two_nodes(gateway: Gateway, tmp_path: Path, start_daemon: DaemonFactory) -> tuple[FleetNode, FleetNode]:
    fleet(gateway)
    entry = gateway.tree.add_pattern("P.4", "1569700", size_bytes=300_000)
    gateway.publish()
    first, second = FleetNode(gateway, tmp_path, "gw-a"), FleetNode(gateway, tmp_path, "gw-b")
    first.start(start_daemon)
    wait_until(lambda: leader_row(gateway.dsn) == ("gw-a", 1), 30, "gw-a to lead")
    second.start(start_daemon)
    wait_until(lambda: "stands for election" in second.log(), 30, "gw-b to stand")
    first.package = "/" + entry.path  # type: ignore[attr-defined]
    return first, second


def test_the_leader_downloads_once_installs_from_its_mirror_and_a_member_takes_it_from_there(
    gateway: Gateway, two_nodes: tuple[FleetNode, FleetNode]
) -> None:
    leader, member = two_nodes
    package: str = leader.package  # type: ignore[attr-defined]
    index = gateway.tree.ini_path().read_bytes()
    wait_until(lambda: announced_release(gateway.dsn) == ("gw-a", 1, release_id(index)), 60,
               "the release to be announced")
    assert leader.installed("virus_pattern") == "1569700"
    assert f"from http://{leader.mirror}/activeupdate/pattern" in leader.log()  # installed from the mirror
    assert leader.get("/activeupdate/server.ini") == (200, index)  # byte for byte
    assert member.daemon is not None
    member.daemon.signal(signal.SIGUSR1)
    wait_until(lambda: member.installed("virus_pattern") == "1569700", 60, "the member's update")
    assert f"from http://{leader.mirror}/activeupdate/pattern" in member.log()
    assert origin_gets(gateway, package) == 1
    assert not _listening(member)  # a member serves no mirror
    assert {name: role for name, role in roles(gateway.dsn).items() if name.startswith("gw-")} == {
        "gw-a": "leader", "gw-b": "member"}


def _listening(node: FleetNode) -> bool:
    try:
        node.get("/activeupdate/server.ini")
    except OSError:
        return False
    return True


def test_sigkill_of_the_leader_hands_the_lead_to_another_node_within_the_failover_time(
    gateway: Gateway, two_nodes: tuple[FleetNode, FleetNode]
) -> None:
    leader, member = two_nodes
    package: str = leader.package  # type: ignore[attr-defined]
    index = gateway.tree.ini_path().read_bytes()
    wait_until(lambda: announced_release(gateway.dsn) == ("gw-a", 1, release_id(index)), 60,
               "the first leader's announcement")
    assert leader.daemon is not None
    leader.daemon.signal(signal.SIGKILL)
    wait_until(lambda: leader_row(gateway.dsn) == ("gw-b", 2), FAILOVER,
                   "gw-b to lead within FailoverSeconds")
    wait_until(lambda: announced_release(gateway.dsn) == ("gw-b", 2, release_id(index)), 60,
               "the new leader's announcement")
    assert member.get("/activeupdate/server.ini") == (200, index)
    assert member.installed("virus_pattern") == "1569700"
    assert origin_gets(gateway, package) == 2  # the new leader's mirror needed it once more
    assert {name: role for name, role in roles(gateway.dsn).items() if name.startswith("gw-")} == {
        "gw-a": "member", "gw-b": "leader"}


def test_a_leader_whose_lock_backend_ends_mid_publish_neither_publishes_nor_announces(
    gateway: Gateway, tmp_path: Path, start_daemon: DaemonFactory
) -> None:
    fleet(gateway)
    entry = gateway.tree.add_pattern("P.4", "1569700", size_bytes=300_000)
    gateway.publish()
    index = gateway.tree.ini_path().read_bytes()
    # The first leader is mid-download for 20 s: long enough for gw-b to start on a loaded
    # machine, and within the read timeout (the gateway fixture's 2 s would cut it short).
    gateway.set("Update", "ReadTimeout", "60")
    gateway.server.set_delay(20.0, "/" + entry.path)
    listener = Listener(gateway.dsn)
    first, second = FleetNode(gateway, tmp_path, "gw-a"), FleetNode(gateway, tmp_path, "gw-b")
    try:
        first.start(start_daemon)
        wait_until(lambda: "mirror: downloading" in first.log(), 30, "gw-a to be downloading")
        second.start(start_daemon)
        wait_until(lambda: "stands for election" in second.log(), 30, "gw-b to stand")
        assert "mirrored release" not in first.log()  # still downloading
        terminate(gateway.dsn, lock_backend(gateway.dsn, "gw-a"))
        gateway.server.set_delay(0.0, "/" + entry.path)  # the new leader's download is quick
        wait_until(lambda: leader_row(gateway.dsn) == ("gw-b", 2), FAILOVER, "gw-b to lead")
        wait_until(lambda: announced_release(gateway.dsn) == ("gw-b", 2, release_id(index)), 60,
                   "the new leader's announcement")
        wait_until(lambda: "release not published" in first.log(), 60, "gw-a to give up publishing")
    finally:
        listener.close()
    assert [(p["leader"], p["term"]) for p in listener.payloads] == [("gw-b", 2)]
    assert not (first.state / "mirror" / "activeupdate").exists()
    assert "announced release" not in first.log()
    assert not _listening(first) or first.get("/activeupdate/server.ini")[0] == 503


def test_a_hung_leader_loses_the_lead_and_serves_nothing_when_it_wakes(
    gateway: Gateway, two_nodes: tuple[FleetNode, FleetNode]
) -> None:
    leader, member = two_nodes
    index = gateway.tree.ini_path().read_bytes()
    wait_until(lambda: announced_release(gateway.dsn) == ("gw-a", 1, release_id(index)), 60,
               "the first leader's announcement")
    assert leader.daemon is not None
    leader.daemon.signal(signal.SIGSTOP)  # hung: its sockets stay open
    try:
        wait_until(lambda: leader_row(gateway.dsn) == ("gw-b", 2), FAILOVER,
                   "gw-b to lead within FailoverSeconds")
    finally:
        leader.daemon.signal(signal.SIGCONT)
    wait_until(lambda: "is no longer the leader" in leader.log(), 30, "gw-a to notice")
    wait_until(lambda: not _listening(leader), 30, "gw-a's mirror to close")
    wait_until(lambda: announced_release(gateway.dsn) == ("gw-b", 2, release_id(index)), 60,
               "the new leader's announcement")
    assert member.get("/activeupdate/server.ini") == (200, index)


def test_the_next_release_downloads_only_the_changed_package_and_keeps_the_previous_one(
    gateway: Gateway, two_nodes: tuple[FleetNode, FleetNode]
) -> None:
    leader, _member = two_nodes
    package: str = leader.package  # type: ignore[attr-defined]
    first_index = gateway.tree.ini_path().read_bytes()
    wait_until(lambda: announced_release(gateway.dsn) == ("gw-a", 1, release_id(first_index)), 60,
               "the first release")
    engine = gateway.tree.add_engine("VSAPI_LINUX_X86_64", "21.0.1008")
    gateway.publish()
    second_index = gateway.tree.ini_path().read_bytes()
    assert leader.daemon is not None
    leader.daemon.signal(signal.SIGUSR1)
    wait_until(lambda: announced_release(gateway.dsn) == ("gw-a", 1, release_id(second_index)), 60,
               "the second release")
    assert (origin_gets(gateway, package), origin_gets(gateway, "/" + engine.path)) == (1, 1)
    assert "1 downloaded from the source, 1 carried over" in leader.log()
    assert leader.get("/activeupdate/server.ini") == (200, second_index)
    kept = sorted(entry.name for entry in (leader.state / "mirror" / "releases").iterdir())
    assert kept == sorted([release_id(first_index), release_id(second_index)])


def test_a_package_whose_signature_fails_at_the_leader_publishes_nothing_and_is_its_failure_event(
    gateway: Gateway, tmp_path: Path, start_daemon: DaemonFactory
) -> None:
    fleet(gateway)
    entry = gateway.tree.add_pattern("P.4", "1569700")
    gateway.publish()
    gateway.tree.corrupt_payload("P.4")
    leader = FleetNode(gateway, tmp_path, "gw-a")
    leader.start(start_daemon)

    def failures() -> list[str]:
        with Database(gateway.dsn, node="gw-a") as database:
            return [event.message for event in database.events(outcome="failure", component="virus_pattern")]

    wait_until(failures, 60, "gw-a's failure event")
    wait_until(lambda: "scheduled update:" in leader.log(), 30, "the run to end")
    assert len(failures()) == 1  # one cause, one failure: not a 404 of its own empty mirror too
    failure = failures()[0]
    assert "not mirrored for the fleet" in failure and gateway.server.url("/" + entry.path) in failure
    assert "mirror: virus_pattern 15.697.00 not mirrored" in leader.log()
    assert not (leader.state / "mirror" / "activeupdate").exists()  # a release is published whole or not
    assert leader.get("/activeupdate/server.ini")[0] == 404
    assert announced_release(gateway.dsn) in (None, ("gw-a", 1, None))  # nothing announced
    assert leader.installed("virus_pattern") is None


def test_a_leader_that_loses_the_database_stops_serving_and_leads_again_when_it_is_back(
    gateway: Gateway, tmp_path: Path, start_daemon: DaemonFactory
) -> None:
    with own_cluster(gateway, "imss-pg-fleet-") as cluster:  # stopped below: no other test's
        dsn = gateway.dsn
        fleet(gateway)
        gateway.tree.add_pattern("P.4", "1569700")
        gateway.publish()
        index = gateway.tree.ini_path().read_bytes()
        leader = FleetNode(gateway, tmp_path, "gw-a")
        leader.start(start_daemon)
        wait_until(lambda: announced_release(dsn) == ("gw-a", 1, release_id(index)), 60, "the announcement")
        assert leader.get("/activeupdate/server.ini") == (200, index)
        stop_immediately(cluster)
        wait_until(lambda: not _listening(leader), FAILOVER, "the mirror to stop within FailoverSeconds")
        assert "is no longer the leader" in leader.log()
        cluster.start()
        wait_until(lambda: leader_row(dsn) == ("gw-a", 2), 60, "gw-a to lead again")
        wait_until(lambda: _listening(leader) and leader.get("/activeupdate/server.ini") == (200, index), 30,
                   "the mirror to serve again")
        assert origin_gets(gateway, "/" + gateway.tree.entries["P.4"].path) == 1  # kept, not fetched again
