"""The update run: check -> plan -> lock -> fetch -> verify -> install -> restart -> record.

``Updater`` is the run context with the orchestration on top: it orders the steps (one
module each in this package) and isolates each component's failure; the decisions are in
``planner`` (pure), and every external effect goes through its own module.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Iterable, Sequence

from imss_updater import messages
from imss_updater.catalog import Component
from imss_updater.database.db import DatabaseError
from imss_updater.run import reconcile as reconcile_step
from imss_updater.run import rollback as rollback_step
from imss_updater.run import status as status_step
from imss_updater.run.check import INDEX_NAME, MAX_INDEX_BYTES, fetch_offers, http_options, is_control_manager
from imss_updater.run.context import RunContext
from imss_updater.run.fetch import fetch_verify_install
from imss_updater.run.installation import UNPACKED_FACTOR
from imss_updater.run.planner import Decision, Mode, Offer, decide, is_update_available
from imss_updater.run.reconcile import needs_reconcile
from imss_updater.run.report import (
    ComponentFailure,
    ComponentReport,
    Outcome,
    Progress,
    RunCancelled,
    RunError,
    RunReport,
)
from imss_updater.run.restart import restart_and_settle
from imss_updater.settings import Settings
from imss_updater.source.http import HttpClient
from imss_updater.store import lock

__all__ = [
    "INDEX_NAME",
    "MAX_INDEX_BYTES",
    "UNPACKED_FACTOR",
    "ComponentFailure",
    "ComponentReport",
    "Outcome",
    "Progress",
    "RunCancelled",
    "RunError",
    "RunReport",
    "Updater",
    "http_options",
    "is_control_manager",
]

log = logging.getLogger(__name__)


class Updater(RunContext):
    """Runs checks, updates and rollbacks for one install root against one database.

    The steps are functions of the run context (``fetch_offers(updater, ...)``); the
    methods below are the entry points the CLI, the daemon and the status page use.
    """

    def status(self) -> list[ComponentReport]:
        """Return the components as last known, without contacting any source."""
        return status_step.status(self)

    def refresh_staleness(
        self, now: datetime.datetime
    ) -> list[tuple[Component, bool, datetime.datetime | None]]:
        """See ``status.refresh_staleness``."""
        return status_step.refresh_staleness(self, now)

    def check(self) -> list[ComponentReport]:
        """Ask the update sources now, record what they offer, and return every component."""
        catalog, settings = self.load()
        with HttpClient(http_options(settings)) as client:
            fetch_offers(self, catalog, settings, client)
        return status_step.status(self)

    def update(self, mode: Mode, requested: Iterable[str] | None) -> RunReport:
        """Update what is newer: every scheduled component (``Mode.SCHEDULED``, requested
        None), or the requested ones (None: all) for a manual update.

        Raise RunError if the run cannot start (lock busy); SettingsError if the settings
        are invalid. Each component's failure is recorded and the others go on.
        """
        catalog, settings = self.load()
        known = {component.id for component in catalog}
        requested_ids = None if requested is None else list(dict.fromkeys(requested))
        unknown = [component_id for component_id in requested_ids or [] if component_id not in known]
        if unknown:
            raise RunError("unknown component(s): " + ", ".join(unknown))
        report = RunReport(kind=mode.value)
        with HttpClient(http_options(settings)) as client:
            offers = fetch_offers(self, catalog, settings, client)
            decisions = decide(
                catalog, settings, self.installed_versions(catalog), offers, mode,
                requested_ids, self.today(),
            )
            todo = [decision for decision in decisions if decision.update]
            pending = needs_reconcile(self, catalog)
            for decision in decisions:
                if decision.refused:
                    self.record_failure(report, mode.value, decision.component,
                                         offers[decision.component.id].version, decision.reason)
            if not todo and not pending:
                report.up_to_date = not report.outcomes
                self.database.record_run(mode.value, report.ok, report.summary())
                return report
            try:
                with lock.download_lock(self.root):
                    self._run_locked(report, mode, catalog, settings, client, offers, todo)
            except lock.LockBusy as error:
                log.warning("%s", error)
                self.database.record_run(mode.value, False, str(error))
                raise RunError(str(error)) from error
        self.database.record_run(mode.value, report.ok, report.summary())
        return report

    def _run_locked(
        self,
        report: RunReport,
        mode: Mode,
        catalog: Sequence[Component],
        settings: Settings,
        client: HttpClient,
        offers: dict[str, Offer],
        todo: Sequence[Decision],
    ) -> None:
        pending = reconcile_step.reconcile(self, catalog, mode.value)
        installed_now: list[Component] = []
        current = self.installed_versions(catalog)
        for decision in todo:
            component = decision.component
            offer = offers[component.id]
            if self.cancel.is_set():
                break  # what is installed so far still gets its restart below, or the next run's
            # Another process may have installed it between the plan and the lock.
            if not is_update_available(current.get(component.id), offer):
                continue
            try:
                fetch_verify_install(self, component, offer, settings, client, mode.value)
            except ComponentFailure as failure:
                self.record_failure(report, mode.value, component, offer.version, failure.reason)
                self.progress(component.id, "failed", 0, 0)
                continue
            except (RunCancelled, DatabaseError):
                raise
            except Exception as error:  # one component's bug must not stop the others
                log.debug("unexpected failure updating %s", component.id, exc_info=True)
                self.record_failure(report, mode.value, component, offer.version,
                                     f"internal error: {error}")
                continue
            installed_now.append(component)
            version = offer.version.display if offer.version else None
            report.outcomes.append(Outcome(component.id, version, True,
                                           messages.downloaded(component, version or "").en))
            self.progress(component.id, "done", 0, 0)
        if self.cancel.is_set():
            # Stopping: the installs are recorded with restart_pending; the next run restarts.
            raise RunCancelled()
        restart_and_settle(self, report, settings, catalog, installed_now, pending, mode.value)


    def reconcile(self, catalog: Sequence[Component], kind: str) -> list[Component]:
        """See ``reconcile.reconcile`` (must be called under the download lock)."""
        return reconcile_step.reconcile(self, catalog, kind)


    def rollback(self, component_ids: Sequence[str]) -> RunReport:
        """See ``rollback.rollback``."""
        return rollback_step.rollback(self, component_ids)
