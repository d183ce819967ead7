"""Real daemon processes: start, signal, stop; settings changes; database faults."""

from __future__ import annotations

import datetime
import json
import logging
import os
import shutil
import signal
import subprocess
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg2
import pytest

from imss_updater import config
from imss_updater.daemon import loop, planning
from imss_updater.database.db import Database
from imss_updater.database.embedded_db import find_server_bin
from imss_updater.store import lock
from tests.support.daemon import DaemonFactory, wait_until
from tests.support.gateway import Gateway
from tests.support.pg import create_database, make_state_dir, start_cluster
from tests.support.servers import ServerFactory


def quick(gateway: Gateway, *, just_ran: bool = False) -> None:
    """No random delay, so tests see runs at once; ``just_ran``: the schedule ran a moment
    ago, so the daemon does not start with a missed run."""
    gateway.set("Update", "RandomDelaySeconds", "0")
    if just_ran:
        with gateway.database() as database:
            database.record_scheduled_run(datetime.datetime.now(datetime.UTC))


def current(gateway: Gateway, component: str) -> str | None:
    with gateway.database() as database:
        return database.component_states()[component].current_version


def test_daemon_reports_ready_feeds_the_watchdog_and_stops_cleanly(
    gateway: Gateway, start_daemon: DaemonFactory
) -> None:
    quick(gateway)
    daemon = start_daemon(gateway, env={"WATCHDOG_USEC": "3000000"})
    wait_until(lambda: "READY=1" in daemon.notify.messages, what="READY=1")
    wait_until(lambda: daemon.notify.messages.count("WATCHDOG=1") >= 3, timeout=15, what="watchdog pings")
    code, seconds = daemon.stop()
    assert code == 0
    assert seconds < 10
    assert "STOPPING=1" in daemon.notify.messages


def test_a_never_run_schedule_runs_once_soon_after_start(
    gateway: Gateway, start_daemon: DaemonFactory
) -> None:
    quick(gateway)
    gateway.tree.add_pattern("P.4", "1569700")
    gateway.publish()
    daemon = start_daemon(gateway)
    wait_until(lambda: current(gateway, "virus_pattern") == "1569700", what="the first run")
    assert "first start: the first scheduled update runs at" in daemon.log()
    assert "was missed" not in daemon.log()  # a new install missed nothing
    assert daemon.stop()[0] == 0
    assert gateway.events() == [("scheduled", "virus_pattern", "15.697.00", "success")]


def test_a_run_missed_while_the_daemon_was_down_is_said_and_run_once(
    gateway: Gateway, start_daemon: DaemonFactory
) -> None:
    quick(gateway)
    with gateway.database() as database:
        database.record_scheduled_run(datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=2))
    gateway.tree.add_pattern("P.4", "1569700")
    gateway.publish()
    daemon = start_daemon(gateway)
    wait_until(lambda: current(gateway, "virus_pattern") == "1569700", what="the missed run")
    assert "was missed while the updater was down" in daemon.log()
    assert daemon.stop()[0] == 0


def test_a_schedule_that_just_ran_is_not_run_again_at_start(
    gateway: Gateway, start_daemon: DaemonFactory
) -> None:
    quick(gateway, just_ran=True)
    gateway.tree.add_pattern("P.4", "1569700")
    gateway.publish()
    daemon = start_daemon(gateway)
    wait_until(lambda: "next run at" in daemon.log(), what="the plan")
    assert daemon.stop()[0] == 0
    assert current(gateway, "virus_pattern") is None
    with gateway.database() as database:
        status = database.run_status()
    assert status.next_run_at is not None
    assert status.next_run_at.minute % 15 == 0


def test_sigusr1_starts_a_scheduled_update_now(gateway: Gateway, start_daemon: DaemonFactory) -> None:
    quick(gateway, just_ran=True)
    daemon = start_daemon(gateway)
    wait_until(lambda: "READY=1" in daemon.notify.messages, what="READY=1")
    gateway.tree.add_pattern("P.4", "1569700")
    gateway.publish()
    daemon.signal(signal.SIGUSR1)
    wait_until(lambda: current(gateway, "virus_pattern") == "1569700", what="the signalled run")
    # the new version is recorded as installed a moment before the scan service restarts
    wait_until(lambda: gateway.restarts() == ["scan"], what="the scan service's restart")
    assert daemon.stop()[0] == 0
    assert gateway.restarts() == ["scan"]


