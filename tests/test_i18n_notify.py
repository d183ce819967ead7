"""Notification delivery results in the administrator's language: ``notify test`` and
``notify log`` with ``--lang ja`` or ``LANG=ja_JP.UTF-8``, and the console's delivery log,
against real peers (aiosmtpd relays, snmptrapd, a refused port, a relay that never answers).
English outputs, ``--json`` and the logs keep the English wording."""

from __future__ import annotations

import datetime
import json
import re
import subprocess
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from imss_updater import i18n, notify
from imss_updater.catalog import DEFAULT_CATALOG
from imss_updater.i18n import N_, Reason
from imss_updater.notify import config as notify_config
from imss_updater.notify import reasons
from imss_updater.run.updater import Outcome, RunReport
from tests.support.browser import csrf_of
from tests.support.gateway import Gateway
from tests.support.language import HOW, cli_in
from tests.support.smtp import ServerFactory, SilentRelay, SmtpServer
from tests.support.snmp import ReceiverFactory, free_udp_port

JA = {"Accept-Language": "ja"}
T0 = datetime.datetime(2026, 11, 22, 3, 0, tzinfo=datetime.UTC)
NOT_CONFIGURED_JA = "メールが設定されていません (Notification/SMTPServer が空欄です)"
TRAP_NOT_CONFIGURED_JA = "SNMPトラップが設定されていません (Notification/SNMPServer が空欄です)"


