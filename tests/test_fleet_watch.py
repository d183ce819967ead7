"""The leader reports fleet nodes going down and coming back (fleet/watch.py): one
notification per change, recorded with the report, on a real PostgreSQL and a real SMTP
relay (aiosmtpd), and with real daemon processes. Heartbeats are aged by SQL instead of
waiting three missed periods."""

from __future__ import annotations

import datetime
import signal
from collections.abc import Iterator

import psycopg2
import pytest

from imss_updater import notify
from imss_updater.database.db import Database
from imss_updater.fleet.watch import report_nodes
from imss_updater.notify.config import NotifySettings
from imss_updater.notify.delivery import load_settings
from tests.support.daemon import DaemonFactory, wait_until
from tests.support.fleet import leader_row
from tests.support.gateway import Gateway
from tests.support.smtp import ServerFactory, SmtpServer
from tests.test_fleet_leader import FleetNode, two_nodes

__all__ = ["two_nodes"]  # the fixture, from test_fleet_leader


@pytest.fixture
def database(db_dsn: str) -> Iterator[Database]:
    """The leader gw-a's connection; gw-b and gw-c registered, gw-b with a fresh heartbeat,
    gw-c never started (no heartbeat)."""
    with Database(db_dsn, node="gw-a") as database:
        database.init()
        for node in ("gw-b", "gw-c"):
            with Database(db_dsn, node=node) as other:
                other.ensure_node()
        heartbeat(db_dsn, "gw-b", 0)
        yield database


def heartbeat(dsn: str, node: str, seconds_ago: int) -> None:
    connection = psycopg2.connect(dsn)
    with connection, connection.cursor() as cursor:
        cursor.execute("UPDATE tb_fleet_node SET heartbeat = now() - %s * interval '1 second'"
                       " WHERE node = %s", (seconds_ago, node))
    connection.close()


def use_relay(database: Database, server: SmtpServer) -> None:
    for name, value in {"SMTPServer": server.host, "SMTPPort": str(server.port), "SMTPSecurity": "none",
                        "MailFrom": "imss@example.com", "MailTo": "ops@example.com",
                        "SMTPTimeout": "5"}.items():
        database.set_setting("Notification", name, value)


def queued(database: Database) -> list[tuple[str, str, str, str]]:
    with database.transaction() as cursor:
        cursor.execute("SELECT event, outcome, channel, subject FROM tb_notification ORDER BY id")
        return [tuple(row) for row in cursor.fetchall()]  # type: ignore[misc]


def subjects(server: SmtpServer) -> list[str]:
    return [str(received.message["Subject"]) for received in server.received]


def test_a_member_going_down_and_coming_back_is_one_mail_each_naming_it(
    database: Database, db_dsn: str, smtp_server: ServerFactory
) -> None:
    server = smtp_server()
    use_relay(database, server)
    assert report_nodes(database) == []  # gw-b up as never reported; gw-c never seen up
    heartbeat(db_dsn, "gw-b", 120)
    changes = report_nodes(database)
    assert [(change.node, change.down) for change in changes] == [("gw-b", True)]
    assert report_nodes(database) == []  # reported once
    assert queued(database) == [("node", "down", "mail", "[gw-a] Fleet node gw-b is down")]
    notify.deliver_pending(database)
    assert subjects(server) == ["[gw-a] Fleet node gw-b is down"]
    body = server.received[0].message.get_content()
    last = changes[0].heartbeat.astimezone().strftime("%Y-%m-%d %H:%M:%S")
    assert f"Fleet node gw-b has sent no heartbeat since {last}" in body
    assert "Detected by the leader gw-a" in body
    heartbeat(db_dsn, "gw-b", 0)
    assert [(change.node, change.down) for change in report_nodes(database)] == [("gw-b", False)]
    assert report_nodes(database) == []
    notify.deliver_pending(database)
    assert subjects(server) == ["[gw-a] Fleet node gw-b is down", "[gw-a] Fleet node gw-b is up again"]


def test_the_leader_never_reports_itself_nor_a_node_that_never_sent_a_heartbeat(
    database: Database, db_dsn: str
) -> None:
    heartbeat(db_dsn, "gw-a", 600)  # its own row aged: it is running this very code
    assert report_nodes(database) == []
    with database.transaction() as cursor:
        cursor.execute("SELECT node FROM tb_fleet_node WHERE reported_down")
        assert cursor.fetchall() == []


