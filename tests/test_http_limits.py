"""HttpClient limits against hostile real servers: the low-speed limit and the deadlines
(a source sending one byte a second), Retry-After, a stalled TLS handshake, a full disk."""

from __future__ import annotations

import datetime
import email.utils
import errno
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from imss_updater.source.http import FetchError, HttpClient, HttpOptions
from imss_updater.source.http_errors import MAX_RETRY_AFTER, parse_retry_after
from tests.support.drip import HostileFactory
from tests.support.local import tiny_tmpfs
from tests.support.servers import write_file

PAYLOAD = "pattern/vsapi697.zip"
SIZE = 300_000


def options(**overrides: object) -> HttpOptions:
    settings: dict[str, object] = {
        "connect_timeout": 2.0,
        "read_timeout": 30.0,  # longer than every test: only the limits under test end a fetch
        "retries": 0,
        "backoff": 0.01,
        "low_speed_bytes": 100,
        "low_speed_seconds": 2.0,
    }
    settings.update(overrides)
    return HttpOptions(**settings)  # type: ignore[arg-type]


@pytest.fixture
def served(tmp_path: Path) -> Path:
    directory = tmp_path / "www"
    write_file(directory, PAYLOAD, SIZE)
    write_file(directory, "server.ini", 1200, seed=7)
    return directory


def fetch_error(call: Callable[..., object], *args: object, **kwargs: object) -> FetchError:
    with pytest.raises(FetchError) as caught:
        call(*args, **kwargs)
    return caught.value


def download(client: HttpClient, url: str, destination: Path, size: int = SIZE) -> None:
    client.download(url, destination, expected_size=size, max_bytes=10 << 30)


# -- one byte a second ----------------------------------------------------------------------


def test_headers_sent_one_byte_a_second_are_abandoned_as_too_slow(
    drip_server: HostileFactory, served: Path
) -> None:
    server = drip_server(served)
    server.drip_headers("server.ini")
    url = server.url("server.ini")
    with HttpClient(options(retries=2)) as client:
        error = fetch_error(client.fetch_index, url)
    assert error.kind == "too_slow"
    assert error.reason == f"source too slow: fewer than 100 bytes in 2 s reading {url}"
    assert server.requests == ["/server.ini"], "a source too slow is not retried"


def test_server_ini_sent_one_byte_a_second_is_abandoned_as_too_slow(
    drip_server: HostileFactory, served: Path
) -> None:
    server = drip_server(served)
    server.drip_body("server.ini")
    url = server.url("server.ini")
    with HttpClient(options()) as client:
        error = fetch_error(client.fetch_index, url)
    assert error.kind == "too_slow"
    assert error.reason == f"source too slow: fewer than 100 bytes in 2 s reading {url}"


def test_payload_sent_one_byte_a_second_is_abandoned_and_leaves_no_partial_file(
    drip_server: HostileFactory, served: Path, tmp_path: Path
) -> None:
    server = drip_server(served)
    server.drip_body(PAYLOAD)
    destination = tmp_path / "download.zip"
    received: list[int] = []
    with HttpClient(options()) as client:
        error = fetch_error(
            client.download, server.url(PAYLOAD), destination, expected_size=SIZE,
            max_bytes=10 << 20, progress=lambda done, total: received.append(done),
        )
    assert error.kind == "too_slow"
    assert error.reason.startswith("source too slow: fewer than 100 bytes in 2 s reading ")
    assert received, "bytes were arriving, one at a time"
    assert not destination.exists()


def test_payload_over_https_one_byte_a_second_is_abandoned_too(
    drip_https_server: HostileFactory, served: Path, tmp_path: Path, test_ca_file: Path
) -> None:
    server = drip_https_server(served)
    server.drip_body(PAYLOAD)
    with HttpClient(options(ca_file=str(test_ca_file))) as client:
        error = fetch_error(download, client, server.url(PAYLOAD), tmp_path / "x.zip")
    assert error.kind == "too_slow"


