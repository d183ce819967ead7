"""The whole fleet end to end (SPEC 7): three real daemon nodes, one PostgreSQL, one origin.

Each node (gw-a, gw-b, gw-c) is an ``imss-updater run`` process with its own install root,
state directory, IMSS_NODE and IMSS_MIRROR on a free 127.0.0.1 port (test_fleet_leader's
``FleetNode``); the origin is the gateway's HTTP server, which records every request, so
"downloaded from the origin once" is counted. gw-a starts first and leads; every node
begins on the old release (1569700) and the test publishes a new one (1569800).
"""

from __future__ import annotations

import datetime
import hashlib
import json
import random
import re
import signal
from pathlib import Path

import pytest

from imss_updater.catalog import DEFAULT_CATALOG
from imss_updater.database.db import Database
from imss_updater.fleet.mirror import release_id
from tests.support.daemon import DaemonFactory, wait_until
from tests.support.fleet import announced_release, leader_row, roles
from tests.support.gateway import Gateway
from tests.support.nodes import node_cli
from tests.support.pg import own_cluster, stop_immediately
from tests.test_fleet_leader import FAILOVER, FleetNode, fleet, origin_gets

STAGGER = 3
OLD, NEW = "1569700", "1569800"
NAMES = ("gw-a", "gw-b", "gw-c")
PATTERN = next(c for c in DEFAULT_CATALOG if c.id == "virus_pattern")


SIZES = {OLD: 200_000, NEW: 200_000}  # bytes of each version's one file (a test may change NEW's)


def pattern_files(version: str) -> dict[str, bytes]:
    """Bytes that do not compress: half the package is on the wire when the origin holds it."""
    return {"vsapi.bin": random.Random(version).randbytes(SIZES[version])}


def digests(files: dict[str, bytes]) -> dict[str, str]:
    return {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}


def publish(gateway: Gateway, version: str) -> str:
    """Publish pattern ``version``; return its package's path on the origin."""
    files = pattern_files(version)
    EXPECTED[version] = digests(files)
    entry = gateway.tree.add_pattern("P.4", version, files)
    gateway.publish()
    return "/" + entry.path


EXPECTED: dict[str, dict[str, str]] = {}  # version -> its live files' digests
_seen: dict[tuple[str, int, int, int], str] = {}  # (path, inode, size, mtime) -> digest


def _digest(path: Path) -> str:
    status = path.stat()
    key = (str(path), status.st_ino, status.st_size, status.st_mtime_ns)
    if key not in _seen:
        _seen[key] = hashlib.sha256(path.read_bytes()).hexdigest()
    return _seen[key]


def live_version(node: FleetNode) -> str | None:
    """The version the scanner's directory shows on ``node``: None (nothing there yet), OLD
    or NEW; anything else (a mix, a partial file) fails the test."""
    live = node.gateway.root / PATTERN.live_path
    if not live.exists():
        return None
    files = {path.name: _digest(path) for path in live.iterdir() if path.is_file()}
    for version, expected in EXPECTED.items():
        if files == expected:
            return version
    raise AssertionError(f"{node.name}'s live pattern is none of {sorted(EXPECTED)}: {sorted(files)}")


def listeners(dsn: str) -> int:
    """How many sessions LISTEN for the leader's announcements."""
    with Database(dsn) as database, database.transaction() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE query = 'LISTEN imss_fleet'")
        row = cursor.fetchone()
        return int(row[0]) if row else 0


def leaders(dsn: str) -> list[str]:
    return sorted(name for name, role in roles(dsn).items() if name in NAMES and role == "leader")


def fleet_versions(gateway: Gateway, node: FleetNode) -> dict[str, str | None]:
    """Each node's installed virus pattern, as ``fleet status --json`` run on ``node`` shows."""
    result = node_cli(gateway.dsn, node.name, node.gateway.root, "fleet", "status", "--json")
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    return {row["node"]: next(c["version"] for c in row["components"] if c["id"] == PATTERN.id)
            for row in shown["nodes"] if row["node"] in NAMES}


def start_fleet(gateway: Gateway, tmp_path: Path, start_daemon: DaemonFactory) -> list[FleetNode]:
    """gw-a leads and mirrors OLD; gw-b and gw-c join, take OLD from its mirror and listen."""
    fleet(gateway)
    gateway.set("Fleet", "StaggerSeconds", str(STAGGER))
    publish(gateway, OLD)
    nodes = [FleetNode(gateway, tmp_path, name) for name in NAMES]
    leader, members = nodes[0], nodes[1:]
    leader.start(start_daemon)
    index = gateway.tree.ini_path().read_bytes()
    wait_until(lambda: announced_release(gateway.dsn) == ("gw-a", 1, release_id(index)), 60,
               "gw-a to lead and announce the old release")
    for member in members:
        member.start(start_daemon)
    wait_until(lambda: listeners(gateway.dsn) == 3, 30, "every node to listen")
    for member in members:
        wait_until(lambda m=member: "stands for election" in m.log(), 30, f"{member.name} to stand")  # type: ignore[misc]
        assert member.daemon is not None
        member.daemon.signal(signal.SIGUSR1)
    on(nodes, OLD)
    return nodes


