"""The CLI speaks the administrator's language: ``--lang ja`` or ``LANG=ja_JP.UTF-8``."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.support.gateway import REPO, Gateway


def run_status(gateway: Gateway, **environment: str) -> str:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("LANG", "LC_"))}
    completed = subprocess.run(
        [sys.executable, "-m", "imss_updater.cli", "status", *gateway.common_args()],
        capture_output=True, text=True, cwd=REPO, timeout=120,
        env={**env, "PYTHONPATH": str(REPO), **environment},
    )
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
