"""Failure reasons in the administrator's language (issue 9, section 1): what a fetch, a
command, the disk or the check says is an i18n.Reason, rendered in Japanese on a Japanese
console, by ``--lang ja`` and in a Japanese notification, and kept in English in ``--json``,
logs and the English columns. Real peers: a closed port, an HTTPS server signed by another
CA, a server that drips, a real 404, a tmpfs that is full, an SMTP relay, the console."""

from __future__ import annotations

import errno
import json
import math
import os
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from imss_updater import i18n, notify, oserrors, process
from imss_updater.catalog import DEFAULT_CATALOG
from imss_updater.database.db import Database
from imss_updater.i18n import Reason
from imss_updater.run.report import RunReport
from imss_updater.run.services import probe
from imss_updater.run.updater import Mode, Updater
from imss_updater.source.http import FetchError, HttpClient, HttpOptions
from imss_updater.store.install import ComponentStore, InstallError
from tests.support.drip import HostileFactory
from tests.support.gateway import Gateway
from tests.support.local import tiny_tmpfs
from tests.support.servers import ServerFactory, write_file
from tests.support.smtp import ServerFactory as SmtpFactory


def point_at(gateway: Gateway, base_url: str) -> None:
    gateway.set("Update", "UpdateServer", base_url)
    gateway.set("Update", "TMASEServerurl", base_url)


def last_check(gateway: Gateway, language: str) -> str:
    """tb_update_status.last_check_text as every reader shows it (i18n.stored_text)."""
    with gateway.database() as database:
        return i18n.stored_text(database.run_status().last_check_text, language)


def fetch_error(client: HttpClient, url: str) -> FetchError:
    with pytest.raises(FetchError) as caught:
        client.fetch_index(url)
    return caught.value


def options(**overrides: object) -> HttpOptions:
    settings: dict[str, object] = {"connect_timeout": 2.0, "read_timeout": 0.3, "retries": 0, "backoff": 0.01,
                                   "low_speed_bytes": 0}
    settings.update(overrides)
    return HttpOptions(**settings)  # type: ignore[arg-type]


# -- the errno table --------------------------------------------------------------------------


def test_an_os_error_is_japanese_where_the_table_knows_its_errno_and_english_text_stays_exact() -> None:
    full = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert str(oserrors.describe(full)) == "No space left on device"
    assert i18n.render(oserrors.describe(full), "ja") == "デバイスに空き領域がありません"
    refused = ConnectionRefusedError(errno.ECONNREFUSED, os.strerror(errno.ECONNREFUSED))
    assert i18n.render(oserrors.describe(refused), "ja") == "接続が拒否されました"
    for number in oserrors.MEANINGS:  # every msgid is the C library's own text: English unchanged
        assert str(oserrors.meaning(number)) == os.strerror(number)
        assert i18n.render(oserrors.meaning(number), "ja") != os.strerror(number), number


def test_an_errno_outside_the_table_keeps_its_english_text_inside_a_japanese_frame(tmp_path: Path) -> None:
    unknown = OSError(errno.ENOTSOCK, os.strerror(errno.ENOTSOCK))
    assert oserrors.describe(unknown) == "Socket operation on non-socket"
    framed = Reason("cannot write %(path)s: %(error)s", {"path": "/x", "error": oserrors.describe(unknown)})
    assert framed.render("ja") == "/x に書き込めません: Socket operation on non-socket"
    odd = OSError(errno.ENOENT, "a text of its own")  # not the usual words: kept as they are
    assert oserrors.describe(odd) == "a text of its own"


# -- the update source ------------------------------------------------------------------------


def test_a_source_on_a_closed_port_is_told_in_japanese_by_update_lang_ja_and_in_english_elsewhere(
    gateway: Gateway, refused_port: int
) -> None:
    point_at(gateway, f"http://127.0.0.1:{refused_port}")
    japanese = gateway.cli("update", "virus_pattern", "--lang", "ja")
    assert japanese.code != 0
    assert f"接続が拒否されました: 127.0.0.1:{refused_port}" in japanese.stderr
    assert "connection refused" not in japanese.stderr
    assert last_check(gateway, "ja") == f"接続が拒否されました: 127.0.0.1:{refused_port}"
    assert last_check(gateway, "en") == f"connection refused: 127.0.0.1:{refused_port}"

    english = gateway.cli("update", "virus_pattern")
    assert f"connection refused: 127.0.0.1:{refused_port}" in english.stderr
    payload = json.loads(gateway.cli("update", "virus_pattern", "--json").stdout)
    assert payload["results"][0]["reason"] == (
        f"available version unknown: connection refused: 127.0.0.1:{refused_port}")
    with gateway.database() as database:
        event = database.events(outcome="failure", limit=1)[0]
    assert event.reason == f"available version unknown: connection refused: 127.0.0.1:{refused_port}"
    assert f"接続が拒否されました: 127.0.0.1:{refused_port}" in (event.message_ja or "")


