"""The update run: check -> plan -> lock -> fetch -> verify -> install -> restart -> record.

``Updater`` is the run context with the orchestration on top: it orders the steps (one
module each in this package) and isolates each component's failure; the decisions are in
``planner`` (pure), and every external effect goes through its own module.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from imss_updater import messages, settings_check
from imss_updater.catalog import Component
from imss_updater.database.db import DatabaseError
from imss_updater.i18n import N_, Reason, stored
from imss_updater.run import reconcile as reconcile_step
from imss_updater.run import rollback as rollback_step
from imss_updater.run import status as status_step
from imss_updater.run.check import INDEX_NAME, MAX_INDEX_BYTES, fetch_offers, http_options, is_control_manager
from imss_updater.run.context import RunContext
from imss_updater.run.fetch import fetch_verify_install
from imss_updater.run.installation import UNPACKED_FACTOR
from imss_updater.run.planner import (
    Availability,
    Decision,
    Mode,
    Offer,
    decide,
    is_update_available,
    lock_stuck,
    unusable,
)
from imss_updater.run.reconcile import needs_reconcile
from imss_updater.run.report import (
    ComponentFailure,
    ComponentReport,
    Outcome,
    Progress,
    RunCancelled,
    RunError,
    RunProblem,
    RunReport,
)
from imss_updater.run.restart import restart_and_settle
from imss_updater.settings import Settings, SettingsError, parse_components
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
    "RunProblem",
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
        """Ask the update sources now, record what they offer, and return every component.

        Raise SettingsError if the settings are invalid or unusable (a CA file missing),
        RunError for any other error; the check is then recorded as failed with the reason."""
        catalog, settings = self.load()
        problems = settings_check.unusable(settings)
        if problems:
            error = SettingsError(problems)
            self.write("to record the check result",
                       lambda: self.database.record_availability([], ok=False, text=str(error)), None)
            raise error
        try:
            with HttpClient(http_options(settings)) as client:
                fetch_offers(self, catalog, settings, client)
        except DatabaseError:
            raise
        except Exception as error:  # recorded and said in one line, never a traceback
            log.debug("unexpected error while checking", exc_info=True)
            reason = f"unexpected error while {STEPS['check']}: {error.__class__.__name__}: {error}"
            self.write("to record the check result",
                       lambda: self.database.record_availability([], ok=False, text=reason), None)
            raise RunError(reason) from error
        return status_step.status(self)

    def update(self, mode: Mode, requested: Iterable[str] | None) -> RunReport:
        """Update what is newer: every scheduled component (``Mode.SCHEDULED``, requested
        None), or the requested ones (None: all) for a manual update.

        Every way the run can end other than success is in the report, recorded as failure
        events of the components the run wanted: a component's own failure, or the run's
        (``report.problem``: settings invalid or unusable, an error in any step, the lock
        busy for longer than a schedule interval, the database refusing a write). A database
        error after the start does not stop the run: it goes on with what does not need the
        database, restarts included. Raise RunError for unknown ids, or when a manual run
        finds the lock busy; DatabaseError if the database cannot be read at the start.
        """
        catalog = self.database.catalog()
        known = {component.id for component in catalog}
        requested_ids = None if requested is None else list(dict.fromkeys(requested))
        unknown = [component_id for component_id in requested_ids or [] if component_id not in known]
        if unknown:
            raise RunError(Reason(N_("unknown component(s): %(ids)s"), {"ids": ", ".join(unknown)}))
        report = RunReport(kind=mode.value)
        run = _Run(mode, requested_ids)
        try:
            self._update(report, run)
        except RunCancelled:
            raise
        except lock.LockBusy as error:  # a manual run: it fails at once, as the SPEC says
            busy = str(error)
            log.warning("%s", busy)
            self.write("to record the run", lambda: self.database.record_run(mode.value, False, busy), None)
            raise RunError(busy) from error
        except _RunFailed as failure:
            self._fail_run(report, run, failure.step, failure.reason)
        except lock.LockUnusable as error:  # the lock file cannot be used: say how to fix it
            self._fail_run(report, run, "lock", error.why)
        except DatabaseError as error:
            if run.step == "settings":
                raise  # nothing was done: the run could not start (the daemon catches it up)
            self._fail_run(report, run, run.step, f"the database failed while {STEPS[run.step]}: {error}")
        except Exception as error:  # whatever breaks, the run ends as a recorded failure
            log.debug("unexpected error while %s", STEPS[run.step], exc_info=True)
            reason = f"unexpected error while {STEPS[run.step]}: {error.__class__.__name__}: {error}"
            self._fail_run(report, run, run.step, reason)
        if self.database_problem is not None and report.ok:
            # A refused write in a run that otherwise succeeded fails it; in a run that
            # failed already, its failures are recorded (or kept) and the refusal logged.
            self._fail_run(report, run, "record", self.database_problem)
        if report.skipped is None:
            self.write("to record the run", lambda: self.database.record_run(
                mode.value, report.ok, stored(report.summary_reason())), None)
        return report

    def _update(self, report: RunReport, run: _Run) -> None:
        mode = run.mode
        run.step = "settings"
        try:
            catalog, settings = self.load()
        except SettingsError as error:
            run.catalog = self.database.catalog()
            raise _RunFailed("settings", str(error)) from error
        run.catalog, run.settings = catalog, settings
        problems = settings_check.unusable(settings)
        if problems:
            raise _RunFailed("settings", "unusable settings: " + "; ".join(str(p) for p in problems))
        run.step = "check"
        with HttpClient(http_options(settings)) as client:
            offers = fetch_offers(self, catalog, settings, client)
            run.offers = offers
            run.step = "plan"
            decisions = decide(
                catalog, settings, self.installed_versions(catalog), offers, mode,
                run.requested, self.today(),
            )
            todo = [decision for decision in decisions if decision.update]
            # Without the database, assume an earlier run left work behind: the lock is cheap.
            pending = self.write("to read the state of the components",
                                 lambda: needs_reconcile(self, catalog), True)
            for decision in decisions:
                if decision.refused:
                    offer = offers[decision.component.id]
                    self.record_failure(report, mode.value, decision.component, offer.version,
                                        decision.reason,
                                        cause_logged=offer.availability is Availability.UNKNOWN)
            if not todo and not pending:
                report.up_to_date = not report.outcomes
                if mode is Mode.SCHEDULED:
                    self.write("to record the lock state", self.database.clear_lock_busy, None)
                return
            run.step = "lock"
            try:
                with lock.download_lock(self.root):
                    if mode is Mode.SCHEDULED:
                        self.write("to record the lock state", self.database.clear_lock_busy, None)
                    run.step = "update"
                    self._run_locked(report, mode, catalog, settings, client, offers, todo)
            except lock.LockBusy as busy:
                if mode is not Mode.SCHEDULED:
                    raise
                self._lock_busy(report, busy, settings)

    def _lock_busy(self, report: RunReport, busy: lock.LockBusy, settings: Settings) -> None:
        """A scheduled run found the lock busy: skip quietly the first time; when the lock
        has been busy for longer than a schedule interval, the run fails."""
        held = self.write("to record the lock state", self.database.note_lock_busy,
                          datetime.timedelta(0))
        holder = f"process {busy.holder_pid}" if busy.holder_pid else "another process"
        if not lock_stuck(held, settings):
            log.warning("%s (held by %s): this scheduled run is skipped; it is a failure if the"
                        " lock is still held at the next one", lock.LOCK_MESSAGE_EN, holder)
            report.skipped = f"{lock.LOCK_MESSAGE_EN} (held by {holder})"
            return
        raise _RunFailed("lock", f"{lock.LOCK_MESSAGE_EN} (the download lock has been held by {holder}"
                                 " for longer than one schedule interval)")

    def _fail_run(self, report: RunReport, run: _Run, step: str, reason: str | Reason) -> None:
        """Record a run-level failure: one failure event for each component the run wanted
        that has no outcome yet (so the failure rows of their groups decide mail/trap)."""
        log.error("update run failed: %s", reason)
        report.problem = RunProblem(step, str(reason), why=reason)
        if step in ("settings", "check"):
            # The last check did not happen as it should: say so where the check is shown.
            self.write("to record the check result",
                       lambda: self.database.record_availability([], ok=False, text=stored(reason)), None)
        no_catalog: list[Component] = []
        catalog = run.catalog if run.catalog is not None else self.write(
            "to read the catalog", self.database.catalog, no_catalog)
        done = {outcome.component for outcome in report.outcomes}
        for component in self._wanted(catalog, run):
            if component.id in done:
                continue
            offer = run.offers.get(component.id)
            self.record_failure(report, run.mode.value, component, offer.version if offer else None, reason,
                                cause_logged=True)

    def _wanted(self, catalog: Sequence[Component], run: _Run) -> list[Component]:
        """The components a run wanted: the requested ones, or every scheduled one that is
        licensed and enabled (every scheduled one when the settings cannot be read)."""
        if run.requested is not None:
            return [component for component in catalog if component.id in run.requested]
        settings = run.settings
        if settings is None:
            scheduled = scheduled_ids(self.write("to read the settings", self.database.settings_rows, {}),
                                      [component.id for component in catalog])
            return [component for component in catalog if scheduled is None or component.id in scheduled]
        return [
            component for component in catalog
            if (run.mode is Mode.MANUAL or component.id in settings.scheduled_components)
            and unusable(component, settings, self.today()) is None
        ]

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
        nothing: list[Component] = []
        pending = self.write("to repair after an interrupted run",
                             lambda: reconcile_step.reconcile(self, catalog, mode.value), nothing)
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
            except RunCancelled:
                raise
            except DatabaseError as error:
                # The run goes on without the database; if the package is already in place,
                # it is installed (the disk is the truth) and its restart is owed.
                self.refused("to record the update", error)
                if self._on_disk(component) == (offer.version.raw if offer.version else None):
                    installed_now.append(component)
                    reason = (f"installed, but the database refused to record it ({error});"
                              " the next run records it")
                else:
                    reason = f"the database failed during the update: {error}"
                self.record_failure(report, mode.value, component, offer.version, reason)
                self.progress(component.id, "failed", 0, 0)
                continue
            except Exception as error:  # one component's bug must not stop the others
                log.debug("unexpected failure updating %s", component.id, exc_info=True)
                phase = self.phases.get(component.id, "updating")
                self.record_failure(report, mode.value, component, offer.version,
                                     f"internal error while {phase}: {error.__class__.__name__}: {error}")
                self.progress(component.id, "failed", 0, 0)
                continue
            installed_now.append(component)
            version = offer.version.display if offer.version else None
            done = messages.downloaded(component, version or "")
            report.outcomes.append(Outcome(component.id, version, True, done.en, message_ja=done.ja))
            self.progress(component.id, "done", 0, 0)
        if self.cancel.is_set():
            # Stopping: the installs are recorded with restart_pending; the next run restarts.
            raise RunCancelled()
        restart_and_settle(self, report, settings, catalog, installed_now, pending, mode.value)

    def _on_disk(self, component: Component) -> str | None:
        current = self.store(component).state().current
        return current.version if current else None

    def reconcile(self, catalog: Sequence[Component], kind: str) -> list[Component]:
        """See ``reconcile.reconcile`` (must be called under the download lock)."""
        return reconcile_step.reconcile(self, catalog, kind)


    def rollback(self, component_ids: Sequence[str]) -> RunReport:
        """See ``rollback.rollback``."""
        return rollback_step.rollback(self, component_ids)


STEPS = {
    "settings": "reading the settings",
    "check": "reading the update source",
    "plan": "planning the update",
    "lock": "taking the download lock",
    "update": "updating the components",
    "record": "recording the run",
}


class _RunFailed(Exception):
    """The run as a whole failed at ``step`` for ``reason``."""

    def __init__(self, step: str, reason: str) -> None:
        super().__init__(reason)
        self.step = step
        self.reason = reason


@dataclass
class _Run:
    """What one update run has learnt so far, for recording its failure at any step."""

    mode: Mode
    requested: list[str] | None
    step: str = "settings"
    catalog: list[Component] | None = None
    settings: Settings | None = None
    offers: dict[str, Offer] = field(default_factory=dict)


def scheduled_ids(rows: Mapping[tuple[str, str], str], known: Sequence[str]) -> tuple[str, ...] | None:
    """The scheduled components as the rows name them, or None when that row is unreadable."""
    try:
        return parse_components(known)(rows.get(("Update", "ScheduledComponents"), "").strip())
    except ValueError:
        return None
