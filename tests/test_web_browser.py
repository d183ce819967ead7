"""End to end in a real headless Chromium: waitress serving the console on 127.0.0.1, a real
PostgreSQL, a real update source and restart scripts. Saves screenshots (to docs/screenshots/ with
IMSS_SCREENSHOTS=docs/screenshots)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tests.support.browser import ADMIN_PASSWORD, LiveConsole
from tests.support.gateway import Gateway

# The README's screenshots are refreshed with IMSS_SCREENSHOTS=docs/screenshots; otherwise they
# go to a temporary directory, so a test run leaves the work tree as it was.
SCREENSHOTS_VARIABLE = "IMSS_SCREENSHOTS"
WAIT_SECONDS = 60


def _gate_restarts(gateway: Gateway, tmp_path: Path) -> Path:
    """Restart scripts that wait until the returned flag file exists, so the test can watch
    the "restarting" phase in the browser before letting the run finish."""
    flag = tmp_path / "let-restarts-finish"
    for service in ("scan", "policy"):
        script = tmp_path / f"gated-{service}-restart"
        script.write_text(
            "#!/bin/sh\n"
            f'while [ ! -e "{flag}" ]; do sleep 0.05; done\n'
            f'echo {service} >> "{gateway.restart_log}"\n'
        )
        script.chmod(0o755)
        gateway.set("Service", "ScanServiceRestart" if service == "scan" else "PolicyServiceRestart",
                    f"{script} restart")
    return flag


def test_administrator_updates_rolls_back_re_enables_and_switches_to_japanese(
    browser: Any, live_console: LiveConsole, gateway: Gateway, tmp_path: Path
) -> None:
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    shots = Path(os.environ.get(SCREENSHOTS_VARIABLE) or tmp_path / "screenshots").resolve()
    shots.mkdir(parents=True, exist_ok=True)
    flag = _gate_restarts(gateway, tmp_path)
    flag.touch()
    gateway.tree.add_pattern("P.4", "1569700")
    gateway.publish()
    assert gateway.cli("update", "virus_pattern").code == 0  # so that a rollback has a generation
    flag.unlink()
    gateway.tree.add_pattern("P.4", "1569800")
    gateway.tree.add_pattern("P.8", "240100")
    gateway.tree.add_engine("VSAPI_LINUX_X86_64", "21.0.1008")
    gateway.publish()
    gateway.set("Update", "TMASEServerurl", "http://127.0.0.1:9/unreachable")  # -> Unknown
    gateway.set("License", "Antispam", "2001-01-01")  # -> greyed rows

    wait = WebDriverWait(browser, WAIT_SECONDS, ignored_exceptions=[StaleElementReferenceException])

    def text_of(selector: str) -> str:
        return str(browser.find_element(By.CSS_SELECTOR, selector).text)

    def shows(selector: str, wanted: str) -> None:
        wait.until(lambda _driver: wanted in text_of(selector))

    def dismiss_result() -> None:
        browser.find_element(By.ID, "job-dismiss").click()
        wait.until(lambda driver: not driver.find_element(By.ID, "job-result").is_displayed())

    # Log on.
    browser.get(live_console.url + "/")
    assert "/login" in browser.current_url
    browser.save_screenshot(str(shots / "login.png"))
    browser.find_element(By.ID, "password").send_keys(ADMIN_PASSWORD)
    browser.find_element(By.ID, "login-submit").click()
    wait.until(lambda driver: driver.find_elements(By.ID, "components"))

    # Check now: red, Unknown, 0.0, greyed.
    browser.find_element(By.ID, "check-button").click()
    shows("#job-result", "Check failed")
    dismiss_result()
    newer = browser.find_element(By.CSS_SELECTOR, "#row-virus_pattern .available")
    assert "newer" in newer.get_attribute("class")
    assert text_of("#row-virus_pattern .available") == "15.698.00"
    assert text_of("#row-spam_engine .available") == "Unknown"
    assert text_of("#row-intellitrap_pattern .available") == "0.0"
    assert browser.find_element(By.ID, "select-url_filter_engine").get_attribute("disabled") is not None
    assert "greyed" in browser.find_element(By.ID, "row-url_filter_engine").get_attribute("class")
    browser.save_screenshot(str(shots / "status.png"))

    # Update two components and watch the progress.
    browser.find_element(By.ID, "select-virus_pattern").click()
    browser.find_element(By.ID, "select-spyware_pattern").click()
    browser.find_element(By.ID, "update-button").click()
    shows("#progress-virus_pattern", "restarting services")
    shows("#progress-spyware_pattern", "restarting services")
    assert not browser.find_element(By.ID, "job-running").get_attribute("hidden")
    browser.save_screenshot(str(shots / "status-progress.png"))
    flag.touch()
    shows("#job-result", "Manual update succeeded.")
    dismiss_result()
    assert text_of("#row-virus_pattern .current") == "15.698.00"
    assert text_of("#row-spyware_pattern .current") == "2.401.00"

    # Roll one back: it leaves the schedule.
    browser.find_element(By.ID, "select-virus_pattern").click()
    browser.find_element(By.ID, "rollback-button").click()
    shows("#job-result", "Rollback succeeded.")
    dismiss_result()
    assert text_of("#row-virus_pattern .current") == "15.697.00"
    assert "excluded from scheduled update" in text_of("#row-virus_pattern .flags")

    # Re-enable it on the schedule page.
    browser.find_element(By.CSS_SELECTOR, "#row-virus_pattern a.reenable").click()
    box = browser.find_element(By.ID, "schedule-virus_pattern")
    assert not box.is_selected()
    box.click()
    browser.save_screenshot(str(shots / "settings-schedule.png"))
    browser.find_element(By.ID, "save").click()
    shows(".flash-success", "Settings saved.")
    assert "virus_pattern" in (gateway.get("Update", "ScheduledComponents") or "").split(",")
    browser.find_element(By.LINK_TEXT, "System Status").click()
    wait.until(lambda driver: driver.find_elements(By.ID, "components"))
    assert "excluded" not in text_of("#row-virus_pattern .flags")

    # The log and the source settings.
    browser.find_element(By.LINK_TEXT, "Logs").click()
    shows("#events", "Virus Pattern was rolled back to version 15.697.00 successfully.")
    browser.save_screenshot(str(shots / "logs.png"))
    browser.get(live_console.url + "/settings/source")
    browser.save_screenshot(str(shots / "settings-source.png"))

    # Switch to Japanese.
    browser.get(live_console.url + "/")
    from selenium.webdriver.support.ui import Select

    Select(browser.find_element(By.ID, "lang-select")).select_by_value("ja")
    browser.find_element(By.ID, "lang-switch").click()
    shows("h1", "システムステータス")
    assert text_of("#row-spam_engine .available") == "不明"
    assert not browser.find_elements(By.ID, "job-result")  # dismissed: not shown again
    assert "ウイルスパターンファイル" in text_of("#row-virus_pattern")
    browser.save_screenshot(str(shots / "status-ja.png"))
    browser.find_element(By.LINK_TEXT, "ログ").click()
    shows("#events", "ウイルスパターンファイルを正常にバージョン15.697.00にロールバックしました。")


def test_a_browser_reaching_the_console_under_a_rebound_name_gets_400(live_console: LiveConsole) -> None:
    from selenium.webdriver.common.by import By

    from tests.support.browser import chromium

    port = live_console.url.rsplit(":", 1)[1]
    # DNS rebinding as the browser sees it: evil.test resolves to 127.0.0.1.
    with chromium("--host-resolver-rules=MAP evil.test 127.0.0.1", "--no-proxy-server") as browser:
        browser.get(f"http://evil.test:{port}/login")
        assert "does not answer to the name evil.test" in browser.find_element(By.TAG_NAME, "body").text
        assert not browser.find_elements(By.ID, "password")
        # The attacker's script, running in the evil.test origin, reads only 400s.
        statuses = browser.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "Promise.all(['/healthz', '/metrics', '/login', '/'].map("
            "  path => fetch(path, {redirect: 'manual'}).then(answer => answer.status)))"
            ".then(done, error => done(String(error)));"
        )
        assert statuses == [400, 400, 400, 400]
        browser.get(f"{live_console.url}/login")  # the real name still works in the same browser
        assert browser.find_elements(By.ID, "password")


def _log_on(browser: Any, live_console: LiveConsole) -> Any:
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, WAIT_SECONDS, ignored_exceptions=[StaleElementReferenceException])
    browser.get(live_console.url + "/")
    browser.find_element(By.ID, "password").send_keys(ADMIN_PASSWORD)
    browser.find_element(By.ID, "login-submit").click()
    wait.until(lambda driver: driver.find_elements(By.ID, "components"))
    return wait


def _update_virus_pattern(browser: Any, wait: Any) -> Any:
    """Select the virus pattern, press Update and return the result dialog once it is shown."""
    from selenium.webdriver.common.by import By

    browser.find_element(By.ID, "select-virus_pattern").click()
    browser.find_element(By.ID, "update-button").click()
    wait.until(lambda driver: driver.find_elements(By.ID, "job-result")
               and driver.find_element(By.ID, "job-result").is_displayed())
    return browser.find_element(By.ID, "job-result")


def _is_modal(browser: Any) -> bool:
    return bool(browser.execute_script("return document.getElementById('job-result').matches(':modal')"))


def test_a_manual_update_ends_in_a_dialog_in_english_and_japanese_that_ok_and_escape_dismiss(
    browser: Any, live_console: LiveConsole, gateway: Gateway
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    gateway.tree.add_pattern("P.4", "1569700")
    gateway.publish()
    wait = _log_on(browser, live_console)

    dialog = _update_virus_pattern(browser, wait)
    assert dialog.tag_name == "dialog"
    assert "Manual update succeeded." in dialog.text
    assert "Virus Pattern 15.697.00 was downloaded successfully." in dialog.text
    assert _is_modal(browser)
    assert browser.switch_to.active_element.get_attribute("id") == "job-dismiss"  # focus moved to it
    browser.find_element(By.ID, "job-dismiss").click()
    wait.until(lambda _driver: not dialog.is_displayed())
    browser.refresh()  # shown once, as the appliance's pop-up
    assert not browser.find_elements(By.ID, "job-result")

    Select(browser.find_element(By.ID, "lang-select")).select_by_value("ja")
    browser.find_element(By.ID, "lang-switch").click()
    wait.until(lambda driver: "システムステータス" in driver.find_element(By.TAG_NAME, "h1").text)
    gateway.tree.add_pattern("P.4", "1569800")
    gateway.publish()
    dialog = _update_virus_pattern(browser, wait)
    assert "手動アップデートに成功しました" in dialog.text
    assert "ウイルスパターンファイル15.698.00を正常にダウンロードしました。" in dialog.text
    assert _is_modal(browser)
    browser.switch_to.active_element.send_keys(Keys.ESCAPE)
    wait.until(lambda _driver: not dialog.is_displayed())
    browser.find_element(By.ID, "select-virus_pattern").click()  # the page is usable again
    browser.find_element(By.ID, "rollback-button").click()
    wait.until(lambda driver: driver.find_elements(By.ID, "job-result")
               and driver.find_element(By.ID, "job-result").is_displayed())
    assert "ロールバックが成功しました" in browser.find_element(By.ID, "job-result").text


def test_a_failed_update_says_so_in_a_dialog_with_the_reason(
    browser: Any, live_console: LiveConsole, gateway: Gateway
) -> None:
    gateway.tree.add_pattern("P.4", "1569700")
    gateway.publish()
    gateway.fail_flag.touch()
    wait = _log_on(browser, live_console)
    dialog = _update_virus_pattern(browser, wait)
    assert "Manual update failed." in dialog.text
    assert "scan service failed to start" in dialog.text  # the reason
    assert dialog.get_attribute("role") == "alertdialog"
    assert _is_modal(browser)


def test_without_javascript_the_result_is_a_visible_message_that_ok_closes(
    live_console: LiveConsole, gateway: Gateway
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.expected_conditions import staleness_of

    from tests.support.browser import chromium, wait_for_job

    gateway.tree.add_pattern("P.4", "1569700")
    gateway.publish()
    with chromium("--blink-settings=scriptEnabled=false") as browser:
        wait = _log_on(browser, live_console)
        browser.find_element(By.ID, "select-virus_pattern").click()
        button = browser.find_element(By.ID, "update-button")
        button.click()
        wait.until(staleness_of(button))  # the view after the POST has replaced the form
        wait.until(lambda driver: driver.find_elements(By.ID, "job-running"))
        wait_for_job(live_console.app)
        if not browser.find_elements(By.ID, "job-result"):  # the job ended after that view
            browser.get(live_console.url + "/")  # no script polls: the administrator reloads
        dialog = browser.find_element(By.ID, "job-result")
        assert dialog.is_displayed()
        assert "Manual update succeeded." in dialog.text
        assert not _is_modal(browser)  # JavaScript is off: open in the page, not modal
        browser.find_element(By.ID, "job-dismiss").click()
        wait.until(lambda _driver: not dialog.is_displayed())
