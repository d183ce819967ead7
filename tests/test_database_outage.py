"""A real PostgreSQL cluster stopped under a run: the run goes on without it (installs and the
restart owed), the failures it could not record are spooled durably in the state directory
(CLI and daemon alike) and written — and notified — once it is back; a scheduled run that
fell in the outage is caught up."""

from __future__ import annotations

import datetime
import json
import signal
import stat
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest

from imss_updater import config
from imss_updater.catalog import DEFAULT_CATALOG
from imss_updater.daemon import backlog
from imss_updater.daemon.loop import Daemon
from imss_updater.daemon.planning import CATCH_UP_JOB_ID
from imss_updater.database.db import NewEvent
from imss_updater.database.embedded_db import EmbeddedDatabase
from imss_updater.store import install
from imss_updater.store.spool import SPOOL_NAME, EventSpool
from tests.support import pg
from tests.support.daemon import DaemonFactory, wait_until
from tests.support.gateway import Gateway
from tests.support.smtp import ServerFactory


@pytest.fixture
def own_cluster(gateway: Gateway) -> Iterator[EmbeddedDatabase]:
    """The gateway moved onto a cluster of its own, so that the test may stop it."""
    with pg.own_cluster(gateway, "imss-pg-outage-") as cluster:
        yield cluster


def kill_database(cluster: EmbeddedDatabase) -> None:
    """Stop the cluster at once, as a crash would (open sessions see their connection die)."""
    pg.stop_immediately(cluster)


def on_disk(gateway: Gateway, component_id: str) -> str | None:
    component = next(c for c in DEFAULT_CATALOG if c.id == component_id)
    current = install.ComponentStore(gateway.root, component.id, component.live_path).state().current
    return current.version if current else None


def spool_lines(state: Path) -> list[dict[str, object]]:
    path = state / SPOOL_NAME
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def publish_two_patterns_slowly(gateway: Gateway) -> None:
    """Two components to update; the first payload waits 3 s, long enough to stop the
    database after the run has read it and before it records anything of the installs."""
    gateway.tree.add_pattern("P.4", "1569700")
    gateway.tree.add_pattern("P.8", "240100")
    gateway.publish()
    gateway.set("Update", "ReadTimeout", "20")
    gateway.server.set_delay(3.0, "/" + gateway.tree.entries["P.4"].path)


def test_the_spool_is_private_durable_and_keeps_each_event_time(tmp_path: Path, gateway: Gateway) -> None:
    spool = EventSpool(tmp_path / "state")
    then = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
    spool.append(NewEvent("scheduled", "virus_pattern", "15.697.00", "failure", "m", "mj", "why", then),
                 notify=False)
    with spool.path.open("ab") as torn:
        torn.write(b'{"id": "half a line')  # a crash in the middle of an append
    spool.append(NewEvent("manual", "spyware_pattern", None, "failure", "m2", "mj2", "why2"), notify=False)
    assert stat.S_IMODE(spool.path.stat().st_mode) == 0o600
    assert [entry.event.component for entry in spool.pending()] == ["virus_pattern", "spyware_pattern"]
    with gateway.database() as database:
        assert backlog.flush(spool, database) == 2
        events = {event.component: event for event in database.events(outcome="failure")}
    assert events["virus_pattern"].time == then
    assert events["spyware_pattern"].reason == "why2"
    assert spool.path.stat().st_size == 0
    with gateway.database() as database:
        assert backlog.flush(spool, database) == 0  # nothing twice


def test_cli_update_goes_on_without_the_database_and_spools_its_failures(
    gateway: Gateway, own_cluster: EmbeddedDatabase, tmp_path: Path
) -> None:
    state = tmp_path / "cli-state"
    publish_two_patterns_slowly(gateway)
    process = gateway.spawn("update", "--all", "--state", str(state))
    wait_until(lambda: gateway.server.requests_for("/server.ini"), what="the index read")
    kill_database(own_cluster)
    _stdout, stderr = process.communicate(timeout=60)

    assert process.returncode == 1
    assert len(stderr.splitlines()) == 1 and "Traceback" not in stderr
    # Fail closed: a package is installed only after its trust memory (SPEC 3.1: replay
    # memory, signature pin) was checked, which needs the database; each component was
    # still tried and failed with its own reason, and nothing was left half done.
    assert on_disk(gateway, "virus_pattern") is None
    assert on_disk(gateway, "spyware_pattern") is None
    assert gateway.restarts() == []
    kept = [line for line in spool_lines(state) if "event" in line]
    assert {line["event"]["component"] for line in kept} == {"virus_pattern", "spyware_pattern"}  # type: ignore[index]
    assert stat.S_IMODE((state / SPOOL_NAME).stat().st_mode) == 0o600

    own_cluster.start()
    assert gateway.cli("status", "--state", str(state)).code == 0  # any command writes them
    with gateway.database() as database:
        reasons = {event.component: event.reason for event in database.events(outcome="failure")}
    assert set(reasons) == {"virus_pattern", "spyware_pattern"}
    assert all("database" in (r or "") for r in reasons.values())
    assert (state / SPOOL_NAME).stat().st_size == 0
    # With the database back the next run installs both, with one restart.
    assert gateway.cli("update", "--all", "--state", str(state)).code == 0
    with gateway.database() as database:
        assert database.component_states()["virus_pattern"].current_version == "1569700"
    assert gateway.restarts() == ["scan"]