def on(nodes: list[FleetNode], version: str) -> None:
    """Wait until every node in ``nodes`` shows ``version`` live (each look checks that no node
    is half-updated)."""
    wait_until(lambda: [live_version(node) for node in nodes] == [version] * len(nodes), 60,
               f"{', '.join(node.name for node in nodes)} on {version}")


@pytest.fixture
def three_nodes(gateway: Gateway, tmp_path: Path, start_daemon: DaemonFactory) -> list[FleetNode]:
    return start_fleet(gateway, tmp_path, start_daemon)


def stagger_delay(member: FleetNode, release: str) -> float:
    """The delay ``member`` logged for ``release`` (exactly one)."""
    found = re.findall(rf"release {release} announced by the leader \S+ \(term \d+\): "
                       r"updating in ([0-9.]+) s", member.log())
    assert len(found) == 1, member.log()
    return float(found[0])


def installed_at(dsn: str, node: str, version: str) -> list[datetime.datetime]:
    with Database(dsn, node=node) as database:
        return [event.time for event in database.events(limit=200, component=PATTERN.id, outcome="success")
                if event.version == version]


def announced_at(dsn: str) -> datetime.datetime:
    with Database(dsn) as database, database.transaction() as cursor:
        cursor.execute("SELECT announced FROM tb_fleet_leader")
        row = cursor.fetchone()
        assert row is not None and row[0] is not None
        return row[0]  # type: ignore[no-any-return]


def test_a_new_release_is_downloaded_from_the_origin_once_and_reaches_every_node_after_its_stagger(
    gateway: Gateway, three_nodes: list[FleetNode]
) -> None:
    leader, *members = three_nodes
    package = publish(gateway, NEW)
    engine = gateway.tree.add_engine("VSAPI_LINUX_X86_64", "21.0.1008")
    gateway.publish()
    index = gateway.tree.ini_path().read_bytes()
    assert leader.daemon is not None
    leader.daemon.signal(signal.SIGUSR1)
    wait_until(lambda: announced_release(gateway.dsn) == ("gw-a", 1, release_id(index)), 60,
               "the new release's announcement")
    announced = announced_at(gateway.dsn)
    on(three_nodes, NEW)

    assert (origin_gets(gateway, package), origin_gets(gateway, "/" + engine.path)) == (1, 1)
    assert fleet_versions(gateway, members[0]) == dict.fromkeys(NAMES, "15.698.00")
    for member in members:
        delay = stagger_delay(member, release_id(index))
        assert 0.0 <= delay <= STAGGER
        times = installed_at(gateway.dsn, member.name, "15.698.00")
        assert len(times) == 1  # one staggered update, not one per announcement
        assert times[0] >= announced + datetime.timedelta(seconds=delay)
        assert f"from http://{leader.mirror}/activeupdate/pattern" in member.log()
    assert leaders(gateway.dsn) == ["gw-a"]


def mid_download(node: FleetNode, package: str) -> bool:
    """Part of ``package`` is in the release ``node`` is writing into its mirror."""
    name = package.rsplit("/", 1)[-1]
    return any(path.stat().st_size > 0 for path in (node.state / "mirror").rglob(name))


def test_sigkill_of_the_leader_mid_download_hands_the_release_to_a_new_leader_and_no_node_is_half_updated(
    gateway: Gateway, three_nodes: list[FleetNode]
) -> None:
    leader, *members = three_nodes
    gateway.set("Update", "ReadTimeout", "30")  # the held download waits; it does not time out
    package = publish(gateway, NEW)
    index = gateway.tree.ini_path().read_bytes()
    gateway.server.hold(package)
    assert leader.daemon is not None
    leader.daemon.signal(signal.SIGUSR1)
    wait_until(lambda: mid_download(leader, package), 30, "gw-a to be mid-download")
    assert [live_version(node) for node in three_nodes] == [OLD] * 3

    leader.daemon.signal(signal.SIGKILL)
    gateway.server.release(package)
    wait_until(lambda: (leader_row(gateway.dsn) or ("gw-a", 1))[0] != "gw-a", FAILOVER,
               "another node to lead within FailoverSeconds")
    found = leader_row(gateway.dsn)
    assert found is not None and found[0] in ("gw-b", "gw-c") and found[1] == 2
    wait_until(lambda: announced_release(gateway.dsn) == (found[0], 2, release_id(index)), 60,
               "the new leader's announcement")
    on(members, NEW)

    assert live_version(leader) == OLD  # killed before anything of the new release was installed
    assert origin_gets(gateway, package) == 2  # the killed leader's held GET and one more
    assert leaders(gateway.dsn) == [found[0]]
    new_leader = next(node for node in members if node.name == found[0])
    for member in members:
        assert f"from http://{new_leader.mirror}/activeupdate/pattern" in member.log()


