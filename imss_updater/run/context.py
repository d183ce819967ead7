"""The run context: what every step of a run shares (database, install root, progress,
cancellation, the day's date, the events the database could not take yet), and the small
operations every step needs (fresh settings, a component's store, recording a failure)."""

from __future__ import annotations

import datetime
import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from imss_updater import messages
from imss_updater.catalog import Component
from imss_updater.database.db import Database, DatabaseError, NewEvent
from imss_updater.run.report import Outcome, Progress, RunCancelled, RunReport, parse_or_none
from imss_updater.settings import Settings, SettingsError, load
from imss_updater.store import install
from imss_updater.versions import Version

log = logging.getLogger(__name__)


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
    ) -> None:
        """``cancel``, when set, stops a run at the next safe point (between download chunks,
        between components, before restarting) with RunCancelled. ``fallback_settings`` are
        used when the rows fail validation (the daemon's last good settings); the problem is
        kept in ``settings_problem``. Failure events that cannot be written because the
        database is down are appended to ``unrecorded`` for the caller to write later.
        """
        self.database = database
        self.root = root
        self._progress = progress or (lambda *_args: None)
        self.today = today
        self.cancel = cancel or threading.Event()
        self.fallback_settings = fallback_settings
        self.settings_problem: str | None = None
        self.unrecorded = unrecorded if unrecorded is not None else []

    def progress(self, component_id: str, phase: str, done: int, total: int) -> None:
        """Report progress, and stop here if the daemon is stopping."""
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
        reason: str,
        *,
        replace: bool = False,
    ) -> None:
        shown = version.display if version else None
        text = messages.update_failed(component, shown, reason)
        event = NewEvent(kind, component.id, shown, "failure", text.en, text.ja, reason)
        try:
            self.database.add_event(event)
        except DatabaseError as error:
            log.warning("event kept until the database is back: %s", error)
            self.unrecorded.append(event)
        if replace:
            report.outcomes = [o for o in report.outcomes if o.component != component.id]
        report.outcomes.append(Outcome(component.id, shown, False, text.en, reason))
        log.error("%s", text.en)
