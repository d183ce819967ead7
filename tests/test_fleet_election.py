"""Leader election on a real PostgreSQL: the advisory lock, the lease, the term (SPEC 7).

Nodes here are Election objects in the test process, each with its own lock connection,
as the daemons hold them; the daemon-level tests (SIGKILL, SIGSTOP) are in test_fleet_leader.
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg2
import pytest

from imss_updater.database.db import Database
from imss_updater.fleet import announcement
from imss_updater.fleet.election import Election
from tests.support.daemon import wait_until
from tests.support.fleet import Listener, leader_row, terminate

FAILOVER = 6.0


class Node:
    def __init__(self, dsn: str, name: str) -> None:
        self.name = name
        self.changes: list[tuple[bool, int | None]] = []
        self.election = Election(lambda: dsn, name, f"{name}:8080", FAILOVER, self._changed)

    def _changed(self, leading: bool, term: int | None) -> None:
        self.changes.append((leading, term))


@pytest.fixture
def nodes(db_dsn: str) -> Iterator[list[Node]]:
    with Database(db_dsn) as database:
        database.init()
    started = [Node(db_dsn, name) for name in ("gw-a", "gw-b")]
    started[0].election.start()
    wait_until(started[0].election.leading, FAILOVER, "gw-a to lead")
    started[1].election.start()
    yield started
    for node in started:
        node.election.stop()


def test_one_node_leads_the_other_waits_and_the_leader_is_recorded_with_its_term(
    nodes: list[Node], db_dsn: str
) -> None:
    first, second = nodes
    for _beat in range(3):
        second.election.beat()
        assert not second.election.leading()
    assert first.election.leading()
    assert leader_row(db_dsn) == ("gw-a", 1)
    assert first.changes == [(True, 1)]


def test_a_terminated_lock_backend_hands_the_lead_to_the_other_node_within_the_failover_time(
    nodes: list[Node], db_dsn: str
) -> None:
    first, second = nodes
    terminate(db_dsn, first.election.backend_pid())
    wait_until(second.election.leading, FAILOVER, "gw-b to lead")
    assert leader_row(db_dsn) == ("gw-b", 2)
    wait_until(lambda: (False, None) in first.changes, FAILOVER, "gw-a to step down")
    assert not first.election.leading()


def test_a_leader_that_lost_its_lock_never_announces_after_the_new_one_took_over(
    nodes: list[Node], db_dsn: str
) -> None:
    first, second = nodes
    listener = Listener(db_dsn)
    try:
        assert first.election.announce("aaaaaaaaaaaaaaaa", announcement("gw-a", 1, "aaaaaaaaaaaaaaaa", "a:1"))
        wait_until(lambda: len(listener.payloads) == 1, 10, "the first announcement")
        # Mid-publish: its lock backend ends; what it still holds in memory is term 1.
        terminate(db_dsn, first.election.backend_pid())
        wait_until(second.election.leading, FAILOVER, "gw-b to lead")
        assert first.election.confirm() is None  # checked before publishing: not the leader
        assert not first.election.announce("bbbbbbbbbbbbbbbb",
                                           announcement("gw-a", 1, "bbbbbbbbbbbbbbbb", "a:1"))
        assert second.election.announce("cccccccccccccccc",
                                         announcement("gw-b", 2, "cccccccccccccccc", "b:1"))
        wait_until(lambda: len(listener.payloads) == 2, 10, "the new leader's announcement")
    finally:
        listener.close()
    assert [(p["leader"], p["term"], p["release"]) for p in listener.payloads] == [
        ("gw-a", 1, "aaaaaaaaaaaaaaaa"), ("gw-b", 2, "cccccccccccccccc")]
    assert listener.payloads[1]["mirror"] == "http://b:1/activeupdate"


def test_an_old_leader_whose_term_moved_on_is_refused_even_with_a_live_session(
    nodes: list[Node], db_dsn: str
) -> None:
    first, _second = nodes
    connection = psycopg2.connect(db_dsn)
    try:
        with connection, connection.cursor() as cursor:  # a takeover it did not see
            cursor.execute("UPDATE tb_fleet_leader SET term = term + 1")
    finally:
        connection.close()
    assert first.election.confirm() is None
    assert not first.election.leading()


def test_a_resigning_leader_frees_the_lock_at_once(nodes: list[Node], db_dsn: str) -> None:
    first, second = nodes
    first.election.stop()
    assert not first.election.leading()
    wait_until(second.election.leading, FAILOVER, "gw-b to lead")
    assert leader_row(db_dsn) == ("gw-b", 2)
