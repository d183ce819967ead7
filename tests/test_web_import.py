"""Offline import from the console (seed 000): the upload form, through the real waitress
with the daemon's limits, into the same importer as the CLI, on a real database and root."""

from __future__ import annotations

import io
import re
import socket
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient

from imss_updater.web import RunMetrics, WebConfig, create_app
from tests.support.autree import SigningPKI
from tests.support.browser import ADMIN_PASSWORD, LiveConsole, csrf_of, log_on, wait_for_job
from tests.support.gateway import Gateway

_TICKET = re.compile(r'action="(/import/[^"]+)"')


@pytest.fixture
def import_app(gateway: Gateway, console_app: Flask, tmp_path: Path) -> Iterator[Flask]:
    """The console with a state directory (as the daemon gives it), on the same gateway."""
    state = tmp_path / "state"
    state.mkdir()
    app = create_app(WebConfig(dsn=gateway.dsn, root=gateway.root, secret_key=b"k" * 32,
                               metrics=RunMetrics(), state=state))
    app.config["TESTING"] = True
    yield app
    wait_for_job(app)
    app.extensions["imss_console"].pool.close()


@pytest.fixture
def admin(import_app: Flask) -> FlaskClient:
    client = import_app.test_client()
    assert log_on(client).status_code == 302
    return client


def uploads(app: Flask) -> list[str]:
    directory = app.extensions["imss_console"].config.state / "uploads"
    if not directory.exists():
        return []
    return sorted(str(path.relative_to(directory)) for path in directory.rglob("*"))