def test_daemon_killed_during_an_outage_loses_no_failure_and_mails_it_when_the_database_is_back(
    gateway: Gateway, own_cluster: EmbeddedDatabase, start_daemon: DaemonFactory,
    smtp_server: ServerFactory, tmp_path: Path,
) -> None:
    relay = smtp_server("plain")
    with gateway.database() as database:
        for name, value in {"SMTPServer": relay.host, "SMTPPort": str(relay.port),
                            "MailFrom": "imss@gw1.example", "MailTo": "ops@example.com",
                            }.items():
            database.set_setting("Notification", name, value)
        database.set_setting("Update", "RandomDelaySeconds", "0")
    publish_two_patterns_slowly(gateway)
    state = tmp_path / "state"  # start_daemon's IMSS_STATE
    first = start_daemon(gateway)  # never ran: the missed run starts at once
    wait_until(lambda: gateway.server.requests_for("/server.ini"), what="the index read")
    kill_database(own_cluster)
    wait_until(lambda: len([line for line in spool_lines(state) if "event" in line]) == 2,
               timeout=60, what="both failures spooled")
    first.signal(signal.SIGKILL)  # everything in memory is gone
    first.process.wait()
    assert relay.received == []

    own_cluster.start()
    second = start_daemon(gateway)
    wait_until(lambda: relay.received, timeout=60, what="the failure mail")
    assert second.stop()[0] == 0
    message = relay.received[0].message
    assert message["Subject"].endswith("Pattern file update FAILED")
    body = message.get_content()
    assert "Virus Pattern 15.697.00: update failed" in body and "Spyware" in body
    assert "database" in body.split("Reason:", 1)[1]
    with gateway.database() as database:
        assert {e.component for e in database.events(outcome="failure")} == {"virus_pattern",
                                                                            "spyware_pattern"}
    assert (state / SPOOL_NAME).stat().st_size == 0
    assert len(relay.received) == 1


def test_a_scheduled_run_that_falls_in_an_outage_is_caught_up_when_the_database_is_back(
    gateway: Gateway, own_cluster: EmbeddedDatabase, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    gateway.tree.add_pattern("P.4", "1569700")
    gateway.publish()
    bootstrap = config.from_environment(
        {}, {"dsn": gateway.dsn, "root": str(gateway.root), "state": str(tmp_path / "state"),
             "web": "127.0.0.1:1"},
    )
    daemon = Daemon(bootstrap, None, timezone=datetime.UTC)  # its loop driven by hand
    daemon.tick()
    kill_database(own_cluster)
    daemon.job()  # the scheduled run fires during the outage
    daemon.tick()
    assert daemon.scheduler.get_job(CATCH_UP_JOB_ID) is None  # not while it is down
    own_cluster.start()
    caplog.set_level("INFO")
    daemon.tick()
    catch_up = daemon.scheduler.get_job(CATCH_UP_JOB_ID)
    assert catch_up is not None
    assert "missed during its outage" in caplog.text
    catch_up.func()
    assert on_disk(gateway, "virus_pattern") == "1569700"
    assert gateway.events() == [("scheduled", "virus_pattern", "15.697.00", "success")]


def test_a_console_run_keeps_the_failures_the_database_refuses_in_the_spool(
    gateway: Gateway, refused_port: int, tmp_path: Path
) -> None:
    from imss_updater.web import RunMetrics
    from imss_updater.web.jobs import JobRunner

    for name in ("UpdateServer", "TMASEServerurl"):
        gateway.set("Update", name, f"http://127.0.0.1:{refused_port}/activeupdate")
    connection = psycopg2.connect(gateway.dsn)
    with connection, connection.cursor() as cursor:  # a real refusal, as a full disk would
        cursor.execute("CREATE FUNCTION refuse_event() RETURNS trigger AS $$ BEGIN"
                       " RAISE EXCEPTION 'No space left on device (injected fault)'; END $$"
                       " LANGUAGE plpgsql")
        cursor.execute("CREATE TRIGGER refuse_event BEFORE INSERT ON tb_update_event"
                       " FOR EACH ROW EXECUTE FUNCTION refuse_event()")
    connection.close()
    state = tmp_path / "console-state"
    runner = JobRunner(gateway.dsn, gateway.root, RunMetrics(), spool=EventSpool(state))

    runner.start("update", ["virus_pattern"])

    assert runner.wait(60)
    kept = [line["event"] for line in spool_lines(state) if "event" in line]
    assert [event["component"] for event in kept] == ["virus_pattern"]  # type: ignore[index]
