"""Channels delivered independently: a silent mail relay holds up neither traps nor a stop,
and a backlog goes out at a bounded rate. Real relays, a real snmptrapd, real daemons."""

from __future__ import annotations

import datetime
import json
import threading
from collections.abc import Iterator

import pytest

from imss_updater import notify
from imss_updater.catalog import DEFAULT_CATALOG
from imss_updater.database.db import Database
from imss_updater.notify import mail
from imss_updater.notify.config import MailConfig
from imss_updater.notify.events import DeliveryInterrupted
from imss_updater.notify.outbox import NewNotification, Outbox
from imss_updater.notify.worker import ChannelWorker, Deliveries, Pacer
from imss_updater.run.updater import Outcome, RunReport
from tests.support.daemon import DaemonFactory, wait_until
from tests.support.gateway import Gateway
from tests.support.smtp import ServerFactory, SilentRelay
from tests.support.snmp import ReceiverFactory

T0 = datetime.datetime(2026, 11, 22, 3, 0, tzinfo=datetime.UTC)


@pytest.fixture
def database(db_dsn: str) -> Iterator[Database]:
    with Database(db_dsn) as database:
        database.init()
        yield database


def configure(database: Database | Gateway, **values: str) -> None:
    for name, value in values.items():
        if isinstance(database, Gateway):
            database.set("Notification", name, value)
        else:
            database.set_setting("Notification", name, value)


def mail_rows(relay_host: str, relay_port: int, timeout: str) -> dict[str, str]:
    return {"SMTPServer": relay_host, "SMTPPort": str(relay_port), "MailFrom": "imss@gw1.example",
            "MailTo": "ops@example.com", "SMTPTimeout": timeout}


def failing_report() -> RunReport:
    return RunReport("scheduled", [Outcome("virus_pattern", None, False, "m", "update source unreachable")])


def mail_notification(database: Database) -> tuple[str, int]:
    with database.transaction() as cursor:
        cursor.execute("SELECT state, attempts FROM tb_notification WHERE channel = 'mail'")
        row = cursor.fetchone()
        assert row is not None
        return str(row[0]), int(row[1])


def test_a_trap_arrives_while_the_mail_hangs_on_a_silent_relay(
    database: Database, db_dsn: str, silent_relay: SilentRelay, trap_receiver: ReceiverFactory
) -> None:
    receiver = trap_receiver()
    configure(database, **mail_rows(silent_relay.host, silent_relay.port, "300"),
              SNMPServer=receiver.address, SNMPTimeout="2", SNMPRetries="0")
    assert notify.enqueue_run(database, DEFAULT_CATALOG, failing_report()) == 2
    deliveries = Deliveries(lambda: db_dsn)
    deliveries.start()
    try:
        receiver.wait_for("imssUpdaterEventGroup.0 = INTEGER: pattern(1)")
        assert silent_relay.accepted.wait(15), "the mail worker never reached the relay"
        assert mail_notification(database) == ("pending", 0)  # the mail is still hanging
    finally:
        deliveries.stop()
    assert deliveries.join(15)
    assert mail_notification(database) == ("pending", 0)  # retried at the next start, not counted
    attempts = {(d.channel, d.outcome): d.error or "" for d in notify.deliveries(database)}
    assert "interrupted waiting for the greeting: the updater is stopping" in attempts[("mail", "retry")]
    assert ("trap", "sent") in attempts


def test_a_silent_relay_ends_the_attempt_after_smtp_timeout_and_says_what_it_waited_for(
    database: Database, silent_relay: SilentRelay
) -> None:
    configure(database, **mail_rows(silent_relay.host, silent_relay.port, "1"))
    notify.enqueue_run(database, DEFAULT_CATALOG, failing_report(), now=lambda: T0)
    [attempt] = notify.deliver_pending(database, now=lambda: T0).attempts
    assert attempt.outcome == "retry"
    assert attempt.error == (
        f"127.0.0.1:{silent_relay.port}: no answer within 1 s (SMTPTimeout) waiting for the greeting"
    )


def test_a_mail_attempt_is_interrupted_at_once_when_asked() -> None:
    relay = SilentRelay()
    cancel = threading.Event()
    config = MailConfig(relay.host, relay.port, "none", "", "", "imss@gw1.example", ("ops@example.com",),
                        timeout=300.0, ca_file=None)
    threading.Thread(target=lambda: (relay.accepted.wait(15), cancel.set()), daemon=True).start()
    try:
        with pytest.raises(DeliveryInterrupted, match="interrupted waiting for the greeting"):
            mail.send(config, ["ops@example.com"], "subject", "body", cancel=cancel)
    finally:
        relay.stop()


def test_pacer_allows_a_burst_then_one_message_per_interval() -> None:
    now = [0.0]
    pacer = Pacer(3, 10.0, clock=lambda: now[0])
    assert pacer.available() == 3
    pacer.spend(3)
    assert (pacer.available(), pacer.wait_seconds()) == (0, 10.0)
    now[0] = 25.0
    assert pacer.available() == 2
    now[0] = 1000.0
    assert pacer.available() == 3  # an idle hour does not save up a burst of 360


def test_a_backlog_after_an_outage_goes_out_at_a_bounded_rate(
    database: Database, db_dsn: str, smtp_server: ServerFactory
) -> None:
    relay = smtp_server("plain")
    configure(database, **mail_rows(relay.host, relay.port, "5"))
    backlog = [NewNotification("update", "pattern", "failure", "mail", "ops@example.com", f"message {n}",
                               "body", {}) for n in range(15)]
    Outbox(database).add(backlog, now=T0)
    now = [0.0]
    worker = ChannelWorker("mail", lambda: db_dsn, pacer=Pacer(3, 10.0, clock=lambda: now[0]))
    sent = []
    for second in (0, 0, 5, 10, 20, 30, 40):
        now[0] = float(second)
        worker.round()
        sent.append(len(relay.received))
    assert sent == [3, 3, 3, 4, 5, 6, 7]  # a burst of 3, then one every 10 s
    assert notify.deliver_pending(database, channel="trap").attempts == []  # channels apart


def start_failing_gateway(gateway: Gateway) -> None:
    gateway.set("Update", "RandomDelaySeconds", "0")
    gateway.tree.add_pattern("P.4", "1569700")
    gateway.tree.corrupt_payload("P.4")
    gateway.publish()


def test_sigterm_with_a_mail_stuck_on_a_silent_relay_stops_the_daemon(
    gateway: Gateway, start_daemon: DaemonFactory, silent_relay: SilentRelay,
    trap_receiver: ReceiverFactory,
) -> None:
    receiver = trap_receiver()
    configure(gateway, **mail_rows(silent_relay.host, silent_relay.port, "300"),
              SNMPServer=receiver.address, SNMPTimeout="2", SNMPRetries="0")
    start_failing_gateway(gateway)
    daemon = start_daemon(gateway)  # never ran: runs at once, and fails
    receiver.wait_for("imssUpdaterEventGroup.0 = INTEGER: pattern(1)", timeout=60)
    wait_until(silent_relay.accepted.is_set, what="the mail stuck on the silent relay")
    code, _seconds = daemon.stop(timeout=30)  # a generous bound; SMTPTimeout is 300 s
    assert code == 0
    result = json.loads(gateway.cli("notify", "log", "--json").stdout)
    outcomes = {(d["channel"], d["outcome"]) for d in result["deliveries"]}
    assert outcomes == {("trap", "sent"), ("mail", "retry")}