def zip_bytes(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def signed(tmp_path: Path, pki: SigningPKI, name: str, data: bytes) -> tuple[bytes, bytes]:
    path = tmp_path / "media" / name
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(data)
    pki.sign_file(path, path.with_name(name + ".sig"))
    return data, path.with_name(name + ".sig").read_bytes()


def upload(client: FlaskClient, name: str, data: bytes, signature: bytes | None = None,
           **fields: str) -> str:
    page = client.get("/import").get_data(as_text=True)
    action = _TICKET.search(page)
    assert action, page
    form: dict[str, object] = {"csrf_token": csrf_of(page), "package": (io.BytesIO(data), name), **fields}
    if signature is not None:
        form["signature"] = (io.BytesIO(signature), name.removesuffix(".zip") + ".sig")
    response = client.post(action.group(1), data=form, content_type="multipart/form-data")
    assert response.status_code == 302, response.get_data(as_text=True)
    return str(response.headers["Location"])


def result(client: FlaskClient, app: Flask) -> str:
    wait_for_job(app)
    return client.get("/").get_data(as_text=True)


def test_an_administrator_imports_a_signed_package_from_the_console_as_a_manual_update(
    admin: FlaskClient, import_app: Flask, gateway: Gateway, signing_pki: SigningPKI, tmp_path: Path
) -> None:
    package, signature = signed(tmp_path, signing_pki, "virus_pattern-1569700.zip",
                                zip_bytes({"lpt$vpn.697": b"pattern 697\n"}))
    assert upload(admin, "virus_pattern-1569700.zip", package, signature) == "/"
    page = result(admin, import_app)
    assert "Import succeeded." in page
    assert "Virus Pattern 15.697.00 was downloaded successfully." in page
    assert (gateway.live("lib/pattern/vsapi") / "lpt$vpn.697").read_bytes() == b"pattern 697\n"
    assert gateway.events() == [("manual", "virus_pattern", "15.697.00", "success")]
    assert gateway.restarts() == ["scan"]
    assert uploads(import_app) == []  # the upload is removed once used


def test_a_raw_pattern_file_is_imported_from_the_console_too(
    admin: FlaskClient, import_app: Flask, gateway: Gateway, signing_pki: SigningPKI, tmp_path: Path
) -> None:
    data, signature = signed(tmp_path, signing_pki, "lpt$vpn.697", b"raw 697\n")
    upload(admin, "lpt$vpn.697", data, signature, version="15.697.00")  # nothing installed: no roll
    assert "Import succeeded." in result(admin, import_app)
    data, signature = signed(tmp_path, signing_pki, "lpt$vpn.698", b"raw 698\n")
    upload(admin, "lpt$vpn.698", data, signature)
    page = result(admin, import_app)
    assert "Virus Pattern 15.698.00 was downloaded successfully." in page
    assert (gateway.live("lib/pattern/vsapi") / "lpt$vpn.698").read_bytes() == b"raw 698\n"


def test_an_unsigned_upload_is_refused_when_signatures_are_required_with_the_reason_in_the_dialog(
    admin: FlaskClient, import_app: Flask, gateway: Gateway
) -> None:
    gateway.set("Update", "VerifySignature", "yes")
    upload(admin, "virus_pattern-1569700.zip", zip_bytes({"lpt$vpn.697": b"x\n"}))
    page = result(admin, import_app)
    assert 'class="job-result job-failed"' in page
    assert "Import failed." in page
    assert "Update/VerifySignature=yes" in page
    assert gateway.events()[-1][3] == "failure"


def test_a_name_that_says_nothing_is_refused_in_the_dialog_and_japanese_works(
    admin: FlaskClient, import_app: Flask, gateway: Gateway
) -> None:
    token = csrf_of(admin.get("/").get_data(as_text=True))
    admin.post("/lang", data={"csrf_token": token, "lang": "ja", "next": "/"})
    upload(admin, "pattern.zip", zip_bytes({"a": b"a"}))
    page = result(admin, import_app)
    assert "インポートに失敗しました" not in page  # not a run: nothing was recorded
    assert "実行できませんでした" in page and "コンポーネントを判別できません" in page
    assert gateway.events() == []
    assert uploads(import_app) == []


def test_a_ticket_is_used_once_and_an_unknown_one_is_refused_without_leaving_files(
    admin: FlaskClient, import_app: Flask
) -> None:
    page = admin.get("/import").get_data(as_text=True)
    action = _TICKET.search(page)
    assert action
    form = {"csrf_token": csrf_of(page), "package": (io.BytesIO(b"x" * 1000), "virus_pattern-1569700.zip")}
    admin.post(action.group(1), data=form, content_type="multipart/form-data")
    wait_for_job(import_app)
    form = {"csrf_token": csrf_of(page), "package": (io.BytesIO(b"x" * 1000), "virus_pattern-1569700.zip")}
    again = admin.post(action.group(1), data=form, content_type="multipart/form-data", follow_redirects=True)
    assert "The import form has expired; open it again." in again.get_data(as_text=True)
    assert uploads(import_app) == []


def test_an_upload_without_a_log_on_or_csrf_token_is_refused_and_its_parts_removed(
    admin: FlaskClient, import_app: Flask
) -> None:
    action = _TICKET.search(admin.get("/import").get_data(as_text=True))
    assert action
    form = {"csrf_token": "wrong", "package": (io.BytesIO(b"x" * 1000), "virus_pattern-1569700.zip")}
    assert admin.post(action.group(1), data=form, content_type="multipart/form-data").status_code == 400
    anonymous = import_app.test_client()
    assert anonymous.post(action.group(1), data={"package": (io.BytesIO(b"x"), "a.zip")},
                          content_type="multipart/form-data").status_code == 400  # no session token
    assert uploads(import_app) == []


# -- through waitress with the daemon's limits ---------------------------------------------------


@pytest.fixture
def live_import(import_app: Flask) -> Iterator[LiveConsole]:
    import threading

    from imss_updater.web.server import serve

    server = serve(import_app, "127.0.0.1", 0)
    thread = threading.Thread(target=server.run, name="waitress", daemon=True)
    thread.start()
    try:
        yield LiveConsole(import_app, f"http://127.0.0.1:{server.effective_port}")
    finally:
        server.close()
        thread.join(10)


def announce(url: str, path: str, length: int) -> str:
    """Send only the headers of a POST announcing ``length`` body bytes; return the status line."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Length: {length}\r\n"
                           "Content-Type: multipart/form-data; boundary=x\r\n\r\n".encode())
        return connection.recv(200).decode().split("\r\n", 1)[0]


def test_waitress_takes_a_large_body_only_on_a_live_upload_ticket(
    live_import: LiveConsole, import_app: Flask
) -> None:
    ten_mb = 10 * 1024 * 1024
    too_large = "HTTP/1.1 413 Request Entity Too Large"
    assert announce(live_import.url, "/update", ten_mb) == too_large
    assert announce(live_import.url, "/import/not-a-ticket", ten_mb) == too_large
    ticket = import_app.extensions["imss_console"].uploads.issue()
    with pytest.raises(TimeoutError):  # accepted: waitress waits for the body
        host, port = live_import.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=1) as connection:
            connection.sendall(f"POST /import/{ticket} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                               f"Content-Length: {ten_mb}\r\n\r\n".encode())
            connection.recv(200)


def test_a_real_browser_upload_of_several_megabytes_is_imported_through_waitress(
    live_import: LiveConsole, import_app: Flask, gateway: Gateway, signing_pki: SigningPKI, tmp_path: Path
) -> None:
    big = bytes(range(256)) * (12 * 1024)  # 3 MiB: past waitress's and the form parser's memory
    package, signature = signed(tmp_path, signing_pki, "virus_pattern-1569700.zip",
                                zip_bytes({"lpt$vpn.697": big}))
    session = requests.Session()
    login = session.get(live_import.url + "/login").text
    session.post(live_import.url + "/login", data={"csrf_token": csrf_of(login), "password": ADMIN_PASSWORD})
    page = session.get(live_import.url + "/import").text
    action = _TICKET.search(page)
    assert action
    response = session.post(live_import.url + action.group(1), data={"csrf_token": csrf_of(page)},
                            files={"package": ("virus_pattern-1569700.zip", package),
                                   "signature": ("virus_pattern-1569700.sig", signature)},
                            allow_redirects=False)
    assert response.status_code == 302, response.text
    wait_for_job(import_app)
    assert "Import succeeded." in session.get(live_import.url + "/").text
    assert (gateway.live("lib/pattern/vsapi") / "lpt$vpn.697").read_bytes() == big
    assert uploads(import_app) == []