def test_a_source_fast_enough_but_slower_than_the_deadline_is_abandoned_at_the_deadline(
    drip_server: HostileFactory, served: Path, tmp_path: Path
) -> None:
    server = drip_server(served, interval=0.2)
    server.burst_body(PAYLOAD, 4096)  # 20 KB/s: well over the low-speed limit, 15 s in all
    url = server.url(PAYLOAD)
    with HttpClient(options(download_deadline=1.5)) as client:
        error = fetch_error(download, client, url, tmp_path / "download.zip")
    assert error.kind == "deadline"
    assert error.reason == f"deadline exceeded: {url} not received within 1.5 s"
    assert not (tmp_path / "download.zip").exists()


def test_the_deadline_includes_the_wait_for_the_headers(
    drip_server: HostileFactory, served: Path
) -> None:
    server = drip_server(served)
    server.drip_headers("server.ini")
    url = server.url("server.ini")
    with HttpClient(options(low_speed_bytes=0, index_deadline=1.5)) as client:
        error = fetch_error(client.fetch_index, url)
    assert error.kind == "deadline"
    assert error.reason == f"deadline exceeded: {url} not received within 1.5 s"


def test_the_deadline_covers_every_attempt_and_the_waits_between_them(
    drip_server: HostileFactory, served: Path
) -> None:
    server = drip_server(served)
    server.answer("server.ini", 500)
    with HttpClient(options(retries=5, backoff=1.0, index_deadline=2.5)) as client:
        error = fetch_error(client.fetch_index, server.url("server.ini"))
    assert error.kind == "http_status" and error.status == 500
    # Waits of 1 s then 2 s: the second retry would start after the deadline.
    assert len(server.requests) == 2


def test_a_low_speed_limit_of_zero_bytes_lets_a_slow_source_finish(
    drip_server: HostileFactory, tmp_path: Path
) -> None:
    directory = tmp_path / "www"
    write_file(directory, "small.bin", 3)
    server = drip_server(directory, interval=0.5)
    server.drip_body("small.bin")
    with HttpClient(options(low_speed_bytes=0, low_speed_seconds=0.5)) as client:
        download(client, server.url("small.bin"), tmp_path / "small.bin", size=3)
    assert (tmp_path / "small.bin").read_bytes() == (directory / "small.bin").read_bytes()


# -- TLS handshake -------------------------------------------------------------------------


def test_a_stalled_tls_handshake_is_named_with_the_connect_timeout(
    drip_https_server: HostileFactory, served: Path, test_ca_file: Path
) -> None:
    server = drip_https_server(served)
    server.stall_handshake()
    url = server.url("server.ini")
    settings = options(ca_file=str(test_ca_file), connect_timeout=0.5, read_timeout=60.0, retries=1)
    with HttpClient(settings) as client:
        error = fetch_error(client.fetch_index, url)
    assert error.kind == "timeout"
    assert error.reason == f"TLS handshake timed out after 0.5 s for {url}"
    assert server.connections == 2, "a handshake timeout is transient: retried once"


# -- Retry-After ----------------------------------------------------------------------------


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_in_seconds_is_not_retried_and_says_until_when(
    status: int, drip_server: HostileFactory, served: Path
) -> None:
    server = drip_server(served)
    server.answer("server.ini", status, {"Retry-After": "120"})
    before = datetime.datetime.now(datetime.UTC)
    with HttpClient(options(retries=3)) as client:
        error = fetch_error(client.fetch_index, server.url("server.ini"))
    after = datetime.datetime.now(datetime.UTC)
    assert error.kind == "retry_later" and error.status == status
    assert error.retry_after is not None
    assert before + datetime.timedelta(seconds=119) <= error.retry_after
    assert error.retry_after <= after + datetime.timedelta(seconds=121)
    shown = error.retry_after.astimezone().isoformat(sep=" ", timespec="seconds")
    assert error.reason.startswith(f"source asks to wait until {shown} (HTTP {status} ")
    assert error.reason.endswith(f"for {server.url('server.ini')})")
    assert server.requests == ["/server.ini"]


