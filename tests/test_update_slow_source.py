"""End-to-end: hostile sources against the real command line, database and install root.

A source sending one byte a second (on the headers, on server.ini, on a payload) is
abandoned with its reason while the current component stays; a source answering 429 or 503
with Retry-After is not asked again before that time, and every run until then fails with
its reason; a staging directory without room for the announced size refuses the download.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest

from imss_updater.store import lock
from tests.support.drip import HostileFactory, HostileServer
from tests.support.gateway import Gateway
from tests.support.local import tiny_tmpfs


def install_first_version(gateway: Gateway) -> None:
    gateway.tree.add_pattern("P.4", "1569700")
    gateway.publish()
    result = gateway.cli("update", "virus_pattern")
    assert result.code == 0, result.stderr
    gateway.tree.add_pattern("P.4", "1569800")
    gateway.publish()


def point_at(gateway: Gateway, server: HostileServer) -> None:
    gateway.set("Update", "UpdateServer", server.base_url)
    gateway.set("Update", "TMASEServerurl", server.base_url)


def current_version(gateway: Gateway) -> str | None:
    result = gateway.cli("status", "--json")
    components = {item["id"]: item for item in json.loads(result.stdout)["components"]}
    return components["virus_pattern"]["current"]  # type: ignore[no-any-return]


def failure_reasons(gateway: Gateway) -> list[str]:
    with gateway.database() as database:
        events = database.events(component="virus_pattern", outcome="failure")
    return [event.reason or "" for event in reversed(events)]


@pytest.mark.parametrize("where", ["headers", "server.ini", "payload"])
def test_a_source_sending_one_byte_a_second_is_abandoned_and_the_current_component_stays(
    where: str, gateway: Gateway, drip_server: HostileFactory
) -> None:
    install_first_version(gateway)
    hostile = drip_server(gateway.tree.directory)
    point_at(gateway, hostile)
    gateway.set("Update", "LowSpeedBytes", "100")
    gateway.set("Update", "LowSpeedSeconds", "2")
    payload = gateway.tree.entries["P.4"].path
    if where == "headers":
        hostile.drip_headers("server.ini")
    elif where == "server.ini":
        hostile.drip_body("server.ini")
    else:
        hostile.drip_body(payload)
    result = gateway.cli("update", "virus_pattern")
    assert result.code == 1
    slow = "server.ini" if where != "payload" else payload
    reason = f"source too slow: fewer than 100 bytes in 2 s reading {hostile.url(slow)}"
    assert reason in result.stderr
    assert any(reason in text for text in failure_reasons(gateway))
    assert current_version(gateway) == "15.697.00"
    assert lock.lock_holder(gateway.root) is None, "the run ended and let go of the lock"
    assert not list((gateway.root / "lib" / ".staging").iterdir())


@pytest.mark.parametrize("status", [429, 503])
def test_a_source_asking_to_wait_is_not_asked_again_before_then_and_each_run_fails_with_its_reason(
    status: int, gateway: Gateway, drip_server: HostileFactory
) -> None:
    install_first_version(gateway)
    hostile = drip_server(gateway.tree.directory)
    point_at(gateway, hostile)
    hostile.answer("server.ini", status, {"Retry-After": "3600"})
    first = gateway.cli("run", "--once")
    assert first.code != 0
    assert hostile.requests == ["/server.ini"], "not retried within the run"
    (reason,) = failure_reasons(gateway)
    until = re.search(r"source asks to wait until (\S+ \S+) \(HTTP " + str(status), reason)
    assert until is not None, reason

    second = gateway.cli("run", "--once")
    check = gateway.cli("check", "--json")
    assert second.code != 0 and check.code == 1
    assert hostile.requests == ["/server.ini"], "the source is left alone until then"
    reasons = failure_reasons(gateway)
    assert len(reasons) == 2 and reasons[0] == reasons[1], "the same reason, as a failure"
    assert f"source asks to wait until {until.group(1)}" in json.loads(check.stdout)["last_check"]["result"]
    assert current_version(gateway) == "15.697.00"

    # Once the time has come, the source is asked again.
    connection = psycopg2.connect(gateway.dsn)
    with connection, connection.cursor() as cursor:
        cursor.execute("UPDATE tb_source_cooldown SET until = now() - interval '1 second'")
    connection.close()
    hostile.behave("server.ini")
    third = gateway.cli("run", "--once")
    assert third.code == 0, third.stderr
    assert hostile.requests.count("/server.ini") == 2
    assert current_version(gateway) == "15.698.00"
    with gateway.database() as database:
        assert database.source_cooldown(hostile.base_url) is None


def test_a_payload_answered_with_retry_after_puts_its_source_in_cool_down_too(
    gateway: Gateway, drip_server: HostileFactory
) -> None:
    install_first_version(gateway)
    hostile = drip_server(gateway.tree.directory)
    point_at(gateway, hostile)
    payload = "/" + gateway.tree.entries["P.4"].path
    hostile.answer(payload, 503, {"Retry-After": "600"})
    assert gateway.cli("update", "virus_pattern").code == 1
    assert gateway.cli("update", "virus_pattern").code == 1
    # (server.ini.sig is asked for once too: VerifyIndexSignature=auto looks for one)
    assert [path for path in hostile.requests if not path.endswith(".sig")] == ["/server.ini", payload]
    first, second = failure_reasons(gateway)
    assert first.startswith("source asks to wait until ") and first in second


@pytest.fixture
def tiny_staging(gateway: Gateway) -> Iterator[Path]:
    """The install root's staging directory on a 1 MiB tmpfs (the test runs as root)."""
    with tiny_tmpfs(gateway.root / "lib" / ".staging") as staging:
        yield staging


def test_a_download_without_room_in_staging_is_refused_before_it_starts(
    gateway: Gateway, tiny_staging: Path
) -> None:
    gateway.tree.add_pattern("P.4", "1569700", size_bytes=3 * 1024 * 1024)
    gateway.publish()
    needed = math.ceil(gateway.tree.entries["P.4"].size / (1024 * 1024))
    result = gateway.cli("update", "virus_pattern")
    assert result.code == 1
    expected = rf"not enough free space: {needed} MB needed, [01] MB free in {tiny_staging}"
    assert re.search(expected, result.stderr)
    assert not gateway.server.requests_for("/" + gateway.tree.entries["P.4"].path)
    assert current_version(gateway) is None