def test_a_reachable_source_is_recorded_as_reachable_in_both_languages(gateway: Gateway) -> None:
    assert gateway.cli("check").code == 0
    assert last_check(gateway, "en") == "update source reachable"
    assert last_check(gateway, "ja") == "アップデート元に接続できました"


def test_an_https_source_signed_by_another_ca_fails_with_a_japanese_tls_reason(
    gateway: Gateway, https_server: ServerFactory, other_ca_file: Path
) -> None:
    secure = https_server(gateway.tree.directory)
    gateway.set("Update", "CAFile", str(other_ca_file))
    point_at(gateway, secure.base_url)
    result = gateway.cli("update", "virus_pattern", "--lang", "ja")
    assert result.code != 0
    url = secure.url("server.ini")
    told = (f"{url} の TLS 接続に失敗しました: ローカルの発行者証明書を取得できません "
            "(中間証明書またはルート証明書がありません")
    assert told in result.stderr
    english = last_check(gateway, "en")
    assert english.startswith(f"TLS failure for {url}: unable to get local issuer certificate")


def test_an_http_404_keeps_the_servers_phrase_inside_a_japanese_frame(
    gateway: Gateway, http_server: ServerFactory, tmp_path: Path
) -> None:
    (tmp_path / "empty").mkdir()
    empty = http_server(tmp_path / "empty")  # serves nothing: every path is a real 404
    point_at(gateway, empty.base_url)
    result = gateway.cli("update", "virus_pattern", "--lang", "ja")
    assert result.code != 0
    url = empty.url("server.ini")
    assert f"{url} の応答が HTTP 404 Not Found でした" in result.stderr
    assert last_check(gateway, "en") == f"HTTP 404 Not Found for {url}"


def test_a_source_that_drips_times_out_in_japanese(drip_server: HostileFactory, tmp_path: Path) -> None:
    write_file(tmp_path / "www", "server.ini", 1200)
    server = drip_server(tmp_path / "www", interval=1.0)
    server.drip_body("server.ini")
    with HttpClient(options()) as client:
        error = fetch_error(client, server.url("server.ini"))
    assert error.kind == "timeout"
    assert error.reason == f"timed out after 0.3 s reading {server.url('server.ini')}"
    assert i18n.render(error.why, "ja") == f"{server.url('server.ini')} の受信が 0.3 秒でタイムアウトしました"


def test_a_recorded_cool_down_is_rendered_in_japanese_on_the_next_check(
    gateway: Gateway, drip_server: HostileFactory
) -> None:
    hostile = drip_server(gateway.tree.directory)
    hostile.answer("server.ini", 503, {"Retry-After": "3600"})
    point_at(gateway, hostile.base_url)
    assert gateway.cli("check").code != 0
    assert gateway.cli("check").code != 0  # not asked again: the reason comes from the database
    assert len(hostile.requests) == 1
    shown = last_check(gateway, "ja")
    told = r"アップデート元から .+ まで待つよう求められています \(.+ の応答が HTTP 503 .+でした\)"
    assert re.fullmatch(told, shown), shown
    assert last_check(gateway, "en").startswith("source asks to wait until ")


# -- commands and services --------------------------------------------------------------------


def test_a_command_that_cannot_run_and_one_that_fails_are_reasons_in_both_languages(tmp_path: Path) -> None:
    missing = str(tmp_path / "S99IMSS")
    with pytest.raises(process.CommandError) as cannot:
        process.run([missing, "status"], timeout=5)
    assert cannot.value.reason == f"cannot run {missing} status: No such file or directory: {missing}"
    assert i18n.render(cannot.value.why, "ja") == (
        f"{missing} status を実行できません: そのようなファイルやディレクトリはありません: {missing}")
    with pytest.raises(process.CommandError) as failed:
        process.run(["sh", "-c", "echo broken >&2; exit 3"], timeout=5)
    assert i18n.render(failed.value.why, "ja") == (
        "sh -c 'echo broken >&2; exit 3' が終了ステータス 3 で終了しました: broken")
    assert failed.value.reason == "sh -c 'echo broken >&2; exit 3' exited with status 3: broken"


