"""The console in Japanese: run summaries, failure reasons and flashed messages come from
the catalog, rendered in the page's language (not stored English)."""

from __future__ import annotations

import re
from typing import Any

from flask.testing import FlaskClient

from tests.support.browser import csrf_of
from tests.support.gateway import Gateway

JA = {"Accept-Language": "ja"}


def text(response: Any) -> str:
    return str(response.get_data(as_text=True))


def test_the_last_run_summary_is_shown_in_the_pages_language(
    logged_in: FlaskClient, gateway: Gateway
) -> None:
    gateway.tree.add_pattern("P.4", "1569700")
    gateway.publish()
    assert gateway.cli("update", "virus_pattern").code == 0

    assert "成功 (手動): 1件成功、0件失敗" in text(logged_in.get("/", headers=JA))
    english = text(logged_in.get("/", headers={"Accept-Language": "en"}))
    assert "Succeeded (Manual): 1 succeeded, 0 failed" in english


def test_a_refusal_reason_is_recorded_and_shown_in_japanese(
    logged_in: FlaskClient, gateway: Gateway
) -> None:
    gateway.set("License", "Antispam", "")
    assert gateway.cli("update", "antispam_pattern").code != 0

    logs = text(logged_in.get("/logs", headers=JA))
    assert "Antispamのライセンスがアクティベートされていません" in logs
    status = text(logged_in.get("/", headers=JA))
    assert ("失敗 (手動): 0件成功、1件失敗 "
            "(antispam_pattern: Antispamのライセンスがアクティベートされていません)") in status


def test_a_flashed_message_is_translated_when_shown(logged_in: FlaskClient) -> None:
    token = csrf_of(text(logged_in.get("/", headers=JA)))
    response = logged_in.post("/update", data={"csrf_token": token}, headers=JA, follow_redirects=True)
    assert "コンポーネントを1つ以上選択してください。" in text(response)


def test_a_settings_error_is_in_japanese_and_named_by_its_field(logged_in: FlaskClient) -> None:
    page = text(logged_in.get("/settings/schedule", headers=JA))
    ids = re.findall(r'name="components" value="([a-z_]+)"', page)
    data = {"csrf_token": csrf_of(page), "enabled": "yes", "frequency": "daily", "minute": "15",
            "time": "25:00", "weekday": "mon", "components": ids}
    bad = text(logged_in.post("/settings/schedule", data=data, headers=JA))
    assert "時刻 (毎日/毎週) (Update/ScheduleTime): HH:MM (24時間制) の形式で指定してください" in bad
    assert "must be" not in bad


def test_licence_names_are_shown_in_japanese(logged_in: FlaskClient) -> None:
    page = text(logged_in.get("/settings/licenses", headers=JA))
    assert "ウイルス対策" in page and "スパムメール対策 (コンテンツ検索)" in page