def run_cli(gateway: Gateway, how: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the real CLI as a process of its own, asking for Japanese the way ``how`` says
    (``english``: neither)."""
    return cli_in(gateway, how, *args)


def use_relay(gateway: Gateway, server: SmtpServer | SilentRelay, **extra: str) -> None:
    rows = {"SMTPServer": server.host, "SMTPPort": str(server.port), "SMTPSecurity": "none",
            "MailFrom": "imss@gw1.example", "MailTo": "ops@example.com", "SMTPTimeout": "5", **extra}
    for name, value in rows.items():
        gateway.set("Notification", name, value)


def use_wrong_password(gateway: Gateway, smtp_server: ServerFactory, smtp_ca_file: Path) -> SmtpServer:
    server = smtp_server("starttls", auth=("relayuser", "right-Pa55word"))
    use_relay(gateway, server, SMTPSecurity="starttls", SMTPCAFile=str(smtp_ca_file),
              SMTPUser="relayuser", SMTPPassword="wrong-Pa55word")
    return server


def use_silent_inform_receiver(gateway: Gateway) -> int:
    """An inform to a UDP port nobody answers on: no acknowledgement within the timeout."""
    port = free_udp_port()
    for name, value in {"SNMPServer": f"127.0.0.1:{port}", "SNMPNotifyType": "inform",
                        "SNMPTimeout": "1", "SNMPRetries": "0"}.items():
        gateway.set("Notification", name, value)
    return port


def failing_report() -> RunReport:
    return RunReport("scheduled", [
        Outcome("virus_pattern", "15.697.00", False, "m", "signature invalid: unknown signer"),
    ])


def cells(line: str) -> list[str]:
    """The columns of a ``notify log`` line (two spaces or more between them)."""
    return re.split(r" {2,}", line, maxsplit=5)


def no_answer_ja(text: str, port: int) -> bool:
    """pysnmp's own timeout, or ours when a loaded machine is slower than pysnmp's retries."""
    return (f"127.0.0.1:{port}: タイムアウトまでにSNMPの応答がありませんでした" in text
            or f"127.0.0.1:{port}: 2秒以内に応答がありませんでした" in text)


# -- notify test ------------------------------------------------------------------------------


@pytest.mark.parametrize("how", HOW)
def test_notify_test_without_channels_says_so_in_japanese(gateway: Gateway, how: str) -> None:
    result = run_cli(gateway, how, "notify", "test")
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        f"失敗  メール  -  {NOT_CONFIGURED_JA}",
        f"失敗  SNMPトラップ  -  {TRAP_NOT_CONFIGURED_JA}",
    ]
    assert result.stderr == f"imss-updater: メール (宛先 -): {NOT_CONFIGURED_JA}\n"


def test_notify_test_in_english_and_json_keep_the_english_words(gateway: Gateway) -> None:
    english = run_cli(gateway, "english", "notify", "test")
    assert english.stdout == (
        "FAIL  mail  -  mail is not configured (Notification/SMTPServer is empty)\n"
        "FAIL  trap  -  trap is not configured (Notification/SNMPServer is empty)\n"
    )
    assert english.stderr == (
        "imss-updater: mail to -: mail is not configured (Notification/SMTPServer is empty)\n")
    as_json = json.loads(run_cli(gateway, "option", "notify", "test", "--json").stdout)
    assert as_json["results"] == [
        {"channel": "mail", "recipient": "-", "event": "test", "outcome": "failed",
         "error": "mail is not configured (Notification/SMTPServer is empty)"},
        {"channel": "trap", "recipient": "-", "event": "test", "outcome": "failed",
         "error": "trap is not configured (Notification/SNMPServer is empty)"},
    ]


@pytest.mark.parametrize("how", HOW)
def test_a_refused_login_and_an_unanswered_inform_are_said_in_japanese(
    gateway: Gateway, smtp_server: ServerFactory, smtp_ca_file: Path, how: str
) -> None:
    relay = use_wrong_password(gateway, smtp_server, smtp_ca_file)
    trap_port = use_silent_inform_receiver(gateway)
    result = run_cli(gateway, how, "notify", "test")
    assert result.returncode == 1
    mail_line, trap_line = result.stdout.splitlines()
    assert mail_line.startswith(f"失敗  メール  ops@example.com  127.0.0.1:{relay.port}: "
                                "relayuser としてのログインが拒否されました: 535 ")
    assert trap_line.startswith(f"失敗  SNMPトラップ  127.0.0.1:{trap_port}  ")
    assert no_answer_ja(trap_line, trap_port), trap_line
    assert "wrong-Pa55word" not in result.stdout + result.stderr
    assert result.stderr.startswith(f"imss-updater: メール (宛先 ops@example.com): 127.0.0.1:{relay.port}: "
                                    "relayuser としてのログインが拒否されました: 535 ")


def test_a_refused_login_keeps_its_english_reason_in_english_and_json(
    gateway: Gateway, smtp_server: ServerFactory, smtp_ca_file: Path
) -> None:
    relay = use_wrong_password(gateway, smtp_server, smtp_ca_file)
    english = run_cli(gateway, "english", "notify", "test", "--mail")
    assert english.stdout.startswith(
        f"FAIL  mail  ops@example.com  127.0.0.1:{relay.port}: login as relayuser refused: 535 ")
    as_json = run_cli(gateway, "environment", "notify", "test", "--mail", "--json")
    [result] = json.loads(as_json.stdout)["results"]
    assert result["error"].startswith(f"127.0.0.1:{relay.port}: login as relayuser refused: 535 ")


def test_a_trap_that_reaches_snmptrapd_is_ok_in_japanese(
    gateway: Gateway, trap_receiver: ReceiverFactory
) -> None:
    receiver = trap_receiver()
    gateway.set("Notification", "SNMPServer", receiver.address)
    result = run_cli(gateway, "option", "notify", "test", "--trap")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"OK    SNMPトラップ  {receiver.address}\n"  # OK as wide as 失敗
    receiver.wait_for("imssUpdaterTestEvent")


def test_invalid_mail_settings_are_named_in_japanese(gateway: Gateway) -> None:
    gateway.set("Notification", "SMTPServer", "127.0.0.1")
    gateway.set("Notification", "MailFrom", "not-an-address")
    gateway.set("Notification", "MailTo", "ops@example.com")
    japanese = run_cli(gateway, "option", "notify", "test", "--mail")
    assert japanese.stdout == ("失敗  メール  -  設定が正しくありません: "
                               "Notification/MailFrom: メールアドレスではありません: 'not-an-address'\n")
    english = run_cli(gateway, "english", "notify", "test", "--mail")
    assert english.stdout == ("FAIL  mail  -  invalid settings: "
                              "Notification/MailFrom: not a mail address: 'not-an-address'\n")


# -- notify log -------------------------------------------------------------------------------


def test_notify_log_shows_timeouts_refusals_and_giving_up_in_japanese(
    gateway: Gateway, silent_relay: SilentRelay, refused_port: int
) -> None:
    use_relay(gateway, silent_relay, SMTPTimeout="1", RetryBackoff="60")
    with gateway.database() as database:
        notify.enqueue_run(database, DEFAULT_CATALOG, failing_report(), now=lambda: T0)
        [timed_out] = notify.deliver_pending(database, now=lambda: T0).attempts
        assert timed_out.outcome == "retry"
        gateway.set("Notification", "SMTPPort", str(refused_port))
        gateway.set("Notification", "MaxAttempts", "2")
        [gave_up] = notify.deliver_pending(database, now=lambda: T0 + datetime.timedelta(hours=1)).attempts
        assert gave_up.outcome == "failed"
        stored = [delivery.stored_error or "" for delivery in notify.deliveries(database)]
    assert all(text.startswith('{"msgid"') for text in stored), stored  # a Reason, rendered when read

    for how in HOW:
        result = run_cli(gateway, how, "notify", "log")
        assert result.returncode == 0, result.stderr
        failed, retry = (cells(line) for line in result.stdout.splitlines())
        assert failed[1:5] == ["メール", "失敗", "ops@example.com", "update pattern failure"]
        # the OS error in Japanese too (oserrors), framed by the delivery's words
        assert failed[5].startswith(f"(127.0.0.1:{refused_port}: 接続が拒否されました ")
        assert failed[5].endswith(" (2 回試行したため送信を中止しました))")
        assert retry[1:3] == ["メール", "再試行"]
        assert retry[5] == (f"(127.0.0.1:{silent_relay.port}: 1秒以内に応答がありませんでした "
                            "(SMTPTimeout、サーバの応答 (グリーティング) の待機中))")

    english = run_cli(gateway, "english", "notify", "log").stdout.splitlines()
    assert english[1].endswith(
        f"  mail  retry   ops@example.com  update pattern failure  (127.0.0.1:{silent_relay.port}:"
        " no answer within 1 s (SMTPTimeout) waiting for the greeting)")
    assert "  mail  failed  ops@example.com  " in english[0]
    assert english[0].endswith(" (gave up after 2 attempts))")
    log = json.loads(run_cli(gateway, "option", "notify", "log", "--json").stdout)["deliveries"]
    assert log[0]["error"].endswith(" (gave up after 2 attempts)")
    assert log[1]["error"] == (
        f"127.0.0.1:{silent_relay.port}: no answer within 1 s (SMTPTimeout) waiting for the greeting")


def test_an_older_plain_english_row_is_shown_as_it_is(gateway: Gateway) -> None:
    with gateway.database() as database, database.transaction() as cursor:
        cursor.execute("INSERT INTO tb_notification_attempt (time, channel, event, recipient, outcome, error)"
                       " VALUES (now(), 'mail', 'test', 'ops@example.com', 'failed', 'an older reason')")
    [row] = run_cli(gateway, "option", "notify", "log").stdout.splitlines()
    assert cells(row)[1:] == ["メール", "失敗", "ops@example.com", "test", "(an older reason)"]


def test_a_stale_mail_in_japanese_says_why_in_japanese(gateway: Gateway, smtp_server: ServerFactory) -> None:
    relay = smtp_server("plain")
    use_relay(gateway, relay, Language="ja")
    with gateway.database() as database:
        component = {c.id: c for c in database.catalog()}["virus_pattern"]
        assert notify.enqueue_stale(database, component, None, True) == 1
        assert notify.deliver_pending(database).sent == 1
    body = relay.received[0].message.get_content()
    assert "一度もアップデートに成功していません" in body and "never updated" not in body


# -- the console ------------------------------------------------------------------------------


def test_the_console_shows_delivery_results_in_the_pages_language(
    logged_in: FlaskClient, gateway: Gateway, smtp_server: ServerFactory, smtp_ca_file: Path
) -> None:
    assert gateway.cli("notify", "test", "--trap").code == 1  # not configured
    relay = use_wrong_password(gateway, smtp_server, smtp_ca_file)
    assert gateway.cli("notify", "test", "--mail").code == 1

    japanese = logged_in.get("/logs", headers=JA).get_data(as_text=True)
    assert TRAP_NOT_CONFIGURED_JA in japanese
    assert f"127.0.0.1:{relay.port}: relayuser としてのログインが拒否されました: 535 " in japanese
    assert "login as" not in japanese and "is not configured" not in japanese
    english = logged_in.get("/logs", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "trap is not configured (Notification/SNMPServer is empty)" in english
    assert f"127.0.0.1:{relay.port}: login as relayuser refused: 535 " in english


def test_the_consoles_test_button_flashes_the_failure_in_japanese(
    logged_in: FlaskClient, gateway: Gateway, smtp_server: ServerFactory, smtp_ca_file: Path
) -> None:
    relay = use_wrong_password(gateway, smtp_server, smtp_ca_file)
    page = logged_in.get("/settings/notifications", headers=JA).get_data(as_text=True)
    response = logged_in.post("/settings/notifications/test", data={"csrf_token": csrf_of(page)},
                              headers=JA, follow_redirects=True)
    shown = response.get_data(as_text=True)
    assert ("ops@example.com へのテスト (メール) に失敗しました: "
            f"127.0.0.1:{relay.port}: relayuser としてのログインが拒否されました: 535 ") in shown
    assert "wrong-Pa55word" not in shown


# -- the Reasons themselves -------------------------------------------------------------------


def test_every_settings_problem_reads_in_english_exactly_as_before() -> None:
    rows = {("Notification", name): value for name, value in {
        "SMTPServer": "relay.example", "SMTPPort": "x", "MailFrom": "nobody", "MailTo": "",
        "SNMPServer": "a:b:c:d", "SNMPVersion": "3", "SNMPv3User": "", "SNMPv3AuthPassword": "short",
        "SNMPv3PrivPassword": "", "SNMPTimeout": "-1",
    }.items()}
    _settings, problems = notify_config.load(rows)
    assert len(problems) >= 5
    for problem in problems:
        assert str(reasons.problem_reason(problem)) == str(problem)
    japanese = [reasons.problem_reason(problem).render("ja") for problem in problems]
    assert any("8文字以上で指定してください" in text for text in japanese), japanese
    joined = reasons.problems_reason(problems)
    assert str(joined) == "; ".join(str(problem) for problem in problems)


def test_a_secret_is_masked_in_every_parameter_of_a_reason() -> None:
    inner = Reason(N_("%(where)s: %(error)s"), {"where": "relay:25", "error": "535 bad pw hunter22"})
    reason = Reason(N_("%(reason)s (gave up after %(attempts)s attempts)"), {"reason": inner, "attempts": 3})
    hidden = reasons.masked(reason, ("hunter22",))
    assert str(hidden) == "relay:25: 535 bad pw *** (gave up after 3 attempts)"
    assert "hunter22" not in i18n.stored(hidden)
    assert hidden.render("ja") == "relay:25: 535 bad pw *** (3 回試行したため送信を中止しました)"
