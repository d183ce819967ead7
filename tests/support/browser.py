"""Test support for the web console: the app on a gateway, waitress in a thread, Chromium.

Fixtures:
- ``console_app``: ``create_app`` on the ``gateway`` (fresh database, install root, AU
  source), with the administrator password ``ADMIN_PASSWORD`` set;
- ``client`` / ``logged_in``: a Flask test client, anonymous or logged on;
- ``live_console``: the same app served by waitress on 127.0.0.1 (free port) in a thread;
- ``browser``: a headless Chromium (Debian's chromium + chromium-driver, via selenium)
  with a fresh profile, skipped when the browser is not installed; ``chromium(*flags)``
  for one with extra command-line flags.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from imss_updater.web import RunMetrics, WebConfig, create_app, set_admin_password
from tests.support.gateway import Gateway

ADMIN_PASSWORD = "correct horse battery"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    """Return the CSRF token of the first form in ``html``."""
    found = _CSRF.search(html)
    assert found, "no CSRF token in the page"
    return found.group(1)


def wait_for_job(app: Flask, timeout: float = 60) -> None:
    runner = app.extensions["imss_console"].runner
    assert runner.wait(timeout), "the console's background job did not finish"


@pytest.fixture
def console_app(gateway: Gateway) -> Iterator[Flask]:
    with gateway.database() as database:
        set_admin_password(database, ADMIN_PASSWORD)
    app = create_app(WebConfig(dsn=gateway.dsn, root=gateway.root, secret_key=b"k" * 32,
                               metrics=RunMetrics()))
    app.config["TESTING"] = True
    yield app
    wait_for_job(app)
    app.extensions["imss_console"].pool.close()


@pytest.fixture
def client(console_app: Flask) -> FlaskClient:
    return console_app.test_client()


def log_on(client: FlaskClient, password: str = ADMIN_PASSWORD) -> Any:
    token = csrf_of(client.get("/login").get_data(as_text=True))
    return client.post("/login", data={"csrf_token": token, "password": password})


@pytest.fixture
def logged_in(client: FlaskClient) -> FlaskClient:
    response = log_on(client)
    assert response.status_code == 302, response.get_data(as_text=True)
    return client


@dataclass
class LiveConsole:
    app: Flask
    url: str


@pytest.fixture
def live_console(console_app: Flask) -> Iterator[LiveConsole]:
    from imss_updater.web.server import serve

    server = serve(console_app, "127.0.0.1", 0)  # the daemon's limits
    thread = threading.Thread(target=server.run, name="waitress", daemon=True)
    thread.start()
    try:
        yield LiveConsole(console_app, f"http://127.0.0.1:{server.effective_port}")
    finally:
        server.close()
        thread.join(10)


@contextlib.contextmanager
def chromium(*extra_flags: str) -> Iterator[Any]:
    """A headless Chromium with a fresh profile (skip the test when it is not installed)."""
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.skip("chromium and chromium-driver are not installed")
    webdriver = pytest.importorskip("selenium.webdriver")
    profile = tempfile.mkdtemp(prefix="imss-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1280,900", "--lang=en-US",
                 f"--user-data-dir={profile}", *extra_flags):
        options.add_argument(flag)
    options.add_experimental_option("prefs", {"intl.accept_languages": "en-US,en"})
    service = webdriver.ChromeService(executable_path=CHROMEDRIVER)
    driver = webdriver.Chrome(options=options, service=service)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def browser() -> Iterator[Any]:
    with chromium() as driver:
        yield driver
