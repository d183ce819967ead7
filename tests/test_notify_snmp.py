"""SNMP notifications received and decoded by Debian's snmptrapd with the shipped MIB."""

from __future__ import annotations

import asyncio
import datetime
import shutil
import subprocess
from collections.abc import Iterator

import pytest

from imss_updater import notify
from imss_updater.catalog import DEFAULT_CATALOG
from imss_updater.database.db import Database
from imss_updater.fleet import watch
from imss_updater.notify import snmp
from imss_updater.run.updater import Outcome, RunReport
from tests.support.snmp import (
    MIB_DIR,
    SENDER_ENGINE_ID,
    V3_AUTH,
    V3_PRIV,
    V3_USER,
    ReceiverFactory,
    TrapReceiver,
    free_udp_port,
)

# Until the root conftest registers them (tests.support.smtp / tests.support.snmp):
T0 = datetime.datetime(2026, 11, 22, 3, 0, tzinfo=datetime.UTC)
MIB = "IMSS-UPDATER-MIB"


@pytest.fixture
def database(db_dsn: str) -> Iterator[Database]:
    with Database(db_dsn) as database:
        database.init()
        yield database


def use_receivers(database: Database, *receivers: str, **extra: str) -> None:
    values = {"SNMPServer": ", ".join(receivers), "SNMPTimeout": "1", "SNMPRetries": "0", **extra}
    for name, value in values.items():
        database.set_setting("Notification", name, value)


def use_v3(database: Database) -> None:
    for name, value in {
        "SNMPVersion": "3", "SNMPv3User": V3_USER, "SNMPv3AuthPassword": V3_AUTH,
        "SNMPv3PrivPassword": V3_PRIV, "SNMPv3EngineID": SENDER_ENGINE_ID,
    }.items():
        database.set_setting("Notification", name, value)


def engine_failure() -> RunReport:
    return RunReport("scheduled", [
        Outcome("virus_engine", "21.0.1008", False, "m", "size mismatch: got 10 bytes"),
        Outcome("url_filter_engine", None, False, "m", "update source unreachable"),
    ])


def assert_engine_failure_decoded(receiver: TrapReceiver) -> None:
    log = receiver.wait_for(f"{MIB}::imssUpdaterComponentReason.2")
    assert f"{MIB}::imssUpdaterUpdateEvent" in log
    assert f'{MIB}::imssUpdaterEventGroup.0 = INTEGER: engine(2)' in log
    assert f'{MIB}::imssUpdaterEventOutcome.0 = INTEGER: failure(2)' in log
    assert f'{MIB}::imssUpdaterComponentId.1 = STRING: "virus_engine"' in log
    assert f'{MIB}::imssUpdaterComponentName.1 = STRING: "Virus Scan Engine"' in log
    assert f'{MIB}::imssUpdaterComponentVersion.1 = STRING: "21.0.1008"' in log
    assert f'{MIB}::imssUpdaterComponentReason.1 = STRING: "size mismatch: got 10 bytes"' in log
    assert f'{MIB}::imssUpdaterComponentId.2 = STRING: "url_filter_engine"' in log
    assert f'{MIB}::imssUpdaterComponentReason.2 = STRING: "update source unreachable"' in log


def test_v2c_trap_is_decoded_with_component_version_and_reason(
    database: Database, trap_receiver: ReceiverFactory
) -> None:
    receiver = trap_receiver()
    use_receivers(database, receiver.address)
    assert notify.enqueue_run(database, DEFAULT_CATALOG, engine_failure(), now=lambda: T0) == 1
    report = notify.deliver_pending(database, now=lambda: T0)
    attempts = [(a.channel, a.recipient, a.outcome) for a in report.attempts]
    assert attempts == [("trap", receiver.address, "sent")]
    assert_engine_failure_decoded(receiver)


def test_v3_authpriv_trap_reaches_every_receiver(database: Database, trap_receiver: ReceiverFactory) -> None:
    first, second = trap_receiver(), trap_receiver()
    use_receivers(database, first.address, second.address)
    use_v3(database)
    assert notify.enqueue_run(database, DEFAULT_CATALOG, engine_failure(), now=lambda: T0) == 2
    report = notify.deliver_pending(database, now=lambda: T0)
    assert [a.outcome for a in report.attempts] == ["sent", "sent"]
    for receiver in (first, second):
        assert_engine_failure_decoded(receiver)
    logged = " ".join(str(d.error) for d in notify.deliveries(database))
    assert V3_AUTH not in logged and V3_PRIV not in logged


def test_inform_to_a_receiver_that_is_down_is_retried_then_acknowledged(
    database: Database, trap_receiver: ReceiverFactory
) -> None:
    port = free_udp_port()
    use_receivers(database, f"127.0.0.1:{port}", SNMPNotifyType="inform", RetryBackoff="60")
    use_v3(database)
    notify.enqueue_run(database, DEFAULT_CATALOG, engine_failure(), now=lambda: T0)
    first = notify.deliver_pending(database, now=lambda: T0)
    assert [a.outcome for a in first.attempts] == ["retry"]
    # pysnmp's own timeout, or ours when a loaded machine is slower than pysnmp's retries
    error = first.attempts[0].error or ""
    assert "No SNMP response" in error or "no answer within" in error, error
    receiver = trap_receiver(port=port)
    later = notify.deliver_pending(database, now=lambda: T0 + datetime.timedelta(seconds=61))
    assert [a.outcome for a in later.attempts] == ["sent"], later.attempts
    assert_engine_failure_decoded(receiver)


