"""The command line an operator types: options anywhere, listing, suggestions, help, psql."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path

from imss_updater import cli
from tests.support.gateway import REPO, Gateway
from tests.support.pg import free_port, make_state_dir


def run_cli(*args: str, stdin: str | None = None, env: dict[str, str] | None = None,
            cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "imss_updater.cli", *args], input=stdin,
                          capture_output=True, text=True, timeout=120, check=False, cwd=cwd,
                          env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})})


def test_common_options_work_before_and_after_the_subcommand(gateway: Gateway) -> None:
    before = run_cli("--json", "--dsn", gateway.dsn, "--root", str(gateway.root), "status")
    after = run_cli("status", "--json", "--dsn", gateway.dsn, "--root", str(gateway.root))
    mixed = run_cli("--dsn", gateway.dsn, "status", "--json", "--root", str(gateway.root))
    for result in (before, after, mixed):
        assert result.returncode == 0, result.stderr
        assert {item["id"] for item in json.loads(result.stdout)["components"]} >= {"virus_pattern"}


def test_config_list_shows_every_row_with_secrets_masked(gateway: Gateway) -> None:
    gateway.set("Proxy", "ProxyPassword", "s3cret-日本")
    gateway.set("Notification", "SNMPCommunity", "private-community")

    result = gateway.cli("config", "list", "--json")

    assert result.code == 0, result.stderr
    rows = {(item["section"], item["name"]): item["value"] for item in json.loads(result.stdout)["settings"]}
    assert rows[("Proxy", "ProxyPassword")] == "***"
    assert rows[("Notification", "SNMPCommunity")] == "***"
    assert rows[("Update", "ScheduleFrequency")] == "15min"
    text = gateway.cli("config", "list").stdout
    assert "s3cret" not in text and "private-community" not in text
    assert "Update/UpdateServer = " in text


def test_config_list_of_one_section_and_a_misspelled_section(gateway: Gateway) -> None:
    result = gateway.cli("config", "list", "proxy", "--json")
    sections = {item["section"] for item in json.loads(result.stdout)["settings"]}
    assert sections == {"Proxy"}
    wrong = gateway.cli("config", "list", "Updat")
    assert wrong.code == 2
    assert wrong.stderr.strip() == "imss-updater: no section Updat; did you mean Update?"


def test_a_misspelled_row_suggests_the_real_one(gateway: Gateway) -> None:
    result = gateway.cli("config", "set", "Update", "UpdateSever", "http://x.test/au")
    assert result.code == 2
    assert result.stderr.strip() == (
        "imss-updater: no setting Update/UpdateSever; did you mean Update/UpdateServer?"
    )
    case = gateway.cli("config", "get", "update", "updateserver")
    assert "did you mean Update/UpdateServer?" in case.stderr
    assert gateway.get("Update", "UpdateServer") != "http://x.test/au"


def test_subcommand_help_describes_the_command_and_lists_the_component_ids(capsys) -> None:  # type: ignore[no-untyped-def]
    for command in (["update"], ["rollback"], ["import"]):
        try:
            cli.main([*command, "--help"])
        except SystemExit as stop:
            assert stop.code == 0
        out = capsys.readouterr().out
        assert "virus_pattern" in out and "smart_scan_pattern" in out
    with contextlib.suppress(SystemExit):
        cli.main(["check", "--help"])
    assert "ask the update sources now" in capsys.readouterr().out


def test_version_is_printed() -> None:
    result = run_cli("--version")
    assert result.returncode == 0
    assert result.stdout.startswith("imss-updater ")


def test_psql_runs_the_specs_switch_statement_on_the_configured_database(gateway: Gateway) -> None:
    statement = (
        "UPDATE tb_global_setting SET value = "
        "'https://imsva91-p.activeupdate.trendmicro.co.jp/activeupdate/japan'\n"
        "  WHERE section = 'Update' AND ( name = 'UpdateServer' OR name = 'TMASEServerurl' );\n"
    )

    result = run_cli("psql", "--dsn", gateway.dsn, stdin=statement)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "UPDATE 2"
    assert (gateway.get("Update", "TMASEServerurl") or "").startswith("https://")


def test_psql_on_the_embedded_database_needs_no_password_and_leaves_it_stopped() -> None:
    state = make_state_dir("imss-psql-")
    try:
        result = run_cli("psql", "--state", str(state), "--db-port", str(free_port()),
                         stdin="\\pset format unaligned\nSELECT current_user, current_database();\n",
                         env={"PGPASSWORD": "", "IMSS_DSN": ""})
        assert result.returncode == 0, result.stderr
        assert "sa|imss" in result.stdout.splitlines()
        assert not (state / "pgdata" / "postmaster.pid").exists()
    finally:
        subprocess.run(["rm", "-rf", str(state)], check=False)
