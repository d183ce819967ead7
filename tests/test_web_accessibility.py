"""The console in a real headless Chromium, checked by axe-core and by layout probes: every
page, in English and in Japanese, without an accessibility violation of impact serious or
critical; Japanese headers, badges and short cells never wrapped one character per line; no
sideways scrolling of the whole page at 420 px. Screenshots go to IMSS_SCREENSHOTS when set."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from imss_updater.web.markup import code_spans
from imss_updater.web.settings_pages import PAGES as SETTINGS_PAGES
from tests.support.axe import (
    Violation,
    broken_dates,
    load_axe,
    one_character_lines,
    page_overflow,
    run_axe,
    serious,
    used_fonts,
)
from tests.support.browser import ADMIN_PASSWORD, LiveConsole
from tests.support.gateway import Gateway


@dataclass(frozen=True)
class Page:
    name: str
    path: str


# Every page an administrator reaches once logged on; a new page is one more line here.
PAGES: tuple[Page, ...] = (
    Page("status", "/"),
    Page("history", "/history"),
    Page("logs", "/logs"),
    Page("diagnose", "/diagnose"),
    Page("fleet", "/fleet"),
    Page("import", "/import"),
    *(Page(f"settings-{name}", f"/settings/{name}") for name in SETTINGS_PAGES),
    Page("not-found", "/no-such-page"),
    Page("method-not-allowed", "/lang"),  # POST only
)
LANGUAGES = ("en", "ja")
# Short texts that must never break one character per line: headers, badges, dates, cells.
SHORT_TEXTS = "th, td, .flag, dt, button, nav a, label.choice, h1, h2, legend"
SHORT_TEXT_LIMIT = 24  # characters; longer texts (messages) may wrap anywhere
WIDTHS = (420, 1280)
WAIT_SECONDS = 60


@pytest.fixture(scope="module")
def axe_source() -> str:
    return load_axe()


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("IMSS_SCREENSHOTS") or tmp_path / "screenshots").resolve()
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _something_on_every_page(gateway: Gateway) -> None:
    """A gateway with an installed generation, a newer version offered, an unreachable TMASE
    source (an Unknown cell), an expired licence (greyed rows) and events in the log."""
    gateway.tree.add_pattern("P.4", "1569700")
    gateway.publish()
    assert gateway.cli("update", "virus_pattern").code == 0
    gateway.tree.add_pattern("P.4", "1569800")
    gateway.tree.add_pattern("P.8", "240100")
    gateway.publish()
    gateway.set("Update", "TMASEServerurl", "http://127.0.0.1:9/unreachable")
    gateway.set("License", "Antispam", "2001-01-01")
    gateway.cli("check")  # fails for the TMASE source: that is the point


def _wait(browser: Any) -> Any:
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(browser, WAIT_SECONDS, ignored_exceptions=[StaleElementReferenceException])


def _switch_language(browser: Any, language: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    if browser.find_element(By.TAG_NAME, "html").get_attribute("lang") == language:
        return
    Select(browser.find_element(By.ID, "lang-select")).select_by_value(language)
    browser.find_element(By.ID, "lang-switch").click()
    html = (By.TAG_NAME, "html")
    _wait(browser).until(lambda driver: driver.find_element(*html).get_attribute("lang") == language)


def _log_on(browser: Any, url: str) -> None:
    from selenium.webdriver.common.by import By

    browser.get(url + "/login")
    browser.find_element(By.ID, "password").send_keys(ADMIN_PASSWORD)
    browser.find_element(By.ID, "login-submit").click()
    _wait(browser).until(lambda driver: driver.find_elements(By.ID, "components"))


def _visit(browser: Any, url: str, language: str) -> Iterator[str]:
    """Open the log-on page, then (logged on) every page of PAGES, in ``language``; yield each
    page's name once it is shown."""
    browser.get(url + "/login")
    _switch_language(browser, language)
    yield "login"
    _log_on(browser, url)
    _switch_language(browser, language)
    for page in PAGES:
        browser.get(url + page.path)
        yield page.name


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_console_page_has_no_serious_or_critical_accessibility_violation(
    language: str, browser: Any, live_console: LiveConsole, gateway: Gateway, axe_source: str
) -> None:
    from selenium.webdriver.common.by import By

    _something_on_every_page(gateway)
    found: dict[str, list[Violation]] = {}
    backticks: list[str] = []
    for name in _visit(browser, live_console.url, language):
        found[name] = run_axe(browser, axe_source)
        if "`" in browser.find_element(By.TAG_NAME, "body").text:  # Markdown shown literally
            backticks.append(name)
    browser.get(live_console.url + "/")
    browser.find_element(By.ID, "logout").click()
    _wait(browser).until(lambda driver: driver.find_elements(By.ID, "password"))
    gateway.set("Admin", "PasswordHash", "")  # the log-on page without a password set
    browser.get(live_console.url + "/login")
    assert browser.find_elements(By.ID, "no-password")
    found["login-no-password"] = run_axe(browser, axe_source)

    for name, violations in found.items():  # the report shows the minor ones too (pytest -s)
        for violation in violations:
            print(f"[{language}] {name}: {violation.line()}")
    blocking = [f"{name}: {violation.line()}" for name, violations in found.items()
                for violation in serious(violations)]
    assert not blocking, f"axe found serious or critical violations ({language}):\n" + "\n".join(blocking)
    assert len(found) == len(PAGES) + 2  # every page was checked
    assert not backticks, f"backticks shown literally on {backticks}"


