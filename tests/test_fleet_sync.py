"""A leader whose sync cannot mirror the origin's release (SPEC 7; fleet/sync.py, behind.py).

The leader is the real ``Fleet`` of fleet/leader.py in this process: it stands for election
on the test's PostgreSQL (a real advisory lock), serves its mirror with the real mirror
server on 127.0.0.1, and each ``run()`` is its scheduled run (sync, its own update from its
mirror, the run's notifications queued as the daemon queues them). The origin is the
gateway's counting HTTP server, made to fail one path (500, a stalled answer, a package
whose signature does not verify). The member gw-b is ``imss-updater run --once`` as its own
process; mail goes to a real SMTP relay (aiosmtpd). The crash test uses daemon processes.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from imss_updater import config, notify
from imss_updater.catalog import DEFAULT_CATALOG
from imss_updater.daemon import runs
from imss_updater.database.db import Database
from imss_updater.fleet.leader import Fleet
from imss_updater.fleet.mirror import Mirror, release_id
from imss_updater.run.report import RunReport
from imss_updater.store.install import ComponentStore
from tests.support.autree import AUTree
from tests.support.daemon import DaemonFactory, wait_until
from tests.support.gateway import Gateway
from tests.support.local import tiny_tmpfs
from tests.support.nodes import node_cli
from tests.support.pg import free_port
from tests.support.servers import ServerFactory as HttpServers
from tests.support.smtp import ServerFactory, SmtpServer
from tests.test_fleet_leader import FleetNode, fleet, origin_gets

OLD, NEW = "1569700", "1569800"
ENGINE = "VSAPI_LINUX_X86_64"


class Leader:
    """The fleet leader gw-a, in this process (see the module text)."""

    def __init__(self, gateway: Gateway, tmp_path: Path, state: Path | None = None) -> None:
        self.dsn = gateway.dsn
        self.root = tmp_path / "root-gw-a"
        self.root.mkdir()
        state = state or tmp_path / "state-gw-a"
        self.bootstrap = config.Bootstrap(dsn=gateway.dsn, root=self.root, state=state,
                                          web_host="127.0.0.1", web_port=0, db_port=0, node="gw-a",
                                          mirror=f"127.0.0.1:{free_port()}")
        with Database(gateway.dsn, node="gw-a") as database:  # what `db init --mirror` does
            database.ensure_node()
            database.record_mirror_address(self.bootstrap.mirror)
        self.fleet = Fleet(self.bootstrap, lambda: gateway.dsn, 6.0, run_now=lambda: None)
        self.mirror = Mirror(self.bootstrap.state)

    def start(self) -> None:
        self.fleet.start()
        wait_until(self.fleet.leading, 30, "gw-a to lead")

    def run(self) -> RunReport:
        report = self.fleet.scheduled_update(self.bootstrap, self.dsn, after_run=runs.queue_notifications)
        assert report is not None
        return report

    def installed(self, component_id: str) -> str | None:
        return installed(self.root, component_id)

    def events(self, outcome: str) -> list[tuple[str, str | None, str]]:
        with Database(self.dsn, node="gw-a") as database:
            return [(event.component, event.version, event.message)
                    for event in database.events(outcome=outcome, limit=50)]

    def behind(self) -> tuple[object, str | None]:
        with Database(self.dsn) as database, database.transaction() as cursor:
            cursor.execute("SELECT mirror_behind_since, mirror_behind_reason FROM tb_fleet_node"
                           " WHERE node = 'gw-a'")
            row = cursor.fetchone()
            assert row is not None
            return row[0], row[1]


def installed(root: Path, component_id: str) -> str | None:
    component = next(c for c in DEFAULT_CATALOG if c.id == component_id)
    current = ComponentStore(root, component.id, component.live_path).state().current
    return current.version if current else None


class Member:
    """gw-b: each ``run()`` is ``imss-updater run --once`` in a process of its own."""

    def __init__(self, gateway: Gateway, tmp_path: Path) -> None:
        self.dsn = gateway.dsn
        self.root = tmp_path / "root-gw-b"
        self.root.mkdir()

    def cli(self, *args: str) -> str:
        done = node_cli(self.dsn, "gw-b", self.root, *args)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    def run(self) -> None:
        self.cli("run", "--once")

    def failures(self) -> list[tuple[str, str]]:
        with Database(self.dsn, node="gw-b") as database:
            return [(event.component, event.message) for event in database.events(outcome="failure")]


@pytest.fixture
def relay(gateway: Gateway, smtp_server: ServerFactory) -> SmtpServer:
    server = smtp_server()
    for name, value in {"SMTPServer": server.host, "SMTPPort": str(server.port), "SMTPSecurity": "none",
                        "MailFrom": "imss@example.com", "MailTo": "ops@example.com",
                        "SMTPTimeout": "5"}.items():
        gateway.set("Notification", name, value)
    return server


@pytest.fixture
def nodes(gateway: Gateway, tmp_path: Path, relay: SmtpServer) -> Iterator[tuple[Leader, Member]]:
    """gw-a leads and has mirrored, installed and announced the old pattern; gw-b took it."""
    fleet(gateway)
    gateway.tree.add_pattern("P.4", OLD)
    gateway.publish()
    leader, member = Leader(gateway, tmp_path), Member(gateway, tmp_path)
    leader.start()
    try:
        assert leader.run().ok
        member.run()
        assert (leader.installed("virus_pattern"), installed(member.root, "virus_pattern")) == (OLD, OLD)
        yield leader, member
    finally:
        leader.fleet.stop()


def new_release(gateway: Gateway) -> tuple[str, str, bytes]:
    """The origin publishes the new pattern and an engine; return their paths and the old index."""
    old_index = gateway.tree.ini_path().read_bytes()
    pattern = gateway.tree.add_pattern("P.4", NEW)
    engine = gateway.tree.add_engine(ENGINE, "21.0.1008")
    gateway.publish()
    return "/" + pattern.path, "/" + engine.path, old_index


def mails(relay: SmtpServer, dsn: str) -> list[tuple[str, str]]:
    with Database(dsn) as database:
        notify.deliver_pending(database)
    return [(str(received.message["Subject"]), received.message.get_content()) for received in relay.received]


def assert_the_old_release_stays(leader: Leader, member: Member, old_index: bytes) -> None:
    """The mirror serves the old release whole; the member installs nothing and fails nothing."""
    assert leader.mirror.current() == release_id(old_index)
    current = leader.mirror.release_directory("activeupdate")
    assert current is not None and (current / "server.ini").read_bytes() == old_index
    member.run()
    assert installed(member.root, "virus_pattern") == OLD
    assert installed(member.root, "virus_engine") is None
    assert member.failures() == []  # no 404, no half release: it is up to date with the mirror


def test_a_package_answering_500_keeps_the_current_release_and_fails_the_leaders_run_once_notified(
    gateway: Gateway, nodes: tuple[Leader, Member], relay: SmtpServer
) -> None:
    leader, member = nodes
    pattern, engine, old_index = new_release(gateway)
    gateway.server.set_status(pattern, 500)
    report = leader.run()
    assert not report.ok
    url = gateway.server.url(pattern)
    failed = [(outcome.component, str(outcome.reason)) for outcome in report.outcomes if not outcome.ok]
    assert failed == [("virus_pattern", "not mirrored for the fleet: HTTP 500 Internal Server Error for"
                                        f" {url} (the mirror keeps its current release)")]
    assert_the_old_release_stays(leader, member, old_index)
    assert [(c, v) for c, v, _text in leader.events("failure")] == [("virus_pattern", "15.698.00")]
    assert url in leader.events("failure")[0][2]
    since, reason = leader.behind()
    assert since is not None and reason is not None and url in reason
    sent = mails(relay, gateway.dsn)
    assert len(sent) == 1
    subject, body = sent[0]
    assert "gw-a" in subject and "HTTP 500" in body and url in body

    leader.run()  # the same failure again: recorded, not mailed again (RepeatFailureHours)
    assert len(leader.events("failure")) == 2
    assert len(mails(relay, gateway.dsn)) == 1
    assert leader.behind()[0] == since  # behind since the first failed sync

    gateway.server.set_status(pattern, None)  # the origin heals: the next run publishes
    report = leader.run()
    assert report.ok
    assert leader.mirror.current() == release_id(gateway.tree.ini_path().read_bytes())
    assert leader.installed("virus_pattern") == NEW and leader.installed("virus_engine") is not None
    assert leader.behind() == (None, None)
    assert origin_gets(gateway, engine) == 1  # verified in the failed try, kept, not fetched again
    recovered = [subject for subject, _body in mails(relay, gateway.dsn)[1:] if "recovered" in subject]
    assert recovered == ["[gw-a] Pattern file update recovered"]  # Notification/NotifyRecovery=yes
    member.run()
    assert installed(member.root, "virus_pattern") == NEW
    assert installed(member.root, "virus_engine") == leader.installed("virus_engine")


def test_a_package_that_times_out_keeps_the_current_release_and_is_shown_on_status_and_fleet_status(
    gateway: Gateway, nodes: tuple[Leader, Member], logged_in: FlaskClient
) -> None:
    leader, member = nodes
    pattern, _engine, old_index = new_release(gateway)
    gateway.server.stall(pattern)  # ReadTimeout is 2 s in the gateway's settings
    report = leader.run()
    reasons = [str(outcome.reason) for outcome in report.outcomes if not outcome.ok]
    assert len(reasons) == 1 and "not mirrored for the fleet" in reasons[0]
    assert gateway.server.url(pattern) in reasons[0]
    assert_the_old_release_stays(leader, member, old_index)

    shown = re.compile(r"mirror behind the origin since \d{4}-\d\d-\d\dT[0-9:]+\+00:00: virus_pattern: ")
    assert shown.search(member.cli("status")), member.cli("status")
    leader_status = node_cli(gateway.dsn, "gw-a", leader.root, "status")
    assert "the origin (this node leads); mirror behind the origin since" in leader_status.stdout
    text = member.cli("fleet", "status")
    assert shown.search(text), text
    as_json = json.loads(member.cli("fleet", "status", "--json"))
    row = next(node for node in as_json["nodes"] if node["node"] == "gw-a")
    assert row["mirror_behind_since"] and gateway.server.url(pattern) in row["mirror_behind_reason"]
    assert next(node for node in as_json["nodes"] if node["node"] == "gw-b")["mirror_behind_since"] is None
    page = logged_in.get("/fleet").get_data(as_text=True)
    assert 'id="fleet-mirror-behind"' in page and gateway.server.url(pattern) in page
    japanese = logged_in.get("/fleet", headers={"Accept-Language": "ja"}).get_data(as_text=True)
    assert "からオリジンより遅れています" in japanese

    gateway.server.knobs_for(pattern).stall = False
    assert leader.run().ok
    assert leader.behind() == (None, None)
    assert "mirror behind" not in member.cli("status")
    assert 'id="fleet-mirror-behind"' not in logged_in.get("/fleet").get_data(as_text=True)


def test_a_package_whose_signature_fails_at_the_origin_is_not_published_and_a_fixed_one_is(
    gateway: Gateway, nodes: tuple[Leader, Member]
) -> None:
    leader, member = nodes
    pattern, _engine, old_index = new_release(gateway)
    gateway.tree.corrupt_payload("P.4")
    report = leader.run()
    reasons = [str(outcome.reason) for outcome in report.outcomes if not outcome.ok]
    assert len(reasons) == 1 and gateway.server.url(pattern) in reasons[0]
    assert_the_old_release_stays(leader, member, old_index)
    assert not list(leader.mirror.root.rglob(pattern.rsplit("/", 1)[-1]))  # the refused file is gone

    gateway.tree.add_pattern("P.4", NEW)  # the origin publishes it again, whole
    gateway.publish()
    assert leader.run().ok
    assert leader.installed("virus_pattern") == NEW
    member.run()
    assert installed(member.root, "virus_pattern") == NEW


def test_an_origin_whose_index_fails_fails_the_leaders_run_and_its_return_clears_it(
    gateway: Gateway, nodes: tuple[Leader, Member], relay: SmtpServer
) -> None:
    leader, member = nodes
    _pattern, _engine, old_index = new_release(gateway)
    gateway.server.set_status("/server.ini", 503)
    report = leader.run()
    failed = {outcome.component: str(outcome.reason) for outcome in report.outcomes if not outcome.ok}
    assert "virus_pattern" in failed and "update source" in failed["virus_pattern"]
    assert gateway.server.url("/server.ini") in failed["virus_pattern"]
    assert_the_old_release_stays(leader, member, old_index)
    assert leader.behind()[0] is not None
    assert mails(relay, gateway.dsn)
    gateway.server.set_status("/server.ini", None)
    assert leader.run().ok
    assert leader.behind() == (None, None)
    assert leader.installed("virus_pattern") == NEW


def test_an_origin_that_drops_a_component_publishes_the_release_without_it_and_fails_nothing(
    gateway: Gateway, nodes: tuple[Leader, Member]
) -> None:
    leader, member = nodes
    new_release(gateway)
    assert leader.run().ok
    del gateway.tree.entries[ENGINE]  # the origin no longer offers the engine
    gateway.publish()
    index = gateway.tree.ini_path().read_bytes()
    report = leader.run()
    assert report.ok, report.summary()
    assert leader.mirror.current() == release_id(index)
    assert leader.behind() == (None, None)
    assert leader.events("failure") == []
    member.run()
    assert installed(member.root, "virus_pattern") == NEW
    assert member.failures() == []


def test_with_a_tmase_source_of_its_own_its_outage_holds_back_nothing_of_the_mirror(
    gateway: Gateway, nodes: tuple[Leader, Member], tmp_path: Path, http_server: HttpServers
) -> None:
    leader, _member = nodes
    tmase_tree = AUTree(tmp_path / "tmase", gateway.tree.pki)
    tmase_tree.add_pattern("P.10001", "410100")
    tmase_tree.write_ini()
    tmase = http_server(tmp_path / "tmase")
    gateway.set("Update", "TMASEServerurl", tmase.base_url)
    tmase.set_status("/server.ini", 500)  # the TMASE source is down, the UpdateServer is not
    new_release(gateway)
    report = leader.run()
    assert leader.mirror.current() == release_id(gateway.tree.ini_path().read_bytes())
    assert leader.behind() == (None, None)
    assert leader.installed("virus_pattern") == NEW
    failed = {outcome.component: str(outcome.reason) for outcome in report.outcomes if not outcome.ok}
    assert set(failed) == {"spam_engine", "antispam_pattern"}  # its own source's, as on one gateway
    assert all("not mirrored" not in reason and tmase.base_url in reason for reason in failed.values())


def test_a_full_disk_under_the_mirror_keeps_the_current_release_and_room_made_publishes(
    gateway: Gateway, tmp_path: Path, relay: SmtpServer
) -> None:
    fleet(gateway)
    gateway.tree.add_pattern("P.4", OLD)
    gateway.publish()
    old_index = gateway.tree.ini_path().read_bytes()
    with tiny_tmpfs(tmp_path / "small-state", "2m") as state:
        leader, member = Leader(gateway, tmp_path, state), Member(gateway, tmp_path)
        leader.start()
        try:
            assert leader.run().ok
            member.run()
            gateway.tree.add_pattern("P.4", NEW, size_bytes=3_000_000)
            gateway.publish()
            report = leader.run()
            reasons = [str(outcome.reason) for outcome in report.outcomes if not outcome.ok]
            assert len(reasons) == 1 and "not enough free space: 3 MB needed" in reasons[0], reasons
            assert str(state / "mirror") in reasons[0]  # the cause is the disk: it names where
            assert_the_old_release_stays(leader, member, old_index)
            assert "not enough free space" in mails(relay, gateway.dsn)[0][1]
            subprocess.run(["mount", "-o", "remount,size=16m", str(state)], check=True)
            assert leader.run().ok
            assert leader.installed("virus_pattern") == NEW and leader.behind() == (None, None)
        finally:
            leader.fleet.stop()


def release_files(mirror: Mirror) -> dict[Path, bytes]:
    current = mirror.release_directory("activeupdate")
    assert current is not None
    return {path.relative_to(current): path.read_bytes() for path in current.rglob("*") if path.is_file()}


def test_killing_the_leader_mid_sync_leaves_its_current_release_whole_and_its_restart_publishes(
    gateway: Gateway, tmp_path: Path, start_daemon: DaemonFactory
) -> None:
    fleet(gateway)
    gateway.set("Update", "ReadTimeout", "30")  # the held download waits; it does not time out
    gateway.tree.add_pattern("P.4", OLD)
    gateway.publish()
    old_index = gateway.tree.ini_path().read_bytes()
    node = FleetNode(gateway, tmp_path, "gw-a")
    node.start(start_daemon)
    wait_until(lambda: Mirror(node.state).current() == release_id(old_index), 60, "the first release")
    before = release_files(Mirror(node.state))
    pattern = gateway.tree.add_pattern("P.4", NEW, size_bytes=300_000)
    gateway.publish()
    gateway.server.hold("/" + pattern.path)
    assert node.daemon is not None
    node.daemon.signal(signal.SIGUSR1)
    name = pattern.path.rsplit("/", 1)[-1]
    wait_until(lambda: any(p.stat().st_size > 0 for p in (node.state / "mirror").rglob(name)), 30,
               "gw-a to be mid-download")
    node.daemon.signal(signal.SIGKILL)
    gateway.server.release("/" + pattern.path)
    mirror = Mirror(node.state)
    assert mirror.current() == release_id(old_index)
    assert release_files(mirror) == before
    assert list((node.state / "mirror").glob("incoming-*"))  # the killed try's, unpublished

    node.start(start_daemon)  # the same node, state directory and root, started again
    new_index = gateway.tree.ini_path().read_bytes()
    wait_until(lambda: Mirror(node.state).current() == release_id(new_index), 60,
               "the restarted leader's release")
    assert not list((node.state / "mirror").glob("incoming-*"))
    assert Mirror(node.state).previous() == release_id(old_index)


def test_what_a_failed_try_kept_is_never_served_and_the_next_release_takes_it_without_a_download(
    tmp_path: Path,
) -> None:
    mirror = Mirror(tmp_path / "state")
    first = b"[PATTERN]\nP.4=pattern/lpt1.zip,156900100,4\n"
    release = mirror.begin(first)
    release.write("pattern/lpt1.zip", b"one!")
    mirror.publish(release, first, None)
    second = b"[PATTERN]\nP.4=pattern/lpt2.zip,156900200,4\n[ENGINE]\nE.1=engine/e.zip,21.0.1008,3\n"
    release = mirror.begin(second)
    release.write("engine/e.zip", b"eng")  # verified; the pattern failed: nothing is published
    mirror.hold(release)
    assert mirror.current() == release_id(first)
    assert mirror.open_file("engine/e.zip") is None  # held is no release: never served
    assert not list(mirror.root.glob("incoming-*"))
    retry = mirror.begin(second)
    assert retry.reuse("engine/e.zip", 3)  # a hard link to what the failed try kept
    retry.write("pattern/lpt2.zip", b"two!")
    mirror.publish(retry, second, None)
    assert mirror.current() == release_id(second) and mirror.previous() == release_id(first)
    assert not (mirror.root / "held").exists()
    opened = mirror.open_file("engine/e.zip")
    assert opened is not None
    os.close(opened[0])