def test_sigkill_of_the_leader_while_its_mirror_serves_the_release_leaves_no_member_half_updated(
    gateway: Gateway, three_nodes: list[FleetNode], monkeypatch: pytest.MonkeyPatch
) -> None:
    leader, *members = three_nodes
    monkeypatch.setitem(SIZES, NEW, 24 << 20)  # a member's transfer from the mirror takes a moment
    package = publish(gateway, NEW)
    index = gateway.tree.ini_path().read_bytes()
    assert leader.daemon is not None
    leader.daemon.signal(signal.SIGUSR1)
    wait_until(lambda: announced_release(gateway.dsn) == ("gw-a", 1, release_id(index)), 60,
               "the new release's announcement")
    fetching = f"downloading {PATTERN.id} 15.698.00 from http://{leader.mirror}/"
    wait_until(lambda: any(fetching in member.log() for member in members), 30,
               "a member to fetch the package from gw-a's mirror")

    # While it serves the release: 24 MiB take a member long enough on loopback that the kill
    # usually cuts its transfer ("connection closed ... more were announced" in its log).
    leader.daemon.signal(signal.SIGKILL)
    wait_until(lambda: (leader_row(gateway.dsn) or ("gw-a", 1))[0] != "gw-a", FAILOVER,
               "another node to lead within FailoverSeconds")
    on(members, NEW)

    assert live_version(leader) == NEW  # it installed before it announced
    assert origin_gets(gateway, package) == 2  # gw-a's and the new leader's (its mirror was empty)
    found = leader_row(gateway.dsn)
    assert found is not None and leaders(gateway.dsn) == [found[0]]


def pattern_outcomes(dsn: str, node: str, version: str) -> list[str]:
    with Database(dsn, node=node) as database:
        return [event.outcome for event in database.events(limit=200, component=PATTERN.id)
                if event.version == version]


def test_members_refuse_a_package_the_leaders_mirror_serves_tampered_and_keep_the_old_release(
    gateway: Gateway, three_nodes: list[FleetNode]
) -> None:
    leader, *members = three_nodes
    package = publish(gateway, NEW)
    index = gateway.tree.ini_path().read_bytes()
    for member in members:  # they hear the announcement once the mirror's copy is tampered with
        assert member.daemon is not None
        member.daemon.signal(signal.SIGSTOP)
    try:
        assert leader.daemon is not None
        leader.daemon.signal(signal.SIGUSR1)
        wait_until(lambda: announced_release(gateway.dsn) == ("gw-a", 1, release_id(index)), 60,
                   "the new release's announcement")
        served = leader.state / "mirror" / "activeupdate" / package.lstrip("/")
        data = bytearray(served.read_bytes())
        data[len(data) // 2] ^= 0xFF  # a compromised leader (or its disk) changes one byte
        served.write_bytes(bytes(data))
    finally:
        for member in members:
            assert member.daemon is not None
            member.daemon.signal(signal.SIGCONT)
    for member in members:
        wait_until(lambda m=member: "failure" in pattern_outcomes(gateway.dsn, m.name, "15.698.00"), 60,  # type: ignore[misc]
                   f"{member.name} to refuse the tampered package")

    assert [live_version(node) for node in three_nodes] == [NEW, OLD, OLD]
    for member in members:
        assert pattern_outcomes(gateway.dsn, member.name, "15.698.00") == ["failure"]
        refused = [line for line in member.log().splitlines() if "15.698.00 could not be updated" in line]
        assert refused and "signature" in refused[-1].lower(), member.log()


def serving(node: FleetNode) -> bool:
    try:
        return node.get("/activeupdate/server.ini")[0] == 200
    except OSError:
        return False


def test_after_the_database_stops_and_restarts_under_the_fleet_one_node_leads_and_a_new_release_reaches_all(
    gateway: Gateway, tmp_path: Path, start_daemon: DaemonFactory
) -> None:
    with own_cluster(gateway, "imss-pg-fleet-e2e-") as cluster:  # stopped below: no other test's
        dsn = gateway.dsn
        nodes = start_fleet(gateway, tmp_path, start_daemon)
        old_index = gateway.tree.ini_path().read_bytes()
        stop_immediately(cluster)
        wait_until(lambda: not serving(nodes[0]), FAILOVER, "gw-a to stop serving its mirror")
        cluster.start()
        wait_until(lambda: leader_row(dsn) is not None and leader_row(dsn)[1] >= 2, 60,  # type: ignore[index]
                   "a node to lead again")
        found = leader_row(dsn)
        assert found is not None
        wait_until(lambda: announced_release(dsn) == (found[0], found[1], release_id(old_index)), 60,
                   "the leader's takeover run")
        wait_until(lambda: listeners(dsn) == 3, 60, "every node to listen again")

        assert leaders(dsn) == [found[0]]
        assert [node.name for node in nodes if serving(node)] == [found[0]]
        leader = next(node for node in nodes if node.name == found[0])
        package = publish(gateway, NEW)
        assert leader.daemon is not None
        leader.daemon.signal(signal.SIGUSR1)
        on(nodes, NEW)
        assert origin_gets(gateway, package) == 1
        assert fleet_versions(gateway, nodes[1]) == dict.fromkeys(NAMES, "15.698.00")
