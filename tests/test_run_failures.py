"""No failure is silent: a fault at each step of a scheduled run, a settings row that makes
the run unusable, a lock held too long, the database refusing a write — each becomes a
recorded failure event, the status says it, and the administrator is mailed.

The faults are injected in-process at the step's own function (monkeypatch: no real peer
makes ``decide`` or a download raise an arbitrary error), except where a real fault exists:
the database refusing a write is a real trigger in the real PostgreSQL, and a missing CA
file is a missing file.
"""

from __future__ import annotations

import contextlib
import html
import json
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg2
import pytest
from flask.testing import FlaskClient

from imss_updater import config, process
from imss_updater.daemon import runs
from imss_updater.database.db import DatabaseError
from imss_updater.run import fetch, updater
from imss_updater.source.http import HttpClient
from imss_updater.store import install, lock
from imss_updater.store.spool import EventSpool
from tests.support.gateway import REPO, Gateway
from tests.support.smtp import ServerFactory, SmtpServer

FAULT = "injected fault"
RUN_LEVEL_GROUPS = ["Antispam component update FAILED", "Pattern file update FAILED",
                    "Scan engine update FAILED"]


def mail_to(relay: SmtpServer, gateway: Gateway) -> None:
    for name, value in {"SMTPServer": relay.host, "SMTPPort": str(relay.port),
                        "MailFrom": "imss@gw1.example", "MailTo": "ops@example.com"}.items():
        gateway.set("Notification", name, value)


def scheduled_run(gateway: Gateway, tmp_path: Path) -> Any:
    """One scheduled run as the daemon does it (with its spool), then deliver what it queued."""
    bootstrap = config.from_environment(
        {}, {"dsn": gateway.dsn, "root": str(gateway.root), "state": str(tmp_path / "state")}
    )
    report = runs.scheduled_update(bootstrap, gateway.dsn, after_run=runs.queue_notifications,
                                   spool=EventSpool(bootstrap.state))
    runs.deliver_notifications(gateway.dsn)
    return report


def failures(gateway: Gateway) -> dict[str, str]:
    """component -> reason of every failure event."""
    with gateway.database() as database:
        return {event.component: event.reason or "" for event in database.events(outcome="failure")}


def subjects(relay: SmtpServer) -> list[str]:
    return sorted(received.message["Subject"].split("] ", 1)[1] for received in relay.received)


def bodies(relay: SmtpServer) -> str:
    return "\n".join(received.message.get_content() for received in relay.received)


def last_run_line(gateway: Gateway) -> str:
    status = gateway.cli("status")
    assert status.code == 0, status.stderr
    return next(line for line in status.stdout.splitlines() if line.startswith("last run:"))


def page_last_run(client: FlaskClient) -> str:
    page = client.get("/").get_data(as_text=True)
    found = re.search(r'<dd id="last-run">(.*?)</dd>', page, re.DOTALL)
    assert found, page
    return html.unescape(found.group(1))


def raising(*_args: object, **_kwargs: object) -> Any:
    raise RuntimeError(FAULT)


def fault_in_restart(original: Callable[..., Any]) -> Callable[..., Any]:
    """process.run that breaks for the service restarts only (openssl still verifies)."""
    def run(argv: list[str], *args: object, **kwargs: object) -> Any:
        if argv and argv[0].endswith("-restart"):
            raise RuntimeError(FAULT)
        return original(argv, *args, **kwargs)
    return run


def refuse_state_writes(gateway: Gateway) -> None:
    """A real refusal: the database raises on recording an installed version (as a full
    disk or a revoked grant would)."""
    connection = psycopg2.connect(gateway.dsn)
    with connection, connection.cursor() as cursor:
        cursor.execute(
            "CREATE FUNCTION refuse_state() RETURNS trigger AS $$ BEGIN"
            " RAISE EXCEPTION 'could not extend file: No space left on device (injected fault)';"
            " END $$ LANGUAGE plpgsql"
        )
        cursor.execute(
            "CREATE TRIGGER refuse_state BEFORE UPDATE ON tb_component_state FOR EACH ROW"
            " WHEN (NEW.current_version IS DISTINCT FROM OLD.current_version)"
            " EXECUTE FUNCTION refuse_state()"
        )
    connection.close()


