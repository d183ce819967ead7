"""The run context: what every step of a run shares (database, install root, progress,
cancellation, the day's date, the events the database could not take yet), and the small
operations every step needs (fresh settings, a component's store, recording a failure)."""

from __future__ import annotations

import datetime
import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from imss_updater import messages
from imss_updater.catalog import Component
from imss_updater.database.db import Database, DatabaseError, NewEvent
from imss_updater.i18n import Reason
from imss_updater.run.report import Outcome, Progress, RunCancelled, RunReport, parse_or_none
from imss_updater.settings import Settings, SettingsError, load
from imss_updater.store import install
from imss_updater.store.spool import EventSpool
from imss_updater.versions import Version

log = logging.getLogger(__name__)

T = TypeVar("T")


class RunContext:
    """Runs checks, updates and rollbacks for one install root against one database."""

    def __init__(
        self,
        database: Database,
        root: Path,
        *,
        progress: Progress | None = None,
        today: Callable[[], datetime.date] = datetime.date.today,
        cancel: threading.Event | None = None,
        fallback_settings: Settings | None = None,
        unrecorded: list[NewEvent] | None = None,
        spool: EventSpool | None = None,
    ) -> None:
        """``cancel``, when set, stops a run at the next safe point (between download chunks,
        between components, before restarting) with RunCancelled. ``fallback_settings`` are
        used when the rows fail validation (the daemon's last good settings); the problem is
        kept in ``settings_problem``. Failure events that cannot be written because the
        database is down are appended to ``spool`` (durably, for whoever flushes it later;
        ``spooled`` lists their ids), or to ``unrecorded`` in memory without a spool.
        """
        self.database = database
        self.root = root
        self._progress = progress or (lambda *_args: None)
        self.today = today
        self.cancel = cancel or threading.Event()
        self.fallback_settings = fallback_settings
        self.settings_problem: str | None = None
        self.unrecorded = unrecorded if unrecorded is not None else []
        self.spool = spool
        self.spooled: list[str] = []
        self.database_problem: str | None = None  # the first write the database refused
        self.phases: dict[str, str] = {}  # each component's last phase, to say where it failed

    def progress(self, component_id: str, phase: str, done: int, total: int) -> None:
        """Report progress, and stop here if the daemon is stopping."""
        self.phases[component_id] = phase
        self._progress(component_id, phase, done, total)
        if self.cancel.is_set() and phase not in ("done", "failed"):
            raise RunCancelled()

    def load(self) -> tuple[list[Component], Settings]:
        """Return the catalog and the settings, read fresh from the database.

        Raise SettingsError (every bad row at once) if the settings are invalid.
        """
        catalog = self.database.catalog()
        try:
            settings = load(self.database.settings_rows(), [component.id for component in catalog])
        except SettingsError as error:
            if self.fallback_settings is None:
                raise
            self.settings_problem = str(error)
            log.warning("using the last good settings: %s", error)
            return catalog, self.fallback_settings
        self.settings_problem = None
        return catalog, settings

    def store(self, component: Component) -> install.ComponentStore:
        return install.ComponentStore(self.root, component.id, component.live_path)

    def installed_versions(self, catalog: Sequence[Component]) -> dict[str, Version | None]:
        """Return what is on disk for each component (disk is the truth)."""
        versions: dict[str, Version | None] = {}
        for component in catalog:
            current = self.store(component).state().current
            versions[component.id] = parse_or_none(current.version if current else None)
        return versions

    def record_failure(
        self,
        report: RunReport,
        kind: str,
        component: Component,
        version: Version | None,
        reason: str | Reason,
        *,
        replace: bool = False,
        cause_logged: bool = False,
    ) -> None:
        """Record one component's failure (event, report); log it at ERROR unless its cause
        was logged already (an unreachable source, a failed run: one cause, one ERROR line)."""
        shown = version.display if version else None
        text = messages.update_failed(component, shown, reason)
        event = NewEvent(kind, component.id, shown, "failure", text.en, text.ja, str(reason))
        try:
            self.database.add_event(event)
        except DatabaseError as error:
            self.keep(event, error)
        if replace:
            report.outcomes = [o for o in report.outcomes if o.component != component.id]
        report.outcomes.append(Outcome(component.id, shown, False, text.en, reason, message_ja=text.ja))
        log.log(logging.INFO if cause_logged else logging.ERROR, "%s", text.en)

    def keep(self, event: NewEvent, error: DatabaseError) -> None:
        """Keep an event the database refused until it can be written: in the spool file
        (durably), else in memory."""
        self.refused("to record an event", error)
        if self.spool is not None:
            try:
                notify = event.kind == "scheduled" and event.outcome == "failure"
                self.spooled.append(self.spool.append(event, notify=notify))
                log.warning("event kept in %s until the database is back", self.spool.path)
                return
            except OSError as spool_error:
                log.error("cannot keep the event in %s: %s", self.spool.path, spool_error)
        log.warning("event kept in memory until the database is back")
        self.unrecorded.append(event)

    def write(self, what: str, action: Callable[[], T], default: T) -> T:
        """Do a database operation the run can go on without; if the database refuses it,
        log it, remember it (``database_problem``) and return ``default``."""
        try:
            return action()
        except DatabaseError as error:
            self.refused(what, error)
            return default

    def refused(self, what: str, error: DatabaseError) -> None:
        log.error("the database refused %s: %s", what, error)
        if self.database_problem is None:
            self.database_problem = f"the database refused {what}: {error}"