def test_verbatim_psql_switch_to_https_is_used_by_the_running_daemon(
    gateway: Gateway, start_daemon: DaemonFactory, https_server: ServerFactory, test_ca_file: Path,
    pg_cluster,  # type: ignore[no-untyped-def]
) -> None:
    quick(gateway, just_ran=True)
    gateway.set("Update", "CAFile", str(test_ca_file))
    gateway.tree.add_pattern("P.4", "1569700")
    gateway.publish()
    secure = https_server(gateway.tree.directory)
    daemon = start_daemon(gateway)
    wait_until(lambda: "READY=1" in daemon.notify.messages, what="READY=1")
    dbname = psycopg2.extensions.parse_dsn(gateway.dsn)["dbname"]
    statement = (
        f"UPDATE tb_global_setting SET value = '{secure.base_url}' "
        "WHERE section = 'Update' AND ( name = 'UpdateServer' OR name = 'TMASEServerurl' );"
    )
    psql = subprocess.run(
        ["psql", "-h", "127.0.0.1", "-p", str(pg_cluster.port), dbname, "sa", "-c", statement],
        capture_output=True, text=True, env={**os.environ, "PGPASSFILE": str(pg_cluster.passfile)},
        check=True,
    )
    assert psql.stdout.strip() == "UPDATE 2"
    daemon.signal(signal.SIGUSR1)
    wait_until(lambda: current(gateway, "virus_pattern") == "1569700", what="the run over HTTPS")
    assert secure.requests_for("/server.ini")
    assert not gateway.server.requests_for("/server.ini")
    assert daemon.stop()[0] == 0


def test_schedule_change_in_the_database_replans_within_seconds(
    gateway: Gateway, start_daemon: DaemonFactory
) -> None:
    quick(gateway, just_ran=True)
    daemon = start_daemon(gateway)
    wait_until(lambda: "next run at" in daemon.log(), what="the first plan")
    connection = psycopg2.connect(gateway.dsn)
    with connection, connection.cursor() as cursor:
        cursor.execute("UPDATE tb_global_setting SET value = 'daily' WHERE section = 'Update'"
                       " AND name = 'ScheduleFrequency'")
        cursor.execute("UPDATE tb_global_setting SET value = '04:45' WHERE section = 'Update'"
                       " AND name = 'ScheduleTime'")
    connection.close()

    def planned_daily() -> bool:
        with gateway.database() as database:
            moment = database.run_status().next_run_at
        return moment is not None and (moment.astimezone(datetime.timezone(datetime.timedelta(hours=9)))
                                       .strftime("%H:%M") == "04:45")

    wait_until(planned_daily, timeout=10, what="the new plan (NOTIFY, not the 30 s poll)")
    assert daemon.stop()[0] == 0


def test_invalid_setting_keeps_the_last_good_settings_and_reports_the_row(
    gateway: Gateway, start_daemon: DaemonFactory
) -> None:
    quick(gateway, just_ran=True)
    daemon = start_daemon(gateway)
    wait_until(lambda: "READY=1" in daemon.notify.messages, what="READY=1")
    gateway.set("Update", "ScheduleFrequency", "monthly")  # as psql would: no validation
    gateway.tree.add_pattern("P.4", "1569700")
    gateway.publish()

    def reported() -> bool:
        with gateway.database() as database:
            return "ScheduleFrequency" in (database.run_status().settings_problem or "")

    wait_until(reported, timeout=10, what="the bad row reported")
    daemon.signal(signal.SIGUSR1)
    wait_until(lambda: current(gateway, "virus_pattern") == "1569700", what="a run on the last good settings")
    status = gateway.cli("status", "--json")
    assert status.code == 0
    assert daemon.stop()[0] == 0
    assert daemon.log().count("keeping the last good settings") == 1