def test_retry_after_as_an_http_date_is_honoured(
    drip_server: HostileFactory, served: Path, tmp_path: Path
) -> None:
    server = drip_server(served)
    until = (datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1)).replace(microsecond=0)
    server.answer(PAYLOAD, 503, {"Retry-After": email.utils.format_datetime(until, usegmt=True)})
    with HttpClient(options(retries=2)) as client:
        error = fetch_error(download, client, server.url(PAYLOAD), tmp_path / "x.zip")
    assert error.kind == "retry_later" and error.retry_after == until
    assert server.requests == [f"/{PAYLOAD}"]


def test_503_without_retry_after_is_retried_as_before(drip_server: HostileFactory, served: Path) -> None:
    server = drip_server(served)
    server.answer("server.ini", 503)
    with HttpClient(options(retries=2)) as client:
        error = fetch_error(client.fetch_index, server.url("server.ini"))
    assert error.kind == "http_status" and error.status == 503
    assert len(server.requests) == 3


def test_429_without_retry_after_is_a_plain_status_failure(drip_server: HostileFactory, served: Path) -> None:
    server = drip_server(served)
    server.answer("server.ini", 429)
    with HttpClient(options(retries=2)) as client:
        error = fetch_error(client.fetch_index, server.url("server.ini"))
    assert error.kind == "http_status" and error.retry_after is None
    assert len(server.requests) == 1


def test_retry_after_is_capped_and_ignored_when_past_or_unreadable() -> None:
    now = datetime.datetime(2025, 3, 1, 12, 0, tzinfo=datetime.UTC)
    assert parse_retry_after("31536000", now) == now + MAX_RETRY_AFTER
    assert parse_retry_after("0", now) is None
    assert parse_retry_after("Sat, 01 Mar 2025 11:00:00 GMT", now) is None
    assert parse_retry_after("Sat, 01 Mar 2025 12:30:00 GMT", now) == now + datetime.timedelta(minutes=30)
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None, now) is None


# -- disk ---------------------------------------------------------------------------------


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs mounted for this test (the test runs as root)."""
    with tiny_tmpfs(tmp_path / "tiny") as mount_point:
        yield mount_point


def test_a_download_larger_than_the_free_space_is_refused_before_any_request(
    drip_server: HostileFactory, served: Path, tiny_disk: Path
) -> None:
    server = drip_server(served)
    with HttpClient(options()) as client:
        error = fetch_error(download, client, server.url(PAYLOAD), tiny_disk / "x.zip", size=5 << 20)
    assert error.kind == "disk"
    assert re.fullmatch(rf"not enough free space: 5 MB needed, [01] MB free in {tiny_disk}", error.reason)
    assert server.requests == []


def test_a_disk_that_fills_during_the_download_is_disk_full(
    drip_server: HostileFactory, served: Path, tiny_disk: Path
) -> None:
    server = drip_server(served, interval=0.05)
    server.burst_body(PAYLOAD, 64 * 1024)
    destination = tiny_disk / "download.zip"
    url = server.url(PAYLOAD)

    def fill_the_disk(done: int, total: int) -> None:
        # Another writer takes the rest of the space once the download has started.
        filler = tiny_disk / "filler"
        if filler.exists():
            return
        descriptor = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            with pytest.raises(OSError) as full:
                while True:
                    os.write(descriptor, b"\0" * 65536)
            assert full.value.errno == errno.ENOSPC
        finally:
            os.close(descriptor)

    with HttpClient(options()) as client:
        error = fetch_error(
            client.download, url, destination, expected_size=SIZE, max_bytes=10 << 20,
            progress=fill_the_disk,
        )
    assert error.kind == "disk"
    assert error.reason == f"disk full while downloading {url} into {tiny_disk}"
    assert not destination.exists()
