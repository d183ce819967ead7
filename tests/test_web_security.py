"""The console cannot be turned against its administrator (issue 11, section 4): host names,
the log-on delay, server-side sessions, write-only secrets, ``/healthz`` and bad dates.
The waitress limits are in test_web_limits.py, the browser's view in test_web_browser.py."""

from __future__ import annotations

import hashlib
import logging
import subprocess
import threading
import time
from typing import Any

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from requests.adapters import HTTPAdapter

from imss_updater.settings import SECRET_NAMES
from imss_updater.web import WebConfig, create_app, set_admin_password
from imss_updater.web.accounts import FREE_FAILURES, SESSION_LIFETIME, delay_after
from tests.support.browser import ADMIN_PASSWORD, LiveConsole, csrf_of, log_on
from tests.support.gateway import Gateway

NEW_PASSWORD = "a brand new password"


def text(response: Any) -> str:
    return str(response.get_data(as_text=True))


# -- host names ------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/", "/login", "/healthz", "/metrics", "/static/style.css", "/nowhere"])
def test_a_foreign_host_name_is_refused_before_any_route(client: FlaskClient, path: str) -> None:
    response = client.get(path, headers={"Host": "evil.test"})
    assert response.status_code == 400
    assert "does not answer to the name evil.test" in text(response)


def test_a_foreign_host_name_cannot_post_a_log_on(client: FlaskClient, gateway: Gateway) -> None:
    token = csrf_of(text(client.get("/login")))
    response = client.post("/login", data={"csrf_token": token, "password": ADMIN_PASSWORD},
                           headers={"Host": "evil.test:8445"})
    assert response.status_code == 400
    with gateway.database() as database, database.transaction() as cursor:
        cursor.execute("SELECT count(*) FROM tb_web_session")
        assert cursor.fetchone() == (0,)


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "[::1]", "localhost:8445", "127.0.0.1:1",
                                  "[::1]:8445", "LOCALHOST"])
def test_loopback_names_are_served_with_or_without_a_port(client: FlaskClient, host: str) -> None:
    assert client.get("/login", headers={"Host": host}).status_code == 200


@pytest.mark.parametrize("host", ["", "127.0.0.1.evil.test", "localhost.evil.test", "evil.test:80:80",
                                  "[::1", "127.0.0.1:http", "localhost@evil.test", "::1"])
def test_malformed_or_look_alike_host_headers_are_refused(client: FlaskClient, host: str) -> None:
    assert client.get("/login", headers={"Host": host}).status_code == 400


def test_names_of_web_allowed_hosts_and_of_imss_web_are_served(gateway: Gateway) -> None:
    gateway.set("Web", "AllowedHosts", "console.example.net, GW")
    app = create_app(WebConfig(gateway.dsn, gateway.root, b"s" * 32, host="imss.internal"))
    client = app.test_client()
    for host in ("console.example.net", "gw:8445", "imss.internal:8445", "IMSS.internal"):
        assert client.get("/login", headers={"Host": host}).status_code == 200, host
    assert client.get("/login", headers={"Host": "other.example.net"}).status_code == 400
    app.extensions["imss_console"].pool.close()


def test_a_real_client_with_a_foreign_host_header_gets_400(live_console: LiveConsole) -> None:
    for path in ("/login", "/healthz", "/metrics", "/static/style.css"):
        answer = requests.get(live_console.url + path, headers={"Host": "evil.test"}, timeout=30)
        assert answer.status_code == 400, path
    # Forwarding headers are not trusted in either direction.
    forwarded = {"Host": "evil.test", "X-Forwarded-Host": "localhost", "Forwarded": "host=localhost"}
    assert requests.get(live_console.url + "/login", headers=forwarded, timeout=30).status_code == 400
    assert requests.get(live_console.url + "/login", timeout=30).status_code == 200


# -- the log-on delay ------------------------------------------------------------------------------