def test_sigterm_during_a_stalled_download_stops_within_ten_seconds_and_leaves_nothing(
    gateway: Gateway, start_daemon: DaemonFactory
) -> None:
    quick(gateway)
    gateway.set("Update", "ReadTimeout", "300")
    gateway.tree.add_pattern("P.4", "1569700", size_bytes=8 * 1024 * 1024)
    gateway.publish()
    gateway.server.stall_midway("/" + gateway.tree.entries["P.4"].path)
    staging = gateway.root / "lib" / ".staging"
    daemon = start_daemon(gateway)
    wait_until(lambda: staging.exists() and any(staging.glob("download-*")), what="the download")
    wait_until(lambda: lock.lock_holder(gateway.root) == daemon.pid, what="the lock")
    code, seconds = daemon.stop()
    assert code == 0
    assert seconds < 10
    assert not list(staging.iterdir())
    assert lock.lock_holder(gateway.root) is None
    assert current(gateway, "virus_pattern") is None


def test_database_killed_and_restarted_under_a_running_daemon(
    gateway: Gateway, start_daemon: DaemonFactory
) -> None:
    state = make_state_dir("imss-pg-fault-")
    cluster = start_cluster(state)
    try:
        dsn = create_database(cluster, "faulty")
        with Database(dsn) as database:
            database.init()
            with gateway.database() as original:
                for (section, name), value in original.settings_rows().items():
                    database.set_setting(section, name, value)
            database.set_setting("Update", "RandomDelaySeconds", "0")
            database.record_scheduled_run(datetime.datetime.now(datetime.UTC))
        gateway.dsn = dsn
        daemon = start_daemon(gateway)
        wait_until(lambda: "READY=1" in daemon.notify.messages, what="READY=1")
        subprocess.run(["runuser", "-u", "postgres", "--", str(find_server_bin() / "pg_ctl"), "-D",
                        str(cluster.data_dir), "stop", "-m", "immediate"], check=True, capture_output=True)
        wait_until(lambda: "database unavailable" in daemon.log(), timeout=40, what="the outage noticed")
        daemon.signal(signal.SIGUSR1)  # a run asked for while the database is down
        wait_until(lambda: daemon.log().count("database") >= 2, timeout=10, what="more attempts")
        assert daemon.process.poll() is None
        cluster.start()
        wait_until(lambda: "database available again" in daemon.log(), timeout=90, what="the recovery")
        assert daemon.log().count("database unavailable") == 1  # once per state change
        gateway.tree.add_pattern("P.4", "1569700")
        gateway.publish()
        daemon.signal(signal.SIGUSR1)
        try:
            wait_until(lambda: current(gateway, "virus_pattern") == "1569700", timeout=60, what="catching up")
        except AssertionError:
            print(daemon.log())
            raise
        assert daemon.stop()[0] == 0
    finally:
        cluster.stop()
        shutil.rmtree(state, ignore_errors=True)


def test_run_without_a_dsn_brings_up_and_stops_its_embedded_database(
    start_daemon: DaemonFactory, tmp_path: Path
) -> None:
    from tests.support.pg import free_port

    state = make_state_dir("imss-embedded-")
    try:
        port = free_port()
        environment = {"IMSS_STATE": str(state / "state"), "IMSS_ROOT": str(tmp_path / "root"),
                       "IMSS_DB_PORT": str(port)}
        environment = {**environment, "IMSS_DSN": ""}
        daemon = start_daemon(None, env=environment)
        wait_until(lambda: "READY=1" in daemon.notify.messages, timeout=60, what="READY=1")
        status = subprocess.run(
            ["psql", "-h", "127.0.0.1", "-p", str(port), "-tAc",
             "SELECT value FROM tb_global_setting WHERE section='Update' AND name='ScheduleFrequency'",
             "imss", "sa"],
            capture_output=True, text=True, check=True,
            env={**os.environ, "PGPASSFILE": str(state / "state" / "pgpass")},
        )
        assert status.stdout.strip() == "15min"
        code, _seconds = daemon.stop()
        assert code == 0
        assert "stopping PostgreSQL" in daemon.log()
        payload = subprocess.run(
            ["psql", "-h", "127.0.0.1", "-p", str(port), "-c", "SELECT 1", "imss", "sa"],
            capture_output=True, text=True, env={**os.environ, "PGPASSFILE": str(state / "state" / "pgpass")},
        )
        assert payload.returncode != 0
    finally:
        subprocess.run(["runuser", "-u", "postgres", "--", "true"], check=False)
        shutil.rmtree(state, ignore_errors=True)


