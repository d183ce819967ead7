"""A fleet member (SPEC 7): the leader's mirror as its update source, read from the
database; every signature checked by the member itself, under the origin's pins; fallback
to the origin when the mirror is gone for Fleet/FallbackMinutes, and back.

The origin is the gateway's real HTTP server; the leader's mirror is a second real HTTP
server serving a byte-for-byte copy of the origin's tree (what the leader serves), and the
leader record is a row in the shared PostgreSQL."""

from __future__ import annotations

import datetime
import json
import re
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from flask.testing import FlaskClient

from imss_updater.database import fleet_member as fleet_db
from imss_updater.database.connection import local_node
from imss_updater.database.db import Database
from tests.support.daemon import DaemonFactory, wait_until
from tests.support.fleet import Mirror, announce, member_source, record_leader
from tests.support.gateway import Gateway
from tests.support.servers import ServerFactory

MEMBER = local_node()  # the gateway fixture's own node (IMSS_NODE unset)
LEADER = "leader-1"


@pytest.fixture
def member(gateway: Gateway) -> Gateway:
    gateway.set("Fleet", "Enabled", "yes")
    return gateway


@pytest.fixture
def mirror(tmp_path: Path, http_server: ServerFactory, member: Gateway) -> Mirror:
    mirror = Mirror(tmp_path / "mirror", http_server)
    record_leader(member.dsn, LEADER, mirror.address)
    return mirror


def publish(gateway: Gateway, mirror: Mirror | None, version: str = "1569700") -> None:
    gateway.tree.add_pattern("P.4", version)
    gateway.publish()
    if mirror is not None:
        mirror.sync(gateway.tree)


def package_requests(gateway: Gateway) -> list[str]:
    return [request.path for request in gateway.server.requests if request.path.endswith(".zip")]


def test_a_member_updates_both_roles_from_the_leaders_mirror_read_from_the_database(
    member: Gateway, mirror: Mirror
) -> None:
    member.tree.add_pattern("P.10001", "410100")  # the antispam pattern: TMASEServerurl's role
    publish(member, mirror)

    result = member.cli("update", "--all")

    assert result.code == 0, result.stderr
    assert package_requests(member) == []  # nothing from the origin
    assert member.server.requests_for("server.ini") == []
    fetched = {request.path for request in mirror.server.requests}
    assert "/activeupdate/server.ini" in fetched
    for key in ("P.4", "P.10001"):  # both roles
        assert "/activeupdate/" + member.tree.entries[key].path in fetched
    assert member.get("Update", "UpdateServer") == member.base_url  # nothing typed by hand
    assert member_source(member.dsn, MEMBER).mode == "mirror"
    status = json.loads(member.cli("status", "--json").stdout)
    assert status["fleet"]["mirror_url"] == mirror.url
    assert f"update source (fleet): the leader's mirror {mirror.url}" in member.cli("status").stdout


def test_a_tmase_source_of_its_own_is_read_from_that_source_not_from_the_mirror(
    member: Gateway, mirror: Mirror, http_server: ServerFactory
) -> None:
    # The leader mirrors the UpdateServer's release only: a TMASEServerurl that differs
    # stays the member's source for its components (the antispam pattern here).
    member.tree.add_pattern("P.10001", "410100")
    publish(member, mirror)
    tmase = http_server(member.tree.directory)
    member.set("Update", "TMASEServerurl", f"http://127.0.0.1:{tmase.port}")

    result = member.cli("update", "--all")

    assert result.code == 0, result.stderr
    mirrored = {request.path for request in mirror.server.requests}
    assert "/activeupdate/" + member.tree.entries["P.4"].path in mirrored
    assert "/activeupdate/" + member.tree.entries["P.10001"].path not in mirrored
    assert tmase.requests_for("server.ini") != []
    assert [r.path for r in tmase.requests if r.path.endswith(".zip")] == [
        "/" + member.tree.entries["P.10001"].path]


def test_the_leader_itself_reads_the_origin(member: Gateway, mirror: Mirror) -> None:
    record_leader(member.dsn, MEMBER, mirror.address)
    publish(member, mirror)

    assert member.cli("update", "--all").code == 0

    assert package_requests(member) != []
    assert mirror.server.requests == []


