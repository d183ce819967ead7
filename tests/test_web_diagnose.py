"""The console's Diagnose page: the same steps as ``imss-updater diagnose`` (one module),
run by a logged-on administrator's POST with the CSRF token, bounded in time, against a
real database, real status scripts and real servers; once in Chromium on waitress."""

from __future__ import annotations

import json
import re
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from imss_updater.web import diagnose as diagnose_page
from tests.support.browser import ADMIN_PASSWORD, LiveConsole, csrf_of
from tests.support.gateway import Gateway
from tests.test_diagnose import checked, publish, use_source


def text(response: Any) -> str:
    return str(response.get_data(as_text=True))


def rows(page: str) -> list[tuple[str, str, str, str]]:
    """(result, name, detail, hint) of every step row on the page."""
    found = re.findall(r'<tr class="step[^"]*" data-result="(\w+)">\s*<td class="result nowrap">.*?</td>\s*'
                       r'<td class="name">(.*?)</td>\s*<td class="detail">(.*?)</td>\s*'
                       r'<td class="hint">(.*?)</td>', page, re.DOTALL)
    return [tuple(item) for item in found]


def run(client: FlaskClient, **headers: str) -> str:
    page = text(client.get("/diagnose", headers=headers))
    response = client.post("/diagnose", data={"csrf_token": csrf_of(page)}, headers=headers)
    assert response.status_code == 200
    return text(response)


def test_diagnose_page_shows_the_button_and_runs_the_same_steps_as_the_command(
    logged_in: FlaskClient, gateway: Gateway
) -> None:
    publish(gateway)
    checked(gateway)
    gateway.set("Update", "ScheduledUpdate", "no")
    shown = text(logged_in.get("/diagnose"))
    assert 'id="diagnose-run"' in shown and 'id="diagnose-steps"' not in shown
    assert 'href="/diagnose"' in text(logged_in.get("/"))  # linked from the navigation

    page = run(logged_in)
    steps = rows(page)
    command = json.loads(gateway.cli("diagnose", "--json").stdout)["steps"]
    assert [name for _, name, _, _ in steps] == [step["name"] for step in command]
    assert [result for result, _, _, _ in steps] == [step["result"] for step in command]
    scheduled = next(step for step in steps if step[1] == "scheduled update")
    assert scheduled[0] == "FAIL"
    assert "config set Update ScheduledUpdate yes" in scheduled[3]
    assert "1 check(s) failed." in page
    passing = next(step for step in steps if step[1] == "service running: scan service")
    assert passing[0] == "PASS" and passing[3] == ""


def test_diagnose_page_in_japanese_words_each_step(logged_in: FlaskClient, gateway: Gateway) -> None:
    publish(gateway)
    checked(gateway)
    page = run(logged_in, **{"Accept-Language": "ja"})
    assert "<h1>診断</h1>" in page
    assert "すべての確認に合格しました。" in page
    names = [name for _, name, _, _ in rows(page)]
    assert names[:3] == ["データベース接続", "設定", "予約アップデート"]
    assert "合格" in page and "PASS</span>" not in page


def test_diagnose_needs_a_log_on_and_the_csrf_token(client: FlaskClient, logged_in: FlaskClient) -> None:
    assert logged_in.post("/diagnose", data={}).status_code == 400  # no token: refused, nothing runs
    anonymous = client.application.test_client()
    assert anonymous.get("/diagnose").status_code == 302
    token = csrf_of(text(anonymous.get("/login")))
    assert anonymous.post("/diagnose", data={"csrf_token": token}).status_code == 401


def test_diagnose_page_caps_each_network_wait(logged_in: FlaskClient, gateway: Gateway,
                                             blackhole_port: int) -> None:
    publish(gateway)
    gateway.set("Update", "ConnectTimeout", "60")
    use_source(gateway, f"http://127.0.0.1:{blackhole_port}/activeupdate")
    connect = next(step for step in rows(run(logged_in)) if step[1].startswith("TCP connect"))
    assert connect[0] == "FAIL"
    assert f"within {diagnose_page.NETWORK_TIMEOUT:g} s" in connect[2]  # not the 60 s of the setting


def test_page_stops_waiting_at_its_limit_and_runs_one_diagnosis_at_a_time(
    console_app: Flask, gateway: Gateway
) -> None:
    config = console_app.extensions["imss_console"].config
    holder = gateway.database()
    try:
        with holder.transaction() as cursor:  # the worker's settings read waits on this lock
            cursor.execute("LOCK TABLE tb_global_setting IN ACCESS EXCLUSIVE MODE")
            with console_app.test_request_context():
                steps = diagnose_page.run_bounded(config, seconds=0.5)
                assert steps is not None
                assert [s.name for s in steps] == ["database reachable", "time limit"]
                assert steps[-1].ok is False
                assert "imss-updater diagnose" in steps[-1].hint
                assert diagnose_page.run_bounded(config, seconds=0.5) is None  # still running
    finally:
        holder.close()
    with console_app.test_request_context():
        busy = console_app.extensions["imss_diagnose"]
        assert busy.acquire(timeout=60)  # the first run ends once the table is free
        busy.release()
        finished = diagnose_page.run_bounded(config, seconds=120)
    assert finished is not None and finished[-1].name.startswith("service running")


def test_administrator_runs_the_diagnosis_in_a_browser(
    browser: Any, live_console: LiveConsole, gateway: Gateway
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    publish(gateway)
    checked(gateway)
    gateway.set("Update", "ScheduledComponents", "virus_engine")
    wait = WebDriverWait(browser, 60)
    browser.get(live_console.url + "/login")
    browser.find_element(By.ID, "password").send_keys(ADMIN_PASSWORD)
    browser.find_element(By.ID, "login-submit").click()
    wait.until(lambda driver: driver.find_elements(By.ID, "components"))
    browser.find_element(By.ID, "nav-diagnose").click()
    wait.until(lambda driver: driver.find_elements(By.ID, "diagnose-run"))
    browser.find_element(By.ID, "diagnose-run").click()
    wait.until(lambda driver: driver.find_elements(By.ID, "diagnose-steps"))
    failed = browser.find_elements(By.CSS_SELECTOR, "#diagnose-steps tr.step-fail")
    assert [row.find_element(By.CSS_SELECTOR, ".name").text for row in failed] == [
        "components on the schedule"]
    assert "rollback takes a component off the schedule" in failed[0].find_element(
        By.CSS_SELECTOR, ".hint").text
    assert browser.find_element(By.ID, "diagnose-summary").text == "1 check(s) failed."
