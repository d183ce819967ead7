"""The CLI speaks the administrator's language: ``--lang ja`` or ``LANG=ja_JP.UTF-8``."""

from __future__ import annotations

import datetime
import json
import re
import subprocess
from pathlib import Path

import pytest

from imss_updater.database import fleet_member as fleet_db
from tests.support.gateway import Gateway
from tests.support.language import HOW, cli_in


def run_status(gateway: Gateway, **environment: str) -> str:
    completed = cli_in(gateway, "neither", "status", **environment)
    assert completed.returncode == 0, completed.stderr
    return completed.stdout


def test_status_is_in_japanese_with_the_lang_option(gateway: Gateway) -> None:
    result = gateway.cli("status", "--lang", "ja")
    assert result.code == 0
    assert "最終確認:" in result.stdout and "ダウンロードロック: 空き" in result.stdout
    assert "ウイルスパターンファイル" in result.stdout
    assert "last check:" not in result.stdout


def test_status_follows_lang_from_the_environment_and_english_is_the_default(gateway: Gateway) -> None:
    assert "ダウンロードロック: 空き" in run_status(gateway, LANG="ja_JP.UTF-8")
    assert "download lock: free" in run_status(gateway, LANG="ja_JP.UTF-8", LC_ALL="C.UTF-8")
    assert "download lock: free" in run_status(gateway)


def test_an_update_reports_in_japanese_with_the_lang_option(gateway: Gateway) -> None:
    gateway.tree.add_pattern("P.4", "1569700")
    gateway.publish()
    result = gateway.cli("update", "virus_pattern", "--lang", "ja")
    assert result.code == 0, result.stderr
    assert "15.697.00を正常にダウンロードしました。" in result.stdout
    assert "1件成功、0件失敗" in result.stdout


# -- every command a person reads, in Japanese by --lang ja and by LANG=ja_JP.UTF-8 ----------

