"""The readers of the stored reasons: ``status --lang ja`` and ``check --lang ja`` show the
last check and a service that cannot be asked in Japanese, ``--json`` in English."""

from __future__ import annotations

import json

from tests.support.gateway import Gateway


def test_status_lang_ja_shows_the_last_check_and_the_service_state_in_japanese_and_json_stays_english(
    gateway: Gateway, refused_port: int
) -> None:
    missing = gateway.bin_dir / "S99IMSS"
    gateway.set("Service", "ScanServiceStatus", f"{missing} status")
    gateway.set("Update", "UpdateServer", f"http://127.0.0.1:{refused_port}")
    gateway.set("Update", "TMASEServerurl", f"http://127.0.0.1:{refused_port}")
    check = gateway.cli("check", "--lang", "ja")
    assert check.code == 1
    assert f"接続が拒否されました: 127.0.0.1:{refused_port}" in check.stderr
    status = gateway.cli("status", "--lang", "ja")
    assert f"接続が拒否されました: 127.0.0.1:{refused_port}" in status.stdout
    told = f"{missing} status を実行できません: そのようなファイルやディレクトリはありません: {missing}"
    assert told in status.stdout
    payload = json.loads(gateway.cli("status", "--json").stdout)
    assert payload["last_check"]["result"] == f"connection refused: 127.0.0.1:{refused_port}"
    assert payload["services"]["scan_state"] == (
        f"unknown (cannot run {missing} status: No such file or directory: {missing})")
    english = gateway.cli("status")
    assert f"connection refused: 127.0.0.1:{refused_port}" in english.stdout
