"""Seed 001: a restart that leaves a service not running is a failed restart.

Real status scripts in the test's temporary directory (exit 0 = running, as S99IMSS status),
the real CLI, a real database, a real SMTP relay and the console's real /metrics."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient

from imss_updater import notify
from imss_updater.run.planner import Mode
from imss_updater.run.restart import not_running_after_restart
from imss_updater.run.services import ServiceState
from imss_updater.run.updater import Updater
from tests.support.browser import csrf_of, wait_for_job
from tests.support.gateway import Gateway
from tests.support.smtp import ServerFactory
from tests.test_metrics import scrape, value


def status_script(gateway: Gateway, name: str) -> Path:
    """A status script that says "stopped" (exit 3, as an init script does) while the file
    NAME-stopped exists beside it, else "running" (exit 0)."""
    path = gateway.bin_dir / f"{name}-status"
    stopped = gateway.bin_dir / f"{name}-stopped"
    path.write_text(f'#!/bin/sh\nif [ -e "{stopped}" ]; then echo "{name} is stopped"; exit 3; fi\nexit 0\n')
    path.chmod(0o755)
    gateway.set("Service", "ScanServiceStatus" if name == "scan" else "PolicyServiceStatus", f"{path} status")
    return stopped


def installed_once(gateway: Gateway) -> None:
    gateway.tree.add_pattern("P.4", "1569700")
    gateway.publish()
    assert gateway.cli("update", "virus_pattern").code == 0
    gateway.tree.add_pattern("P.4", "1569800")
    gateway.publish()


def test_a_restart_that_leaves_the_scan_service_stopped_fails_and_rolls_the_install_back(
    gateway: Gateway,
) -> None:
    stopped = status_script(gateway, "scan")
    installed_once(gateway)
    stopped.touch()  # the restart script exits 0, but the service does not come up

    result = gateway.cli("update", "virus_pattern", "--json")

    assert result.code == 1
    assert "scan service restart failed: the service is not running after the restart" in result.stderr
    assert "exited with status 3" in result.stderr
    assert gateway.restarts()[-2:] == ["scan", "scan"]  # the failed one, then after rollback
    current = json.loads(gateway.cli("status", "--json").stdout)
    assert {c["id"]: c["current"] for c in current["components"]}["virus_pattern"] == "15.697.00"
    last = json.loads(gateway.cli("logs", "--json", "--limit", "1").stdout)["events"][0]
    assert last["outcome"] == "failure"
    assert "not running after the restart" in last["reason"]
    assert "rolled back to 15.697.00" in last["reason"]
    # Once the service runs again, the owed restart succeeds.
    stopped.unlink()
    gateway.tree.entries.clear()
    assert gateway.cli("run", "--once").code == 0


def test_a_running_service_after_the_restart_is_a_successful_update(gateway: Gateway) -> None:
    status_script(gateway, "scan")
    status_script(gateway, "policy")
    gateway.tree.add_pattern("P.4", "1569700")
    gateway.tree.add_engine("VSAPI_LINUX_X86_64", "21.0.1008")
    gateway.publish()
    assert gateway.cli("update", "--all").code == 0
    assert gateway.restarts() == ["scan", "policy"]


def test_a_stopped_policy_service_after_an_engine_update_is_a_failed_policy_restart(
    gateway: Gateway,
) -> None:
    status_script(gateway, "scan")
    status_script(gateway, "policy").touch()
    gateway.tree.add_engine("VSAPI_LINUX_X86_64", "21.0.1008")
    gateway.publish()
    result = gateway.cli("update", "virus_engine")
    assert result.code == 1
    assert "policy service restart failed: the service is not running after the restart" in result.stderr


def test_a_status_command_that_cannot_run_leaves_the_restart_as_it_was(gateway: Gateway) -> None:
    gateway.set("Service", "ScanServiceStatus", str(gateway.bin_dir / "no-such-status-script"))
    gateway.tree.add_pattern("P.4", "1569700")
    gateway.publish()
    assert gateway.cli("update", "virus_pattern").code == 0


def test_a_service_that_answers_running_on_the_second_ask_is_not_a_failure() -> None:
    answers = [ServiceState(False, exit_status=3), ServiceState(True, exit_status=0)]
    waits: list[float] = []

    def check(argv: Sequence[str]) -> ServiceState:
        return answers.pop(0)

    assert not_running_after_restart(["status"], check=check, sleep=waits.append) is None
    assert len(waits) == 1


def test_a_service_still_stopped_after_every_ask_names_the_command_and_its_status() -> None:
    asked: list[Sequence[str]] = []

    def check(argv: Sequence[str]) -> ServiceState:
        asked.append(argv)
        return ServiceState(False, exit_status=1)

    reason = not_running_after_restart(["/opt/s", "status"], check=check, sleep=lambda seconds: None)
    assert reason is not None
    assert str(reason) == "the service is not running after the restart (/opt/s status exited with status 1)"
    assert reason.render("ja") == (
        "再起動後にサービスが実行されていません (/opt/s status の終了ステータスは 1)")
    assert len(asked) == 3


def test_a_scheduled_update_whose_service_stays_stopped_is_notified_with_the_reason(
    gateway: Gateway, smtp_server: ServerFactory
) -> None:
    relay = smtp_server("plain")
    for name, setting in {"SMTPServer": relay.host, "SMTPPort": str(relay.port),
                          "MailFrom": "imss@gw1.example", "MailTo": "ops@example.com"}.items():
        gateway.set("Notification", name, setting)
    stopped = status_script(gateway, "scan")
    installed_once(gateway)
    stopped.touch()
    with gateway.database() as database:
        report = Updater(database, gateway.root).update(Mode.SCHEDULED, None)
        assert not report.ok
        assert notify.enqueue_run(database, database.catalog(), report) == 1
        assert notify.deliver_pending(database).sent == 1
    body = relay.received[0].message.get_content()
    assert "scan service restart failed: the service is not running after the restart" in body
    assert "rolled back to 15.697.00" in body


def test_metrics_show_each_service_running_and_count_a_restart_that_left_it_stopped(
    logged_in: FlaskClient, console_app: Flask, gateway: Gateway
) -> None:
    stopped = status_script(gateway, "scan")
    status_script(gateway, "policy")
    samples = scrape(logged_in)
    assert value(samples, "imss_service_running", service="scan") == 1
    assert value(samples, "imss_service_running", service="policy") == 1
    installed_once(gateway)
    stopped.touch()
    console_app.extensions["imss_console"].services.seconds = 0  # ask the scripts at every scrape
    token = csrf_of(logged_in.get("/").get_data(as_text=True))
    logged_in.post("/update", data={"csrf_token": token, "component": "virus_pattern"})
    wait_for_job(console_app)

    samples = scrape(logged_in)
    assert value(samples, "imss_service_running", service="scan") == 0
    assert value(samples, "imss_restart_failures_total", service="scan") == 2  # and after rollback
    page = logged_in.get("/").get_data(as_text=True)
    assert "not running after the restart" in page


def test_metrics_leave_a_service_out_when_its_state_is_unknown(
    logged_in: FlaskClient, gateway: Gateway
) -> None:
    gateway.set("Service", "ScanServiceStatus", str(gateway.bin_dir / "no-such-status-script"))
    samples = scrape(logged_in)
    assert value(samples, "imss_service_running", service="scan") is None
