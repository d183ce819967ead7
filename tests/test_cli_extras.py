"""The diagnose and import commands as wired into the command line."""

from __future__ import annotations

import json
import shutil

from tests.support.gateway import Gateway


def test_diagnose_passes_against_a_healthy_source_and_prints_json(gateway: Gateway) -> None:
    gateway.tree.add_pattern("P.4", "1569700")
    gateway.publish()
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

    from imss_updater.db import Database

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