def test_a_new_leader_after_a_failover_neither_repeats_nor_loses_a_report(
    database: Database, db_dsn: str, smtp_server: ServerFactory
) -> None:
    use_relay(database, smtp_server())
    heartbeat(db_dsn, "gw-a", 0)
    heartbeat(db_dsn, "gw-b", 120)
    assert [change.node for change in report_nodes(database)] == ["gw-b"]  # gw-a leads and reports
    heartbeat(db_dsn, "gw-c", 0)  # gw-c starts, gw-a dies, gw-c takes over
    heartbeat(db_dsn, "gw-a", 120)
    with Database(db_dsn, node="gw-c") as new_leader:
        changes = report_nodes(new_leader)
        assert [(change.node, change.down) for change in changes] == [("gw-a", True)]
        assert report_nodes(new_leader) == []
    assert [row[3] for row in queued(database)] == [
        "[gw-a] Fleet node gw-b is down", "[gw-c] Fleet node gw-a is down"]


def test_without_any_failure_channel_nothing_is_queued_but_the_report_is_recorded(
    database: Database, db_dsn: str, smtp_server: ServerFactory
) -> None:
    use_relay(database, smtp_server())
    for group in ("Pattern", "Engine", "Spam"):
        database.set_setting("Notification", f"{group}UpdateFailureMail", "no")
    heartbeat(db_dsn, "gw-b", 120)
    assert [change.node for change in report_nodes(database)] == ["gw-b"]
    assert queued(database) == []
    database.set_setting("Notification", "EngineUpdateFailureMail", "yes")  # any group's row will do
    heartbeat(db_dsn, "gw-c", 0)
    heartbeat(db_dsn, "gw-c", 120)
    assert [change.node for change in report_nodes(database)] == ["gw-c"]
    assert [row[1:3] for row in queued(database)] == [("down", "mail")]


def japanese(database: Database) -> NotifySettings:
    database.set_setting("Notification", "Language", "ja")
    return load_settings(database.settings_rows(), database.node)


def test_the_japanese_texts_name_the_node_and_its_last_heartbeat(
    database: Database, smtp_server: ServerFactory
) -> None:
    use_relay(database, smtp_server())
    settings = japanese(database)
    last = datetime.datetime(2026, 12, 1, 5, 0, 12, tzinfo=datetime.UTC)
    now = last + datetime.timedelta(minutes=2)
    (down,) = notify.node_notifications(settings, "gw-b", last, True, now=now)
    assert down.subject == "[gw-a] フリートのノードgw-bが停止しています"
    assert f"gw-bから{last.astimezone():%Y-%m-%d %H:%M:%S %z}以降" in down.body
    assert "検出したリーダー: gw-a" in down.body
    (up,) = notify.node_notifications(settings, "gw-b", last, False, now=now)
    assert up.subject == "[gw-a] フリートのノードgw-bが復帰しました"
    assert up.payload["kind"] == "node" and up.payload["outcome"] == "up"
    assert up.payload["items"] == [{"id": "gw-b", "name": "gw-b", "version": "", "outcome": "up",
                                    "reason": last.astimezone().strftime("%Y-%m-%d %H:%M:%S %z")}]


# -- real daemons: the leader gw-a and the member gw-b (test_fleet_leader's FleetNode) ---------


def wake_leader(gateway: Gateway, count: list[int]) -> None:
    """A settings change wakes every daemon's loop at once (LISTEN/NOTIFY): its upkeep tick,
    where the leader compares the nodes, follows within a second instead of REPLAN_SECONDS."""
    count[0] += 1
    gateway.set("Notification", "SMTPTimeout", str(5 + count[0] % 2))


def test_daemons_a_killed_member_its_return_and_a_failover_are_one_mail_each(
    gateway: Gateway, two_nodes: tuple[FleetNode, FleetNode], start_daemon: DaemonFactory,
    smtp_server: ServerFactory,
) -> None:
    leader, member = two_nodes
    server = smtp_server()
    with gateway.database() as database:
        use_relay(database, server)
    ticks = [0]

    def mailed(subject: str) -> bool:
        wake_leader(gateway, ticks)
        return subject in subjects(server)

    assert member.daemon is not None and leader.daemon is not None
    member.daemon.signal(signal.SIGKILL)
    member.daemon.process.wait()
    heartbeat(gateway.dsn, "gw-b", 120)  # three missed heartbeats, without the wait
    wait_until(lambda: mailed("[gw-a] Fleet node gw-b is down"), 30, "the leader's down mail")
    member.start(start_daemon)  # it comes back: its first tick writes a heartbeat
    wait_until(lambda: mailed("[gw-a] Fleet node gw-b is up again"), 30, "the leader's up mail")
    leader.daemon.signal(signal.SIGKILL)
    leader.daemon.process.wait()
    wait_until(lambda: leader_row(gateway.dsn) == ("gw-b", 2), 30, "gw-b to take over")
    heartbeat(gateway.dsn, "gw-a", 120)
    wait_until(lambda: mailed("[gw-b] Fleet node gw-a is down"), 30, "the new leader's down mail")
    assert subjects(server) == ["[gw-a] Fleet node gw-b is down", "[gw-a] Fleet node gw-b is up again",
                                "[gw-b] Fleet node gw-a is down"], f"after {ticks[0]} ticks"
    assert "fleet: node gw-a is down" in member.log()
