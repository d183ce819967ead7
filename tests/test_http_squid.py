"""Proxy credentials are sent as UTF-8 (what squid, curl and browsers do): HttpClient
against a real squid with basic_ncsa_auth, over plain HTTP and HTTPS through CONNECT."""

from __future__ import annotations

import base64
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from imss_updater.source.http import FetchError, HttpClient, HttpOptions, ProxySettings
from tests.support.servers import ServerFactory, write_file
from tests.support.squid import RunningSquid, SquidFactory

PASSWORD = "p@ss:w/rd%41; #&x ü日本"
PAYLOAD = "pattern/vsapi697.zip"
SIZE = 200_000


@pytest.fixture
def served(tmp_path: Path) -> Path:
    directory = tmp_path / "www"
    write_file(directory, PAYLOAD, SIZE)
    write_file(directory, "server.ini", 1200, seed=7)
    return directory


def through(proxy: RunningSquid, user: str, password: str, ca_file: Path) -> HttpOptions:
    return HttpOptions(
        ca_file=str(ca_file), proxy=ProxySettings(proxy.host, proxy.port, user, password),
        connect_timeout=5.0, read_timeout=10.0, retries=0,
    )


@pytest.mark.parametrize("scheme", ["http", "https"])
@pytest.mark.parametrize("user", ["updater", "更新者"])
def test_any_password_reaches_squid_as_utf8(
    scheme: str,
    user: str,
    squid: SquidFactory,
    http_server: ServerFactory,
    https_server: ServerFactory,
    served: Path,
    tmp_path: Path,
    test_ca_file: Path,
) -> None:
    proxy = squid(users={user: PASSWORD})
    server = (https_server if scheme == "https" else http_server)(served)
    destination = tmp_path / "download.zip"
    with HttpClient(through(proxy, user, PASSWORD, test_ca_file)) as client:
        index = client.fetch_index(server.url("server.ini"))
        client.download(server.url(PAYLOAD), destination, expected_size=SIZE, max_bytes=10 << 20)
    assert index.body == (served / "server.ini").read_bytes()
    assert destination.read_bytes() == (served / PAYLOAD).read_bytes()
    seen = f"CONNECT 127.0.0.1:{server.port}" if scheme == "https" else f"GET {server.url(PAYLOAD)}"
    assert proxy.saw(seen)
    assert "proxy-authorization" not in server.requests[0].headers


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_a_wrong_utf8_password_is_refused_by_squid_with_407(
    scheme: str,
    squid: SquidFactory,
    http_server: ServerFactory,
    https_server: ServerFactory,
    served: Path,
    test_ca_file: Path,
) -> None:
    proxy = squid(users={"updater": PASSWORD})
    server = (https_server if scheme == "https" else http_server)(served)
    wrong = PASSWORD.replace("日本", "日夲")
    settings = through(proxy, "updater", wrong, test_ca_file)
    with HttpClient(settings) as client, pytest.raises(FetchError) as caught:
        client.fetch_index(server.url("server.ini"))
    assert caught.value.kind == "proxy_auth"
    assert caught.value.reason == f"proxy authentication failed (HTTP 407) at 127.0.0.1:{proxy.port}"
    assert wrong not in caught.value.reason
    assert server.requests == []


def proxy_status(proxy: RunningSquid, target: str, credentials: bytes) -> int:
    """Send one request through ``proxy`` with these raw Basic credentials; return the status."""
    token = base64.b64encode(credentials).decode("ascii")
    with socket.create_connection((proxy.host, proxy.port), timeout=10) as connection:
        connection.sendall(
            f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nProxy-Authorization: Basic {token}\r\n"
            "Connection: close\r\n\r\n".encode("ascii")
        )
        answer = b""
        while b"\r\n" not in answer:
            data = connection.recv(4096)
            if not data:
                break
            answer += data
    return int(answer.split(b" ", 2)[1])


def test_this_squid_tells_utf8_from_latin1_credentials(
    squid: SquidFactory, http_server: ServerFactory, served: Path
) -> None:
    # The test above would prove nothing if squid accepted any encoding: it does not.
    proxy = squid(users={"updater": "grüße"})
    target = http_server(served).url("server.ini")
    assert proxy_status(proxy, target, "updater:grüße".encode("latin-1")) == 407
    assert proxy_status(proxy, target, "updater:grüße".encode()) == 200


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_gets_through_the_same_squid_with_the_same_password(
    squid: SquidFactory, http_server: ServerFactory, served: Path, tmp_path: Path
) -> None:
    # The reference client. curl URL-decodes --proxy-user, so its literal % is given as %25.
    proxy = squid(users={"updater": PASSWORD})
    target = http_server(served).url("server.ini")
    credentials = f"updater:{PASSWORD.replace('%', '%25')}"
    result = subprocess.run(
        ["curl", "-sS", "-o", str(tmp_path / "out"), "-w", "%{http_code}", "--noproxy", "",
         "-x", f"http://{proxy.host}:{proxy.port}", "--proxy-user", credentials, target],
        capture_output=True, text=True, timeout=30, check=False,
    )
    assert result.stdout == "200", result.stderr
    assert proxy.saw(f"GET {target} updater ")
