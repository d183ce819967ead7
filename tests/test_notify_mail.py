"""Mail notifications through real aiosmtpd relays: plain, STARTTLS, SMTPS, login."""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import trustme

from imss_updater import notify
from imss_updater.catalog import DEFAULT_CATALOG
from imss_updater.database.db import Database
from imss_updater.run.updater import Outcome, RunReport
from tests.support.smtp import ServerFactory, SmtpServer

# Until the root conftest registers them (tests.support.smtp / tests.support.snmp):
T0 = datetime.datetime(2026, 11, 22, 3, 0, tzinfo=datetime.UTC)


@pytest.fixture
def database(db_dsn: str) -> Iterator[Database]:
    with Database(db_dsn) as database:
        database.init()
        yield database


def use_relay(database: Database, server: SmtpServer, **extra: str) -> None:
    values = {
        "SMTPServer": server.host, "SMTPPort": str(server.port),
        "SMTPSecurity": {"plain": "none"}.get(server.mode, server.mode),
        "MailFrom": "imss@gw1.example", "MailTo": "ops@example.com, soc@example.com",
        "SMTPTimeout": "5", **extra,
    }
    for name, value in values.items():
        database.set_setting("Notification", name, value)


def clock(moment: datetime.datetime) -> Callable[[], datetime.datetime]:
    return lambda: moment


def failing_report() -> RunReport:
    return RunReport("scheduled", [
        Outcome("virus_pattern", "15.697.00", False, "m", "signature invalid: unknown signer"),
    ])


def test_plain_relay_gets_one_plain_text_message_for_all_recipients(
    database: Database, smtp_server: ServerFactory
) -> None:
    server = smtp_server("plain")
    use_relay(database, server)
    assert notify.enqueue_run(database, DEFAULT_CATALOG, failing_report(), now=lambda: T0) == 1
    report = notify.deliver_pending(database, now=lambda: T0)
    assert [(a.channel, a.outcome) for a in report.attempts] == [("mail", "sent")]
    [received] = server.received
    assert received.recipients == ["ops@example.com", "soc@example.com"]
    assert received.mail_from == "imss@gw1.example"
    assert received.login is None
    message = received.message
    assert message["Subject"].endswith("Pattern file update FAILED")
    assert message.get_content_type() == "text/plain"
    body = message.get_content().replace("\r\n", "\n")
    assert "Virus Pattern 15.697.00: update failed\nReason: signature invalid: unknown signer" in body
    assert "<br>" not in body and "<div>" not in body
    [delivery] = notify.deliveries(database)
    assert (delivery.channel, delivery.event, delivery.outcome) == ("mail", "update pattern failure", "sent")
    assert delivery.recipient == "ops@example.com, soc@example.com"


def test_starttls_with_a_trusted_ca_delivers(
    database: Database, smtp_server: ServerFactory, smtp_ca_file: Path
) -> None:
    server = smtp_server("starttls")
    use_relay(database, server, SMTPCAFile=str(smtp_ca_file))
    [result] = notify.send_test(database, mail=True, trap=False)
    assert (result.outcome, result.error) == ("sent", None)
    assert server.received[0].message["Subject"].endswith("imss-updater test message")


def test_starttls_with_an_untrusted_certificate_is_refused_and_recorded(
    database: Database, smtp_server: ServerFactory, smtp_ca_file: Path
) -> None:
    server = smtp_server("starttls", ca=trustme.CA())  # signed by a CA nobody trusts
    use_relay(database, server, SMTPCAFile=str(smtp_ca_file))
    notify.enqueue_run(database, DEFAULT_CATALOG, failing_report(), now=lambda: T0)
    report = notify.deliver_pending(database, now=lambda: T0)
    [attempt] = report.attempts
    assert attempt.outcome == "failed"  # a certificate problem does not heal by retrying
    assert "certificate not trusted" in (attempt.error or "")
    assert server.received == []
    [delivery] = notify.deliveries(database)
    assert delivery.outcome == "failed" and "certificate" in (delivery.error or "")


