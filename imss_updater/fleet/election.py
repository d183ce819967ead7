"""Leader election: who holds the advisory lock leads, for as long as its lease runs.

A heartbeat thread, every ``heartbeat`` seconds (a sixth of ``Fleet/FailoverSeconds``):

- a member tries ``pg_try_advisory_lock`` on its own lock connection (database/advisory);
  when it gets it, it records itself with the next term, then waits out one ``lease``
  (a quarter of the failover time) before it acts: whoever led before has stopped acting
  by then, since a leader acts only within ``lease`` of its last successful check;
- the leader checks on the same connection that it still holds the lock and the term;
  each success renews its lease from the moment the check started. A failed check, a lost
  connection, or a lease that ran out (a hung heartbeat) means it is not the leader any
  more: ``leading()`` turns False at once (it is read by the mirror server on every request
  and by the run before it publishes), and ``on_change(False)`` stops the mirror.

The bounds, for a failover time F: a killed leader frees the lock at once (its socket
closes); a hung or cut-off one within F/2 (the server's ``idle_session_timeout``); a member
tries every F/6 and waits F/4 before acting, so another node leads within F. Two nodes
never act as leader at the same time: the old leader's lease (F/4 after its last good check,
which came before it lost the lock) ends before the new leader's wait does.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from imss_updater.database import advisory
from imss_updater.database.connection import DatabaseError

log = logging.getLogger(__name__)

ChangeHook = Callable[[bool, int | None], None]
"""(leading, term): called in the heartbeat thread when this node starts or stops leading."""


class Election:
    """This node's part in the election. ``start()`` the heartbeat; ``stop()`` resigns."""

    def __init__(self, dsn: Callable[[], str], node: str, mirror_address: str | None,
                 failover_seconds: float, on_change: ChangeHook) -> None:
        self.dsn = dsn
        self.node = node
        self.mirror_address = mirror_address
        self.failover_seconds = failover_seconds
        self.heartbeat = failover_seconds / 6
        self.lease = failover_seconds / 4
        self.on_change = on_change
        self.term: int | None = None
        self.valid_until = 0.0  # monotonic end of the lease
        self.stopping = threading.Event()
        self.mutex = threading.Lock()  # one statement at a time on the lock connection
        self.lock: advisory.LeaderLock | None = None
        self.last_problem: str | None = None
        self.thread: threading.Thread | None = None

    # -- what the rest of the daemon asks ------------------------------------------------

    def leading(self) -> bool:
        """True while this node holds the lock and its lease runs."""
        return self.term is not None and time.monotonic() < self.valid_until

    def confirm(self) -> int | None:
        """Check on the lock connection, now, that this node still leads; return its term,
        or None (stepping down) if it does not."""
        with self.mutex:
            term = self.term
            if term is None or self.lock is None:
                return None
            started = time.monotonic()
            try:
                if self.lock.still_leader(self.node, term):
                    self.valid_until = max(self.valid_until, started + self.lease)
                    return term if self.leading() else None
                reason = "the lock or the term moved on"
            except DatabaseError as error:
                reason = str(error)
            self._step_down(reason)
            return None

    def announce(self, release: str, payload: str) -> bool:
        """NOTIFY ``payload`` if this node still leads in its term (checked in the same
        transaction); return whether it was sent."""
        with self.mutex:
            term = self.term
            if term is None or self.lock is None or not self.leading():
                return False
            try:
                sent = self.lock.announce(self.node, term, release, payload)
            except DatabaseError as error:
                self._step_down(str(error))
                return False
            if not sent:
                self._step_down("the lock or the term moved on")
            return sent

    def backend_pid(self) -> int | None:
        """The server process holding (or trying for) the lock, for tests and diagnosis."""
        lock = self.lock
        return None if lock is None or lock.closed else lock.backend_pid()

    # -- the heartbeat ---------------------------------------------------------------------

    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, name="fleet-election", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        """Stop the heartbeat and resign (closing the connection frees the lock)."""
        self.stopping.set()
        if self.thread is not None:
            self.thread.join(timeout=self.heartbeat + 5)
        with self.mutex:
            if self.term is not None:
                self._step_down("stopping")
            self._drop_connection()

    def _run(self) -> None:
        while not self.stopping.is_set():
            try:
                self.beat()
            except Exception:  # the heartbeat must outlive any surprise; the next one retries
                log.exception("fleet election heartbeat failed unexpectedly")
            self.stopping.wait(self.heartbeat)

    def beat(self) -> None:
        """One heartbeat: renew the leader's lease, or try for the lock."""
        if self.term is not None:
            self.confirm()
            return
        with self.mutex:
            try:
                if self.lock is None or self.lock.closed:
                    self.lock = advisory.LeaderLock(
                        self.dsn(), advisory.Timeouts.for_failover(self.failover_seconds), self.node)
                if not self.lock.try_acquire():
                    self._problem_solved()
                    return
                term = self.lock.take_office(self.node, self.mirror_address)
            except DatabaseError as error:
                self._drop_connection()
                if str(error) != self.last_problem:
                    log.warning("fleet election: %s", error)
                self.last_problem = str(error)
                return
        self._problem_solved()
        log.info("fleet: %s took the leader lock (term %d); acting as leader in %.1f s",
                 self.node, term, self.lease)
        # Whoever led before acts for at most one lease after its last good check.
        if self.stopping.wait(self.lease):
            return
        with self.mutex:
            self.term = term
            self.valid_until = 0.0
        if self.confirm() is None:
            return
        log.info("fleet: %s is the leader (term %d)", self.node, term)
        self._notify(True, term)

    def _problem_solved(self) -> None:
        if self.last_problem is not None:
            log.info("fleet election: the database is reachable again")
        self.last_problem = None

    def _step_down(self, reason: str) -> None:
        """Stop leading at once (the caller holds the mutex)."""
        term, self.term, self.valid_until = self.term, None, 0.0
        self._drop_connection()  # frees the lock if we still had it
        if term is None:
            return
        if reason == "stopping":
            log.info("fleet: %s resigns as leader (term %d)", self.node, term)
        else:
            log.warning("fleet: %s is no longer the leader (term %d): %s", self.node, term, reason)
        threading.Thread(target=self._notify, args=(False, None), name="fleet-step-down",
                         daemon=True).start()

    def _drop_connection(self) -> None:
        if self.lock is not None:
            self.lock.close()
        self.lock = None

    def _notify(self, leading: bool, term: int | None) -> None:
        try:
            self.on_change(leading, term)
        except Exception:
            log.exception("fleet: reacting to the change of leader failed")
