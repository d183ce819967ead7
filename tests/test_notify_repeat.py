"""Flood control (RepeatFailureHours) and recovered messages (NotifyRecovery): the pure
decision, then whole outages on a simulated clock against a real database and relay."""

from __future__ import annotations

import datetime
from collections import Counter
from collections.abc import Iterator

import pytest

from imss_updater import notify
from imss_updater.catalog import DEFAULT_CATALOG
from imss_updater.database.db import Database
from imss_updater.notify import config, events, repeat
from imss_updater.run.updater import Outcome, RunReport
from tests.support.smtp import ServerFactory, SmtpServer
from tests.support.snmp import ReceiverFactory

T0 = datetime.datetime(2026, 11, 22, 3, 0, tzinfo=datetime.UTC)
EVERY_15_MINUTES = datetime.timedelta(minutes=15)
HOUR = datetime.timedelta(hours=1)


@pytest.fixture
def database(db_dsn: str) -> Iterator[Database]:
    with Database(db_dsn) as database:
        database.init()
        yield database


def use_relay(database: Database, server: SmtpServer, **extra: str) -> None:
    values = {"SMTPServer": server.host, "SMTPPort": str(server.port), "MailFrom": "imss@gw1.example",
              "MailTo": "ops@example.com", "SMTPTimeout": "5", **extra}
    for name, value in values.items():
        database.set_setting("Notification", name, value)


def outage(reason: str = "update source unreachable: connection refused") -> RunReport:
    """A run during an outage of the source: a pattern and an engine fail."""
    return RunReport("scheduled", [
        Outcome("virus_pattern", None, False, "m", reason),
        Outcome("virus_engine", None, False, "m", reason),
    ])


def up_to_date() -> RunReport:
    return RunReport("scheduled", [], up_to_date=True)


def queued(database: Database) -> list[tuple[str, str, str]]:
    """(group, outcome, channel) of every notification queued so far."""
    with database.transaction() as cursor:
        cursor.execute("SELECT event_group, outcome, channel FROM tb_notification ORDER BY id")
        return [tuple(row) for row in cursor.fetchall()]


def simulate(database: Database, reports: list[RunReport], start: datetime.datetime = T0) -> None:
    for index, report in enumerate(reports):
        moment = start + index * EVERY_15_MINUTES
        notify.enqueue_run(database, DEFAULT_CATALOG, report, now=lambda moment=moment: moment)


# -- the pure decision ----------------------------------------------------------------------


def memory_of(reason: str, last: datetime.datetime) -> dict[repeat.Key, repeat.Notified]:
    return {("pattern", "virus_pattern"): repeat.Notified("pattern", "virus_pattern", reason, T0, last)}


def test_same_failure_is_due_again_only_after_repeat_failure_hours() -> None:
    [last] = memory_of("source unreachable", T0).values()
    assert repeat.is_due(None, "source unreachable", T0, 24)
    assert not repeat.is_due(last, "source unreachable", T0 + 23 * HOUR, 24)
    assert repeat.is_due(last, "source unreachable", T0 + 24 * HOUR, 24)
    assert repeat.is_due(last, "signature invalid", T0 + HOUR, 24)  # another failure
    assert repeat.is_due(last, "source unreachable", T0 + EVERY_15_MINUTES, 0)  # 0: every run


def test_reasons_that_differ_only_in_a_date_or_time_are_the_same_failure() -> None:
    assert repeat.reason_key("source asks to wait until 2026-11-22 04:00:00 +0900") == repeat.reason_key(
        "source asks to wait until 2026-11-22 05:15:00 +0900"
    )
    assert repeat.reason_key("HTTP 503 until 04:00 UTC") == repeat.reason_key("HTTP 503 until 05:30 UTC")
    assert repeat.reason_key("HTTP 404") != repeat.reason_key("HTTP 503")