@pytest.mark.parametrize("width", WIDTHS)
def test_japanese_pages_wrap_no_header_badge_or_short_cell_one_character_per_line(
    width: int, browser: Any, live_console: LiveConsole, gateway: Gateway, shots: Path, axe_source: str
) -> None:
    _something_on_every_page(gateway)
    browser.set_window_size(width, 1400)
    broken: list[str] = []
    overflowing: list[str] = []
    blocking: list[str] = []
    for name in _visit(browser, live_console.url, "ja"):
        browser.save_screenshot(str(shots / f"ja-{width}-{name}.png"))
        blocking += [f"{name}: {violation.line()}" for violation in serious(run_axe(browser, axe_source))]
        broken += [f"{name}: {text}" for text in one_character_lines(browser, SHORT_TEXTS, SHORT_TEXT_LIMIT)]
        broken += [f"{name}: the date {date} wraps" for date in broken_dates(browser)]
        scroll_width, inner_width = page_overflow(browser)
        if scroll_width > inner_width:
            overflowing.append(f"{name}: the page is {scroll_width} px wide in a {inner_width} px window")
    assert not broken, f"one character per line at {width} px:\n" + "\n".join(broken)
    assert not overflowing, "\n".join(overflowing)
    assert not blocking, f"axe at {width} px:\n" + "\n".join(blocking)  # narrow layouts too
    browser.get(live_console.url + "/")
    # Drawn in a proportional face: never the monospace IPAGothic (IPAPGothic is proportional).
    faces = used_fonts(browser, "h1")
    assert faces and "IPAGothic" not in faces, faces


def test_the_history_page_in_the_browser_lists_each_version_newest_first_with_the_current_one_marked(
    browser: Any, live_console: LiveConsole, gateway: Gateway
) -> None:
    from selenium.webdriver.common.by import By

    _something_on_every_page(gateway)
    _log_on(browser, live_console.url)
    browser.find_element(By.ID, "history-link").click()
    _wait(browser).until(lambda driver: driver.find_elements(By.ID, "history-virus_pattern"))
    section = browser.find_element(By.ID, "history-virus_pattern")
    rows = section.find_elements(By.CSS_SELECTOR, "tbody tr")
    assert [row.get_attribute("data-version") for row in rows] == ["15.698.00", "15.697.00"]
    newest, current = rows
    assert "current" in (current.get_attribute("class") or "").split()
    assert "Not installed" in newest.find_element(By.CSS_SELECTOR, ".installed").text
    assert current.find_element(By.CSS_SELECTOR, ".installed").text.strip()
    _switch_language(browser, "ja")
    assert browser.find_element(By.TAG_NAME, "h1").text == "コンポーネントの履歴"
    assert browser.find_element(By.CSS_SELECTOR, "#history-virus_pattern tr.current .flag").text


@pytest.mark.parametrize("language", LANGUAGES)
def test_help_texts_show_commands_as_code_not_as_markdown_backticks(
    language: str, logged_in: FlaskClient
) -> None:
    for path in ("/settings/licenses", "/logs"):
        page = logged_in.get(path, headers={"Accept-Language": language}).get_data(as_text=True)
        assert "`" not in page, path
        assert "<code>imss-updater " in page, path


def test_code_spans_escape_the_text_around_and_inside_the_command() -> None:
    assert code_spans("run `a <b>` & <i>") == "run <code>a &lt;b&gt;</code> &amp; &lt;i&gt;"