def test_a_mirror_serving_a_tampered_package_is_refused_by_the_member_with_the_reason(
    member: Gateway, mirror: Mirror
) -> None:
    publish(member, mirror)
    entry = member.tree.entries["P.4"]
    payload = mirror.file(entry.path)
    data = bytearray(payload.read_bytes())
    data[len(data) // 2] ^= 0xFF
    payload.write_bytes(bytes(data))

    result = member.cli("update", "virus_pattern")

    assert result.code != 0
    assert "signature" in result.stderr.lower()
    assert not member.live("lib/vsapi").exists() or not any(member.live("lib/vsapi").iterdir())
    assert ("manual", "virus_pattern", "15.697.00", "failure") in member.events()


def test_a_mirror_serving_an_unsigned_index_where_the_origin_signed_is_refused(
    member: Gateway, mirror: Mirror
) -> None:
    member.tree.sign_index = True
    publish(member, None)
    member.set("Fleet", "Enabled", "no")
    assert member.cli("check").code == 0  # the origin signs: it is pinned
    member.set("Fleet", "Enabled", "yes")
    mirror.sync(member.tree)
    mirror.file("server.ini.sig").unlink()  # the leader strips the signature

    result = member.cli("check")

    assert result.code != 0
    assert "this source signed its index before; refusing an unsigned index" in result.stderr
    assert f"trust reset-index {member.base_url}" in result.stderr  # the origin's pin applied


def test_a_signed_index_through_the_mirror_pins_the_origin_not_the_mirror(
    member: Gateway, mirror: Mirror
) -> None:
    member.tree.sign_index = True
    publish(member, mirror)

    assert member.cli("check").code == 0

    shown = json.loads(member.cli("trust", "show", "--json").stdout)
    assert [source["base_url"] for source in shown["sources"]] == [member.base_url]
    # So a new index from the mirror must be signed: the origin's pin holds it.
    publish(member, mirror, "1569800")
    mirror.file("server.ini.sig").unlink()
    assert "refusing an unsigned index" in member.cli("check").stderr


def mirror_unreachable_for(member: Gateway, minutes: float) -> None:
    """Move the recorded start of the outage back (the clock of the fallback)."""
    with Database(member.dsn) as database, database.transaction() as cursor:
        cursor.execute(
            "UPDATE tb_fleet_member SET mirror_unreachable_since = now() - %s * interval '1 minute'"
            " WHERE node = %s", (minutes, MEMBER),
        )


def test_a_member_falls_back_to_the_origin_after_fallback_minutes_and_returns_to_the_mirror(
    member: Gateway, mirror: Mirror, refused_port: int
) -> None:
    member.set("Fleet", "FallbackMinutes", "5")
    publish(member, mirror)
    record_leader(member.dsn, LEADER, f"127.0.0.1:{refused_port}")  # the mirror is down

    first = member.cli("check")

    assert first.code != 0  # not yet: the origin is not asked before FallbackMinutes
    assert member.server.requests == []
    waiting = member_source(member.dsn, MEMBER)
    assert (waiting.mode, waiting.unreachable_since is not None) == ("mirror", True)
    assert "unreachable since" in member.cli("status").stdout

    mirror_unreachable_for(member, 4)
    assert member.cli("check").code != 0
    assert member.server.requests == []

    mirror_unreachable_for(member, 5)
    assert member.cli("update", "--all").code == 0

    assert package_requests(member) != []  # from the origin directly
    assert member_source(member.dsn, MEMBER).mode == "fallback"
    status = member.cli("status").stdout
    assert "update source (fleet): fallback: from the origin directly" in status
    assert json.loads(member.cli("status", "--json").stdout)["fleet"]["source_mode"] == "fallback"

    record_leader(member.dsn, LEADER, mirror.address)  # the mirror is back
    publish(member, mirror, "1569800")
    before = len(package_requests(member))
    assert member.cli("update", "--all").code == 0

    assert len(package_requests(member)) == before  # from the mirror again
    back = member_source(member.dsn, MEMBER)
    assert (back.mode, back.unreachable_since) == ("mirror", None)


def test_with_no_leader_a_member_waits_fallback_minutes_then_uses_the_origin(member: Gateway) -> None:
    publish(member, None)

    result = member.cli("check")

    assert result.code != 0
    assert "no fleet leader serves a mirror" in result.stderr
    mirror_unreachable_for(member, 61)  # FallbackMinutes: 60 by default
    assert member.cli("check").code == 0
    assert member_source(member.dsn, MEMBER).mode == "fallback"


def test_a_manual_update_and_rollback_on_a_member_act_on_that_member_only(
    member: Gateway, mirror: Mirror, tmp_path: Path
) -> None:
    other_root = tmp_path / "other-root"
    other_root.mkdir()
    publish(member, mirror)
    with Database(member.dsn) as listener:
        listener.listen(fleet_db.ANNOUNCE_CHANNEL)
        assert member.cli("update", "--all").code == 0
        publish(member, mirror, "1569800")
        assert member.cli("update", "virus_pattern").code == 0

        assert member.cli("rollback", "virus_pattern").code == 0

        announced = listener.wait_notifications(0.5)
    assert announced == []  # a member announces nothing to the fleet
    assert list(other_root.iterdir()) == []  # another gateway's root is not touched
    status = json.loads(member.cli("status", "--json").stdout)
    current = {item["id"]: item["current"] for item in status["components"]}
    assert current["virus_pattern"] == "15.697.00"


def listening(dsn: str) -> bool:
    with Database(dsn) as database, database.transaction() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE query = %s",
                       (f"LISTEN {fleet_db.ANNOUNCE_CHANNEL}",))
        row = cursor.fetchone()
        return bool(row and row[0])