def test_decision_keeps_only_due_failures_and_adds_a_recovered_event() -> None:
    report = RunReport("scheduled", [
        Outcome("virus_pattern", None, False, "m", "source unreachable"),  # notified an hour ago
        Outcome("spyware_pattern", None, False, "m", "source unreachable"),  # new
        Outcome("virus_engine", "21.0.1008", True, "m"),  # its failure was notified: recovered
    ])
    run_events = events.from_run(DEFAULT_CATALOG, report, time=T0 + HOUR, host="gw1", sources={})
    memory = {
        **memory_of("source unreachable", T0),
        ("engine", "virus_engine"): repeat.Notified("engine", "virus_engine", "size mismatch", T0, T0),
    }
    decision = repeat.decide(run_events, [], memory, T0 + HOUR, repeat.Policy(24, True), host="gw1",
                             sources={})
    shown = [(e.group, e.outcome, [i.component for i in e.items]) for e in decision.events]
    assert shown == [
        ("pattern", "failure", ["spyware_pattern"]),
        ("engine", "success", ["virus_engine"]),
        ("engine", "recovered", ["virus_engine"]),
    ]
    assert decision.events[-1].items[0].reason == "size mismatch"  # the failure that ended
    assert decision.held_back == [("pattern", "virus_pattern")]
    assert [n.key for n in decision.remember] == [("pattern", "spyware_pattern")]
    assert decision.forget == [("engine", "virus_engine")]


def test_settings_loader_reads_both_flood_control_rows_and_reports_a_bad_one() -> None:
    rows = {("Notification", "RepeatFailureHours"): "6", ("Notification", "NotifyRecovery"): "no"}
    settings, _problems = config.load(rows, host="gw1")
    assert (settings.repeat_failure_hours, settings.notify_recovery) == (6, False)
    defaults, _problems = config.load({}, host="gw1")
    assert (defaults.repeat_failure_hours, defaults.notify_recovery) == (24, True)
    _settings, problems = config.load({("Notification", "RepeatFailureHours"): "daily"}, host="gw1")
    assert [str(p) for p in problems if p.name == "RepeatFailureHours"] == [
        "Notification/RepeatFailureHours: must be a whole number (value 'daily')"
    ]


# -- outages against the database -----------------------------------------------------------


def test_a_day_long_outage_at_the_15_minute_schedule_sends_at_most_two_messages_per_group(
    database: Database, smtp_server: ServerFactory
) -> None:
    relay = smtp_server("plain")
    use_relay(database, relay)
    simulate(database, [outage()] * 96 + [up_to_date()])  # 24 hours of failed runs, then one good
    per_group = Counter(group for group, _outcome, _channel in queued(database))
    assert per_group == {"pattern": 2, "engine": 2}
    assert sorted(queued(database)) == [
        ("engine", "failure", "mail"), ("engine", "recovered", "mail"),
        ("pattern", "failure", "mail"), ("pattern", "recovered", "mail"),
    ]
    assert notify.deliver_pending(database, now=lambda: T0 + 25 * HOUR).sent == 4
    subjects = sorted(received.message["Subject"].split("] ", 1)[1] for received in relay.received)
    assert subjects == ["Pattern file update FAILED", "Pattern file update recovered",
                        "Scan engine update FAILED", "Scan engine update recovered"]
    [recovered] = [r for r in relay.received if r.message["Subject"].endswith("file update recovered")]
    body = recovered.message.get_content()
    assert "Virus Pattern" in body and "updated successfully again" in body
    assert "Last failure: update source unreachable: connection refused" in body


def test_without_the_rule_every_failed_run_sends_again(
    database: Database, smtp_server: ServerFactory
) -> None:
    use_relay(database, smtp_server("plain"), RepeatFailureHours="0")
    simulate(database, [outage()] * 8)
    assert Counter(group for group, _o, _c in queued(database)) == {"pattern": 8, "engine": 8}


def test_the_same_failure_is_sent_again_once_repeat_failure_hours_have_passed(
    database: Database, smtp_server: ServerFactory
) -> None:
    use_relay(database, smtp_server("plain"), RepeatFailureHours="6")
    simulate(database, [outage()] * 25)  # 6 hours and 15 minutes: t=0 and t=6h
    assert Counter(outcome for _g, outcome, _c in queued(database)) == {"failure": 4}


