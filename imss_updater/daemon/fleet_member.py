"""A fleet member's daemon hears the leader's announcements (SPEC 7): LISTEN on the fleet
channel and, when a release is announced, run the scheduled update after a random delay in
``[0, Fleet/StaggerSeconds]`` (so that N members do not ask the mirror at the same moment).
The delay is logged. An announcement that arrives while one is waiting does not add a
second run: the waiting one will see the newest release anyway (nor does the same
release announced again while its update runs).
"""

from __future__ import annotations

import datetime
import json
import logging
import random
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from apscheduler.triggers.date import DateTrigger

from imss_updater.daemon.health import MAX_BACKOFF_SECONDS
from imss_updater.database import fleet_member as fleet_db
from imss_updater.database.db import Database
from imss_updater.settings import Settings, SettingsError, load

if TYPE_CHECKING:
    from imss_updater.daemon.loop import Daemon

log = logging.getLogger(__name__)

JOB_ID = "fleet-announcement"


class Announcements:
    """Turns the leader's NOTIFYs into (at most one waiting) staggered update."""

    def __init__(
        self,
        connect: Callable[[], Database],
        stopping: threading.Event,
        settings: Callable[[], Settings | None],
        pending: Callable[[], bool],
        run_in: Callable[[float], None],
        running: Callable[[], bool] = lambda: False,
    ) -> None:
        self.connect = connect
        self.stopping = stopping
        self.settings = settings
        self.pending = pending
        self.run_in = run_in
        self.running = running
        self.planned: str | None = None  # the release the last planned update was for

    def listen(self) -> None:
        """Until ``stopping``: LISTEN on the fleet channel, reconnecting with backoff (the
        member's own schedule covers an announcement missed meanwhile)."""
        backoff = 1.0
        while not self.stopping.is_set():
            try:
                with self.connect() as database:
                    database.listen(fleet_db.ANNOUNCE_CHANNEL)
                    backoff = 1.0
                    while not self.stopping.is_set():
                        for payload in database.wait_notifications(1.0):
                            self.announced(fleet_db.node_of(database), payload,
                                           self.settings() or self._read_settings())
            except Exception as error:  # reconnect; the schedule covers the gap
                log.debug("fleet listener: %s", error)
                self.stopping.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)

    def _read_settings(self) -> Settings | None:
        """The settings, for an announcement heard before the daemon's first look at them
        (on a connection of its own: a query on the listening one would swallow the next
        notification until another arrives)."""
        with self.connect() as database:
            try:
                return load(database.settings_rows(), [component.id for component in database.catalog()])
            except SettingsError:
                return None

    def announced(self, node: str, payload: str, settings: Settings | None) -> float | None:
        """Handle one announcement (``settings``: the daemon's, or read now if it has none
        yet); return the delay chosen, or None if nothing was planned."""
        if settings is None or not settings.fleet_enabled:
            return None
        leader, term, release = _parse(payload)
        if leader == node:
            return None  # our own announcement: the leader installs as it fills its mirror
        if self.pending() or (release == self.planned and self.running()):
            log.info("fleet: release %s announced by the leader %s (term %s); an update is already "
                     "waiting or running, not planning another", release, leader, term)
            return None
        delay = random.uniform(0, float(settings.fleet_stagger_seconds))  # noqa: S311 (not a secret)
        log.info("fleet: release %s announced by the leader %s (term %s): updating in %.3f s "
                 "(random in 0-%d s, Fleet/StaggerSeconds)", release, leader, term, delay,
                 settings.fleet_stagger_seconds)
        self.run_in(delay)
        self.planned = release
        return delay


def _parse(payload: str) -> tuple[str, str, str]:
    """(leader node, term, release id) from the announcement; '?' for what it lacks."""
    try:
        data = json.loads(payload)
    except ValueError:
        data = {}
    if not isinstance(data, dict):
        data = {}

    def text(*names: str) -> str:
        for name in names:
            if data.get(name) not in (None, ""):
                return str(data[name])
        return "?"

    return text("leader", "node"), text("term"), text("release", "release_id")


def start(daemon: Daemon) -> None:
    """Start the announcement listener of ``daemon`` in a thread of its own."""

    def run_in(delay: float) -> None:
        when = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=delay)
        daemon.scheduler.add_job(daemon.job, DateTrigger(run_date=when), id=JOB_ID,
                                 replace_existing=True)

    announcements = Announcements(
        lambda: Database(daemon.dsn, node=daemon.bootstrap.node), daemon.stopping, lambda: daemon.settings,
        lambda: daemon.scheduler.get_job(JOB_ID) is not None, run_in, daemon.job_running.is_set,
    )
    threading.Thread(target=announcements.listen, name="fleet-listener", daemon=True).start()
