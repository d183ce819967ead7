"""Restart: one restart per service per run; roll this run's installs back when a restart
fails, and clear the owed restarts only when every restart succeeded."""

from __future__ import annotations

import datetime
import logging
from collections.abc import Sequence

from imss_updater import messages, process
from imss_updater.catalog import Component
from imss_updater.database.db import DatabaseError, NewEvent
from imss_updater.run.context import RunContext
from imss_updater.run.planner import Restarts, restarts_for
from imss_updater.run.report import Outcome, RunReport, display
from imss_updater.settings import Settings
from imss_updater.store import install

log = logging.getLogger(__name__)


def restart_and_settle(
    context: RunContext,
    report: RunReport,
    settings: Settings,
    catalog: Sequence[Component],
    installed_now: Sequence[Component],
    pending: Sequence[Component],
    kind: str,
) -> None:
    """Restart the services the changes need; if a restart fails, roll back this run's
    installs, restart again, and record the failure against each of them."""
    changed = list({component.id: component for component in [*pending, *installed_now]}.values())
    if not changed:
        return
    report.restarts = restarts_for(changed)
    error = restart(context, settings, report.restarts, [component.id for component in changed])
    if error is None:
        return
    report.restart_error = error
    for component in installed_now:
        store = context.store(component)
        try:
            state = store.rollback()
        except install.InstallError as rollback_error:
            reason = f"{error}; automatic rollback failed: {rollback_error.reason}"
            context.record_failure(report, kind, component, None, reason, replace=True)
            continue
        back_to = display(state.current_version)
        attempted = next((o.version for o in report.outcomes if o.component == component.id), None)
        reason = f"{error}; rolled back to {back_to}"
        text = messages.update_failed(component, attempted, reason)
        event = NewEvent(kind, component.id, attempted, "failure", text.en, text.ja, reason)
        try:
            context.database.record_installed(
                component.id,
                state.current_version,
                state.previous_version,
                success=False,
                restart_pending=True,
                event=event,
            )
        except DatabaseError as database_error:
            context.keep(event, database_error)  # the disk is the truth; the next run records it
        report.outcomes = [o for o in report.outcomes if o.component != component.id]
        report.outcomes.append(Outcome(component.id, attempted, False, text.en, reason))
        log.error("%s", text.en)
    if installed_now:
        second = restart(context, settings, restarts_for(changed), [c.id for c in changed])
        if second is not None:
            report.restart_error = f"{error}; after rollback: {second}"


def restart(
    context: RunContext, settings: Settings, restarts: Restarts, component_ids: Sequence[str]
) -> str | None:
    """Restart the scan service and, if asked, the policy service (one each).

    Return None on success, else the reason; clear the components' restart flags only
    when every restart succeeded.
    """
    steps = []
    if restarts.scan:
        steps.append(("scan", settings.scan_restart))
    if restarts.policy:
        steps.append(("policy", settings.policy_restart))
    for service, argv in steps:
        for component_id in component_ids:
            context.progress(component_id, "restarting", 0, 0)
        try:
            process.run(list(argv), timeout=settings.restart_timeout)
        except Exception as error:  # whatever breaks, the restart failed and is handled as such
            cause = error.reason if isinstance(error, process.CommandError) else (
                f"internal error: {error.__class__.__name__}: {error}")
            if not isinstance(error, process.CommandError):
                log.debug("restarting the %s service failed", service, exc_info=True)
            reason = f"{service} service restart failed: {cause}"
            log.error("%s", reason)
            _record_service(context, service, f"failed: {cause}")
            return reason
        log.info("%s service restarted", service)
        stamp = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        _record_service(context, service, f"restarted {stamp}")
    # If this is refused, the restart stays owed and the next run does it again: harmless.
    context.write("to record the restart",
                  lambda: context.database.clear_restart_pending(component_ids), None)
    return None


def _record_service(context: RunContext, service: str, text: str) -> None:
    changes: dict[str, str | None] = {"scan": None, "policy": None, service: text}
    context.write("to record the service state", lambda: context.database.record_services(**changes), None)