def test_the_delay_grows_from_two_seconds_and_is_capped() -> None:
    assert [delay_after(n) for n in range(FREE_FAILURES)] == [0] * FREE_FAILURES
    assert [delay_after(FREE_FAILURES + n) for n in range(4)] == [2, 4, 8, 16]
    assert delay_after(1000) == 900


def test_rotating_addresses_and_forwarded_for_do_not_bypass_the_delay(client: FlaskClient) -> None:
    for number in range(FREE_FAILURES):
        client.environ_base["REMOTE_ADDR"] = f"127.0.0.{number + 2}"
        response = log_on_with(client, "wrong password", {"X-Forwarded-For": f"198.51.100.{number}"})
        assert response.status_code == 401
    client.environ_base["REMOTE_ADDR"] = "127.0.0.99"
    response = log_on_with(client, ADMIN_PASSWORD, {"X-Forwarded-For": "203.0.113.7"})
    assert response.status_code == 429


def test_real_connections_from_five_source_addresses_share_one_delay(
    live_console: LiveConsole, gateway: Gateway
) -> None:
    for number in range(FREE_FAILURES):
        assert _post_log_on(live_console.url, f"127.0.0.{number + 2}", "wrong password") == 401
    assert _post_log_on(live_console.url, "127.0.0.20", ADMIN_PASSWORD) == 429
    with gateway.database() as database, database.transaction() as cursor:
        cursor.execute("SELECT DISTINCT address FROM tb_web_login_attempt ORDER BY address")
        assert [row[0] for row in cursor.fetchall()] == [f"127.0.0.{n + 2}" for n in range(FREE_FAILURES)]


def test_five_wrong_passwords_do_not_prevent_the_right_one_after_the_delay(client: FlaskClient) -> None:
    for _ in range(FREE_FAILURES):
        assert log_on(client, "wrong password").status_code == 401
    refused = log_on(client)
    assert refused.status_code == 429
    time.sleep(int(refused.headers["Retry-After"]))  # the real delay: 2 s
    assert log_on(client).status_code == 302
    assert client.get("/").status_code == 200


def test_the_failure_that_starts_the_delay_says_how_long_it_is(client: FlaskClient) -> None:
    for _ in range(FREE_FAILURES - 1):
        assert "next attempt" not in text(log_on(client, "wrong password"))
    assert "The next attempt is possible in 2 s." in text(log_on(client, "wrong password"))