def test_status_shows_the_next_run_and_the_daemon(gateway: Gateway, start_daemon: DaemonFactory) -> None:
    quick(gateway, just_ran=True)
    daemon = start_daemon(gateway)
    wait_until(lambda: "next run at" in daemon.log(), what="the plan")

    def shown() -> dict[str, object]:
        return dict(json.loads(gateway.cli("status", "--json").stdout)["daemon"])

    # the plan is logged a moment before the status row that carries it is written
    wait_until(lambda: shown()["pid"] == daemon.pid, what="the daemon's status row")
    assert shown()["next_run"] is not None
    assert daemon.stop()[0] == 0


def test_a_failed_scheduled_run_in_the_daemon_mails_the_administrator(
    gateway: Gateway, start_daemon: DaemonFactory, smtp_server  # type: ignore[no-untyped-def]
) -> None:
    relay = smtp_server("plain")
    quick(gateway)
    for name, value in {"SMTPServer": relay.host, "SMTPPort": str(relay.port),
                        "MailFrom": "imss@gw1.example", "MailTo": "ops@example.com"}.items():
        gateway.set("Notification", name, value)
    gateway.tree.add_pattern("P.4", "1569700")
    gateway.tree.corrupt_payload("P.4")
    gateway.publish()
    daemon = start_daemon(gateway)  # never ran: runs at once
    wait_until(lambda: relay.received, timeout=30, what="the failure mail")
    assert relay.received[0].message["Subject"].endswith("Pattern file update FAILED")
    assert daemon.stop()[0] == 0
    result = json.loads(gateway.cli("notify", "log", "--json").stdout)
    assert [(d["channel"], d["outcome"]) for d in result["deliveries"]] == [("mail", "sent")]


def test_the_daemon_serves_its_status_page_on_loopback(gateway: Gateway, start_daemon: DaemonFactory) -> None:
    import urllib.request

    quick(gateway)
    daemon = start_daemon(gateway)
    wait_until(lambda: "status page on" in daemon.log(), what="the status page")

    def healthy() -> bool:
        try:
            with urllib.request.urlopen(f"http://{daemon.web}/healthz", timeout=5) as answer:
                return json.loads(answer.read())["status"] == "ok"
        except OSError:
            return False

    wait_until(healthy, what="/healthz")
    with urllib.request.urlopen(f"http://{daemon.web}/", timeout=5) as answer:
        assert "/login" in answer.url  # every page needs an administrator
    assert daemon.stop()[0] == 0


def test_a_database_down_at_start_is_waited_for(gateway: Gateway, start_daemon: DaemonFactory) -> None:
    state = make_state_dir("imss-pg-late-")
    cluster = start_cluster(state)
    try:
        gateway.dsn = create_database(cluster, "late")
        cluster.stop()
        daemon = start_daemon(gateway)
        wait_until(lambda: "database unavailable" in daemon.log(), what="the outage noticed")
        assert "READY=1" not in daemon.notify.messages  # not ready without its database
        cluster.start()
        wait_until(lambda: "READY=1" in daemon.notify.messages, timeout=90, what="READY=1")
        assert daemon.log().count("database unavailable") == 1
        with Database(gateway.dsn) as database:
            assert database.schema_version() >= 5  # the daemon initialised it when it came
        assert daemon.stop()[0] == 0
    finally:
        cluster.stop()
        shutil.rmtree(state, ignore_errors=True)


def stale(gateway: Gateway, component: str) -> bool:
    with gateway.database() as database:
        return database.component_states()[component].stale