def test_a_missing_service_status_script_is_unknown_in_japanese(tmp_path: Path) -> None:
    script = str(tmp_path / "S99IMSS")
    state = probe([script, "status"])
    assert state.running is None
    assert state.word == f"unknown (cannot run {script} status: No such file or directory: {script})"
    assert state.reason_in("ja") == (
        f"{script} status を実行できません: そのようなファイルやディレクトリはありません: {script}")
    assert probe([]).reason_in("ja") == "状態確認コマンドが設定されていません"


def test_the_console_in_japanese_shows_the_service_state_and_the_last_runs_reason_in_japanese(
    logged_in: FlaskClient, gateway: Gateway, refused_port: int
) -> None:
    missing = gateway.bin_dir / "S99IMSS"
    gateway.set("Service", "ScanServiceStatus", f"{missing} status")
    point_at(gateway, f"http://127.0.0.1:{refused_port}")
    assert gateway.cli("update", "virus_pattern").code != 0
    page = logged_in.get("/", headers={"Accept-Language": "ja"}).get_data(as_text=True)
    scan = re.search(r'id="scan-state" class="warning">([^<]*)<', page)
    assert scan is not None
    assert scan.group(1) == (f"不明 ({missing} status を実行できません: "
                             f"そのようなファイルやディレクトリはありません: {missing})")
    last_run = re.search(r'id="last-run">(.*?)</dd>', page, re.DOTALL)
    assert last_run is not None and f"接続が拒否されました: 127.0.0.1:{refused_port}" in last_run.group(1)
    english = logged_in.get("/", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert f"connection refused: 127.0.0.1:{refused_port}" in english


# -- the disk ---------------------------------------------------------------------------------


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs for this test (the tests run as root)."""
    with tiny_tmpfs(tmp_path / "tiny") as mount_point:
        yield mount_point


def test_an_install_on_a_full_disk_fails_in_japanese(tiny_disk: Path, tmp_path: Path) -> None:
    archive = tmp_path / "big.zip"
    with zipfile.ZipFile(archive, "w") as package:
        package.writestr("big.dat", os.urandom(3 << 20))
    store = ComponentStore(tiny_disk / "imss", "virus_pattern", "lib/pattern")
    with pytest.raises(InstallError) as failure:
        store.install(archive, "1569700", max_unpacked_bytes=10 << 20)
    assert failure.value.reason == "disk full while unpacking"
    assert i18n.render(failure.value.why, "ja") == "展開中にディスクがいっぱいになりました"


def test_a_download_without_room_is_refused_in_japanese(gateway: Gateway) -> None:
    with tiny_tmpfs(gateway.root / "lib" / ".staging") as staging:
        gateway.tree.add_pattern("P.4", "1569700", size_bytes=3 * 1024 * 1024)
        gateway.publish()
        needed = math.ceil(gateway.tree.entries["P.4"].size / (1024 * 1024))
        result = gateway.cli("update", "virus_pattern", "--lang", "ja")
        assert result.code == 1
        told = rf"空き領域が足りません: {needed} MB 必要ですが、{staging} の空きは [01] MB です"
        assert re.search(told, result.stderr), result.stderr


# -- notifications ----------------------------------------------------------------------------


def test_a_japanese_notification_mail_gives_the_reason_in_japanese(
    gateway: Gateway, refused_port: int, smtp_server: SmtpFactory
) -> None:
    relay = smtp_server("plain")
    point_at(gateway, f"http://127.0.0.1:{refused_port}")
    with gateway.database() as database:
        for name, value in {"SMTPServer": relay.host, "SMTPPort": str(relay.port), "Language": "ja",
                            "MailFrom": "imss@gw1.example", "MailTo": "ops@example.com",
                            "SMTPTimeout": "5"}.items():
            database.set_setting("Notification", name, value)
        report: RunReport = Updater(database, gateway.root).update(Mode.SCHEDULED, None)
        assert not report.ok
        notify.enqueue_run(database, DEFAULT_CATALOG, report)
        assert notify.deliver_pending(database).sent >= 1
    body = relay.received[0].message.get_content()
    assert f"接続が拒否されました: 127.0.0.1:{refused_port}" in body
    assert "connection refused" not in body


def test_the_english_event_column_keeps_the_english_reason(gateway: Gateway, refused_port: int) -> None:
    point_at(gateway, f"http://127.0.0.1:{refused_port}")
    with Database(gateway.dsn) as database:
        Updater(database, gateway.root).update(Mode.MANUAL, ["virus_pattern"])
        event = database.events(outcome="failure", limit=1)[0]
    assert event.message.endswith(f"available version unknown: connection refused: 127.0.0.1:{refused_port}")
