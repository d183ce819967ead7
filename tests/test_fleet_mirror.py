"""The leader's mirror on disk and its read-only HTTP server (SPEC 7), real sockets."""

from __future__ import annotations

import http.client
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from imss_updater.fleet.mirror import Mirror, release_id
from imss_updater.fleet.mirror_server import MirrorServer
from tests.support.pg import free_port


def index_for(number: int) -> bytes:
    return f"[PATTERN]\nP.4=pattern/lpt{number}.zip,1569{number:03d}00,{1000 + number}\n".encode()


def publish(mirror: Mirror, number: int, *, size: int = 4096) -> bytes:
    """Publish release ``number``: one package (content numbered), its .sig, the index."""
    index = index_for(number)
    release = mirror.begin(index)
    payload = bytes([number % 256]) * size
    release.write(f"pattern/lpt{number}.zip", payload)
    release.write(f"pattern/lpt{number}.sig", b"sig %d" % number)
    mirror.publish(release, index, b"index sig %d" % number)
    return payload


@pytest.fixture
def mirror(tmp_path: Path) -> Mirror:
    return Mirror(tmp_path / "state")


@pytest.fixture
def serving() -> threading.Event:
    leading = threading.Event()
    leading.set()
    return leading


@pytest.fixture
def server(mirror: Mirror, serving: threading.Event) -> Iterator[str]:
    address = f"127.0.0.1:{free_port()}"
    running = MirrorServer(mirror, address, serving.is_set)
    yield address
    running.close()


def get(address: str, path: str, *, method: str = "GET",
        headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    host, port = address.split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.request(method, path, headers=headers or {})
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def test_a_published_release_is_served_byte_for_byte_with_its_signatures(
    mirror: Mirror, server: str
) -> None:
    payload = publish(mirror, 1)
    assert get(server, "/activeupdate/server.ini")[2] == index_for(1)
    assert get(server, "/activeupdate/server.ini.sig")[2] == b"index sig 1"
    assert get(server, "/activeupdate/pattern/lpt1.zip")[2] == payload
    assert get(server, "/activeupdate/pattern/lpt1.sig")[2] == b"sig 1"
    assert (mirror.root / "activeupdate" / "server.ini").read_bytes() == index_for(1)
    assert mirror.current() == release_id(index_for(1))


def test_a_matching_etag_is_answered_304_without_a_body(mirror: Mirror, server: str) -> None:
    publish(mirror, 1)
    status, headers, _body = get(server, "/activeupdate/server.ini")
    assert status == 200
    again = get(server, "/activeupdate/server.ini", headers={"If-None-Match": headers["etag"]})
    assert (again[0], again[2]) == (304, b"")
    publish(mirror, 2)
    changed = get(server, "/activeupdate/server.ini", headers={"If-None-Match": headers["etag"]})
    assert (changed[0], changed[2]) == (200, index_for(2))


def test_there_is_no_directory_listing_and_no_way_out_of_the_mirror(
    mirror: Mirror, server: str, tmp_path: Path
) -> None:
    publish(mirror, 1)
    secret = tmp_path / "secret.txt"
    secret.write_text("not for members")
    current = mirror.release_directory("activeupdate")
    assert current is not None
    (current / "pattern" / "link.zip").symlink_to(secret)
    (current / "escape").symlink_to(tmp_path)
    for path in ("/activeupdate/", "/activeupdate/pattern", "/activeupdate/pattern/", "/",
                 "/activeupdate/../activeupdate/server.ini", "/activeupdate/pattern/../server.ini",
                 "/activeupdate/%2e%2e/%2e%2e/secret.txt", "/activeupdate/pattern/link.zip",
                 "/activeupdate/escape/secret.txt", "/activeupdate/.previous", "/releases/",
                 "/activeupdate//server.ini", "/activeupdate/pattern%2flpt1.zip%00"):
        status, _headers, body = get(server, path)
        assert status == 404, path
        assert b"not for members" not in body


def test_only_get_and_head_are_answered(mirror: Mirror, server: str) -> None:
    publish(mirror, 1)
    status, headers, body = get(server, "/activeupdate/server.ini", method="HEAD")
    assert (status, body, headers["content-length"]) == (200, b"", str(len(index_for(1))))
    for method in ("POST", "PUT", "DELETE"):
        assert get(server, "/activeupdate/server.ini", method=method)[0] == 405


def test_a_node_that_is_not_leading_does_not_serve(
    mirror: Mirror, server: str, serving: threading.Event
) -> None:
    publish(mirror, 1)
    serving.clear()
    assert get(server, "/activeupdate/server.ini")[0] == 503


def test_only_the_current_and_the_previous_release_are_kept_and_served(
    mirror: Mirror, server: str
) -> None:
    for number in (1, 2, 3):
        publish(mirror, number)
    kept = sorted(entry.name for entry in (mirror.root / "releases").iterdir())
    assert kept == sorted([release_id(index_for(2)), release_id(index_for(3))])
    assert get(server, "/activeupdate/server.ini")[2] == index_for(3)
    assert get(server, "/activeupdate/pattern/lpt3.zip")[0] == 200
    assert get(server, "/activeupdate/pattern/lpt2.zip")[0] == 200  # a member still on release 2
    assert get(server, "/activeupdate/pattern/lpt1.zip")[0] == 404
    assert not list(mirror.root.glob("incoming-*"))


def test_a_reader_during_publishing_sees_the_old_or_the_new_release_never_a_part(
    mirror: Mirror, server: str
) -> None:
    size = 256 * 1024
    payloads = {1: publish(mirror, 1, size=size)}
    stop = threading.Event()
    seen: list[tuple[bytes, int, bytes]] = []
    problems: list[str] = []

    def read() -> None:
        while not stop.is_set():
            index = get(server, "/activeupdate/server.ini")[2]
            number = next((n for n in range(1, 40) if index == index_for(n)), None)
            if number is None:
                problems.append(f"partial index {index!r}")
                continue
            status, _headers, body = get(server, f"/activeupdate/pattern/lpt{number}.zip")
            if status == 200:
                seen.append((index, number, body))
            elif status != 404:  # 404: two releases were published since the index was read
                problems.append(f"package answered {status}")

    readers = [threading.Thread(target=read) for _ in range(3)]
    for reader in readers:
        reader.start()
    for number in range(2, 30):
        payloads[number] = publish(mirror, number, size=size)
    stop.set()
    for reader in readers:
        reader.join()
    assert problems == []
    assert seen
    for _index, number, body in seen:
        assert body == payloads[number]


def test_an_unchanged_package_is_carried_over_to_the_next_release(mirror: Mirror) -> None:
    publish(mirror, 1)
    index = b"[PATTERN]\nP.4=pattern/lpt1.zip,156900100,1001\n; again\n"
    release = mirror.begin(index)
    assert release.reuse("pattern/lpt1.zip", 4096)
    assert release.reuse_signature("pattern/lpt1.sig")
    mirror.publish(release, index, None)
    current = mirror.release_directory("activeupdate")
    previous = mirror.release_directory("previous")
    assert current is not None and previous is not None
    assert os.stat(current / "pattern/lpt1.zip").st_ino == os.stat(previous / "pattern/lpt1.zip").st_ino
    assert not (current / "server.ini.sig").exists()