def test_a_new_reason_during_an_outage_is_sent_at_once(
    database: Database, smtp_server: ServerFactory
) -> None:
    use_relay(database, smtp_server("plain"))
    simulate(database, [outage()] * 3 + [outage("signature invalid: unknown signer")] * 3)
    assert len(queued(database)) == 4  # each group: the first failure, then the new one


def test_recovery_is_notified_in_japanese_on_the_failure_channels_with_success_messages_off(
    database: Database, smtp_server: ServerFactory
) -> None:
    relay = smtp_server("plain")
    use_relay(database, relay, Language="ja", PatternUpdateSuccessMail="no")
    pattern_fails = RunReport("scheduled", [Outcome("virus_pattern", None, False, "m", "接続できません")])
    pattern_works = RunReport("scheduled", [Outcome("virus_pattern", "15.698.00", True, "m")])
    simulate(database, [pattern_fails, pattern_works, pattern_works])
    assert [(g, o) for g, o, _c in queued(database)] == [("pattern", "failure"), ("pattern", "recovered")]
    notify.deliver_pending(database, now=lambda: T0 + HOUR)
    recovered = relay.received[1].message
    assert recovered["Subject"].endswith("パターンファイルのアップデートが復旧しました")
    body = recovered.get_content()
    assert "15.698.00: 再び正常にアップデートできました" in body
    assert "前回の失敗: 接続できません" in body


def test_notify_recovery_no_sends_no_recovered_message_but_a_later_failure_is_sent_at_once(
    database: Database, smtp_server: ServerFactory
) -> None:
    use_relay(database, smtp_server("plain"), NotifyRecovery="no")
    simulate(database, [outage(), up_to_date(), outage()])
    assert [o for _g, o, _c in queued(database)] == ["failure", "failure", "failure", "failure"]


def test_a_run_that_did_not_go_through_does_not_count_as_recovery(
    database: Database, smtp_server: ServerFactory
) -> None:
    use_relay(database, smtp_server("plain"))
    skipped = RunReport("scheduled", [])  # neither outcomes nor "up to date": nothing was checked
    simulate(database, [outage(), skipped, outage()])
    assert [(g, o) for g, o, _c in queued(database)] == [("pattern", "failure"), ("engine", "failure")]


def test_a_component_without_an_outcome_in_a_run_that_went_through_has_recovered(
    database: Database, smtp_server: ServerFactory
) -> None:
    use_relay(database, smtp_server("plain"))
    pattern_updated = RunReport("scheduled", [Outcome("virus_pattern", "15.698.00", True, "m")])
    simulate(database, [outage(), pattern_updated])  # the engine was checked: already up to date
    recovered = [(g, o) for g, o, _c in queued(database)][2:]
    assert recovered == [("pattern", "recovered"), ("engine", "recovered")]


def test_a_failure_nobody_was_told_about_is_not_remembered(
    database: Database, smtp_server: ServerFactory
) -> None:
    relay = smtp_server("plain")
    simulate(database, [outage()])  # no relay configured yet: nobody was told
    use_relay(database, relay)
    simulate(database, [outage(), up_to_date()], start=T0 + HOUR)
    assert [(g, o) for g, o, _c in queued(database)] == [
        ("pattern", "failure"), ("engine", "failure"), ("pattern", "recovered"), ("engine", "recovered"),
    ]


def test_the_recovered_trap_is_decoded_with_the_mib(
    database: Database, trap_receiver: ReceiverFactory
) -> None:
    receiver = trap_receiver()
    for name, value in {"SNMPServer": receiver.address, "SNMPTimeout": "1", "SNMPRetries": "0"}.items():
        database.set_setting("Notification", name, value)
    engine_fails = RunReport("scheduled", [Outcome("virus_engine", None, False, "m", "size mismatch")])
    simulate(database, [engine_fails, up_to_date()])
    assert notify.deliver_pending(database, now=lambda: T0 + HOUR).sent == 2
    log = receiver.wait_for("imssUpdaterEventOutcome.0 = INTEGER: recovered(6)")
    assert 'imssUpdaterComponentId.1 = STRING: "virus_engine"' in log
    assert "imssUpdaterComponentOutcome.1 = INTEGER: recovered(6)" in log
    assert 'imssUpdaterComponentReason.1 = STRING: "size mismatch"' in log