def test_smtps_delivers_with_certificate_verified(
    database: Database, smtp_server: ServerFactory, smtp_ca_file: Path
) -> None:
    server = smtp_server("ssl")
    use_relay(database, server, SMTPCAFile=str(smtp_ca_file))
    [result] = notify.send_test(database, mail=True, trap=False)
    assert result.outcome == "sent", result.error
    assert len(server.received) == 1


def test_login_happens_only_with_a_user_and_a_wrong_password_never_shows(
    database: Database, smtp_server: ServerFactory, smtp_ca_file: Path
) -> None:
    server = smtp_server("starttls", auth=("relayuser", "s3cret pass'word"))
    use_relay(database, server, SMTPCAFile=str(smtp_ca_file), SMTPUser="relayuser",
              SMTPPassword="wrong-Pa55word")
    [refused] = notify.send_test(database, mail=True, trap=False)
    assert refused.outcome == "failed" and "login as relayuser refused" in (refused.error or "")
    database.set_setting("Notification", "SMTPPassword", "s3cret pass'word")
    [accepted] = notify.send_test(database, mail=True, trap=False)
    assert accepted.outcome == "sent", accepted.error
    assert server.received[0].login == "relayuser"
    assert server.received[0].mail_from == "imss@gw1.example"  # the sender, not the login
    logged = " ".join(f"{d.recipient} {d.error}" for d in notify.deliveries(database))
    assert "wrong-Pa55word" not in logged and "s3cret" not in logged


def test_relay_down_is_retried_later_then_delivered(
    database: Database, smtp_server: ServerFactory
) -> None:
    server = smtp_server("plain")
    port = server.port
    server.stop()
    use_relay(database, server, RetryBackoff="60")
    notify.enqueue_run(database, DEFAULT_CATALOG, failing_report(), now=lambda: T0)
    first = notify.deliver_pending(database, now=lambda: T0)
    assert [a.outcome for a in first.attempts] == ["retry"]
    assert first.pending == 1
    not_yet = notify.deliver_pending(database, now=lambda: T0 + datetime.timedelta(seconds=30))
    assert not_yet.attempts == []  # backing off: no attempt before the next time
    back = smtp_server("plain", port=port)
    later = notify.deliver_pending(database, now=lambda: T0 + datetime.timedelta(seconds=61))
    assert [a.outcome for a in later.attempts] == ["sent"]
    assert len(back.received) == 1
    assert [d.outcome for d in notify.deliveries(database)] == ["sent", "retry"]


def test_delivery_gives_up_after_max_attempts(database: Database, smtp_server: ServerFactory) -> None:
    server = smtp_server("plain")
    server.stop()
    use_relay(database, server, RetryBackoff="1", MaxAttempts="3")
    notify.enqueue_run(database, DEFAULT_CATALOG, failing_report(), now=lambda: T0)
    outcomes = []
    for minute in range(5):
        report = notify.deliver_pending(database, now=clock(T0 + datetime.timedelta(minutes=minute)))
        outcomes += [a.outcome for a in report.attempts]
    assert outcomes == ["retry", "retry", "failed"]
    assert "gave up after 3 attempts" in (notify.deliveries(database)[0].error or "")


def test_manual_run_and_unconfigured_channels_queue_nothing(database: Database) -> None:
    manual = RunReport("manual", failing_report().outcomes)
    assert notify.enqueue_run(database, DEFAULT_CATALOG, manual) == 0
    assert notify.enqueue_run(database, DEFAULT_CATALOG, failing_report()) == 0  # no relay, no receiver
    results = notify.send_test(database, mail=False, trap=False)
    assert [(r.channel, r.outcome) for r in results] == [("mail", "failed"), ("trap", "failed")]
    assert "not configured" in (results[0].error or "")
