"""The schema, db init and the settings commands, against a real PostgreSQL."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess

import psycopg2

from imss_updater import cli
from imss_updater.catalog import DEFAULT_IDS
from imss_updater.database.db import Database, mask_dsn
from tests.data import default_rows

SPEC_ROWS = {
    ("Update", "UpdateServer"), ("Update", "TMASEServerurl"), ("Update", "UseProxySetting"),
    ("Update", "ScheduledUpdate"), ("Update", "ScheduleFrequency"), ("Update", "ScheduleMinute"),
    ("Update", "ScheduleTime"), ("Update", "ScheduleWeekday"), ("Update", "ScheduledComponents"),
    ("Proxy", "ProxyHost"), ("Proxy", "ProxyPort"), ("Proxy", "ProxyUser"), ("Proxy", "ProxyPassword"),
    ("License", "Antivirus"), ("License", "Antispam"), ("Scan", "ATSEEnabled"),
    ("Scan", "SmartScanEnabled"), ("Update", "CAFile"), ("Update", "VerifySignature"),
    ("Update", "SignatureCAFile"), ("Update", "MaxDownloadMB"), ("Service", "ScanServiceRestart"),
    ("Service", "PolicyServiceRestart"), ("Notification", "SMTPServer"), ("Notification", "SMTPPort"),
    ("Notification", "SMTPSecurity"), ("Notification", "SMTPUser"), ("Notification", "SMTPPassword"),
    ("Notification", "MailFrom"), ("Notification", "MailTo"), ("Notification", "SNMPServer"),
    ("Notification", "SNMPVersion"), ("Notification", "SNMPCommunity"), ("Notification", "SNMPv3User"),
    ("Notification", "SNMPv3AuthPassword"), ("Notification", "SNMPv3PrivPassword"),
}


def run_cli(dsn: str, *args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    words = list(args)
    split = 2 if words[0] in ("db", "config") else 1
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main([*words[:split], "--dsn", dsn, *words[split:]])
    return code, out.getvalue(), err.getvalue()


def test_db_init_creates_every_spec_row_with_its_default(db_dsn: str) -> None:
    code, out, err = run_cli(db_dsn, "db", "init", "--json")
    assert code == 0, err
    assert json.loads(out)["applied"]
    with Database(db_dsn) as database:
        rows = database.settings_rows()
    assert set(rows) >= SPEC_ROWS
    for group in ("Pattern", "Engine", "Spam"):
        assert rows[("Notification", f"{group}UpdateFailureMail")] == "yes"
        assert rows[("Notification", f"{group}UpdateSuccessTrap")] == "no"
        assert "%COMPONENT%" in rows[("Notification", f"{group}UpdateFailureMessage")]
    assert rows[("Update", "ScheduledComponents")] == ",".join(DEFAULT_IDS)
    assert rows == default_rows()  # the SQL file and the test reader agree, license dates included


def test_db_init_is_idempotent_and_never_overwrites_an_administrators_change(db_dsn: str) -> None:
    assert run_cli(db_dsn, "db", "init")[0] == 0
    with Database(db_dsn) as database:
        database.set_setting("Update", "ScheduleFrequency", "daily")
        database.set_setting("License", "Antispam", "2030-12-31")
    code, out, _ = run_cli(db_dsn, "db", "init", "--json")
    assert code == 0
    assert json.loads(out)["applied"] == []
    with Database(db_dsn) as database:
        assert database.get_setting("Update", "ScheduleFrequency") == "daily"
        assert database.get_setting("License", "Antispam") == "2030-12-31"


def test_db_init_upgrades_an_older_schema_and_keeps_its_rows(db_dsn: str) -> None:
    with Database(db_dsn) as database:
        database.init(up_to=1)  # what an older release left: the settings table only
        database.set_setting("Update", "UpdateServer", "https://cm.example:8443/TvcsDownload/ActiveUpdate")
        assert database.schema_version() == 1
    code, _out, err = run_cli(db_dsn, "db", "init")
    assert code == 0, err
    with Database(db_dsn) as database:
        assert database.schema_version() >= 2
        assert database.get_setting("Update", "UpdateServer") == "https://cm.example:8443/TvcsDownload/ActiveUpdate"
        assert database.get_setting("Update", "TMASEServerurl", ).startswith("http://imsva91")  # type: ignore[union-attr]
        assert [component.id for component in database.catalog()] == list(DEFAULT_IDS)


def test_commands_on_an_uninitialised_database_say_to_run_db_init(db_dsn: str) -> None:
    code, _out, err = run_cli(db_dsn, "status")
    assert code == 1
    assert "db init" in err
    assert len(err.strip().splitlines()) == 1


def test_config_get_and_set_round_trip_and_refuse_bad_values(db_dsn: str) -> None:
    run_cli(db_dsn, "db", "init")
    assert run_cli(db_dsn, "config", "set", "Update", "ScheduleFrequency", "hourly")[0] == 0
    code, out, _ = run_cli(db_dsn, "config", "get", "Update", "ScheduleFrequency")
    assert (code, out.strip()) == (0, "hourly")
    code, _out, err = run_cli(db_dsn, "config", "set", "Update", "ScheduleFrequency", "monthly")
    assert code == 2
    assert "Update/ScheduleFrequency: must be one of 15min, hourly, daily, weekly" in err
    assert run_cli(db_dsn, "config", "get", "Update", "ScheduleFrequency")[1].strip() == "hourly"
    code, _out, err = run_cli(db_dsn, "config", "get", "Update", "NoSuchThing")
    assert code == 1 and "no setting" in err


def test_config_set_never_echoes_a_secret(db_dsn: str) -> None:
    run_cli(db_dsn, "db", "init")
    code, out, _ = run_cli(db_dsn, "config", "set", "Proxy", "ProxyPassword", "p@ss:w/rd%;")
    assert code == 0
    assert "p@ss" not in out


def test_catalog_is_data_an_administrator_can_correct(db_dsn: str) -> None:
    run_cli(db_dsn, "db", "init")
    connection = psycopg2.connect(db_dsn)
    with connection, connection.cursor() as cursor:
        cursor.execute("UPDATE tb_component SET live_path = 'lib/pattern/vsapi2' WHERE id = 'virus_pattern'")
    connection.close()
    with Database(db_dsn) as database:
        by_id = {component.id: component for component in database.catalog()}
    assert by_id["virus_pattern"].live_path == "lib/pattern/vsapi2"


def test_psql_settings_change_is_seen_by_the_next_command(db_dsn: str, pg_cluster) -> None:  # type: ignore[no-untyped-def]
    run_cli(db_dsn, "db", "init")
    dbname = psycopg2.extensions.parse_dsn(db_dsn)["dbname"]
    environment = {**os.environ, "PGPASSFILE": str(pg_cluster.passfile)}
    statement = (
        "UPDATE tb_global_setting SET value = "
        "'https://imsva91-p.activeupdate.trendmicro.co.jp/activeupdate/japan' "
        "WHERE section = 'Update' AND ( name = 'UpdateServer' OR name = 'TMASEServerurl' );"
    )
    completed = subprocess.run(
        ["psql", "-h", "127.0.0.1", "-p", str(pg_cluster.port), dbname, "sa", "-c", statement],
        capture_output=True, text=True, env=environment, check=True,
    )
    assert completed.stdout.strip() == "UPDATE 2"
    _code, out, _ = run_cli(db_dsn, "config", "get", "Update", "TMASEServerurl")
    assert out.strip().startswith("https://")


def test_dsn_passwords_are_masked() -> None:
    assert "s3cr" not in mask_dsn("host=h password=s3cr@t:/% dbname=imss")
    assert "s3cr" not in mask_dsn("host=h password='s3 cr' dbname=imss")
    assert "s3cr" not in mask_dsn("postgresql://sa:s3cr%40t@127.0.0.1:5432/imss")


def test_an_unreachable_database_is_one_clear_line(tmp_path) -> None:  # type: ignore[no-untyped-def]
    code, _out, err = run_cli("host=127.0.0.1 port=1 dbname=imss user=sa password=hunter2 connect_timeout=2",
                              "status")
    assert code == 1
    assert "cannot connect to the database" in err
    assert "hunter2" not in err
    assert len(err.strip().splitlines()) == 1
