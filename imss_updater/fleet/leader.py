"""The fleet in the daemon: stand for election, and while leading, mirror, serve, announce.

``Fleet`` is what ``daemon/loop.py`` holds when ``Fleet/Enabled=yes``. Its scheduled run:

- on the leader: download the source's release into the mirror (``sync``; one download per
  changed package; published only when complete), then update this gateway from its own
  mirror server (the same code and checks as a member), with what the sync could not
  mirror recorded as that run's failures (``behind``: events, notifications, the mirror's
  state), then announce the release (NOTIFY, see ``imss_updater.fleet``) if it still leads
  in its term;
- on a member: the ordinary run; its check reads the recorded leader's mirror, or the origin
  after Fleet/FallbackMinutes without one (run/fleet_member.py); the announcement starts a
  staggered run (daemon/fleet_member.py).

A node without IMSS_MIRROR cannot serve a mirror, so it never stands for election.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from imss_updater import config, fleet
from imss_updater.catalog import Component
from imss_updater.daemon import runs
from imss_updater.database import advisory
from imss_updater.database.db import Database, DatabaseError
from imss_updater.fleet import behind as behind_step
from imss_updater.fleet import watch
from imss_updater.fleet.behind import Behind
from imss_updater.fleet.election import Election
from imss_updater.fleet.mirror import Mirror
from imss_updater.fleet.mirror_server import MirrorServer
from imss_updater.fleet.sync import LostLead, SyncFailed, sync_mirror
from imss_updater.i18n import stored
from imss_updater.run.check import http_options
from imss_updater.run.context import RunContext
from imss_updater.run.planner import Mode
from imss_updater.run.updater import RunReport, Updater
from imss_updater.settings import Settings
from imss_updater.source.http import HttpClient

log = logging.getLogger(__name__)


class MirrorUpdater(Updater):
    """An Updater whose update source, for both roles, is a fleet mirror; on the leader, its
    scheduled run also fails what the sync before it could not mirror (``behind``)."""

    source_url = ""
    behind: Behind | None = None
    mirror_empty = False  # the mirror has no release at all (a first sync that failed)

    def load(self) -> tuple[list[Component], Settings]:
        catalog, settings = super().load()
        # The mirror holds the UpdateServer's release; a TMASEServerurl of its own stays.
        tmase = self.source_url if settings.tmase_server == settings.update_server else settings.tmase_server
        return catalog, dataclasses.replace(settings, update_server=self.source_url, tmase_server=tmase)

    def update(self, mode: Mode, requested: Iterable[str] | None) -> RunReport:
        if self.behind is not None and self.mirror_empty and mode is Mode.SCHEDULED:
            # Nothing to update from (every index read would be a 404 of its own mirror):
            # the run is the sync's failures alone, one cause.
            report = RunReport(kind=mode.value)
        else:
            report = super().update(mode, requested)
        if self.behind is not None and mode is Mode.SCHEDULED:
            nothing: list[Component] = []
            catalog = self.write("to read the catalog", self.database.catalog, nothing)
            behind_step.record(self, report, catalog, self.behind)
            if report.skipped is None:  # the run as recorded says so too
                self.write("to record the run", lambda: self.database.record_run(
                    mode.value, report.ok, stored(report.summary_reason())), None)
        return report


def updater_for(source_url: str, behind: Behind | None = None, *,
                mirror_empty: bool = False) -> Callable[..., Updater]:
    def make(database: Database, root: Path, **options: Any) -> Updater:
        updater = MirrorUpdater(database, root, **options)
        updater.source_url = source_url
        updater.behind = behind
        updater.mirror_empty = mirror_empty
        return updater
    return make


class Fleet:
    """This node's part in the fleet; ``start()`` stands for election, ``stop()`` resigns."""

    def __init__(self, bootstrap: config.Bootstrap, dsn: Callable[[], str], failover_seconds: float,
                 run_now: Callable[[], object]) -> None:
        self.bootstrap = bootstrap
        self.dsn = dsn
        self.failover_seconds = failover_seconds
        self.run_now = run_now
        self.mirror = Mirror(bootstrap.state)
        self.election = Election(dsn, bootstrap.node, bootstrap.mirror, failover_seconds, self._changed)
        self.server: MirrorServer | None = None
        self.server_lock = threading.Lock()
        self.announced: tuple[int, str] | None = None  # (term, release) announced last
        self.synced_term: int | None = None  # the term of its last sync

    def start(self) -> None:
        self._record_role("member")  # until it wins: whatever it was before a restart
        if self.bootstrap.mirror is None:
            log.warning("fleet: IMSS_MIRROR is not set, so %s cannot serve a mirror: it never leads",
                        self.bootstrap.node)
        else:
            self.election.start()

    def stop(self) -> None:
        self.election.stop()
        self._close_server()

    def leading(self) -> bool:
        return self.election.leading()

    def watch(self, database: Database, wake: Callable[[], object]) -> None:
        """While leading, report the other nodes going down or coming back (fleet/watch.py),
        then ``wake`` the deliveries if anything was queued. Raise DatabaseError."""
        if self.leading() and watch.report_nodes(database):
            wake()

    # -- becoming and ceasing to be the leader ---------------------------------------------

    def _changed(self, leading: bool, term: int | None) -> None:
        if leading:
            assert self.bootstrap.mirror is not None  # only such a node stands
            with self.server_lock:
                if self.server is None:
                    try:
                        self.server = MirrorServer(self.mirror, self.bootstrap.mirror, self.leading)
                    except OSError as error:
                        log.error("fleet: cannot serve the mirror on %s: %s; resigning",
                                  self.bootstrap.mirror, error)
                        threading.Thread(target=self.election.stop, daemon=True).start()
                        return
            self.run_now()  # mirror the source's release now: the members take it from here
        else:
            self._close_server()
            self._record_role("member")

    def _close_server(self) -> None:
        with self.server_lock:
            server, self.server = self.server, None
        if server is not None:
            server.close()

    def _record_role(self, role: str) -> None:
        try:
            advisory.record_role(self.dsn(), self.bootstrap.node, role)
        except DatabaseError as error:
            log.debug("fleet: role not recorded now: %s", error)

    # -- the scheduled run -----------------------------------------------------------------

    def scheduled_update(self, bootstrap: config.Bootstrap, dsn: str, **options: Any) -> RunReport | None:
        """The daemon's scheduled run on this node (see the module text); ``options`` are
        those of ``runs.scheduled_update``."""
        term = self.election.confirm()
        if term is None:
            return self._member_update(bootstrap, dsn, **options)
        assert bootstrap.mirror is not None
        behind = self._sync(dsn, term, options.get("fallback_settings"), options.get("cancel"))
        own_mirror = updater_for(fleet.mirror_url(bootstrap.mirror), behind,
                                 mirror_empty=self.mirror.current() is None)
        report = runs.scheduled_update(bootstrap, dsn, make_updater=own_mirror, **options)
        self._announce(term)
        return report

    def _sync(self, dsn: str, term: int, fallback: Settings | None,
              cancel: threading.Event | None) -> Behind | None:
        """Mirror the origin's release; record the mirror's state; return what it could not
        mirror (None: the mirror holds the origin's release, or this node stopped leading)."""
        with Database(dsn, node=self.bootstrap.node) as database:
            context = RunContext(database, self.bootstrap.root, fallback_settings=fallback, cancel=cancel)
            catalog, settings = context.load()
            behind: Behind | None = None
            try:
                with HttpClient(http_options(settings)) as client:
                    result = sync_mirror(context, catalog, settings, client, self.mirror,
                                         lambda: self.election.confirm() == term)
            except LostLead as error:
                log.warning("fleet: the mirror keeps release %s: %s", self.mirror.current(), error)
                return None
            except SyncFailed as error:
                log.error("fleet: the mirror keeps release %s: %s", self.mirror.current(), error)
                behind = behind_step.from_error(catalog, settings, context.today(), str(error))
            except OSError as error:  # the state directory's disk refused
                reason = f"cannot write the mirror under {self.mirror.root}: {error}"
                log.error("fleet: %s", reason)
                behind = behind_step.from_error(catalog, settings, context.today(), reason)
            else:
                behind = behind_step.from_result(result)
                if result.published:
                    log.info("fleet: mirrored release %s (%d downloaded from the source, %d carried over%s)",
                             result.release, len(result.downloaded), len(result.carried),
                             f", {len(result.left_out)} left out" if result.left_out else "")
            restart, self.synced_term = self.synced_term != term, term
            context.write("to record the mirror's state", lambda: database.record_mirror_behind(
                behind.summary if behind is not None else None, restart=restart), None)
        return behind

    def _announce(self, term: int) -> None:
        release = self.mirror.current()
        if release is None or self.announced == (term, release):
            return
        assert self.bootstrap.mirror is not None
        payload = fleet.announcement(self.bootstrap.node, term, release, self.bootstrap.mirror)
        if self.election.announce(release, payload):
            self.announced = (term, release)
            log.info("fleet: announced release %s to the members (term %d)", release, term)
        else:
            log.warning("fleet: release %s not announced: %s is no longer the leader", release,
                        self.bootstrap.node)

    def _member_update(self, bootstrap: config.Bootstrap, dsn: str, **options: Any) -> RunReport | None:
        """A member's scheduled run: the ordinary run, whose check takes the leader's mirror
        as the source, or the origin in fallback (run/fleet_member.py)."""
        try:
            leader = advisory.current_leader(dsn)
        except DatabaseError as error:
            log.warning("fleet: the leader is not known now: %s", error)
            leader = None
        if leader is not None and leader.node == bootstrap.node and self.election.thread is not None:
            # It took the lock and waits out the old leader's lease: its takeover run follows.
            log.info("fleet: %s is taking over as leader; it updates once it leads", bootstrap.node)
            return None
        return runs.scheduled_update(bootstrap, dsn, **options)


def follow(current: Fleet | None, settings: Settings | None, bootstrap: config.Bootstrap,
           dsn: Callable[[], str], run_now: Callable[[], object]) -> Fleet | None:
    """Given the daemon's fleet (None: not in one) and its settings, return the fleet it
    should have: started when Fleet/Enabled turns yes (again when FailoverSeconds changes),
    stopped (resigning) when it turns no."""
    wanted = settings is not None and settings.fleet_enabled
    failover = float(settings.fleet_failover_seconds) if settings is not None else 0.0
    if current is not None and (not wanted or current.failover_seconds != failover):
        current.stop()
        current = None
    if wanted and current is None:
        log.info("fleet mode: %s stands for election (failover %.0f s)", bootstrap.node, failover)
        current = Fleet(bootstrap, dsn, failover, run_now)
        current.start()
    return current
