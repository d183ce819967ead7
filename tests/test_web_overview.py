"""What the status page and ``status`` show beyond the components (issue 9, sections 3 and
4): schedule and next run, the daemon's heartbeat, the lock, licence expiry, the services'
state from their real status scripts, the signed-before flag, and the history page."""

from __future__ import annotations

import datetime
import json
import re
from pathlib import Path
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from imss_updater import overview
from imss_updater.daemon import loop
from imss_updater.database.db import Database
from imss_updater.run.services import ServiceCache, probe
from imss_updater.web import WebConfig, create_app
from tests.support.browser import csrf_of, wait_for_job
from tests.support.gateway import Gateway


def text(response: Any) -> str:
    return str(response.get_data(as_text=True))


def fact(page: str, fact_id: str) -> str:
    found = re.search(rf'id="fact-{fact_id}"[^>]*>(.*?)</', page, re.DOTALL)
    assert found, fact_id
    return found.group(1)


def row(page: str, component_id: str) -> str:
    found = re.search(rf'<tr id="row-{component_id}".*?</tr>', page, re.DOTALL)
    assert found, component_id
    return found.group(0)


def status_script(gateway: Gateway, name: str, exit_status: int) -> Path:
    """A real status script: counts its runs in NAME.runs and exits with ``exit_status``."""
    path = gateway.bin_dir / f"{name}-status"
    runs = gateway.bin_dir / f"{name}.runs"
    path.write_text(f'#!/bin/sh\necho "$1" >> "{runs}"\nexit {exit_status}\n')
    path.chmod(0o755)
    return path


def set_services(gateway: Gateway, scan: str, policy: str) -> None:
    gateway.set("Service", "ScanServiceStatus", scan)
    gateway.set("Service", "PolicyServiceStatus", policy)


def heartbeat(gateway: Gateway, age_seconds: int, next_run: datetime.datetime | None) -> None:
    with gateway.database() as database:
        database.record_daemon(pid=4242, next_run=next_run, settings_problem=None)
        with database.transaction() as cursor:
            cursor.execute("UPDATE tb_update_status SET daemon_heartbeat = now() - %s * interval '1 second'",
                           (age_seconds,))


# -- schedule, daemon, lock ------------------------------------------------------------------------

def test_status_shows_the_schedule_in_words_the_next_run_and_a_live_daemon(
    logged_in: FlaskClient, gateway: Gateway
) -> None:
    gateway.set("Update", "ScheduleFrequency", "daily")
    gateway.set("Update", "ScheduleTime", "03:30")
    next_run = datetime.datetime(2031, 5, 6, 3, 30, tzinfo=datetime.UTC)
    heartbeat(gateway, 5, next_run)
    page = text(logged_in.get("/"))
    zone = datetime.datetime.now().astimezone().strftime("%Z")
    assert fact(page, "schedule") == f"On: every day at 03:30 (gateway local time, {zone})"
    assert fact(page, "next-run") == next_run.astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")
    assert fact(page, "daemon").startswith("Running (process 4242, last heartbeat ")
    assert fact(page, "lock") == "Free"


def test_status_says_the_updater_is_not_running_when_the_heartbeat_is_three_periods_old(
    logged_in: FlaskClient, gateway: Gateway
) -> None:
    old = int(3 * overview.HEARTBEAT_SECONDS) + 30
    heartbeat(gateway, old, datetime.datetime(2031, 1, 1, tzinfo=datetime.UTC))
    page = text(logged_in.get("/"))
    assert fact(page, "daemon").startswith("The updater is not running (last heartbeat ")
    assert fact(page, "next-run") == "Not planned"  # a dead daemon's plan is not a plan


def test_status_without_any_heartbeat_says_the_updater_is_not_running(logged_in: FlaskClient) -> None:
    page = text(logged_in.get("/"))
    assert fact(page, "daemon") == "The updater is not running (last heartbeat Never)"


def test_status_says_scheduled_updates_are_off_and_shows_no_next_run(
    logged_in: FlaskClient, gateway: Gateway
) -> None:
    gateway.set("Update", "ScheduledUpdate", "no")
    page = text(logged_in.get("/"))
    assert fact(page, "schedule") == "Off (Update/ScheduledUpdate = no)"
    assert 'id="fact-next-run"' not in page


def test_the_daemon_beats_at_least_as_often_as_the_status_page_expects() -> None:
    assert loop.REPLAN_SECONDS <= overview.HEARTBEAT_SECONDS