# step -> (how to inject the fault, whether it fails the whole run)
STEPS: dict[str, tuple[Callable[[pytest.MonkeyPatch, Gateway], None], bool]] = {
    "fetch index": (lambda patch, _g: patch.setattr(HttpClient, "fetch_index", raising), True),
    "plan": (lambda patch, _g: patch.setattr(updater, "decide", raising), True),
    "lock": (lambda patch, _g: patch.setattr(lock, "download_lock", raising), True),
    "download": (lambda patch, _g: patch.setattr(HttpClient, "download", raising), False),
    "verify": (lambda patch, _g: patch.setattr(fetch, "fetch_signature", raising), False),
    "install": (lambda patch, _g: patch.setattr(install.ComponentStore, "install", raising), False),
    "restart": (lambda patch, _g: patch.setattr(process, "run", fault_in_restart(process.run)), False),
    "record": (lambda _patch, gateway: refuse_state_writes(gateway), False),
}


@pytest.mark.parametrize("step", list(STEPS))
def test_a_fault_at_each_step_is_recorded_shown_and_mailed(
    step: str, gateway: Gateway, smtp_server: ServerFactory, monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path, logged_in: FlaskClient,
) -> None:
    relay = smtp_server("plain")
    mail_to(relay, gateway)
    gateway.tree.add_pattern("P.4", "1569700")
    gateway.publish()
    inject, whole_run = STEPS[step]
    inject(monkeypatch, gateway)

    report = scheduled_run(gateway, tmp_path)
    monkeypatch.undo()

    assert report is not None and not report.ok
    found = failures(gateway)
    assert FAULT in found["virus_pattern"]
    assert FAULT in last_run_line(gateway)
    assert FAULT in page_last_run(logged_in)
    assert logged_in.get("/healthz").get_json()["status"] == "degraded"
    assert FAULT in bodies(relay)
    if whole_run:
        # A run-level failure is every scheduled component's: each group's failure rows decide.
        assert {"virus_engine", "spyware_pattern", "antispam_pattern"} <= set(found)
        assert subjects(relay) == RUN_LEVEL_GROUPS
    else:
        assert set(found) == {"virus_pattern"}
        assert subjects(relay) == ["Pattern file update FAILED"]
    if step == "record":
        # The package is in place and its restart was not skipped; the next run records it.
        assert gateway.restarts() == ["scan"]
        connection = psycopg2.connect(gateway.dsn)
        with connection, connection.cursor() as cursor:
            cursor.execute("DROP TRIGGER refuse_state ON tb_component_state")
        connection.close()
        assert scheduled_run(gateway, tmp_path).ok
        with gateway.database() as database:
            assert database.component_states()["virus_pattern"].current_version == "1569700"
            assert database.events(outcome="success")[0].reason == "recorded after an interrupted run"
    if step == "fetch index":
        # The last check is no longer "update source reachable".
        status = json.loads(gateway.cli("status", "--json").stdout)
        assert status["last_check"]["ok"] is False and FAULT in status["last_check"]["result"]


@pytest.mark.parametrize(("row", "value", "expected"), [
    ("CAFile", "/nonexistent/ca-bundle.pem", "/nonexistent/ca-bundle.pem: the file does not exist"),
    ("SignatureCAFile", "/nonexistent/trust.pem", "/nonexistent/trust.pem: the file does not exist"),
])
def test_a_missing_ca_file_fails_every_scheduled_run_with_its_reason_and_is_mailed(
    row: str, value: str, expected: str, gateway: Gateway, smtp_server: ServerFactory,
    tmp_path: Path, logged_in: FlaskClient,
) -> None:
    client = logged_in
    relay = smtp_server("plain")
    mail_to(relay, gateway)
    gateway.tree.add_pattern("P.4", "1569700")
    gateway.publish()
    gateway.set("Update", row, value)  # as psql would: no validation

    report = scheduled_run(gateway, tmp_path)

    assert report is not None and report.problem is not None and report.problem.step == "settings"
    assert expected in failures(gateway)["virus_pattern"]
    assert "not configured" not in failures(gateway)["virus_pattern"]
    assert expected in last_run_line(gateway)
    status = gateway.cli("status")
    assert f"settings problem: Update/{row}: {expected}" in status.stdout
    assert "Failed (Scheduled)" in page_last_run(client) and expected in page_last_run(client)
    assert "update source reachable" not in status.stdout
    assert subjects(relay) == RUN_LEVEL_GROUPS and expected in bodies(relay)
    health = client.get("/healthz")
    assert health.status_code == 200
    assert health.get_json()["status"] == "degraded"
    assert health.get_json()["settings"]["valid"] is False  # a missing file makes them unusable
    metrics = client.get("/metrics").get_data(as_text=True)
    assert "imss_settings_valid 0.0" in metrics and "imss_last_run_success 0.0" in metrics
    assert 'imss_update_failures_total{component="virus_pattern"} 1.0' in metrics