def test_test_trap_is_sent_to_each_receiver(database: Database, trap_receiver: ReceiverFactory) -> None:
    receiver = trap_receiver()
    use_receivers(database, receiver.address)
    results = notify.send_test(database, mail=False, trap=True)
    assert [(r.channel, r.outcome) for r in results] == [("trap", "sent")]
    log = receiver.wait_for(f"{MIB}::imssUpdaterTestEvent")
    assert f"{MIB}::imssUpdaterEventOutcome.0 = INTEGER: test(5)" in log


def test_a_node_down_trap_names_the_node_and_its_last_heartbeat(
    db_dsn: str, database: Database, trap_receiver: ReceiverFactory
) -> None:
    receiver = trap_receiver()
    use_receivers(database, receiver.address)
    with Database(db_dsn, node="gw-b") as member:
        member.ensure_node()
    with database.transaction() as cursor:
        cursor.execute("UPDATE tb_fleet_node SET heartbeat = now() - interval '5 minutes'"
                       " WHERE node = 'gw-b'")
    (change,) = watch.report_nodes(database)
    report = notify.deliver_pending(database)
    assert [(a.channel, a.outcome) for a in report.attempts] == [("trap", "sent")]
    log = receiver.wait_for(f"{MIB}::imssUpdaterComponentReason.1")
    assert f"{MIB}::imssUpdaterNodeEvent" in log
    assert f"{MIB}::imssUpdaterEventOutcome.0 = INTEGER: nodeDown(7)" in log
    assert f"{MIB}::imssUpdaterEventGroup.0 = INTEGER: none(0)" in log
    assert f'{MIB}::imssUpdaterComponentId.1 = STRING: "gw-b"' in log
    assert f"{MIB}::imssUpdaterComponentOutcome.1 = INTEGER: nodeDown(7)" in log
    assert change.heartbeat.astimezone().strftime("%Y-%m-%d %H:%M:%S") in log


def translate(*args: str) -> str:
    done = subprocess.run(
        ["snmptranslate", "-M", str(MIB_DIR), "-m", MIB, *args],
        capture_output=True, text=True, check=True, env={"MIBS": "", "PATH": "/usr/bin:/bin"},
    )
    return done.stdout.strip()


@pytest.mark.skipif(shutil.which("snmptranslate") is None, reason="net-snmp's snmptranslate missing")
def test_mib_loads_in_net_snmp_and_matches_the_oids_sent() -> None:
    names = {
        "imssUpdaterUpdateEvent": snmp.NOTIFICATIONS["update"],
        "imssUpdaterStaleEvent": snmp.NOTIFICATIONS["stale"],
        "imssUpdaterTestEvent": snmp.NOTIFICATIONS["test"],
        "imssUpdaterNodeEvent": snmp.NOTIFICATIONS["node"],
        "imssUpdaterEventGroup": snmp.SCALARS["group"],
        "imssUpdaterEventOutcome": snmp.SCALARS["outcome"],
        "imssUpdaterHost": snmp.SCALARS["host"],
        "imssUpdaterEventTime": snmp.SCALARS["time"],
        "imssUpdaterSummary": snmp.SCALARS["summary"],
        "imssUpdaterComponentId": snmp.COLUMNS["id"],
        "imssUpdaterComponentName": snmp.COLUMNS["name"],
        "imssUpdaterComponentVersion": snmp.COLUMNS["version"],
        "imssUpdaterComponentOutcome": snmp.COLUMNS["outcome"],
        "imssUpdaterComponentReason": snmp.COLUMNS["reason"],
    }
    for name, oid in names.items():
        assert translate("-On", f"{MIB}::{name}") == "." + ".".join(map(str, oid)), name
    tree = translate("-Tp", f"{MIB}::imssUpdaterMIB")
    values = ", ".join(f"{name}({number})" for name, number in (
        ("success", 1), ("failure", 2), ("stale", 3), ("fresh", 4), ("test", 5), ("recovered", 6),
        ("nodeDown", 7), ("nodeUp", 8)))
    assert f"Values: {values}\n" in tree + "\n"
    assert (snmp.OUTCOME_VALUES["down"], snmp.OUTCOME_VALUES["up"]) == (7, 8)
    assert "Values: none(0), pattern(1), engine(2), spam(3)" in tree


def test_trap_can_be_sent_from_a_thread_that_already_runs_an_event_loop(
    database: Database, trap_receiver: ReceiverFactory
) -> None:
    receiver = trap_receiver()
    use_receivers(database, receiver.address)

    async def inside_a_loop() -> list[notify.AttemptResult]:
        return notify.send_test(database, mail=False, trap=True)

    [result] = asyncio.run(inside_a_loop())
    assert result.outcome == "sent", result.error
    receiver.wait_for(f"{MIB}::imssUpdaterTestEvent")
