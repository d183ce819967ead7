"""``imss-updater diagnose`` in Japanese: the real CLI as a process of its own (``--lang ja`` or
``LANG=ja_JP.UTF-8``) against a gateway in a few states, every text from the one catalog; the
English report and ``--json`` stay English; no Japanese is left in the diagnose source."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import trustme

from imss_updater import i18n
from imss_updater.i18n import N_, Reason
from tests.support.chain import pem_file
from tests.support.gateway import REPO, Gateway
from tests.support.servers import StaticServer
from tests.test_diagnose import checked, publish, use_source
from tests.test_i18n_cli import HOW, japanese

# Hiragana, katakana, CJK ideographs and the Japanese punctuation (、。「」).
JAPANESE = re.compile(r"[\u3000-\u303f\u3040-\u30ff\u4e00-\u9fff\uff00-\uffef]")


def report(gateway: Gateway, how: str = "option", *args: str) -> str:
    """The Japanese report of the real CLI (exit 0 or 1: some steps may fail)."""
    completed = japanese(gateway, how, "diagnose", *args)
    assert completed.returncode in (0, 1), completed.stderr
    return completed.stdout


def line(text: str, start: str) -> str:
    found = [row for row in text.splitlines() if row.startswith(start)]
    assert len(found) == 1, (start, text)
    return found[0]


@pytest.mark.parametrize("how", HOW)
def test_a_gateway_that_has_never_checked_is_diagnosed_in_japanese(gateway: Gateway, how: str) -> None:
    publish(gateway)
    gateway.set("Update", "ScheduleFrequency", "daily")
    gateway.set("Update", "ScheduleTime", "04:30")
    text = report(gateway, how)
    assert line(text, "PASS  データベース接続: ").startswith("PASS  データベース接続: 接続しました")
    assert "PASS  設定: " in text and "行を読み込みました" in text
    assert line(text, "PASS  予約アップデート: ") == (
        "PASS  予約アップデート: 有効: 毎日 04:30 (ゲートウェイの現地時刻)")
    assert line(text, "SKIP  最後の確認: ").startswith(
        "SKIP  最後の確認: スキップ: まだ一度も確認が実行されていないため、利用可能なバージョンは不明です")
    assert line(text, "SKIP  利用可能なバージョン: ") == (
        "SKIP  利用可能なバージョン: スキップ: まだ確認が実行されていません")
    port = gateway.server.port
    assert f"PASS  TCP 接続: 127.0.0.1:{port}: 127.0.0.1:{port} に接続しました" in text
    assert "HTTP 200、" in text and "バイト" in text
    assert "PASS  ロックファイル: 空き (" in text
    for english in ("skipped:", "connected to", "rows read", "active until", "free (", "check(s) failed",
                    "all checks passed", "is an IP address"):
        assert english not in text, english


def test_a_failed_check_and_the_network_step_it_failed_at_are_in_japanese(
    gateway: Gateway, refused_port: int
) -> None:
    publish(gateway)
    use_source(gateway, f"http://127.0.0.1:{refused_port}/activeupdate")
    assert gateway.cli("check").code == 1
    text = report(gateway)
    assert re.search(r"^FAIL  最後の確認: .* の最後の確認は失敗しました: ", text, re.MULTILINE), text
    assert "      -> アップデート元に接続できないか、内容を読めません" in text
    assert line(text, "FAIL  利用可能なバージョン: ").startswith(
        "FAIL  利用可能なバージョン: 不明: ウイルス検索エンジン、")
    assert f"-> 127.0.0.1 のポート {refused_port} で待ち受けているものがありません" in text
    assert "アップデートサーバが稼働していることを確認してください" in text
    status = line(text, "SKIP  HTTP ステータス: ")
    assert status.endswith(f"{refused_port}/activeupdate/server.ini: スキップ: TCP 接続に失敗しました")
    assert re.search(r"^\d+ 件の確認が失敗しました$", text, re.MULTILINE), text


def test_a_last_check_stored_as_a_reason_is_shown_in_each_language(gateway: Gateway) -> None:
    publish(gateway)
    checked(gateway)
    with gateway.database() as database, database.transaction() as cursor:
        cursor.execute("UPDATE tb_update_status SET last_check_text = %s",
                       (i18n.stored(Reason(N_("All components are up to date."))),))
    last = line(report(gateway), "PASS  最後の確認: ")
    assert last.endswith("の最後の確認は成功しました: すべてのコンポーネントは最新です。")
    english = gateway.cli("diagnose")
    assert "succeeded: All components are up to date." in line(english.stdout, "PASS  last check: ")

    with gateway.database() as database, database.transaction() as cursor:  # an older plain text
        cursor.execute("UPDATE tb_update_status SET last_check_text = 'update source reachable'")
    last = line(report(gateway), "PASS  最後の確認: ")
    assert last.endswith("の最後の確認は成功しました: update source reachable")


def test_a_missing_intermediate_and_a_missing_root_certificate_are_told_apart_in_japanese(
    gateway: Gateway, chain_ca: trustme.CA, chain_leaf: trustme.LeafCert, servers: list[StaticServer],
    other_ca_file: Path, tmp_path: Path,
) -> None:
    publish(gateway)
    only_leaf = pem_file(tmp_path / "leaf.pem", chain_leaf.private_key_pem, chain_leaf.cert_chain_pems[0])
    servers.append(StaticServer(gateway.tree.directory, chain_leaf,
                                context_hook=lambda context: context.load_cert_chain(only_leaf)).start())
    use_source(gateway, servers[-1].base_url)
    gateway.set("Update", "CAFile", str(pem_file(tmp_path / "root.pem", chain_ca.cert_pem)))
    text = report(gateway)
    tls = line(text, "FAIL  TLS ハンドシェイク: ")
    assert "127.0.0.1 の証明書を受け入れられません; 中間証明書がありません: " in tls
    assert "サーバの証明書は 'O=trustme" in tls
    assert "ルート証明書がありません" not in tls
    assert "サーバの証明書チェーンを修正してください" in text
    assert "Update/CAFile (CA 証明書の PEM ファイル。空の場合はシステムの証明書ストア)" in text
    assert "スキップ: TLS ハンドシェイクに失敗しました" in text

    servers.append(StaticServer(gateway.tree.directory, chain_leaf).start())  # leaf + intermediate
    use_source(gateway, servers[-1].base_url)
    gateway.set("Update", "CAFile", str(other_ca_file))
    text = report(gateway)
    tls = line(text, "FAIL  TLS ハンドシェイク: ")
    assert "ルート証明書がありません: 中間証明書 'O=trustme" in tls
    assert "を発行したルート証明書 'O=trustme" in tls
    assert "中間証明書がありません" not in tls
    assert "-> ルート証明書 'O=trustme" in text


def test_the_english_report_and_the_json_stay_english(gateway: Gateway) -> None:
    publish(gateway)
    checked(gateway)
    english = gateway.cli("diagnose")
    assert english.code == 0, english.stdout
    assert not JAPANESE.search(english.stdout), english.stdout
    assert english.stdout.rstrip().endswith("all checks passed")
    payload = json.loads(gateway.cli("diagnose", "--json").stdout)
    assert not JAPANESE.search(json.dumps(payload, ensure_ascii=False))
    assert [step["name"].split(":")[0] for step in payload["steps"][:3]] == [
        "database reachable", "settings", "scheduled update"]
    shown = json.loads(report(gateway, "option", "--json"))
    assert shown["steps"][0]["id"] == "database reachable" and shown["steps"][0]["name"] == "データベース接続"


def test_no_japanese_is_written_in_the_diagnose_source_any_more() -> None:
    package = REPO / "imss_updater"
    sources = [*sorted((package / "diagnose").glob("*.py")), package / "web" / "diagnose.py",
               package / "web" / "templates" / "diagnose.html"]
    assert len(sources) > 7
    found = [f"{path.relative_to(REPO)}:{number}: {text.strip()}"
             for path in sources for number, text in enumerate(path.read_text().splitlines(), 1)
             if JAPANESE.search(text)]
    assert found == [], "diagnose texts belong in messages.po:\n" + "\n".join(found)