def test_a_successful_run_clears_the_stale_flag_right_after_it_not_minutes_later(
    gateway: Gateway, start_daemon: DaemonFactory
) -> None:
    quick(gateway, just_ran=True)
    gateway.tree.add_pattern("P.4", "1569700")
    gateway.publish()
    assert gateway.cli("update", "virus_pattern").code == 0
    connection = psycopg2.connect(gateway.dsn)
    with connection, connection.cursor() as cursor:  # Staleness/virus_pattern is 3 days
        cursor.execute("UPDATE tb_component_state SET last_success_at = now() - interval '4 days'"
                       " WHERE id = 'virus_pattern'")
    connection.close()
    daemon = start_daemon(gateway)
    wait_until(lambda: stale(gateway, "virus_pattern"), what="the stale flag at start")
    gateway.tree.add_pattern("P.4", "1569900")
    gateway.publish()
    daemon.signal(signal.SIGUSR1)
    wait_until(lambda: current(gateway, "virus_pattern") == "1569900", what="the signalled run")
    # The daemon looks at staleness every 10 minutes; a run makes it look at once.
    wait_until(lambda: not stale(gateway, "virus_pattern"), timeout=10, what="the flag cleared")
    assert daemon.stop()[0] == 0
    assert "is current again" in daemon.log()


def test_status_says_scheduled_updates_are_off_rather_than_asking_for_the_daemon(
    gateway: Gateway, start_daemon: DaemonFactory
) -> None:
    quick(gateway, just_ran=True)
    assert "next scheduled run: not planned (is the daemon running?)" in gateway.cli("status").stdout
    gateway.set("Update", "ScheduledUpdate", "no")
    daemon = start_daemon(gateway)
    wait_until(lambda: "READY=1" in daemon.notify.messages, what="READY=1")
    result = gateway.cli("status")
    assert result.code == 0
    assert "next scheduled run: scheduled updates are off (Update/ScheduledUpdate=no)" in result.stdout
    assert "is the daemon running" not in result.stdout
    assert json.loads(gateway.cli("status", "--json").stdout)["daemon"]["scheduled_update"] is False
    assert daemon.stop()[0] == 0


def test_a_planner_that_returns_the_past_starts_scheduled_runs_at_most_once_a_minute(
    gateway: Gateway, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    quick(gateway, just_ran=True)
    gateway.tree.add_pattern("P.4", "1569700")
    gateway.publish()
    bootstrap = config.Bootstrap(dsn=gateway.dsn, root=gateway.root, state=tmp_path / "state",
                                 web_host="127.0.0.1", web_port=0, db_port=0)
    # In this process, to replace the one seam no real peer can stand in for: the planner,
    # here as wrong as the old one at fall-back (an hour in the past, every time).
    daemon = loop.Daemon(bootstrap, None, timezone=ZoneInfo("Europe/Berlin"))
    daemon.planner = lambda schedule, now, zone, delay: now - datetime.timedelta(hours=1)
    runs: list[datetime.datetime] = []
    daemon.after_run = lambda database, report: runs.append(datetime.datetime.now(datetime.UTC))
    caplog.set_level(logging.DEBUG, logger=planning.__name__)
    daemon.scheduler.start()
    try:
        def drive() -> bool:  # one round of serve()'s loop (without signals and the page)
            daemon.tick()
            daemon.wake.wait(0.1)
            daemon.wake.clear()
            return bool(runs) and not daemon.job_running.is_set()

        wait_until(drive, what="the first run")
        for _ in range(30):  # without the guard, runs follow back to back here
            drive()
    finally:
        daemon.stopping.set()
        daemon.scheduler.shutdown(wait=True)
    assert len(runs) == 1
    with gateway.database() as database:
        started = database.run_status().last_scheduled_at
    assert started is not None and daemon.next_run is not None
    assert daemon.next_run >= started + datetime.timedelta(seconds=planning.MIN_RUN_GAP_SECONDS - 1)
    guard = [record for record in caplog.records if "at most once a minute" in record.getMessage()]
    assert [record.levelno for record in guard][:1] == [logging.WARNING]
    assert len(guard) >= 2
    assert sum(record.levelno == logging.WARNING for record in guard) == 1  # logged once