def test_status_in_japanese_gives_the_schedule_and_the_daemon_in_japanese(
    logged_in: FlaskClient, gateway: Gateway
) -> None:
    gateway.set("Update", "ScheduleFrequency", "weekly")
    gateway.set("Update", "ScheduleWeekday", "mon")
    gateway.set("Update", "ScheduleTime", "04:05")
    page = text(logged_in.get("/", headers={"Accept-Language": "ja"}))
    assert fact(page, "schedule").startswith("有効: 毎週月曜日 04:05 (ゲートウェイの現地時刻、")
    assert fact(page, "daemon").startswith("アップデートプログラムが実行されていません")


def test_invalid_settings_make_schedule_and_services_unknown_not_wrong(
    logged_in: FlaskClient, gateway: Gateway
) -> None:
    gateway.set("Update", "ScheduleTime", "25:99")
    page = text(logged_in.get("/"))
    assert fact(page, "schedule") == "Unknown: the settings are invalid"
    assert re.search(r'id="scan-state" class="warning">Unknown \(the settings are invalid\)<', page)


# -- licences --------------------------------------------------------------------------------------

def test_licence_expiry_is_shown_with_a_warning_thirty_days_before(
    logged_in: FlaskClient, gateway: Gateway
) -> None:
    today = datetime.date.today()
    gateway.set("License", "Antivirus", (today + datetime.timedelta(days=29)).isoformat())
    gateway.set("License", "Antispam", (today + datetime.timedelta(days=30)).isoformat())
    page = text(logged_in.get("/"))
    expiring = re.search(r'<li id="fact-license-Antivirus" class="([^"]*)">([^<]*)', page)
    assert expiring and expiring.group(1) == "warning"
    assert "in 29 days: renew it" in expiring.group(2)
    valid = re.search(r'<li id="fact-license-Antispam" class="([^"]*)">([^<]*)', page)
    assert valid and valid.group(1) == "" and "(30 days left)" in valid.group(2)


def test_licence_states_count_the_expiry_day_as_valid() -> None:
    today = datetime.date(2030, 6, 1)
    states = overview.licenses({"A": today, "B": today - datetime.timedelta(days=1), "C": None}, today)
    assert [(state.name, state.state, state.days_left) for state in states] == [
        ("A", "expiring", 0), ("B", "expired", -1), ("C", "inactive", None)]


# -- services --------------------------------------------------------------------------------------

def test_status_runs_the_service_status_scripts_and_shows_running_and_stopped(
    logged_in: FlaskClient, gateway: Gateway
) -> None:
    set_services(gateway, f"{status_script(gateway, 'scan', 0)} status",
                 f"{status_script(gateway, 'policy', 3)} status")
    page = text(logged_in.get("/"))
    assert re.search(r'id="scan-state" class="">Running<', page)
    assert re.search(r'id="policy-state" class="warning">Stopped<', page)
    assert (gateway.bin_dir / "scan.runs").read_text() == "status\n"  # no shell: the argument as given
    logged_in.get("/")
    assert (gateway.bin_dir / "scan.runs").read_text() == "status\n"  # the answer is cached


def test_a_status_command_that_cannot_run_shows_unknown_with_the_reason(
    logged_in: FlaskClient, gateway: Gateway
) -> None:
    set_services(gateway, str(gateway.bin_dir / "missing-status"), "")
    page = text(logged_in.get("/"))
    scan = re.search(r'id="scan-state" class="warning">([^<]*)<', page)
    assert scan and scan.group(1).startswith("Unknown (cannot run ")
    assert "missing-status" in scan.group(1)
    assert re.search(r'id="policy-state" class="warning">Unknown \(no status command is set\)<', page)
    page = text(logged_in.get("/", headers={"Accept-Language": "ja"}))
    assert 'id="policy-state" class="warning">不明 (状態確認コマンドが設定されていません)<' in page


def test_a_status_command_that_hangs_is_killed_and_unknown() -> None:
    state = probe(["sleep", "30"], timeout=0.5)
    assert state.running is None
    assert state.reason is not None and "did not finish within 0.5 s" in state.reason


def test_the_service_cache_runs_the_command_again_only_after_its_time(gateway: Gateway) -> None:
    script = status_script(gateway, "scan", 0)
    now = [0.0]
    cache = ServiceCache(30.0, clock=lambda: now[0])  # a settable clock instead of waiting 30 s
    assert cache.state([str(script), "status"]).running is True
    now[0] = 29.0
    cache.state([str(script), "status"])
    assert (gateway.bin_dir / "scan.runs").read_text().split() == ["status"]
    now[0] = 31.0
    cache.state([str(script), "status"])
    assert (gateway.bin_dir / "scan.runs").read_text().split() == ["status", "status"]


