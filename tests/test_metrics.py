"""``/metrics`` through prometheus_client: the database state at scrape time, the run and
check durations the daemon and the console observe, and promtool's verdict on the page."""

from __future__ import annotations

import datetime
import importlib.metadata
import os
import shutil
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families

from imss_updater.run.report import RunProblem, RunReport
from imss_updater.web import RunMetrics, WebConfig, create_app
from imss_updater.web.metrics import restart_failures
from imss_updater.web.prometheus import shown_source
from tests.support.browser import csrf_of, wait_for_job
from tests.support.daemon import DaemonFactory, wait_until
from tests.support.gateway import Gateway

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(client: FlaskClient) -> Samples:
    response = client.get("/metrics")
    assert response.status_code == 200
    return parse(response.get_data(as_text=True))


def parse(body: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def publish(gateway: Gateway, virus: str = "1569700") -> None:
    gateway.tree.add_pattern("P.4", virus)
    gateway.tree.add_pattern("P.8", "240100")
    gateway.publish()


def post(client: FlaskClient, path: str, **data: Any) -> None:
    token = csrf_of(client.get("/").get_data(as_text=True))
    assert client.post(path, data={"csrf_token": token, **data}).status_code in (200, 302)


def console_check(logged_in: FlaskClient, console_app: Flask) -> None:
    post(logged_in, "/check")
    wait_for_job(console_app)


# -- the database at scrape time --------------------------------------------------------------

def test_a_newer_offer_is_an_update_available_with_versions_in_display_form(
    logged_in: FlaskClient, console_app: Flask, gateway: Gateway
) -> None:
    publish(gateway)
    assert gateway.cli("update", "virus_pattern").code == 0
    publish(gateway, virus="1569800")
    console_check(logged_in, console_app)
    samples = scrape(logged_in)
    info = value(samples, "imss_component_info", component="virus_pattern", current="15.697.00",
                 available="15.698.00")
    assert info == 1
    assert value(samples, "imss_update_available", component="virus_pattern") == 1
    assert value(samples, "imss_update_available", component="spam_engine") == 0  # absent: never pending
    assert value(samples, "imss_component_info", component="spam_engine", current="", available="0.0") == 1
    assert "1569700" not in logged_in.get("/metrics").get_data(as_text=True)


def test_an_installed_current_version_is_no_update_available(
    logged_in: FlaskClient, console_app: Flask, gateway: Gateway
) -> None:
    publish(gateway)
    assert gateway.cli("update", "virus_pattern").code == 0
    console_check(logged_in, console_app)
    samples = scrape(logged_in)
    assert value(samples, "imss_update_available", component="virus_pattern") == 0
    assert value(samples, "imss_component_last_success_timestamp_seconds", component="virus_pattern")


def test_stale_flag_licence_expiry_heartbeat_and_next_run_are_shown(
    client: FlaskClient, gateway: Gateway
) -> None:
    gateway.set("License", "Antivirus", "2031-05-01")
    gateway.set("License", "Antispam", "")
    heartbeat_before = datetime.datetime.now(datetime.UTC).timestamp()
    next_run = datetime.datetime(2031, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
    with gateway.database() as database:
        assert database.set_stale("virus_pattern", True)
        database.record_daemon(pid=4242, next_run=next_run, settings_problem=None)
    samples = scrape(client)
    assert value(samples, "imss_stale", component="virus_pattern") == 1
    assert value(samples, "imss_stale", component="virus_engine") == 0
    local_midnight_after = datetime.datetime(2031, 5, 2).astimezone().timestamp()
    expiry = "imss_license_expiry_timestamp_seconds"
    assert value(samples, expiry, license="Antivirus") == local_midnight_after
    assert value(samples, expiry, license="Antispam") is None  # not activated
    assert value(samples, "imss_next_run_timestamp_seconds") == next_run.timestamp()
    heartbeat = value(samples, "imss_heartbeat_timestamp_seconds")
    assert heartbeat is not None and heartbeat >= heartbeat_before - 5  # the database's clock


def test_settings_are_invalid_when_a_file_they_name_is_unusable(
    client: FlaskClient, gateway: Gateway
) -> None:
    assert value(scrape(client), "imss_settings_valid") == 1
    gateway.set("Update", "CAFile", str(gateway.root / "missing-ca.pem"))
    assert value(scrape(client), "imss_settings_valid") == 0


def test_updates_total_counts_each_outcome_and_a_failed_restart_is_counted_per_service(
    logged_in: FlaskClient, console_app: Flask, gateway: Gateway
) -> None:
    publish(gateway)
    assert gateway.cli("update", "virus_pattern").code == 0
    publish(gateway, virus="1569800")
    gateway.fail_flag.touch()
    post(logged_in, "/update", component="virus_pattern")
    wait_for_job(console_app)
    samples = scrape(logged_in)
    # The log has the first update, the second's install, then its failure (rolled back).
    assert value(samples, "imss_updates_total", component="virus_pattern", outcome="success") == 2
    assert value(samples, "imss_updates_total", component="virus_pattern", outcome="failure") == 1
    assert value(samples, "imss_updates_total", component="virus_engine", outcome="failure") == 0
    assert value(samples, "imss_update_failures_total", component="virus_pattern") == 1
    # The restart failed, the install was rolled back, and the second restart failed too.
    assert value(samples, "imss_restart_failures_total", service="scan") == 2
    assert value(samples, "imss_restart_failures_total", service="policy") == 0
    assert value(samples, "imss_run_duration_seconds_count", kind="manual") == 1
    assert value(samples, "imss_check_duration_seconds_count") == 1  # the run's opening check
    assert value(samples, "imss_last_run_success") == 0


def test_each_source_is_up_or_down_by_its_last_check_and_named_without_credentials(
    logged_in: FlaskClient, console_app: Flask, gateway: Gateway
) -> None:
    publish(gateway)
    samples = scrape(logged_in)
    assert not [key for key in samples if key[0] == "imss_source_up"]  # never checked yet
    gateway.set("Update", "TMASEServerurl", "http://operator:s3cret-word@127.0.0.1:9/au")
    console_check(logged_in, console_app)
    body = logged_in.get("/metrics").get_data(as_text=True)
    samples = parse(body)
    assert value(samples, "imss_source_up", source=gateway.server.base_url) == 1
    assert value(samples, "imss_source_up", source="http://127.0.0.1:9/au") == 0
    assert "s3cret-word" not in body and "operator" not in body
    assert value(samples, "imss_last_check_success") == 0
    assert value(samples, "imss_check_duration_seconds_count") == 1


def test_build_info_download_lock_and_process_metrics_are_exposed(client: FlaskClient) -> None:
    samples = scrape(client)
    assert value(samples, "imss_build_info", version=importlib.metadata.version("imss-updater")) == 1
    assert value(samples, "imss_download_lock_held") == 0
    assert value(samples, "imss_database_up") == 1
    assert (value(samples, "process_start_time_seconds") or 0) > 0
    assert [key for key in samples if key[0] == "python_info"]


def test_an_unreachable_database_is_database_up_zero_and_the_rest_still_scrapes(tmp_path: Path) -> None:
    dsn = "host=127.0.0.1 port=9 dbname=imss user=sa connect_timeout=1"
    client = create_app(WebConfig(dsn, tmp_path, b"s" * 32)).test_client()
    response = client.get("/metrics")
    assert response.status_code == 200
    samples = parse(response.get_data(as_text=True))
    assert value(samples, "imss_database_up") == 0
    assert value(samples, "imss_download_lock_held") == 0
    assert value(samples, "imss_check_duration_seconds_count") == 0
    assert not [key for key in samples if key[0] == "imss_component_info"]


def test_two_consoles_in_one_process_keep_their_own_series(
    logged_in: FlaskClient, console_app: Flask, gateway: Gateway
) -> None:
    publish(gateway)
    other = create_app(WebConfig(gateway.dsn, gateway.root, b"s" * 32, metrics=RunMetrics()))
    console_check(logged_in, console_app)
    assert value(scrape(logged_in), "imss_check_duration_seconds_count") == 1
    assert value(scrape(other.test_client()), "imss_check_duration_seconds_count") == 0
    other.extensions["imss_console"].pool.close()


def test_the_page_is_prometheus_text_format_0_0_4_without_created_series(client: FlaskClient) -> None:
    response = client.get("/metrics")
    assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert "_created" not in response.get_data(as_text=True)


# -- the in-process metrics -------------------------------------------------------------------

def test_a_failed_restart_and_the_one_after_rollback_are_each_counted() -> None:
    report = RunReport(kind="scheduled", restart_error="scan service restart failed: exit 1;"
                       " after rollback: scan service restart failed: exit 1")
    assert restart_failures(report) == ["scan", "scan"]
    assert restart_failures(RunReport(kind="manual")) == []


def test_a_scheduled_run_that_did_not_happen_is_not_observed() -> None:
    metrics = RunMetrics()
    assert metrics.scheduled_run(lambda: None) is None
    with pytest.raises(RuntimeError):
        metrics.scheduled_run(_raise)
    samples = _own(metrics)
    assert value(samples, "imss_run_duration_seconds_count", kind="scheduled") is None
    assert value(samples, "imss_check_duration_seconds_count") == 0


def test_a_scheduled_run_stopped_by_its_settings_has_a_duration_but_no_check() -> None:
    metrics = RunMetrics()
    report = RunReport(kind="scheduled", problem=RunProblem("settings", "Update/UpdateServer: missing"))
    assert metrics.scheduled_run(lambda: report) is report
    samples = _own(metrics)
    assert value(samples, "imss_run_duration_seconds_count", kind="scheduled") == 1
    assert value(samples, "imss_check_duration_seconds_count") == 0


def test_downloaded_bytes_count_each_byte_once_across_progress_calls() -> None:
    metrics = RunMetrics()
    for done in (0, 100, 250, 250):
        metrics.progress("virus_pattern", "downloading", done, 250)
    metrics.progress("virus_pattern", "verifying", 0, 0)
    metrics.progress("virus_pattern", "downloading", 50, 50)
    assert value(_own(metrics), "imss_downloaded_bytes_total") == 300


def test_a_source_is_shown_without_user_password_query_or_fragment() -> None:
    assert shown_source("https://u:p@au.example.com:8443/path?k=v#f") == "https://au.example.com:8443/path"
    assert shown_source("http://[::1]:8080/au") == "http://[::1]:8080/au"


def _raise() -> RunReport:
    raise RuntimeError("boom")


def _own(metrics: RunMetrics) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in metrics.collect()
        for sample in family.samples
    }


# -- the daemon ---------------------------------------------------------------------------------

def test_the_daemon_observes_its_scheduled_runs_and_their_checks(
    gateway: Gateway, start_daemon: DaemonFactory
) -> None:
    gateway.set("Update", "RandomDelaySeconds", "0")
    with gateway.database() as database:
        database.record_scheduled_run(datetime.datetime.now(datetime.UTC))  # no missed run at start
    daemon = start_daemon(gateway)
    wait_until(lambda: "READY=1" in daemon.notify.messages, what="READY=1")
    publish(gateway)
    daemon.signal(signal.SIGUSR1)

    def scraped() -> Samples:
        with urllib.request.urlopen(f"http://{daemon.web}/metrics", timeout=5) as answer:
            return parse(answer.read().decode())

    wait_until(lambda: value(scraped(), "imss_run_duration_seconds_count", kind="scheduled") == 1,
               what="the scheduled run observed")
    samples = scraped()
    assert value(samples, "imss_check_duration_seconds_count") == 1
    assert (value(samples, "imss_downloaded_bytes_total") or 0) > 0
    assert value(samples, "imss_heartbeat_timestamp_seconds")
    assert value(samples, "imss_next_run_timestamp_seconds")
    assert value(samples, "imss_updates_total", component="virus_pattern", outcome="success") == 1
    assert daemon.stop()[0] == 0


# -- promtool -------------------------------------------------------------------------------------

def promtool() -> str | None:
    """scripts/setup extracts promtool from Debian's prometheus package into .venv/bin."""
    beside = Path(sys.executable).parent / "promtool"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("promtool")


def test_promtool_accepts_the_page_of_a_console_with_components_events_and_a_failed_run(
    logged_in: FlaskClient, console_app: Flask, gateway: Gateway
) -> None:
    tool = promtool()
    if tool is None:
        # CI runs scripts/setup first: there, a missing promtool is a failure, not a skip.
        assert os.environ.get("CI") != "true", "promtool missing in CI: scripts/setup must extract it"
        pytest.skip("promtool not found in .venv/bin or on PATH: run scripts/setup (it extracts it"
                    " from Debian's prometheus package)")
    publish(gateway)
    gateway.tree.add_pattern("P.16", "100")
    gateway.tree.corrupt_payload("P.16")
    gateway.publish()
    gateway.set("License", "Antivirus", "2031-05-01")
    post(logged_in, "/update", component=["virus_pattern", "intellitrap_pattern"])
    wait_for_job(console_app)
    post(logged_in, "/check")
    wait_for_job(console_app)
    body = logged_in.get("/metrics").get_data(as_text=True)
    samples = parse(body)
    assert value(samples, "imss_last_run_success") == 0
    assert value(samples, "imss_updates_total", component="intellitrap_pattern", outcome="failure") == 1
    checked = subprocess.run([tool, "check", "metrics"], input=body, capture_output=True, text=True,
                             timeout=60, check=False)
    assert (checked.returncode, checked.stdout, checked.stderr) == (0, "", "")


def test_promtool_refuses_a_counter_without_total_so_its_verdict_means_something() -> None:
    tool = promtool()
    if tool is None:
        assert os.environ.get("CI") != "true", "promtool missing in CI: scripts/setup must extract it"
        pytest.skip("promtool not found in .venv/bin or on PATH: run scripts/setup")
    page = "# HELP imss_bad Bad.\n# TYPE imss_bad counter\nimss_bad 1\n"
    checked = subprocess.run([tool, "check", "metrics"], input=page, capture_output=True, text=True,
                             timeout=60, check=False)
    assert checked.returncode != 0 and "_total" in checked.stdout + checked.stderr
