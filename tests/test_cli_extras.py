"""The diagnose and import commands as wired into the command line."""

from __future__ import annotations

import json
import shutil

from tests.support.gateway import Gateway
from tests.test_diagnose import checked


def test_diagnose_passes_against_a_healthy_source_and_prints_json(gateway: Gateway) -> None:
    gateway.tree.add_pattern("P.4", "1569700")
    gateway.publish()
    checked(gateway)
    result = gateway.cli("diagnose", "--json")
    payload = json.loads(result.stdout)
    failed = [step for step in payload["steps"] if step["result"] == "FAIL"]
    assert result.code == 0, failed
    assert payload["ok"] is True


def test_diagnose_fails_with_one_line_naming_the_first_failed_step(
    gateway: Gateway, refused_port: int
) -> None:
    gateway.set("Update", "UpdateServer", f"http://127.0.0.1:{refused_port}/au")
    result = gateway.cli("diagnose")
    assert result.code == 1
    assert "FAIL" in result.stdout
    assert len(result.stderr.strip().splitlines()) == 1


def test_diagnose_rejects_a_malformed_address_option(gateway: Gateway) -> None:
    assert gateway.cli("diagnose", "--address", "nonsense").code == 2


def test_import_installs_a_package_by_file_name_as_a_manual_update(gateway: Gateway, tmp_path) -> None:  # type: ignore[no-untyped-def]
    gateway.tree.add_pattern("P.4", "1569700")
    package = tmp_path / "virus_pattern-1569700.zip"
    shutil.copy(gateway.tree.payload_path("P.4"), package)
    shutil.copy(gateway.tree.signature_file("P.4"), tmp_path / "virus_pattern-1569700.sig")
    result = gateway.cli("import", str(package))
    assert result.code == 0, result.stderr
    assert gateway.events() == [("manual", "virus_pattern", "15.697.00", "success")]
    assert gateway.restarts() == ["scan"]


def test_import_of_an_unidentifiable_file_is_a_usage_error(gateway: Gateway, tmp_path) -> None:  # type: ignore[no-untyped-def]
    package = tmp_path / "mystery.zip"
    package.write_bytes(b"PK")
    result = gateway.cli("import", str(package))
    assert result.code == 2


def test_admin_set_password_reads_stdin_and_refuses_a_short_one(gateway: Gateway) -> None:
    import io
    import sys

    from imss_updater.database.db import Database

    original = sys.stdin
    try:
        sys.stdin = io.StringIO("short\n")
        assert gateway.cli("admin", "set-password").code == 2
        sys.stdin = io.StringIO("correct horse battery\n")
        assert gateway.cli("admin", "set-password").code == 0
    finally:
        sys.stdin = original
    with Database(gateway.dsn) as database:
        stored = database.get_setting("Admin", "PasswordHash") or ""
    assert stored and "correct horse" not in stored


def test_notify_test_sends_on_the_configured_channel_and_logs_it(gateway: Gateway, smtp_server) -> None:  # type: ignore[no-untyped-def]
    relay = smtp_server("plain")
    for name, value in {"SMTPServer": relay.host, "SMTPPort": str(relay.port),
                        "MailFrom": "imss@gw1.example", "MailTo": "ops@example.com"}.items():
        gateway.set("Notification", name, value)
    result = gateway.cli("notify", "test", "--mail", "--json")
    assert result.code == 0, result.stderr
    assert [r["outcome"] for r in json.loads(result.stdout)["results"]] == ["sent"]
    assert len(relay.received) == 1
    log = json.loads(gateway.cli("notify", "log", "--json").stdout)["deliveries"]
    assert [(d["channel"], d["recipient"], d["outcome"]) for d in log] == [
        ("mail", "ops@example.com", "sent")
    ]


def test_notify_test_without_a_configured_channel_fails_with_the_reason(gateway: Gateway) -> None:
    result = gateway.cli("notify", "test")
    assert result.code == 1
    assert "mail is not configured (Notification/SMTPServer is empty)" in result.stderr


def test_stale_component_is_flagged_once_and_notified_once(gateway: Gateway, smtp_server) -> None:  # type: ignore[no-untyped-def]
    import datetime

    import psycopg2

    from imss_updater import notify
    from imss_updater.run.updater import Updater

    relay = smtp_server("plain")
    for name, value in {"SMTPServer": relay.host, "SMTPPort": str(relay.port),
                        "MailFrom": "imss@gw1.example", "MailTo": "ops@example.com"}.items():
        gateway.set("Notification", name, value)
    gateway.tree.add_pattern("P.4", "1569700")
    gateway.publish()
    assert gateway.cli("update", "virus_pattern").code == 0
    connection = psycopg2.connect(gateway.dsn)
    with connection, connection.cursor() as cursor:
        cursor.execute("UPDATE tb_component_state SET last_success_at = now() - interval '4 days'"
                       " WHERE id = 'virus_pattern'")
    connection.close()
    now = datetime.datetime.now(datetime.UTC)
    with gateway.database() as database:
        changes = Updater(database, gateway.root).refresh_staleness(now)
        assert [(component.id, stale) for component, stale, _ in changes] == [("virus_pattern", True)]
        for component, stale, last_success in changes:
            notify.enqueue_stale(database, component, last_success, stale)
        notify.deliver_pending(database)
        assert Updater(database, gateway.root).refresh_staleness(now) == []  # once per change
    components = {c["id"]: c for c in json.loads(gateway.cli("status", "--json").stdout)["components"]}
    assert components["virus_pattern"]["stale"] is True
    assert components["spyware_pattern"]["stale"] is False  # never updated: no reference time
    assert len(relay.received) == 1
    gateway.set("Staleness", "virus_pattern", "7")
    with gateway.database() as database:
        changes = Updater(database, gateway.root).refresh_staleness(now)
    assert [(component.id, stale) for component, stale, _ in changes] == [("virus_pattern", False)]
