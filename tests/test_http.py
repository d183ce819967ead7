"""HttpClient against real peers: HTTP(S) servers on 127.0.0.1 and Debian's tinyproxy."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from imss_updater.source.http import FetchError, HttpClient, HttpOptions, ProxySettings
from tests.support.proxy import ProxyFactory, RunningProxy
from tests.support.servers import ServerFactory, StaticServer, write_file

SIZE = 300_000  # several chunks, a few socket buffers
SPECIAL_PASSWORD = "p@ss:w/rd%#"


def options(
    ca_file: Path | None = None, proxy: RunningProxy | None = None, **overrides: object
) -> HttpOptions:
    settings: dict[str, Any] = {
        "ca_file": str(ca_file) if ca_file else None,
        "proxy": ProxySettings(proxy.host, proxy.port, proxy.user, proxy.password) if proxy else None,
        "connect_timeout": 2.0,
        "read_timeout": 2.0,
        "retries": 0,
        "backoff": 0.01,
    }
    settings.update(overrides)
    return HttpOptions(**settings)


@pytest.fixture
def served(tmp_path: Path) -> Path:
    directory = tmp_path / "www"
    write_file(directory, "pattern/vsapi697.zip", SIZE)
    write_file(directory, "server.ini", 1200, seed=7)
    return directory


def fetch_error(call: Callable[..., object], *args: object, **kwargs: object) -> FetchError:
    """Call ``call`` and return the FetchError it raises (failing the test if none)."""
    with pytest.raises(FetchError) as caught:
        call(*args, **kwargs)
    return caught.value


def download_to(client: HttpClient, server: StaticServer, tmp_path: Path, expected_size: int = SIZE) -> Path:
    destination = tmp_path / "download.zip"
    client.download(
        server.url("pattern/vsapi697.zip"),
        destination,
        expected_size=expected_size,
        max_bytes=10 << 20,
    )
    return destination


# -- plain HTTP ------------------------------------------------------------------------


def test_plain_http_download_writes_the_exact_file_and_reports_progress(
    http_server: ServerFactory, served: Path, tmp_path: Path
) -> None:
    server = http_server(served)
    seen: list[tuple[int, int]] = []
    destination = tmp_path / "download.zip"
    with HttpClient(options()) as client:
        client.download(
            server.url("pattern/vsapi697.zip"),
            destination,
            expected_size=SIZE,
            max_bytes=10 << 20,
            progress=lambda done, total: seen.append((done, total)),
        )
    assert destination.read_bytes() == (served / "pattern/vsapi697.zip").read_bytes()
    assert seen[-1] == (SIZE, SIZE)
    assert len(seen) > 1, "the body arrives in several chunks"
    (request,) = server.requests
    assert request.bytes_sent == SIZE
    assert request.headers["user-agent"] == "imss-updater/0.1"


def test_index_fetch_returns_body_and_validators(http_server: ServerFactory, served: Path) -> None:
    server = http_server(served)
    with HttpClient(options()) as client:
        result = client.fetch_index(server.url("server.ini"))
    assert not result.not_modified
    assert result.body == (served / "server.ini").read_bytes()
    assert result.etag and result.last_modified


def test_conditional_get_returns_not_modified_and_sends_validators(
    http_server: ServerFactory, served: Path
) -> None:
    server = http_server(served)
    with HttpClient(options()) as client:
        first = client.fetch_index(server.url("server.ini"))
        second = client.fetch_index(
            server.url("server.ini"), etag=first.etag, last_modified=first.last_modified
        )
    assert second.not_modified and second.body is None
    assert second.etag == first.etag
    last = server.requests[-1]
    assert last.headers["if-none-match"] == first.etag
    assert last.headers["if-modified-since"] == first.last_modified
    assert last.status == 304 and last.bytes_sent == 0


def test_conditional_get_with_stale_etag_returns_the_new_body(
    http_server: ServerFactory, served: Path
) -> None:
    server = http_server(served)
    with HttpClient(options()) as client:
        result = client.fetch_index(server.url("server.ini"), etag='"stale"')
    assert not result.not_modified
    assert result.body == (served / "server.ini").read_bytes()


def test_index_larger_than_the_limit_is_refused(http_server: ServerFactory, served: Path) -> None:
    server = http_server(served)
    with HttpClient(options()) as client:
        error = fetch_error(client.fetch_index, server.url("server.ini"), max_bytes=1000)
    assert error.kind == "too_large"


def test_missing_optional_file_returns_none(http_server: ServerFactory, served: Path) -> None:
    server = http_server(served)
    write_file(served, "pattern/present.sig", 500)
    with HttpClient(options()) as client:
        assert client.fetch_optional(server.url("pattern/vsapi697.sig"), max_bytes=4096) is None
        assert (
            client.fetch_optional(server.url("pattern/present.sig"), max_bytes=4096)
            == (served / "pattern/present.sig").read_bytes()
        )


def test_not_found_fails_without_retry_naming_the_url(
    http_server: ServerFactory, served: Path, tmp_path: Path
) -> None:
    server = http_server(served)
    url = server.url("pattern/missing.zip")
    with HttpClient(options(retries=3)) as client:
        error = fetch_error(client.download, url, tmp_path / "x.zip", expected_size=10, max_bytes=100)
    assert error.kind == "http_status" and error.status == 404
    assert error.reason == f"HTTP 404 Not Found for {url}"
    assert len(server.requests) == 1
    assert not (tmp_path / "x.zip").exists()


def test_server_error_is_retried_then_reported(
    http_server: ServerFactory, served: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = http_server(served)
    server.set_status("pattern/vsapi697.zip", 500)
    with caplog.at_level(logging.WARNING), HttpClient(options(retries=2)) as client:
        error = fetch_error(download_to, client, server, tmp_path)
    assert error.kind == "http_status" and error.status == 500
    assert "HTTP 500 Internal Server Error for" in error.reason
    assert len(server.requests_for("pattern/vsapi697.zip")) == 3
    assert sum("retrying" in record.getMessage() for record in caplog.records) == 2


def test_server_error_then_recovery_succeeds_on_retry(
    http_server: ServerFactory, served: Path, tmp_path: Path
) -> None:
    server = http_server(served)
    server.set_status("pattern/vsapi697.zip", 503)

    def recover_after_first_request() -> None:
        while not server.requests:
            threading.Event().wait(0.01)
        server.set_status("pattern/vsapi697.zip", None)

    helper = threading.Thread(target=recover_after_first_request)
    helper.start()
    # The backoff (0.5 s) leaves the helper ample time to clear the forced status.
    with HttpClient(options(retries=2, backoff=0.5)) as client:
        destination = download_to(client, server, tmp_path)
    helper.join()
    assert destination.stat().st_size == SIZE
    statuses = [request.status for request in server.requests]
    assert statuses[0] == 503 and statuses[-1] == 200


def test_slow_server_within_the_read_timeout_succeeds(
    http_server: ServerFactory, served: Path, tmp_path: Path
) -> None:
    server = http_server(served)
    server.set_delay(0.3)
    with HttpClient(options(read_timeout=3.0)) as client:
        destination = download_to(client, server, tmp_path)
    assert destination.stat().st_size == SIZE


def test_stalled_server_times_out_and_each_attempt_is_retried(
    http_server: ServerFactory, served: Path, tmp_path: Path
) -> None:
    server = http_server(served)
    server.stall()
    with HttpClient(options(read_timeout=0.3, retries=1)) as client:
        error = fetch_error(download_to, client, server, tmp_path)
    assert error.kind == "timeout"
    assert error.reason == (f"timed out after 0.3 s reading {server.url('pattern/vsapi697.zip')}")
    assert len(server.requests) == 2
    assert not (tmp_path / "download.zip").exists()


def test_server_going_silent_mid_body_times_out_and_leaves_no_partial_file(
    http_server: ServerFactory, served: Path, tmp_path: Path
) -> None:
    server = http_server(served)
    server.stall_midway("pattern/vsapi697.zip")
    received: list[int] = []
    with HttpClient(options(read_timeout=0.3)) as client:
        error = fetch_error(
            client.download,
            server.url("pattern/vsapi697.zip"),
            tmp_path / "download.zip",
            expected_size=SIZE,
            max_bytes=10 << 20,
            progress=lambda done, total: received.append(done),
        )
    assert error.kind == "timeout"
    assert error.reason == f"timed out after 0.3 s reading {server.url('pattern/vsapi697.zip')}"
    assert received and received[-1] < SIZE, "part of the body had arrived"
    assert not (tmp_path / "download.zip").exists()


def test_body_cut_midway_fails_and_leaves_no_partial_file(
    http_server: ServerFactory, served: Path, tmp_path: Path
) -> None:
    server = http_server(served)
    server.cut("pattern/vsapi697.zip")
    with HttpClient(options(retries=1)) as client:
        error = fetch_error(download_to, client, server, tmp_path)
    assert error.kind == "connection"
    assert "connection closed" in error.reason and "vsapi697.zip" in error.reason
    assert len(server.requests) == 2, "a lost connection is transient: retried once"
    assert not (tmp_path / "download.zip").exists()


def test_size_announced_by_the_server_differing_from_the_index_fails(
    http_server: ServerFactory, served: Path, tmp_path: Path
) -> None:
    server = http_server(served)
    with HttpClient(options(retries=2)) as client:
        error = fetch_error(download_to, client, server, tmp_path, expected_size=SIZE + 1)
    assert error.kind == "size_mismatch"
    assert str(SIZE) in error.reason and str(SIZE + 1) in error.reason
    assert len(server.requests) == 1, "a size mismatch is not retried"
    assert not (tmp_path / "download.zip").exists()


def test_wrong_content_length_is_a_size_mismatch(
    http_server: ServerFactory, served: Path, tmp_path: Path
) -> None:
    server = http_server(served)
    server.set_content_length("pattern/vsapi697.zip", SIZE - 10)
    with HttpClient(options()) as client:
        error = fetch_error(download_to, client, server, tmp_path)
    assert error.kind == "size_mismatch"
    assert not (tmp_path / "download.zip").exists()


def test_body_longer_than_expected_without_content_length_is_cut_short(
    http_server: ServerFactory, served: Path, tmp_path: Path
) -> None:
    server = http_server(served)
    server.omit_content_length("pattern/vsapi697.zip")
    with HttpClient(options()) as client:
        error = fetch_error(download_to, client, server, tmp_path, expected_size=1000)
    assert error.kind == "size_mismatch"
    assert "more than the 1000 bytes" in error.reason
    assert not (tmp_path / "download.zip").exists()


def test_body_shorter_than_expected_without_content_length_is_a_size_mismatch(
    http_server: ServerFactory, served: Path, tmp_path: Path
) -> None:
    server = http_server(served)
    server.omit_content_length("pattern/vsapi697.zip")
    with HttpClient(options()) as client:
        error = fetch_error(download_to, client, server, tmp_path, expected_size=SIZE + 5)
    assert error.kind == "size_mismatch"
    assert f"received {SIZE} bytes" in error.reason


def test_component_over_the_size_limit_is_refused_before_any_request(
    http_server: ServerFactory, served: Path, tmp_path: Path
) -> None:
    server = http_server(served)
    with HttpClient(options()) as client:
        error = fetch_error(
            client.download,
            server.url("pattern/vsapi697.zip"),
            tmp_path / "x.zip",
            expected_size=SIZE,
            max_bytes=SIZE - 1,
        )
    assert error.kind == "too_large"
    assert server.requests == []


def test_unwritable_destination_is_a_disk_error(
    http_server: ServerFactory, served: Path, tmp_path: Path
) -> None:
    server = http_server(served)
    destination = tmp_path / "no-such-directory" / "x.zip"
    with HttpClient(options(retries=2)) as client:
        error = fetch_error(
            client.download,
            server.url("pattern/vsapi697.zip"),
            destination,
            expected_size=SIZE,
            max_bytes=10 << 20,
        )
    assert error.kind == "disk"
    assert str(destination) in error.reason and "No such file or directory" in error.reason
    assert len(server.requests) == 1


def test_refused_connection_names_host_and_port(refused_port: int, tmp_path: Path) -> None:
    with HttpClient(options(retries=1)) as client:
        error = fetch_error(client.fetch_index, f"http://127.0.0.1:{refused_port}/server.ini")
    assert error.kind == "connection"
    assert error.reason == f"connection refused: 127.0.0.1:{refused_port}"


def test_unanswered_connection_attempt_times_out_naming_host_and_port(
    blackhole_port: int,
) -> None:
    with HttpClient(options(connect_timeout=0.3, retries=1)) as client:
        error = fetch_error(client.fetch_index, f"http://127.0.0.1:{blackhole_port}/server.ini")
    assert error.kind == "timeout"
    assert error.reason == f"timed out after 0.3 s connecting to 127.0.0.1:{blackhole_port}"


def test_unresolvable_host_is_a_dns_error() -> None:
    with HttpClient(options()) as client:
        error = fetch_error(client.fetch_index, "http://no-such-host.invalid/server.ini")
    assert error.kind == "dns"
    assert error.reason == "cannot resolve host no-such-host.invalid"


# -- TLS -------------------------------------------------------------------------------


def test_https_with_the_test_ca_succeeds(
    https_server: ServerFactory, served: Path, tmp_path: Path, test_ca_file: Path
) -> None:
    server = https_server(served)
    with HttpClient(options(test_ca_file)) as client:
        destination = download_to(client, server, tmp_path)
        index = client.fetch_index(server.url("server.ini"))
    assert destination.read_bytes() == (served / "pattern/vsapi697.zip").read_bytes()
    assert index.body == (served / "server.ini").read_bytes()


def test_https_signed_by_another_ca_is_refused_without_retry(
    https_server: ServerFactory, served: Path, other_ca_file: Path
) -> None:
    server = https_server(served)
    url = server.url("server.ini")
    with HttpClient(options(other_ca_file, retries=2)) as client:
        error = fetch_error(client.fetch_index, url)
    assert error.kind == "tls"
    assert error.reason.startswith(f"TLS failure for {url}: ")
    assert "unable to get local issuer certificate" in error.reason
    assert server.requests == []
    assert server.handshake_failures == 1


def test_https_with_the_system_store_does_not_trust_the_test_ca(
    https_server: ServerFactory, served: Path
) -> None:
    server = https_server(served)
    with HttpClient(options(None)) as client:
        error = fetch_error(client.fetch_index, server.url("server.ini"))
    assert error.kind == "tls"


def test_expired_certificate_is_refused(
    expired_https_server: ServerFactory, served: Path, test_ca_file: Path
) -> None:
    server = expired_https_server(served)
    url = server.url("server.ini")
    with HttpClient(options(test_ca_file)) as client:
        error = fetch_error(client.fetch_index, url)
    assert error.kind == "tls"
    assert error.reason == f"TLS failure for {url}: certificate has expired"


def test_server_offering_only_tls_1_0_is_refused(
    legacy_tls_server: ServerFactory, served: Path, test_ca_file: Path
) -> None:
    server = legacy_tls_server(served)
    url = server.url("server.ini")
    with HttpClient(options(test_ca_file, retries=2)) as client:
        error = fetch_error(client.fetch_index, url)
    assert error.kind == "tls"
    assert error.reason == (f"TLS failure for {url}: unsupported protocol (server offers TLS older than 1.2)")
    assert server.handshake_failures == 1, "a TLS failure is not retried"


def test_tls_to_a_plain_http_port_is_reported_as_not_tls(
    http_server: ServerFactory, served: Path, test_ca_file: Path
) -> None:
    server = http_server(served)
    url = f"https://127.0.0.1:{server.port}/server.ini"
    with HttpClient(options(test_ca_file)) as client:
        error = fetch_error(client.fetch_index, url)
    assert error.kind == "tls"
    assert "did not answer with TLS" in error.reason


def test_unreadable_ca_file_is_a_tls_error(tmp_path: Path) -> None:
    missing = tmp_path / "missing.pem"
    error = fetch_error(HttpClient, options(missing))
    assert error.kind == "tls" and str(missing) in error.reason


# -- proxy -----------------------------------------------------------------------------


def test_plain_http_through_tinyproxy_with_authentication(
    tinyproxy: ProxyFactory, http_server: ServerFactory, served: Path, tmp_path: Path
) -> None:
    proxy = tinyproxy(user="updater", password="Secret-1.x_Y")
    server = http_server(served)
    with HttpClient(options(proxy=proxy)) as client:
        destination = download_to(client, server, tmp_path)
    assert destination.stat().st_size == SIZE
    assert proxy.saw(f"GET {server.url('pattern/vsapi697.zip')}")
    assert "proxy-authorization" not in server.requests[0].headers


def test_https_through_tinyproxy_uses_connect_and_the_configured_ca(
    tinyproxy: ProxyFactory,
    https_server: ServerFactory,
    served: Path,
    tmp_path: Path,
    test_ca_file: Path,
) -> None:
    proxy = tinyproxy(user="updater", password="Secret-1.x_Y")
    server = https_server(served)
    with HttpClient(options(test_ca_file, proxy=proxy)) as client:
        destination = download_to(client, server, tmp_path)
    assert destination.read_bytes() == (served / "pattern/vsapi697.zip").read_bytes()
    assert proxy.saw(f"CONNECT 127.0.0.1:{server.port}")


def test_tls_rules_apply_inside_the_connect_tunnel(
    tinyproxy: ProxyFactory, legacy_tls_server: ServerFactory, served: Path, test_ca_file: Path
) -> None:
    proxy = tinyproxy()
    server = legacy_tls_server(served)
    with HttpClient(options(test_ca_file, proxy=proxy)) as client:
        error = fetch_error(client.fetch_index, server.url("server.ini"))
    assert error.kind == "tls"
    assert "older than 1.2" in error.reason
    assert proxy.saw(f"CONNECT 127.0.0.1:{server.port}")


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_password_with_special_characters_reaches_the_proxy_intact(
    scheme: str,
    tinyproxy: ProxyFactory,
    http_server: ServerFactory,
    https_server: ServerFactory,
    served: Path,
    tmp_path: Path,
    test_ca_file: Path,
) -> None:
    proxy = tinyproxy(user="up:date@r", password=SPECIAL_PASSWORD)
    server = (https_server if scheme == "https" else http_server)(served)
    with HttpClient(options(test_ca_file, proxy=proxy)) as client:
        destination = download_to(client, server, tmp_path)
    assert destination.stat().st_size == SIZE
    assert proxy.gate is not None and proxy.gate.accepted >= 1 and proxy.gate.rejected == 0
    expected = "CONNECT 127.0.0.1" if scheme == "https" else "GET http://127.0.0.1"
    assert proxy.saw(f"{expected}:{server.port}")


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_wrong_proxy_password_is_proxy_auth_and_never_shown(
    scheme: str,
    tinyproxy: ProxyFactory,
    http_server: ServerFactory,
    https_server: ServerFactory,
    served: Path,
    test_ca_file: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    proxy = tinyproxy(user="updater", password="Secret-1.x_Y")
    server = (https_server if scheme == "https" else http_server)(served)
    wrong = ProxySettings(proxy.host, proxy.port, "updater", "Wrong-Pass.9")
    settings = HttpOptions(ca_file=str(test_ca_file), proxy=wrong, retries=2, backoff=0.01)
    with caplog.at_level(logging.DEBUG), HttpClient(settings) as client:
        error = fetch_error(client.fetch_index, server.url("server.ini"))
    assert error.kind == "proxy_auth"
    assert error.reason.startswith("proxy authentication failed (HTTP 4")
    assert error.reason.endswith(f") at 127.0.0.1:{proxy.port}")
    assert server.requests == []
    assert "Wrong-Pass.9" not in caplog.text and "Wrong-Pass.9" not in error.reason
    assert "Wrong-Pass.9" not in repr(wrong)


def test_missing_proxy_credentials_get_407(
    tinyproxy: ProxyFactory, http_server: ServerFactory, served: Path
) -> None:
    proxy = tinyproxy(user="updater", password="Secret-1.x_Y")
    server = http_server(served)
    settings = HttpOptions(proxy=ProxySettings(proxy.host, proxy.port), retries=2, backoff=0.01)
    with HttpClient(settings) as client:
        error = fetch_error(client.fetch_index, server.url("server.ini"))
    assert error.kind == "proxy_auth"
    assert error.reason == f"proxy authentication failed (HTTP 407) at 127.0.0.1:{proxy.port}"


def test_wrong_special_character_password_gets_407_through_connect(
    tinyproxy: ProxyFactory, https_server: ServerFactory, served: Path, test_ca_file: Path
) -> None:
    proxy = tinyproxy(user="updater", password=SPECIAL_PASSWORD)
    server = https_server(served)
    wrong = ProxySettings(proxy.host, proxy.port, "updater", SPECIAL_PASSWORD + "x")
    settings = HttpOptions(ca_file=str(test_ca_file), proxy=wrong, retries=2, backoff=0.01)
    with HttpClient(settings) as client:
        error = fetch_error(client.fetch_index, server.url("server.ini"))
    assert error.kind == "proxy_auth"
    assert error.reason == f"proxy authentication failed (HTTP 407) at 127.0.0.1:{proxy.port}"
    assert proxy.gate is not None and proxy.gate.rejected == 1


def test_proxy_that_cannot_reach_the_server_is_reported_with_the_proxy(
    tinyproxy: ProxyFactory, refused_port: int, test_ca_file: Path
) -> None:
    proxy = tinyproxy()
    with HttpClient(options(test_ca_file, proxy=proxy)) as client:
        plain = fetch_error(client.fetch_index, f"http://127.0.0.1:{refused_port}/server.ini")
        tunnel = fetch_error(client.fetch_index, f"https://127.0.0.1:{refused_port}/server.ini")
    assert plain.kind == "http_status" and plain.status == 500
    assert plain.reason.endswith(f"(via proxy 127.0.0.1:{proxy.port})")
    assert tunnel.kind == "proxy" and tunnel.status == 500
    assert tunnel.reason == (
        f"proxy 127.0.0.1:{proxy.port} could not open a tunnel to 127.0.0.1:{refused_port}: "
        "500 Unable to connect"
    )


def test_dead_proxy_is_a_proxy_error(refused_port: int, http_server: ServerFactory, served: Path) -> None:
    server = http_server(served)
    dead = ProxySettings("127.0.0.1", refused_port, "updater", SPECIAL_PASSWORD)
    settings = HttpOptions(proxy=dead, retries=1, backoff=0.01)
    for url in (server.url("server.ini"), f"https://127.0.0.1:{server.port}/server.ini"):
        with HttpClient(settings) as client:
            error = fetch_error(client.fetch_index, url)
        assert error.kind == "proxy"
        assert error.reason == (f"cannot connect to proxy 127.0.0.1:{refused_port}: connection refused")
        assert SPECIAL_PASSWORD not in error.reason
    assert server.requests == []


def test_proxy_settings_encode_special_characters_in_the_url() -> None:
    settings = ProxySettings("proxy.example", 8080, "a@b", SPECIAL_PASSWORD)
    assert settings.url() == "http://a%40b:p%40ss%3Aw%2Frd%25%23@proxy.example:8080"


def test_environment_proxy_variables_are_ignored(
    http_server: ServerFactory, served: Path, refused_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = http_server(served)
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.setenv(name, f"http://127.0.0.1:{refused_port}")
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    with HttpClient(options()) as client:
        result = client.fetch_index(server.url("server.ini"))
    assert result.body is not None
