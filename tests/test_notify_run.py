"""End-to-end: a real scheduled run on the gateway fixture, then its notifications."""

from __future__ import annotations

from imss_updater import notify
from imss_updater.run.planner import Mode
from imss_updater.run.updater import Updater
from tests.support.gateway import Gateway
from tests.support.smtp import ServerFactory
from tests.support.snmp import ReceiverFactory


def test_scheduled_run_with_failures_in_two_groups_sends_exactly_their_messages(
    gateway: Gateway, smtp_server: ServerFactory, trap_receiver: ReceiverFactory
) -> None:
    relay = smtp_server("plain")
    receiver = trap_receiver()
    gateway.tree.add_pattern("P.4", "1569700")
    gateway.tree.corrupt_payload("P.4")  # pattern group: signature check fails
    gateway.tree.add_pattern("P.8", "240100")  # pattern group: succeeds
    gateway.tree.add_engine("VSAPI_LINUX_X86_64", "21.0.1008")
    gateway.tree.override_size("VSAPI_LINUX_X86_64", 10)  # engine group: size mismatch
    gateway.tree.add_pattern("P.10001", "1710000")  # spam group: succeeds
    gateway.publish()
    for name, value in {
        "SMTPServer": relay.host, "SMTPPort": str(relay.port), "MailFrom": "imss@gw1.example",
        "MailTo": "ops@example.com", "SNMPServer": receiver.address,
    }.items():
        gateway.set("Notification", name, value)

    with gateway.database() as database:
        catalog = database.catalog()
        report = Updater(database, gateway.root).update(Mode.SCHEDULED, None)
        assert {(o.component, o.ok) for o in report.outcomes} == {
            ("virus_pattern", False), ("spyware_pattern", True), ("virus_engine", False),
            ("antispam_pattern", True),
        }
        assert notify.enqueue_run(database, catalog, report) == 4  # 2 groups x (mail + trap)
        delivered = notify.deliver_pending(database)

    assert sorted((a.channel, a.event, a.outcome) for a in delivered.attempts) == [
        ("mail", "update engine failure", "sent"),
        ("mail", "update pattern failure", "sent"),
        ("trap", "update engine failure", "sent"),
        ("trap", "update pattern failure", "sent"),
    ]
    subjects = sorted(received.message["Subject"] for received in relay.received)
    assert [subject.split("] ", 1)[1] for subject in subjects] == [
        "Pattern file update FAILED", "Scan engine update FAILED",
    ]
    bodies = {
        received.message["Subject"].split("] ", 1)[1]: received.message.get_content().replace("\r\n", "\n")
        for received in relay.received
    }
    pattern = bodies["Pattern file update FAILED"]
    assert "Virus Pattern 15.697.00: update failed\nReason: " in pattern
    assert "signature" in pattern.lower()
    assert "Spyware" not in pattern  # its success is not notified under the default settings
    engine = bodies["Scan engine update FAILED"]
    assert "Virus Scan Engine 21.0.1008: update failed\nReason: " in engine
    assert "size" in engine.lower()
    assert gateway.base_url in engine  # %SOURCE%
    log = receiver.wait_for("imssUpdaterEventGroup.0 = INTEGER: engine(2)")
    log = receiver.wait_for("imssUpdaterEventGroup.0 = INTEGER: pattern(1)")
    assert 'imssUpdaterComponentId.1 = STRING: "virus_pattern"' in log
    assert 'imssUpdaterComponentId.1 = STRING: "virus_engine"' in log
    assert "spam(3)" not in log and "antispam_pattern" not in log


def test_failed_restart_with_automatic_rollback_is_notified_with_both_reasons(
    gateway: Gateway, smtp_server: ServerFactory
) -> None:
    relay = smtp_server("plain")
    for name, value in {"SMTPServer": relay.host, "SMTPPort": str(relay.port),
                        "MailFrom": "imss@gw1.example", "MailTo": "ops@example.com"}.items():
        gateway.set("Notification", name, value)
    gateway.tree.add_pattern("P.4", "1569700")
    gateway.publish()
    assert gateway.cli("update", "virus_pattern").code == 0
    gateway.tree.add_pattern("P.4", "1569800")
    gateway.publish()
    gateway.fail_flag.touch()
    with gateway.database() as database:
        report = Updater(database, gateway.root).update(Mode.SCHEDULED, None)
        assert notify.enqueue_run(database, database.catalog(), report) == 1
        assert notify.deliver_pending(database).sent == 1
    body = relay.received[0].message.get_content()
    assert "scan service restart failed" in body
    assert "Virus Pattern 15.698.00: update failed" in body  # the version that failed to start
    assert "rolled back to 15.697.00" in body


def test_stale_component_is_notified_once_per_change_on_the_failure_channels(
    gateway: Gateway, smtp_server: ServerFactory
) -> None:
    relay = smtp_server("plain")
    for name, value in {"SMTPServer": relay.host, "SMTPPort": str(relay.port),
                        "MailFrom": "imss@gw1.example", "MailTo": "ops@example.com"}.items():
        gateway.set("Notification", name, value)
    with gateway.database() as database:
        component = {c.id: c for c in database.catalog()}["virus_pattern"]
        assert notify.enqueue_stale(database, component, None, True) == 1
        assert notify.enqueue_stale(database, component, None, False) == 1
        gateway.set("Notification", "PatternUpdateFailureMail", "no")
        assert notify.enqueue_stale(database, component, None, True) == 0
        assert notify.deliver_pending(database).sent == 2
    subjects = [received.message["Subject"].split("] ", 1)[1] for received in relay.received]
    assert subjects == ["Virus Pattern is out of date", "Virus Pattern is up to date again"]
    assert "never updated successfully" in relay.received[0].message.get_content()