def japanese(gateway: Gateway, how: str, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """Run the real CLI (a process of its own) asking for Japanese the way ``how`` says."""
    return cli_in(gateway, how, *args, stdin=stdin)


@pytest.mark.parametrize("how", HOW)
def test_trust_show_reset_and_reset_index_are_in_japanese(gateway: Gateway, how: str) -> None:
    shown = japanese(gateway, how, "trust", "show")
    assert shown.returncode == 0, shown.stderr
    assert "署名されたものはまだありません" in shown.stdout
    reset = japanese(gateway, how, "trust", "reset", "virus_pattern")
    assert reset.returncode == 0, reset.stderr
    assert "virus_pattern: これまで署名されていませんでした" in reset.stdout
    unknown = japanese(gateway, how, "trust", "reset", "no_such")
    assert unknown.returncode == 2 and "不明なコンポーネント: no_such" in unknown.stderr
    index = japanese(gateway, how, "trust", "reset-index", gateway.base_url)
    assert index.returncode == 0, index.stderr
    assert "インデックスに署名していませんでした" in index.stdout
    assert json.loads(japanese(gateway, how, "trust", "reset-index", gateway.base_url, "--json").stdout) == {
        "cleared": False}


@pytest.mark.parametrize("how", HOW)
def test_the_fleet_status_table_is_in_japanese_and_its_json_stays_english(gateway: Gateway, how: str) -> None:
    gateway.tree.add_pattern("P.4", "1569700")
    gateway.publish()
    assert gateway.cli("update", "virus_pattern").code == 0
    table = japanese(gateway, how, "fleet", "status")
    assert table.returncode == 0, table.stderr
    assert "ハートビート:" in table.stdout and "最終確認:" in table.stdout, table.stdout
    assert "heartbeat" not in table.stdout and "last check" not in table.stdout
    nodes = json.loads(japanese(gateway, how, "fleet", "status", "--json").stdout)["nodes"]
    assert nodes and not re.search("[\u3040-\u30ff\u4e00-\u9fff]", json.dumps(nodes, ensure_ascii=False))


@pytest.mark.parametrize("how", HOW)
def test_config_list_and_notify_log_are_in_japanese(gateway: Gateway, how: str) -> None:
    unknown = japanese(gateway, how, "config", "list", "Updat")
    assert unknown.returncode == 2
    assert "セクション Updat はありません。Update のことですか?" in unknown.stderr
    row = japanese(gateway, how, "config", "get", "Update", "ScheduleTim")
    assert row.returncode == 1
    assert "設定 Update/ScheduleTim はありません" in row.stderr
    log = japanese(gateway, how, "notify", "log")
    assert log.returncode == 0, log.stderr
    assert "送信履歴はありません" in log.stdout
    assert json.loads(japanese(gateway, how, "notify", "log", "--json").stdout) == {"deliveries": []}


@pytest.mark.parametrize("how", HOW)
def test_admin_password_is_confirmed_in_japanese(gateway: Gateway, how: str) -> None:
    done = japanese(gateway, how, "admin", "set-password", stdin="correct horse battery staple\n")
    assert done.returncode == 0, done.stderr
    assert "ステータスページのパスワードを設定しました" in done.stdout
    short = japanese(gateway, how, "admin", "set-password", stdin="short\n")
    assert short.returncode == 2
    assert re.search(r"パスワードは\d+文字以上にしてください", short.stderr), short.stderr


@pytest.mark.parametrize("how", HOW)
def test_diagnose_says_a_bad_address_and_the_database_step_in_japanese(gateway: Gateway, how: str) -> None:
    bad = japanese(gateway, how, "diagnose", "--address", "nohost")
    assert bad.returncode == 2
    assert "--address は HOST=IP の形式で指定してください (指定値: 'nohost')" in bad.stderr
    report = japanese(gateway, how, "diagnose")
    assert "データベース接続: 接続しました (スキーマバージョン" in report.stdout, report.stdout
    english = json.loads(japanese(gateway, how, "diagnose", "--json").stdout)
    assert any(step.get("id") == "database reachable" for step in english["steps"])


@pytest.mark.parametrize("how", HOW)
def test_import_refusals_are_in_japanese(gateway: Gateway, how: str, tmp_path: Path) -> None:
    package = tmp_path / "virus_pattern.zip"
    package.write_bytes(b"PK\x05\x06" + b"\0" * 18)
    unknown = japanese(gateway, how, "import", str(package), "--component", "no_such")
    assert unknown.returncode == 2
    assert "不明なコンポーネント 'no_such' です" in unknown.stderr
    no_version = japanese(gateway, how, "import", str(package))
    assert "バージョンを判別できません" in no_version.stderr
    not_version = japanese(gateway, how, "import", str(package), "--version", "abc")
    assert "'abc' はバージョンではありません" in not_version.stderr
    missing = japanese(gateway, how, "import", str(tmp_path / "gone.zip"))
    assert "ファイルがありません:" in missing.stderr


@pytest.mark.parametrize("how", HOW)
def test_a_failed_restart_is_said_in_japanese_while_the_json_keeps_the_stored_text(
        gateway: Gateway, how: str) -> None:
    gateway.tree.add_pattern("P.4", "1569700")
    gateway.publish()
    gateway.fail_flag.touch()
    assert gateway.cli("update", "virus_pattern").code == 1
    status = japanese(gateway, how, "status")
    assert status.returncode == 0, status.stderr
    assert "(最終再起動: 再起動に失敗しました: " in status.stdout, status.stdout
    assert "検索サービス: 不明 (" in status.stdout  # no status script under /opt in a test
    stored = json.loads(japanese(gateway, how, "status", "--json").stdout)["services"]["scan"]
    assert stored.startswith("failed: ")


# -- the status lines under the table: every word from the catalog ---------------------------

JAPANESE_MOMENT = r"\d{4}/\d\d/\d\d \d{1,2}:\d\d:\d\d [A-Z+\-0-9]+"


@pytest.mark.parametrize("how", HOW)
def test_status_says_the_schedule_run_kind_and_times_in_japanese(gateway: Gateway, how: str) -> None:
    gateway.tree.add_pattern("P.4", "1569700")
    gateway.publish()
    assert gateway.cli("update", "virus_pattern").code == 0
    shown = japanese(gateway, how, "status")
    assert shown.returncode == 0, shown.stderr
    assert "スケジュール: 15分ごと\n" in shown.stdout
    assert re.search(rf"最終実行: {JAPANESE_MOMENT} 手動 \(1件成功、0件失敗\)\n", shown.stdout), shown.stdout
    assert re.search(rf"最終確認: {JAPANESE_MOMENT} \(", shown.stdout), shown.stdout
    assert "manual" not in shown.stdout and "every 15 minutes" not in shown.stdout

    gateway.set("Update", "ScheduleFrequency", "weekly")
    gateway.set("Update", "ScheduleWeekday", "wed")
    gateway.set("Update", "ScheduleTime", "04:30")
    weekly = japanese(gateway, how, "status").stdout
    assert re.search(r"スケジュール: 毎週水曜日 04:30 \(ゲートウェイの現地時刻、\w+\)\n", weekly), weekly
    gateway.set("Update", "ScheduledUpdate", "no")
    assert "スケジュール: 無効\n" in japanese(gateway, how, "status").stdout


def test_the_english_status_keeps_its_words_and_the_json_its_iso_times(gateway: Gateway) -> None:
    gateway.tree.add_pattern("P.4", "1569700")
    gateway.publish()
    assert gateway.cli("update", "virus_pattern").code == 0
    gateway.set("Update", "ScheduleFrequency", "daily")
    lines = gateway.cli("status").stdout
    moment = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \S+"
    assert re.search(rf"last run:   {moment} manual \(1 succeeded, 0 failed\)\n", lines), lines
    assert re.search(r"schedule: every day at 03:00 \(gateway local time, \S+\)\n", lines), lines
    body = json.loads(gateway.cli("status", "--json").stdout)
    assert body["last_run"]["kind"] == "manual" and body["last_run"]["result"] == "1 succeeded, 0 failed"
    assert body["daemon"]["schedule"].startswith("daily at 03:00 (gateway local time")
    datetime_of(body["last_run"]["time"])  # ISO 8601, as before


def datetime_of(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text)


@pytest.mark.parametrize("how", HOW)
def test_the_fleet_source_line_is_in_japanese(gateway: Gateway, how: str) -> None:
    gateway.set("Fleet", "Enabled", "yes")
    since = datetime.datetime(2026, 11, 30, 1, 2, 3, tzinfo=datetime.UTC)
    fleet_db.record_member_source(gateway.database(), "gw-test", fleet_db.MemberSource(
        "mirror", "http://127.0.0.1:9/", since))
    shown = japanese(gateway, how, "status", "--node", "gw-test")
    assert shown.returncode == 0, shown.stderr
    assert ("アップデート元 (フリート): リーダーのミラー http://127.0.0.1:9/ "
            "(2026-11-30T01:02:03+00:00 から接続できません)") in shown.stdout, shown.stdout
    english = gateway.cli("status", "--node", "gw-test").stdout
    assert "the leader's mirror http://127.0.0.1:9/, unreachable since 2026-11-30T01:02:03+00:00" in english
    body = json.loads(gateway.cli("status", "--node", "gw-test", "--json").stdout)
    assert body["fleet"]["text"].startswith("the leader's mirror")


@pytest.mark.parametrize("how", HOW)
def test_usage_and_settings_errors_are_in_japanese(gateway: Gateway, how: str) -> None:
    usage = japanese(gateway, how, "update")
    assert usage.returncode == 2
    assert usage.stderr == "imss-updater: --all か、1つ以上のコンポーネントIDのどちらかを指定してください\n"
    since = japanese(gateway, how, "logs", "--since", "yesterday")
    assert since.returncode == 2 and "--since には ISO 形式の日付" in since.stderr

    gateway.set("Update", "CAFile", "/nonexistent/ca.pem")
    invalid = japanese(gateway, how, "check")
    assert invalid.returncode == 2
    assert invalid.stderr.startswith("imss-updater: 設定が正しくありません: Update/CAFile: "), invalid.stderr
    assert "does not exist" not in invalid.stderr
    status = japanese(gateway, how, "status")
    problem = next(line for line in status.stdout.splitlines() if line.startswith("設定の問題: "))
    assert problem == "設定の問題: Update/CAFile: ファイル /nonexistent/ca.pem が存在しません"


@pytest.mark.parametrize("how", HOW)
def test_db_init_unknown_components_fleet_words_and_trust_times_are_in_japanese(
        gateway: Gateway, how: str) -> None:
    init = japanese(gateway, how, "db", "init")
    assert init.returncode == 0 and init.stdout == "スキーマは最新です\n", init.stdout
    unknown = japanese(gateway, how, "update", "no_such")
    assert unknown.returncode == 1 and unknown.stderr == "imss-updater: 不明なコンポーネント: no_such\n"
    assert gateway.cli("update", "no_such").stderr == "imss-updater: unknown component(s): no_such\n"

    gateway.tree.add_pattern("P.4", "1569700")
    gateway.publish()
    assert gateway.cli("update", "virus_pattern").code == 0
    fleet = japanese(gateway, how, "fleet", "status").stdout.splitlines()[0]
    node_line = rf"\S+  (リーダー|メンバー)  .*最終確認: {JAPANESE_MOMENT}  アップデート元: 配信元  "
    assert re.search(node_line, fleet), fleet
    trust = japanese(gateway, how, "trust", "show").stdout
    signed = rf"署名済みコンポーネント: virus_pattern 15\.697\.00 \({JAPANESE_MOMENT} 以降\)"
    assert re.search(signed, trust), trust


def columns(text: str) -> int:
    """How many terminal columns ``text`` takes (a CJK character takes two)."""
    import unicodedata

    return sum(2 if unicodedata.east_asian_width(character) in "WF" else 1 for character in text)


@pytest.mark.parametrize("how", HOW)
def test_the_japanese_table_and_logs_line_up_in_columns_and_say_kind_and_outcome_in_words(
        gateway: Gateway, how: str) -> None:
    gateway.tree.add_pattern("P.4", "1569700")
    gateway.publish()
    assert gateway.cli("update", "virus_pattern").code == 0
    rows = japanese(gateway, how, "status").stdout.splitlines()[:11]
    starts = {columns(row[:row.index(value)]) for row in rows[1:]
              for value in [row.split()[2]]}  # the "current" column starts at one column
    assert len(starts) == 1, rows
    logs = japanese(gateway, how, "logs").stdout
    assert re.search(r"\d\d:\d\d:\d\d  手動\s+成功\s+ウイルスパターンファイル", logs), logs
    assert re.search(r"\d\d:\d\d:\d\d  manual     success  ", gateway.cli("logs").stdout)


@pytest.mark.parametrize("how", HOW)
def test_a_member_without_a_leader_says_why_in_japanese(gateway: Gateway, how: str) -> None:
    gateway.set("Fleet", "Enabled", "yes")
    checked = japanese(gateway, how, "check")
    assert checked.returncode == 1
    assert "ミラーを提供しているフリートのリーダーがいません" in checked.stderr, checked.stderr
    assert "no fleet leader serves a mirror" in gateway.cli("check").stderr
    body = json.loads(gateway.cli("status", "--json").stdout)
    assert body["last_check"]["result"] == "no fleet leader serves a mirror"