def quiet_schedule(gateway: Gateway) -> None:
    """The daemon's own schedule stays out of the way: it just ran, the next is in 12 hours."""
    later = datetime.datetime.now(ZoneInfo("Asia/Tokyo")) + datetime.timedelta(hours=12)
    gateway.set("Update", "RandomDelaySeconds", "0")
    gateway.set("Update", "ScheduleFrequency", "daily")
    gateway.set("Update", "ScheduleTime", later.strftime("%H:%M"))
    with gateway.database() as database:
        database.record_scheduled_run(datetime.datetime.now(datetime.UTC))


def test_on_the_leaders_announcement_a_member_updates_once_after_a_random_delay_in_the_window(
    member: Gateway, mirror: Mirror, start_daemon: DaemonFactory
) -> None:
    quiet_schedule(member)
    member.set("Fleet", "StaggerSeconds", "3")
    daemon = start_daemon(member)
    wait_until(lambda: listening(member.dsn), what="the fleet listener")
    publish(member, mirror)
    with Database(member.dsn) as database, database.transaction() as cursor:
        cursor.execute("SELECT now()")
        row = cursor.fetchone()
        assert row is not None
        announced_at: datetime.datetime = row[0]

    announce(member.dsn, LEADER, 1, "r1")
    announce(member.dsn, LEADER, 1, "r1")  # a second one during the wait

    wait_until(lambda: ("scheduled", "virus_pattern", "15.697.00", "success") in member.events(),
               what="the staggered update")
    delays = [float(found) for found in re.findall(r"updating in ([0-9.]+) s", daemon.log())]
    assert len(delays) == 1 and 0.0 <= delays[0] <= 3.0
    assert "an update is already waiting or running, not planning another" in daemon.log()
    with Database(member.dsn) as database:
        installed = [event.time for event in database.events(limit=100)
                     if event.kind == "scheduled" and event.outcome == "success"]
    assert len(installed) == 1
    assert installed[0] >= announced_at + datetime.timedelta(seconds=delays[0])
    assert package_requests(member) == []  # from the mirror


def test_a_member_daemon_ignores_its_own_announcement(
    member: Gateway, mirror: Mirror, start_daemon: DaemonFactory
) -> None:
    quiet_schedule(member)
    member.set("Fleet", "StaggerSeconds", "0")
    daemon = start_daemon(member)
    wait_until(lambda: listening(member.dsn), what="the fleet listener")
    publish(member, mirror)

    announce(member.dsn, MEMBER, 2, "r2")  # its own: it is the leader that sent it
    announce(member.dsn, LEADER, 3, "r3")

    wait_until(lambda: "release r3 announced" in daemon.log(), what="the announcement")
    assert "release r2" not in daemon.log()


def test_the_status_page_overview_line_says_a_member_falls_back_to_the_origin(
    member: Gateway, refused_port: int, logged_in: FlaskClient
) -> None:
    publish(member, None)
    record_leader(member.dsn, LEADER, f"127.0.0.1:{refused_port}")
    assert member.cli("check").code != 0
    waiting = logged_in.get("/").get_data(as_text=True)
    assert 'id="fact-fleet-source"' in waiting and "unreachable since" in waiting

    mirror_unreachable_for(member, 61)
    assert member.cli("check").code == 0

    page = logged_in.get("/").get_data(as_text=True)
    assert "fallback: from the origin directly" in page
