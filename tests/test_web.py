"""The web console through Flask's test client: every route, and the refused requests."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families

from imss_updater.database.db import Database
from imss_updater.web.accounts import FREE_FAILURES
from imss_updater.web.auth import set_admin_password
from tests.support.browser import ADMIN_PASSWORD, csrf_of, log_on, wait_for_job
from tests.support.gateway import Gateway
from tests.support.smtp import ServerFactory

PRIVATE_GETS = ["/", "/logs", "/settings/", "/settings/source", "/settings/proxy", "/settings/schedule",
                "/settings/notifications", "/settings/licenses"]
PRIVATE_POSTS = ["/update", "/rollback", "/check", "/logout", "/settings/source", "/settings/proxy",
                 "/settings/schedule", "/settings/notifications", "/settings/notifications/test"]


def token(client: FlaskClient, path: str = "/") -> str:
    return csrf_of(client.get(path).get_data(as_text=True))


def text(response: Any) -> str:
    return str(response.get_data(as_text=True))


def publish(gateway: Gateway) -> None:
    gateway.tree.add_pattern("P.4", "1569700")
    gateway.tree.add_pattern("P.8", "240100")
    gateway.tree.add_engine("VSAPI_LINUX_X86_64", "21.0.1008")
    gateway.publish()


# -- security --------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", PRIVATE_GETS)
def test_every_page_redirects_to_log_on_without_a_session(client: FlaskClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")


@pytest.mark.parametrize("path", PRIVATE_POSTS)
def test_every_action_is_refused_without_a_session(client: FlaskClient, path: str) -> None:
    response = client.post(path, data={"csrf_token": token(client, "/login"), "component": "virus_pattern"})
    assert response.status_code == 401


def test_job_progress_is_refused_without_a_session(client: FlaskClient) -> None:
    assert client.get("/jobs/current").status_code == 401


@pytest.mark.parametrize("path", [*PRIVATE_POSTS, "/login", "/lang"])
def test_every_form_is_refused_without_the_csrf_token(logged_in: FlaskClient, path: str) -> None:
    assert logged_in.post(path, data={"component": "virus_pattern"}).status_code == 400
    response = logged_in.post(path, data={"csrf_token": "forged", "lang": "ja", "password": ADMIN_PASSWORD})
    assert response.status_code == 400
    assert "did not come from this console" in text(response)


@pytest.mark.parametrize("path", ["/update", "/rollback", "/check", "/logout", "/lang"])
def test_actions_do_nothing_on_get(logged_in: FlaskClient, path: str) -> None:
    assert logged_in.get(path).status_code == 405


def test_fresh_install_has_no_password_and_tells_how_to_set_one(db_dsn: str, tmp_path: Any) -> None:
    from imss_updater.web import WebConfig, create_app

    with Database(db_dsn) as database:
        database.init()
    client = create_app(WebConfig(db_dsn, tmp_path, b"s" * 32)).test_client()
    page = text(client.get("/login"))
    assert "No administrator password is set" in page
    assert "imss-updater admin set-password" in page
    for guess in ("", "admin", "password", "imss"):
        response = client.post("/login", data={"csrf_token": csrf_of(page), "password": guess})
        assert response.status_code == 401
    assert client.get("/").status_code == 302


def test_wrong_password_is_refused_and_right_one_logs_on(client: FlaskClient) -> None:
    response = log_on(client, "wrong password")
    assert response.status_code == 401
    assert "Incorrect password." in text(response)
    response = log_on(client)
    assert response.status_code == 302
    assert client.get("/").status_code == 200


def test_session_cookie_is_httponly_and_samesite(client: FlaskClient) -> None:
    response = log_on(client)
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie


def test_log_on_is_slowed_down_after_repeated_failures(client: FlaskClient) -> None:
    for _ in range(FREE_FAILURES):
        assert log_on(client, "wrong password").status_code == 401
    response = log_on(client)  # even the right password waits for the delay to pass
    assert response.status_code == 429
    assert "Too many failed log-on attempts" in text(response)
    assert int(response.headers["Retry-After"]) > 0


def test_new_password_ends_existing_sessions(logged_in: FlaskClient, gateway: Gateway) -> None:
    with gateway.database() as database:
        set_admin_password(database, "another long password")
    assert logged_in.get("/").status_code == 302


def test_short_password_is_refused(gateway: Gateway) -> None:
    with gateway.database() as database, pytest.raises(ValueError, match="at least 8"):
        set_admin_password(database, "short")


def test_log_off_ends_the_session(logged_in: FlaskClient) -> None:
    response = logged_in.post("/logout", data={"csrf_token": token(logged_in)})
    assert response.status_code == 302
    assert logged_in.get("/").status_code == 302


def test_log_on_redirects_only_to_local_paths(client: FlaskClient) -> None:
    page = text(client.get("/login"))
    response = client.post("/login", data={"csrf_token": csrf_of(page), "password": ADMIN_PASSWORD,
                                           "next": "//evil.example/"})
    assert response.headers["Location"] == "/"


def test_pages_carry_security_headers(logged_in: FlaskClient) -> None:
    response = logged_in.get("/")
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["Cache-Control"] == "no-store"


def test_unknown_page_is_404(logged_in: FlaskClient) -> None:
    assert logged_in.get("/settings/nothing").status_code == 404
    assert logged_in.get("/nothing").status_code == 404


# -- status ----------------------------------------------------------------------------------------

def test_status_shows_unknown_before_any_check(logged_in: FlaskClient) -> None:
    page = text(logged_in.get("/"))
    assert page.count('class="available unknown"') == 10
    assert "Virus Pattern" in page


def test_status_shows_newer_in_red_absent_as_zero_and_unreachable_as_unknown(
    logged_in: FlaskClient, console_app: Flask, gateway: Gateway
) -> None:
    publish(gateway)
    gateway.set("Update", "TMASEServerurl", "http://127.0.0.1:9/nothing")
    assert logged_in.post("/check", data={"csrf_token": token(logged_in)}).status_code == 302
    wait_for_job(console_app)
    page = text(logged_in.get("/"))
    row = _row(page, "virus_pattern")
    assert 'class="available newer"' in row and "15.697.00" in row
    assert ">0.0<" in _row(page, "intellitrap_pattern")
    assert 'class="available unknown"' in _row(page, "spam_engine")
    assert 'class="available unknown"' not in _row(page, "virus_pattern")
    assert "Check failed" in page


def test_unlicensed_components_are_greyed_and_cannot_be_selected(
    logged_in: FlaskClient, gateway: Gateway
) -> None:
    gateway.set("License", "Antispam", "2001-01-01")
    gateway.set("License", "Antivirus", "")
    page = text(logged_in.get("/"))
    for component_id in ("spam_engine", "url_filter_engine", "virus_pattern"):
        row = _row(page, component_id)
        assert 'class="greyed"' in row and "disabled" in row
    assert "license expired" in _row(page, "spam_engine")
    assert "license not activated" in _row(page, "virus_pattern")


def test_manual_update_runs_in_background_and_reports_success(
    logged_in: FlaskClient, console_app: Flask, gateway: Gateway
) -> None:
    publish(gateway)
    response = logged_in.post("/update", data={"csrf_token": token(logged_in),
                                                "component": ["virus_pattern", "spyware_pattern"]})
    assert response.status_code == 302
    wait_for_job(console_app)
    progress = logged_in.get("/jobs/current").get_json()
    assert progress["running"] is False
    assert {item["phase"] for item in progress["components"].values()} == {"done"}
    page = text(logged_in.get("/"))
    assert "Manual update succeeded." in page
    assert "Virus Pattern 15.697.00 was downloaded successfully." in page
    assert "15.697.00" in _row(page, "virus_pattern")
    assert gateway.restarts() == ["scan"]
    assert ("manual", "virus_pattern", "15.697.00", "success") in gateway.events()


def test_rollback_reports_success_and_takes_the_component_off_the_schedule(
    logged_in: FlaskClient, console_app: Flask, gateway: Gateway
) -> None:
    publish(gateway)
    assert gateway.cli("update", "virus_pattern").code == 0
    gateway.tree.add_pattern("P.4", "1569800")
    gateway.publish()
    assert gateway.cli("update", "virus_pattern").code == 0
    logged_in.post("/rollback", data={"csrf_token": token(logged_in), "component": "virus_pattern"})
    wait_for_job(console_app)
    page = text(logged_in.get("/"))
    assert "Rollback succeeded." in page
    assert "excluded from scheduled update" in _row(page, "virus_pattern")
    assert "virus_pattern" not in (gateway.get("Update", "ScheduledComponents") or "")


def test_failed_rollback_shows_the_reason(logged_in: FlaskClient, console_app: Flask) -> None:
    logged_in.post("/rollback", data={"csrf_token": token(logged_in), "component": "virus_pattern"})
    wait_for_job(console_app)
    page = text(logged_in.get("/"))
    assert "Rollback failed." in page
    assert "Virus Pattern could not be rolled back" in page


def test_update_without_selection_or_with_unknown_component_is_refused(logged_in: FlaskClient) -> None:
    response = logged_in.post("/update", data={"csrf_token": token(logged_in)}, follow_redirects=True)
    assert "Select at least one component." in text(response)
    response = logged_in.post("/update", data={"csrf_token": token(logged_in), "component": "nope"})
    assert response.status_code == 400


def test_update_while_another_process_holds_the_lock_shows_the_lock_message(
    logged_in: FlaskClient, gateway: Gateway
) -> None:
    from imss_updater.store import lock

    with lock.download_lock(gateway.root):
        page = text(logged_in.get("/"))
        assert "Another process is downloading files." in page
        response = logged_in.post("/update", data={"csrf_token": token(logged_in),
                                                    "component": "virus_pattern"}, follow_redirects=True)
        assert "Another process is downloading files." in text(response)
    assert logged_in.get("/jobs/current").get_json()["id"] is None


def test_status_page_costs_the_same_number_of_queries_for_any_catalog_size(
    logged_in: FlaskClient, console_app: Flask, gateway: Gateway
) -> None:
    counter = _count_queries(console_app)
    logged_in.get("/")
    small = counter.reset()
    with gateway.database() as database, database.transaction() as cursor:
        for number in range(40):
            cursor.execute(
                "INSERT INTO tb_component (id, name_en, name_ja, kind, source, au_key, license, feature,"
                " event_group, live_path, sort_order) VALUES (%s, %s, %s, 'pattern', 'update', %s,"
                " 'Antivirus', NULL, 'pattern', %s, 100)",
                (f"extra_{number}", f"Extra {number}", f"追加{number}", f"P.{9000 + number}",
                 f"lib/pattern/extra{number}"),
            )
            cursor.execute("INSERT INTO tb_component_state (id) VALUES (%s)", (f"extra_{number}",))
    page = text(logged_in.get("/"))
    assert "Extra 39" in page
    assert counter.reset() == small
    assert small <= 8


# -- logs ------------------------------------------------------------------------------------------

def test_logs_filter_by_kind_component_outcome_and_date(logged_in: FlaskClient, gateway: Gateway) -> None:
    publish(gateway)
    assert gateway.cli("update", "virus_pattern").code == 0
    gateway.tree.add_pattern("P.4", "1569800")
    gateway.publish()
    assert gateway.cli("update", "virus_pattern").code == 0
    assert gateway.cli("rollback", "virus_pattern").code == 0
    page = text(logged_in.get("/logs"))
    assert "Virus Pattern 15.698.00 was downloaded successfully." in page
    assert "Virus Pattern was rolled back to version 15.697.00 successfully." in page
    only_manual = text(logged_in.get("/logs?kind=manual"))
    assert "rolled back" not in only_manual and "downloaded successfully" in only_manual
    assert "No events match." in text(logged_in.get("/logs?component=spam_engine"))
    assert "No events match." in text(logged_in.get("/logs?outcome=failure&component=virus_pattern"))
    assert "No events match." in text(logged_in.get("/logs?to=2000-01-01"))
    assert "downloaded successfully" in text(logged_in.get("/logs?from=2000-01-01"))


def test_logs_page_through_events(logged_in: FlaskClient, gateway: Gateway) -> None:
    from imss_updater.database.db import NewEvent

    with gateway.database() as database:
        for number in range(120):
            database.add_event(NewEvent("scheduled", "virus_pattern", f"15.{number:03d}.00", "success",
                                        f"event number {number}.", f"イベント{number}。"))
    first = text(logged_in.get("/logs"))
    assert "event number 119." in first and "event number 69." not in first
    assert 'id="older"' in first and 'id="newer"' not in first
    third = text(logged_in.get("/logs?page=3"))
    assert "event number 0." in third and 'id="older"' not in third


@pytest.mark.parametrize("query", ["kind=nope", "outcome=maybe", "component=nope", "from=yesterday",
                                   "to=2024-13-01", "page=0", "page=x"])
def test_logs_refuse_bad_filters(logged_in: FlaskClient, query: str) -> None:
    assert logged_in.get(f"/logs?{query}").status_code == 400


# -- settings --------------------------------------------------------------------------------------

def test_source_page_switches_activeupdate_to_https(logged_in: FlaskClient, gateway: Gateway) -> None:
    data = {"csrf_token": token(logged_in, "/settings/source"), "source": "au", "protocol": "https",
            "tmase": "same", "verify": "auto", "ca_file": "", "signature_ca_file": "", "max_mb": "1024"}
    response = logged_in.post("/settings/source", data=data, follow_redirects=True)
    assert "Settings saved." in text(response)
    expected = "https://imsva91-p.activeupdate.trendmicro.co.jp/activeupdate/japan"
    assert gateway.get("Update", "UpdateServer") == expected
    assert gateway.get("Update", "TMASEServerurl") == expected
    assert 'id="protocol-https" checked' in text(logged_in.get("/settings/source"))


def test_source_page_takes_another_source_and_refuses_bad_input(
    logged_in: FlaskClient, gateway: Gateway
) -> None:
    base = {"csrf_token": token(logged_in, "/settings/source"), "source": "other", "tmase": "same",
            "verify": "auto", "ca_file": "", "signature_ca_file": "", "max_mb": "1024"}
    cm = "https://cm.example.com:8443/TvcsDownload/ActiveUpdate"
    assert logged_in.post("/settings/source", data={**base, "other_url": cm + "/"}).status_code == 302
    assert gateway.get("Update", "UpdateServer") == cm
    before = gateway.get("Update", "MaxDownloadMB")
    for bad in ({"other_url": "ftp://x"}, {"other_url": cm, "max_mb": "lots"},
                {"other_url": cm, "verify": "sometimes"}, {"other_url": cm, "ca_file": "relative.pem"}):
        response = logged_in.post("/settings/source", data={**base, **bad})
        assert response.status_code == 400
        assert "The settings were not saved" in text(response)
    assert gateway.get("Update", "MaxDownloadMB") == before
    assert gateway.get("Update", "UpdateServer") == cm


def test_proxy_password_is_write_only(logged_in: FlaskClient, gateway: Gateway) -> None:
    data = {"csrf_token": token(logged_in, "/settings/proxy"), "use": "yes", "host": "proxy.example",
            "port": "3128", "user": "updater", "password": "s3cr3t-Pa55"}
    assert logged_in.post("/settings/proxy", data=data).status_code == 302
    assert gateway.get("Proxy", "ProxyPassword") == "s3cr3t-Pa55"
    page = text(logged_in.get("/settings/proxy"))
    assert "s3cr3t-Pa55" not in page and "(set — leave empty to keep)" in page
    assert logged_in.post("/settings/proxy", data={**data, "password": ""}).status_code == 302
    assert gateway.get("Proxy", "ProxyPassword") == "s3cr3t-Pa55"
    assert logged_in.post("/settings/proxy", data={**data, "password_clear": "yes"}).status_code == 302
    assert gateway.get("Proxy", "ProxyPassword") == ""


def test_proxy_page_refuses_a_proxy_without_host_or_with_bad_port(
    logged_in: FlaskClient, gateway: Gateway
) -> None:
    base = {"csrf_token": token(logged_in, "/settings/proxy"), "use": "yes", "user": "", "password": "x"}
    for bad in ({"host": "", "port": "3128"}, {"host": "proxy", "port": "99999"},
                {"host": "http://proxy/", "port": "80"}):
        response = logged_in.post("/settings/proxy", data={**base, **bad})
        assert response.status_code == 400
        assert 'value="x"' not in text(response)
    assert gateway.get("Update", "UseProxySetting") == "no"


def test_schedule_page_re_enables_a_rolled_back_component(logged_in: FlaskClient, gateway: Gateway) -> None:
    with gateway.database() as database:
        database.remove_from_schedule("virus_pattern")
    page = text(logged_in.get("/settings/schedule"))
    assert 'id="schedule-virus_pattern" checked' not in page
    assert 'id="schedule-spyware_pattern" checked' in page
    ids = re.findall(r'name="components" value="([a-z_]+)"', page)
    data = {"csrf_token": csrf_of(page), "enabled": "yes", "frequency": "daily", "minute": "15",
            "time": "04:30", "weekday": "mon", "components": ids}
    assert logged_in.post("/settings/schedule", data=data).status_code == 302
    assert "virus_pattern" in (gateway.get("Update", "ScheduledComponents") or "").split(",")
    assert gateway.get("Update", "ScheduleFrequency") == "daily"
    assert gateway.get("Update", "ScheduleTime") == "04:30"
    bad = logged_in.post("/settings/schedule", data={**data, "time": "25:00"})
    assert bad.status_code == 400
    assert gateway.get("Update", "ScheduleTime") == "04:30"


def test_licenses_page_shows_state_and_cannot_be_posted(logged_in: FlaskClient, gateway: Gateway) -> None:
    gateway.set("License", "Antispam", "2001-01-01")
    page = text(logged_in.get("/settings/licenses"))
    assert "Expired" in page and "Activated" in page and "URL Filtering Engine" in page
    assert logged_in.post("/settings/licenses", data={"csrf_token": csrf_of(page)}).status_code == 405


# -- settings: notifications -------------------------------------------------------------------------

def test_notifications_page_shows_channels_events_templates_and_send_test(logged_in: FlaskClient) -> None:
    page = text(logged_in.get("/settings/notifications"))
    for field in ("SMTPServer", "SMTPPort", "SMTPSecurity", "SMTPUser", "SMTPPassword", "MailFrom", "MailTo",
                  "SNMPServer", "SNMPVersion", "SNMPCommunity", "SNMPv3User", "SNMPv3AuthPassword",
                  "SNMPv3PrivPassword", "SNMPNotifyType"):
        assert f'name="{field}"' in page, field
    for group in ("Pattern", "Engine", "Spam"):
        for outcome in ("Success", "Failure"):
            prefix = f"{group}Update{outcome}"
            for suffix in ("Mail", "Trap", "Subject", "Message"):
                assert f'id="{prefix}{suffix}"' in page, prefix + suffix
    # the SPEC defaults: failure only
    assert 'id="PatternUpdateFailureMail" checked' in page
    assert 'id="PatternUpdateSuccessMail" checked' not in page
    assert "[%HOST%] Scan engine update FAILED" in page
    assert 'id="send-test"' in page and 'action="/settings/notifications/test"' in page
    japanese = text(logged_in.get("/settings/notifications", headers={"Accept-Language": "ja"}))
    assert "テストメッセージを送信" in japanese and "件名" in japanese and "パターンファイル" in japanese


def test_notifications_page_saves_channels_switches_and_templates(
    logged_in: FlaskClient, gateway: Gateway
) -> None:
    data = notification_form(logged_in, gateway)
    data.update({
        "SMTPServer": "relay.example.com", "SMTPPort": "587", "SMTPSecurity": "starttls",
        "MailFrom": "imss@example.com", "MailTo": "a@example.com, b@example.com",
        "SNMPServer": "nms.example.com, 192.0.2.10:10162", "SNMPVersion": "3", "SNMPv3User": "imss",
        "SNMPv3AuthPassword": "auth-pass-1", "SNMPv3PrivPassword": "priv-pass-1",
        "PatternUpdateSuccessMail": "yes", "SpamUpdateFailureSubject": "  spam failed on %HOST%  ",
        "SpamUpdateFailureMessage": "Failed:\r\n%COMPONENT% %VERSION%\r\nReason: %REASON%\r\n",
        "RepeatFailureHours": "6", "NotifyRecovery": "no",
    })
    del data["EngineUpdateFailureTrap"]
    response = logged_in.post("/settings/notifications", data=data, follow_redirects=True)
    assert response.status_code == 200
    assert "Settings saved." in text(response)
    stored = notification_rows(gateway)
    assert stored["SMTPServer"] == "relay.example.com" and stored["SMTPSecurity"] == "starttls"
    assert stored["MailTo"] == "a@example.com, b@example.com"
    assert stored["SNMPVersion"] == "3" and stored["SNMPv3PrivPassword"] == "priv-pass-1"
    assert stored["PatternUpdateSuccessMail"] == "yes"
    assert stored["EngineUpdateFailureTrap"] == "no"
    assert stored["SpamUpdateFailureSubject"] == "spam failed on %HOST%"
    assert stored["SpamUpdateFailureMessage"] == "Failed:\n%COMPONENT% %VERSION%\nReason: %REASON%"
    assert stored["RepeatFailureHours"] == "6" and stored["NotifyRecovery"] == "no"
    page = text(logged_in.get("/settings/notifications"))
    assert 'id="PatternUpdateSuccessMail" checked' in page
    assert 'value="relay.example.com"' in page


@pytest.mark.parametrize(("field", "bad", "extra"), [
    ("SMTPPort", "99999", {}),
    ("RepeatFailureHours", "-1", {}),
    ("NotifyRecovery", "maybe", {}),
    ("SMTPSecurity", "tls", {}),
    ("SMTPCAFile", "relative.pem", {}),
    ("MailFrom", "nobody", {"SMTPServer": "relay.example.com", "MailTo": "a@example.com"}),
    ("MailTo", "", {"SMTPServer": "relay.example.com", "MailFrom": "imss@example.com"}),
    ("SNMPServer", "nms.example.com:http", {}),
    ("SNMPVersion", "1", {}),
    ("SNMPv3AuthPassword", "short", {"SNMPServer": "nms.example.com", "SNMPVersion": "3",
                                     "SNMPv3User": "imss", "SNMPv3PrivPassword": "long-enough"}),
    ("SNMPv3PrivPassword", "", {"SNMPServer": "nms.example.com", "SNMPVersion": "3",
                                "SNMPv3User": "imss", "SNMPv3AuthPassword": "long-enough"}),
    ("SNMPCommunity", "", {"SNMPServer": "nms.example.com", "SNMPCommunity_clear": "yes"}),
    ("Language", "fr", {}),
])
def test_notifications_page_refuses_a_bad_value_writes_nothing_and_marks_the_field(
    logged_in: FlaskClient, gateway: Gateway, field: str, bad: str, extra: dict[str, str]
) -> None:
    before = notification_rows(gateway)
    data = {**notification_form(logged_in, gateway), **extra, field: bad,
            "PatternUpdateSuccessMail": "yes", "HostName": "gw.example.com"}  # good changes too
    response = logged_in.post("/settings/notifications", data=data)
    assert response.status_code == 400
    page = text(response)
    assert "The settings were not saved" in page
    assert f'id="error-{field}"' in page
    assert notification_rows(gateway) == before
    assert 'value="gw.example.com"' in page  # the submitted form is shown again


def test_notification_secrets_are_write_only(logged_in: FlaskClient, gateway: Gateway) -> None:
    secrets = {"SMTPPassword": "smtp-Secret-1", "SNMPv3AuthPassword": "auth-Secret-2",
               "SNMPv3PrivPassword": "priv-Secret-3", "SNMPCommunity": "community-Secret-4"}
    data = {**notification_form(logged_in, gateway), "SNMPServer": "nms.example.com", "SNMPVersion": "3",
            "SNMPv3User": "imss", "SMTPUser": "imss", **secrets}
    assert logged_in.post("/settings/notifications", data=data).status_code == 302
    page = text(logged_in.get("/settings/notifications"))
    for name, secret in secrets.items():
        assert gateway.get("Notification", name) == secret
        assert secret not in page
    assert page.count("(set — leave empty to keep)") == 4
    kept = {**data, **dict.fromkeys(secrets, "")}
    assert logged_in.post("/settings/notifications", data=kept).status_code == 302
    assert all(gateway.get("Notification", name) == secret for name, secret in secrets.items())
    refused = logged_in.post("/settings/notifications", data={**data, "SMTPPort": "x"})
    assert refused.status_code == 400
    assert not any(secret in text(refused) for secret in secrets.values())
    cleared = {**kept, "SMTPPassword_clear": "yes"}
    assert logged_in.post("/settings/notifications", data=cleared).status_code == 302
    assert gateway.get("Notification", "SMTPPassword") == ""
    assert gateway.get("Notification", "SNMPv3AuthPassword") == "auth-Secret-2"


def test_notification_form_and_send_test_are_refused_with_a_forged_csrf_token(
    logged_in: FlaskClient, gateway: Gateway
) -> None:
    before = notification_rows(gateway)
    data = {**notification_form(logged_in, gateway), "SMTPServer": "relay.example.com",
            "csrf_token": "forged"}
    assert logged_in.post("/settings/notifications", data=data).status_code == 400
    assert logged_in.post("/settings/notifications/test", data={"csrf_token": "forged"}).status_code == 400
    assert logged_in.get("/settings/notifications/test").status_code == 405
    assert notification_rows(gateway) == before
    assert _attempts(gateway) == 0


def test_send_test_mails_through_a_real_relay_and_the_delivery_log_lists_it(
    logged_in: FlaskClient, gateway: Gateway, smtp_server: ServerFactory
) -> None:
    relay = smtp_server("plain")
    data = {**notification_form(logged_in, gateway), "SMTPServer": relay.host, "SMTPPort": str(relay.port),
            "MailFrom": "imss@example.com", "MailTo": "admin@example.com"}
    assert logged_in.post("/settings/notifications", data=data).status_code == 302
    response = logged_in.post("/settings/notifications/test", data={"csrf_token": token(logged_in)},
                              follow_redirects=True)
    page = text(response)
    assert "Test Mail to admin@example.com: sent." in page
    assert len(relay.received) == 1 and relay.received[0].recipients == ["admin@example.com"]
    logs = text(logged_in.get("/logs"))
    deliveries = re.search(r'<table class="grid" id="deliveries"[^>]*>.*?</table>', logs, re.DOTALL)
    assert deliveries, logs
    assert "Test message" in deliveries.group(0) and "admin@example.com" in deliveries.group(0)
    assert "Sent" in deliveries.group(0)
    japanese = text(logged_in.get("/logs", headers={"Accept-Language": "ja"}))
    assert "テストメッセージ" in japanese and "送信済み" in japanese


def test_send_test_shows_a_dead_relay_as_failed_and_metrics_count_it(
    logged_in: FlaskClient, client: FlaskClient, gateway: Gateway, smtp_server: ServerFactory
) -> None:
    relay = smtp_server("plain")
    relay.stop()  # nothing listens on the port any more
    for name, value in (("SMTPServer", relay.host), ("SMTPPort", str(relay.port)), ("SMTPTimeout", "5"),
                        ("MailFrom", "imss@example.com"), ("MailTo", "admin@example.com")):
        gateway.set("Notification", name, value)
    body = text(client.get("/metrics"))
    assert 'imss_notification_failures_total{channel="mail",outcome="failed"} 0.0' in body
    response = logged_in.post("/settings/notifications/test", data={"csrf_token": token(logged_in)},
                              follow_redirects=True)
    assert "Test Mail to admin@example.com failed:" in text(response)
    assert 'class="delivery-failed"' in text(logged_in.get("/logs"))
    body = text(client.get("/metrics"))
    assert 'imss_notification_failures_total{channel="mail",outcome="failed"} 1.0' in body
    assert 'imss_notification_failures_total{channel="trap",outcome="retry"} 0.0' in body


def test_send_test_without_any_channel_says_so_and_sends_nothing(
    logged_in: FlaskClient, gateway: Gateway
) -> None:
    response = logged_in.post("/settings/notifications/test", data={"csrf_token": token(logged_in)},
                              follow_redirects=True)
    assert "No channel is configured" in text(response)
    assert _attempts(gateway) == 0
    assert "No notification has been sent yet." in text(logged_in.get("/logs"))


# -- languages -------------------------------------------------------------------------------------

def test_japanese_follows_the_browser_preference(logged_in: FlaskClient) -> None:
    page = text(logged_in.get("/", headers={"Accept-Language": "ja,en;q=0.5"}))
    assert "システムステータス" in page and "不明" in page and "ウイルスパターンファイル" in page


def test_language_switch_overrides_the_browser(logged_in: FlaskClient) -> None:
    response = logged_in.post("/lang", data={"csrf_token": token(logged_in), "lang": "ja", "next": "/logs"})
    assert response.headers["Location"] == "/logs"
    assert "アップデートイベントログ" in text(logged_in.get("/logs", headers={"Accept-Language": "en"}))
    assert logged_in.post("/lang", data={"csrf_token": token(logged_in), "lang": "fr"}).status_code == 400


def test_japanese_log_lines_and_lock_message(logged_in: FlaskClient, gateway: Gateway) -> None:
    from imss_updater.store import lock

    publish(gateway)
    assert gateway.cli("update", "virus_pattern").code == 0
    headers = {"Accept-Language": "ja"}
    expected = "ウイルスパターンファイル15.697.00を正常にダウンロードしました。"
    assert expected in text(logged_in.get("/logs", headers=headers))
    with lock.download_lock(gateway.root):
        assert "別のプロセスでファイルをダウンロード中です。" in text(logged_in.get("/", headers=headers))


# -- operations ------------------------------------------------------------------------------------

def test_healthz_reports_database_scheduler_last_run_and_lock(client: FlaskClient, gateway: Gateway) -> None:
    publish(gateway)
    assert gateway.cli("update", "virus_pattern").code == 0
    body = client.get("/healthz").get_json()
    assert body["status"] == "ok"
    assert body["database"]["ok"] is True and body["scheduler"]["ok"] is True
    assert body["last_run"]["kind"] == "manual" and body["last_run"]["ok"] is True
    assert body["lock"] == {"held": False}
    assert body["settings"] == {"valid": True}


def test_healthz_fails_when_the_scheduler_is_down(gateway: Gateway) -> None:
    from imss_updater.web import WebConfig, create_app

    app = create_app(WebConfig(gateway.dsn, gateway.root, b"s" * 32, scheduler_ok=lambda: False))
    response = app.test_client().get("/healthz")
    assert response.status_code == 503
    assert response.get_json()["status"] == "fail"


def test_healthz_fails_when_the_database_is_unreachable(tmp_path: Any) -> None:
    from imss_updater.web import WebConfig, create_app

    dsn = "host=127.0.0.1 port=9 dbname=imss user=sa connect_timeout=1"
    response = create_app(WebConfig(dsn, tmp_path, b"s" * 32)).test_client().get("/healthz")
    assert response.status_code == 503
    assert response.get_json()["database"]["ok"] is False


def test_metrics_are_prometheus_text_with_versions_failures_and_bytes(
    logged_in: FlaskClient, console_app: Flask, client: FlaskClient, gateway: Gateway
) -> None:
    publish(gateway)
    gateway.tree.add_pattern("P.16", "100")
    gateway.tree.corrupt_payload("P.16")
    gateway.publish()
    logged_in.post("/update", data={"csrf_token": token(logged_in),
                                    "component": ["virus_pattern", "intellitrap_pattern"]})
    wait_for_job(console_app)
    response = client.get("/metrics")
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    body = text(response)
    info = {tuple(sorted(sample.labels.items())) for family in text_string_to_metric_families(body)
            for sample in family.samples if sample.name == "imss_component_info"}
    assert (("available", "15.697.00"), ("component", "virus_pattern"), ("current", "15.697.00")) in info
    assert (("available", "0.0"), ("component", "spam_engine"), ("current", "")) in info
    assert 'imss_update_failures_total{component="intellitrap_pattern"} 1.0' in body
    assert re.search(r'imss_component_last_success_timestamp_seconds\{component="virus_pattern"\} \d', body)
    downloaded = re.search(r"^imss_downloaded_bytes_total (\S+)$", body, re.MULTILINE)
    assert downloaded and float(downloaded.group(1)) > 0
    assert "imss_download_lock_held 0.0" in body
    for line in body.splitlines():
        assert line.startswith("#") or re.match(r"^[a-z_]+(\{.*\})? \S+$", line), line


# -- helpers ---------------------------------------------------------------------------------------

def notification_rows(gateway: Gateway) -> dict[str, str]:
    with gateway.database() as database:
        rows = database.settings_rows()
    return {name: value for (section, name), value in rows.items() if section == "Notification"}


def notification_form(client: FlaskClient, gateway: Gateway) -> dict[str, Any]:
    """The notifications form as the page would submit it unchanged (secrets left empty)."""
    from imss_updater.web.settings_pages import NOTIFY_TEXT_FIELDS, notification_rule_names

    rows = notification_rows(gateway)
    data: dict[str, Any] = {"csrf_token": token(client, "/settings/notifications")}
    data.update({name: rows.get(name, "") for name in NOTIFY_TEXT_FIELDS})
    for _group, _outcome, prefix in notification_rule_names():
        data.update({prefix + suffix: rows[prefix + suffix] for suffix in ("Subject", "Message")})
        data.update({prefix + suffix: "yes" for suffix in ("Mail", "Trap") if rows[prefix + suffix] == "yes"})
    return data


def _attempts(gateway: Gateway) -> int:
    with gateway.database() as database, database.transaction() as cursor:
        cursor.execute("SELECT count(*) FROM tb_notification_attempt")
        row = cursor.fetchone()
    return int(row[0]) if row else 0


def _row(page: str, component_id: str) -> str:
    found = re.search(rf'<tr id="row-{component_id}".*?</tr>', page, re.DOTALL)
    assert found, component_id
    return found.group(0)


class _Counter:
    def __init__(self) -> None:
        self.count = 0

    def reset(self) -> int:
        count, self.count = self.count, 0
        return count


def _count_queries(app: Flask) -> _Counter:
    """Make every new pooled connection count its statements (psycopg2 cursor factory)."""
    import psycopg2.extensions

    counter = _Counter()

    class CountingCursor(psycopg2.extensions.cursor):
        def execute(self, query: Any, variables: Any = None) -> Any:
            counter.count += 1
            return super().execute(query, variables)

    pool = app.extensions["imss_console"].pool
    pool.close()

    def connect(dsn: str) -> Database:
        database = Database(dsn)
        database.connection.cursor_factory = CountingCursor
        return database

    pool.connect = connect
    return counter


def test_the_result_of_a_run_is_an_open_dialog_with_an_ok_button_shown_once(
    logged_in: FlaskClient, console_app: Flask, gateway: Gateway
) -> None:
    publish(gateway)
    logged_in.post("/update", data={"csrf_token": token(logged_in), "component": "virus_pattern"})
    wait_for_job(console_app)
    page = logged_in.get("/").get_data(as_text=True)
    assert '<dialog open class="job-result job-ok" id="job-result"' in page
    assert '<form method="dialog"><button type="submit" id="job-dismiss" autofocus>OK</button></form>' in page
    assert 'id="job-result"' not in logged_in.get("/").get_data(as_text=True)