def test_a_proxy_switched_on_without_a_host_fails_the_run_and_is_mailed(
    gateway: Gateway, smtp_server: ServerFactory, tmp_path: Path
) -> None:
    relay = smtp_server("plain")
    mail_to(relay, gateway)
    gateway.set("Update", "UseProxySetting", "yes")  # ProxyHost stays empty
    report = scheduled_run(gateway, tmp_path)
    assert report is not None and report.problem is not None
    assert "Proxy/ProxyHost: empty while UseProxySetting=yes" in failures(gateway)["virus_pattern"]
    assert "ProxyHost" in last_run_line(gateway)
    assert subjects(relay) == RUN_LEVEL_GROUPS


def test_check_with_a_missing_ca_file_says_why_on_stderr(gateway: Gateway) -> None:
    gateway.set("Update", "CAFile", "/nonexistent/ca.pem")
    result = gateway.cli("check")
    assert result.code == 2
    assert result.stderr.count("\n") == 1
    assert "/nonexistent/ca.pem: the file does not exist" in result.stderr
    assert "Traceback" not in result.stderr


def test_check_that_cannot_reach_the_source_exits_1_with_the_reason_on_stderr(
    gateway: Gateway, refused_port: int
) -> None:
    gateway.set("Update", "UpdateServer", f"http://127.0.0.1:{refused_port}/au")
    result = gateway.cli("check")
    assert result.code == 1
    assert result.stderr.startswith("imss-updater: check failed: ")
    assert result.stderr.count("\n") == 1


HOLDER = """
import sys
from pathlib import Path
from imss_updater.store.lock import download_lock
with download_lock(Path(sys.argv[1])):
    print("locked", flush=True)
    sys.stdin.readline()
"""


@contextlib.contextmanager
def lock_held_elsewhere(gateway: Gateway) -> Iterator[int]:
    """The download lock held by another process (a child holding the flock)."""
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(gateway.root)], cwd=REPO,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        yield holder.pid
    finally:
        holder.kill()
        holder.wait()


def test_a_busy_lock_skips_quietly_once_and_fails_when_busy_longer_than_an_interval(
    gateway: Gateway, smtp_server: ServerFactory, tmp_path: Path
) -> None:
    relay = smtp_server("plain")
    mail_to(relay, gateway)
    gateway.set("Update", "RandomDelaySeconds", "0")
    gateway.tree.add_pattern("P.4", "1569700")
    gateway.publish()
    with lock_held_elsewhere(gateway) as pid:
        first = scheduled_run(gateway, tmp_path)
        assert first is not None and first.skipped and first.ok
        assert failures(gateway) == {} and relay.received == []
        # The next scheduled run, one interval later, finds it still busy.
        connection = psycopg2.connect(gateway.dsn)
        with connection, connection.cursor() as cursor:
            cursor.execute("UPDATE tb_update_status SET lock_busy_since = now() - interval '15 minutes'")
        connection.close()
        second = scheduled_run(gateway, tmp_path)
    assert second is not None and second.problem is not None and second.problem.step == "lock"
    reason = failures(gateway)["virus_pattern"]
    assert reason.startswith(lock.LOCK_MESSAGE_EN) and f"process {pid}" in reason
    assert "longer than one schedule interval" in last_run_line(gateway)
    assert subjects(relay) == RUN_LEVEL_GROUPS
    # Free again: the next run updates and forgets the busy spell.
    third = scheduled_run(gateway, tmp_path)
    assert third is not None and third.ok
    with gateway.database() as database:
        assert database.component_states()["virus_pattern"].current_version == "1569700"


def test_a_database_refusing_the_check_result_fails_an_up_to_date_run(
    gateway: Gateway, smtp_server: ServerFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    relay = smtp_server("plain")
    mail_to(relay, gateway)

    def refuse(*_args: object, **_kwargs: object) -> None:
        raise DatabaseError("database error: permission denied for table tb_component_state")

    # One seam: no real grant refuses this write and not the event log in the same database.
    monkeypatch.setattr("imss_updater.database.db.Database.record_availability", refuse)
    report = scheduled_run(gateway, tmp_path)
    monkeypatch.undo()
    assert report is not None and report.problem is not None and report.problem.step == "record"
    assert "permission denied" in failures(gateway)["virus_pattern"]
    assert subjects(relay) == RUN_LEVEL_GROUPS