def test_status_command_shows_service_state_daemon_licences_and_schedule(gateway: Gateway) -> None:
    set_services(gateway, f"{status_script(gateway, 'scan', 0)} status",
                 f"{status_script(gateway, 'policy', 1)} status")
    result = gateway.cli("status", "--json")
    assert result.code == 0, result.stderr
    body = json.loads(result.stdout)
    assert body["services"]["scan_running"] is True
    assert body["services"]["policy_running"] is False
    assert body["services"]["policy_state"] == "stopped"
    assert body["daemon"]["alive"] is False
    assert body["daemon"]["schedule"] == "every 15 minutes"
    assert {entry["name"]: entry["state"] for entry in body["licenses"]} == {
        "Antivirus": "active", "Antispam": "active"}
    lines = gateway.cli("status").stdout
    assert "scan service:   running (last restart: none yet)" in lines
    assert "policy service: stopped (last restart: none yet)" in lines
    assert "updater: the updater is not running (last heartbeat never)" in lines
    assert re.search(r"license Antivirus: valid until \d{4}-\d\d-\d\d, \d+ days left\n", lines)


# -- component flags -------------------------------------------------------------------------------

def test_a_component_installed_from_a_signed_package_is_flagged_signed_before_with_its_age(
    logged_in: FlaskClient, gateway: Gateway
) -> None:
    gateway.tree.add_pattern("P.4", "1569700")
    gateway.publish()
    assert gateway.cli("update", "virus_pattern").code == 0
    page = text(logged_in.get("/"))
    assert "signed before: unsigned packages are refused" in row(page, "virus_pattern")
    assert re.search(r'class="muted age">\(\d+ s ago\)', row(page, "virus_pattern"))
    assert "signed before" not in row(page, "spyware_pattern")  # never installed
    status = json.loads(gateway.cli("status", "--json").stdout)
    assert {c["id"]: c["signed_before"] for c in status["components"]}["virus_pattern"] is True
    assert "signed before: unsigned refused" in gateway.cli("status").stdout


# -- history ---------------------------------------------------------------------------------------

def test_history_shows_when_each_version_was_first_seen_and_when_it_was_installed(
    logged_in: FlaskClient, console_app: Flask, gateway: Gateway
) -> None:
    gateway.tree.add_pattern("P.4", "1569700")
    gateway.publish()
    assert gateway.cli("check").code == 0
    with gateway.database() as database, database.transaction() as cursor:
        # The source offered it two days before the gateway got round to it.
        cursor.execute("UPDATE tb_version_seen SET first_seen_at = now() - interval '2 days'"
                       " WHERE component = 'virus_pattern' AND version = '1569700'")
    assert gateway.cli("update", "virus_pattern").code == 0
    gateway.tree.add_pattern("P.4", "1569900")
    gateway.publish()
    logged_in.post("/check", data={"csrf_token": csrf_of(text(logged_in.get("/")))})
    wait_for_job(console_app)
    assert gateway.cli("check").code == 0  # a second sighting keeps the first time
    page = text(logged_in.get("/history"))
    section = re.search(r'<section class="history-component" id="history-virus_pattern">.*?</section>',
                        page, re.DOTALL)
    assert section
    versions = re.findall(r'data-version="([^"]+)"', section.group(0))
    assert versions == ["15.699.00", "15.697.00"]  # newest first, one line per version
    newest, installed = section.group(0).split("<tr class=\"version")[1:3]
    assert "Not installed" in newest and "Not recorded" not in newest
    assert " current" in installed and "Not installed" not in installed
    assert re.search(r'class="delay">2 days<', installed)
    with gateway.database() as database:
        seen = [row for row in database.version_history() if row.component == "virus_pattern"]
    assert sorted(row.version for row in seen if row.first_seen_at) == ["1569700", "1569900"]


def test_history_is_linked_from_the_status_page_and_needs_a_log_on(
    logged_in: FlaskClient, console_app: Flask
) -> None:
    assert 'href="/history" id="history-link"' in text(logged_in.get("/"))
    anonymous = console_app.test_client()
    response = anonymous.get("/history")
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")


def test_history_in_japanese(logged_in: FlaskClient) -> None:
    page = text(logged_in.get("/history", headers={"Accept-Language": "ja"}))
    assert "コンポーネントの履歴" in page
    assert "記録されたバージョンはまだありません。" in page


# -- log-on ----------------------------------------------------------------------------------------

def test_log_on_without_a_password_shows_the_command_and_no_form(db_dsn: str, tmp_path: Path) -> None:
    with Database(db_dsn) as database:
        database.init()
    client = create_app(WebConfig(db_dsn, tmp_path, b"s" * 32)).test_client()
    page = text(client.get("/login"))
    assert '<pre class="command">imss-updater admin set-password</pre>' in page
    assert 'type="password"' not in page and 'id="login-submit"' not in page