def test_parallel_guesses_cannot_share_one_slot(console_app: Flask, gateway: Gateway) -> None:
    clients = [console_app.test_client() for _ in range(12)]
    tokens = [csrf_of(text(one.get("/login"))) for one in clients]
    start = threading.Barrier(len(clients))
    codes: list[int] = []

    def guess(one: FlaskClient, token: str) -> None:
        start.wait()
        codes.append(one.post("/login", data={"csrf_token": token, "password": "wrong guess"}).status_code)

    threads = [threading.Thread(target=guess, args=pair) for pair in zip(clients, tokens, strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(codes) == [401] * FREE_FAILURES + [429] * (len(clients) - FREE_FAILURES)


def test_admin_set_password_lifts_the_delay(client: FlaskClient, gateway: Gateway) -> None:
    for _ in range(FREE_FAILURES + 1):
        log_on(client, "wrong password")
    assert log_on(client).status_code == 429
    _cli_set_password(gateway, NEW_PASSWORD)
    assert log_on(client, NEW_PASSWORD).status_code == 302


def test_a_browser_that_logged_on_before_is_not_slowed_by_an_attackers_failures(
    console_app: Flask, gateway: Gateway
) -> None:
    administrator, attacker = console_app.test_client(), console_app.test_client()
    assert log_on(administrator).status_code == 302  # this browser now carries a device cookie
    administrator.post("/logout", data={"csrf_token": csrf_of(text(administrator.get("/")))})
    for _ in range(FREE_FAILURES):
        log_on(attacker, "wrong password")
    assert log_on(attacker).status_code == 429
    attacker.set_cookie("imss_device", "forged.cookie", path="/login")
    assert log_on(attacker).status_code == 429
    assert log_on(administrator).status_code == 302
    # A new password also retires the device cookies issued before it.
    with gateway.database() as database:
        set_admin_password(database, NEW_PASSWORD)
    for _ in range(FREE_FAILURES):
        log_on(attacker, "wrong password")
    assert log_on(administrator, NEW_PASSWORD).status_code == 429


# -- sessions --------------------------------------------------------------------------------------

def test_a_copied_session_cookie_is_refused_after_log_off(console_app: Flask) -> None:
    owner, thief = console_app.test_client(), console_app.test_client()
    assert log_on(owner).status_code == 302
    _copy_session(owner, thief)
    assert thief.get("/").status_code == 200
    owner.post("/logout", data={"csrf_token": csrf_of(text(owner.get("/")))})
    assert thief.get("/").status_code == 302
    assert owner.get("/").status_code == 302


def test_a_copied_session_cookie_is_refused_after_set_password(console_app: Flask, gateway: Gateway) -> None:
    owner, thief = console_app.test_client(), console_app.test_client()
    assert log_on(owner).status_code == 302
    _copy_session(owner, thief)
    assert thief.get("/").status_code == 200
    _cli_set_password(gateway, NEW_PASSWORD)
    assert thief.get("/").status_code == 302
    assert owner.get("/").status_code == 302


def test_a_session_ends_eight_hours_after_log_on_whatever_the_activity(
    logged_in: FlaskClient, gateway: Gateway
) -> None:
    def lifetime() -> Any:
        with gateway.database() as database, database.transaction() as cursor:
            cursor.execute("SELECT expires_at - created_at, expires_at FROM tb_web_session")
            return cursor.fetchall()

    [(span, expires)] = lifetime()
    assert span == SESSION_LIFETIME
    for path in ("/", "/logs", "/settings/source", "/"):
        assert logged_in.get(path).status_code == 200
    assert lifetime() == [(span, expires)]  # not sliding
    with gateway.database() as database, database.transaction() as cursor:  # 8 hours later
        cursor.execute("UPDATE tb_web_session SET created_at = created_at - %s, expires_at = expires_at - %s",
                       (SESSION_LIFETIME, SESSION_LIFETIME))
    assert logged_in.get("/").status_code == 302


def test_the_session_table_holds_no_usable_token(logged_in: FlaskClient, console_app: Flask,
                                                 gateway: Gateway) -> None:
    cookie = logged_in.get_cookie("imss_session")
    assert cookie is not None
    token = console_app.session_interface.get_signing_serializer(console_app).loads(cookie.value)["sid"]
    with gateway.database() as database, database.transaction() as cursor:
        cursor.execute("SELECT id FROM tb_web_session")
        assert cursor.fetchall() == [(hashlib.sha256(token.encode()).hexdigest(),)]


# -- secrets, /healthz and bad dates ---------------------------------------------------------------

SECRET_VALUES = {row: f"secret-{number}-{row[1]}" for number, row in enumerate(sorted(SECRET_NAMES))
                 if row != ("Admin", "PasswordHash")}


def test_no_secret_row_is_ever_rendered_on_a_settings_page(logged_in: FlaskClient, gateway: Gateway) -> None:
    for (section, name), value in SECRET_VALUES.items():
        gateway.set(section, name, value)
    pages = [text(logged_in.get(f"/settings/{page}")) for page in
             ("source", "proxy", "schedule", "notifications", "licenses")]
    pages.append(text(logged_in.post("/settings/proxy", data={  # refused: shown again with errors
        "csrf_token": csrf_of(pages[1]), "use": "yes", "host": "", "port": "x", "user": "u"})))
    pages.append(text(logged_in.post("/settings/notifications", data={
        "csrf_token": csrf_of(pages[3]), "SMTPPort": "x", "SNMPServer": "nms.example.com"})))
    for page in pages:
        assert not [value for value in SECRET_VALUES.values() if value in page]


def test_an_empty_secret_field_keeps_the_community_and_a_new_one_is_logged_masked(
    logged_in: FlaskClient, gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    from tests.test_web import notification_form

    caplog.set_level(logging.DEBUG)
    form = {**notification_form(logged_in, gateway), "SNMPServer": "nms.example.com", "SNMPVersion": "2c"}
    assert logged_in.post("/settings/notifications", data={**form, "SNMPCommunity": ""}).status_code == 302
    assert gateway.get("Notification", "SNMPCommunity") == "public"
    changed = {**form, "SNMPCommunity": "c0mmunity-Secret"}
    assert logged_in.post("/settings/notifications", data=changed).status_code == 302
    assert gateway.get("Notification", "SNMPCommunity") == "c0mmunity-Secret"
    assert "Notification/SNMPCommunity changed to ***" in caplog.text
    assert "c0mmunity-Secret" not in caplog.text
    assert "c0mmunity-Secret" not in text(logged_in.get("/settings/notifications"))


def test_healthz_shows_states_and_never_a_setting_value(client: FlaskClient, gateway: Gateway) -> None:
    gateway.set("Update", "TMASEServerurl", "http://127.0.0.1:9/unreachable-source-path")
    gateway.set("Proxy", "ProxyHost", "proxy-host.example")
    assert gateway.cli("check").code != 0  # the last check failed, its text names the source
    answer = client.get("/healthz")
    body = answer.get_json()
    assert answer.status_code == 200 and body["status"] == "degraded"
    assert body["last_check"]["ok"] is False and body["settings"] == {"valid": True}
    for value in ("unreachable-source-path", "127.0.0.1", "proxy-host.example", gateway.base_url):
        assert value not in text(answer)
    gateway.set("Update", "MaxDownloadMB", "lots")
    assert client.get("/healthz").get_json()["settings"] == {"valid": False}


@pytest.mark.parametrize(("query", "message"), [
    ("to=9999-12-31", "to: 9999-12-31 is out of range"),
    ("to=2024-02-30", "to: must be YYYY-MM-DD"),
    ("from=10000-01-01", "from: must be YYYY-MM-DD"),
])
def test_logs_refuse_dates_outside_the_calendar_with_a_message(
    logged_in: FlaskClient, query: str, message: str
) -> None:
    response = logged_in.get(f"/logs?{query}")
    assert response.status_code == 400
    assert message in text(response)


# -- helpers ---------------------------------------------------------------------------------------

def log_on_with(client: FlaskClient, password: str, headers: dict[str, str]) -> Any:
    token = csrf_of(text(client.get("/login", headers=headers)))
    return client.post("/login", data={"csrf_token": token, "password": password}, headers=headers)


class _SourceAddress(HTTPAdapter):
    """Connect from a chosen loopback address (127.0.0.0/8 is all local on Linux)."""

    def __init__(self, address: str) -> None:
        self.address = address
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, source_address=(self.address, 0), **kwargs)


def _post_log_on(url: str, address: str, password: str) -> int:
    with requests.Session() as session:
        session.mount("http://", _SourceAddress(address))
        page = session.get(url + "/login", timeout=30)
        answer = session.post(url + "/login", data={"csrf_token": csrf_of(page.text), "password": password},
                              allow_redirects=False, timeout=30)
        return answer.status_code


def _cli_set_password(gateway: Gateway, password: str) -> None:
    process = gateway.spawn("admin", "set-password", stdin=subprocess.PIPE)
    _out, err = process.communicate(password + "\n", timeout=120)
    assert process.returncode == 0, err


def _copy_session(source: FlaskClient, target: FlaskClient) -> None:
    cookie = source.get_cookie("imss_session")
    assert cookie is not None
    target.set_cookie("imss_session", cookie.value)
