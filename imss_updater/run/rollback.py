"""Rollback: one generation back for each named component, off the schedule, restarted."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from imss_updater import messages
from imss_updater.catalog import Component
from imss_updater.database.db import NewEvent
from imss_updater.i18n import N_, Reason, stored
from imss_updater.run.context import RunContext
from imss_updater.run.planner import restarts_for, unusable
from imss_updater.run.reconcile import reconcile
from imss_updater.run.report import Outcome, RunError, RunReport, display
from imss_updater.run.restart import restart
from imss_updater.store import install, lock

log = logging.getLogger(__name__)


def rollback(context: RunContext, component_ids: Sequence[str]) -> RunReport:
    """Roll each named component back one generation, take it off the schedule, and
    restart like an update does. A component whose licence is inactive (or whose feature is
    off) is refused with the reason, as the status page refuses it. Raise RunError for
    unknown ids or a busy lock."""
    catalog, settings = context.load()
    by_id = {component.id: component for component in catalog}
    unknown = [component_id for component_id in component_ids if component_id not in by_id]
    if unknown:
        raise RunError(Reason(N_("unknown component(s): %(ids)s"), {"ids": ", ".join(unknown)}))
    report = RunReport(kind="rollback")
    try:
        with lock.download_lock(context.root):
            pending = reconcile(context, catalog, "rollback")
            rolled: list[Component] = []
            for component_id in dict.fromkeys(component_ids):
                component = by_id[component_id]
                why_not = unusable(component, settings, context.today())
                if why_not is not None:  # the status page greys it out; the CLI refuses too
                    _refuse(context, report, component, why_not)
                    continue
                if _rollback_one(context, report, component):
                    rolled.append(component)
            changed = list({c.id: c for c in [*pending, *rolled]}.values())
            if changed:
                report.restarts = restarts_for(changed)
                report.restart_error = restart(context, settings, report.restarts, [c.id for c in changed])
    except lock.LockBusy as error:
        raise RunError(str(error)) from error
    context.database.record_run("rollback", report.ok, stored(report.summary_reason()))
    return report


def _refuse(context: RunContext, report: RunReport, component: Component, reason: str | Reason) -> None:
    text = messages.rollback_failed(component, reason)
    context.database.add_event(NewEvent("rollback", component.id, None, "failure", text.en, text.ja,
                                        str(reason)))
    report.outcomes.append(Outcome(component.id, None, False, text.en, reason, message_ja=text.ja))
    log.error("%s", text.en)


def _rollback_one(context: RunContext, report: RunReport, component: Component) -> bool:
    try:
        state = context.store(component).rollback()
    except install.InstallError as error:
        text = messages.rollback_failed(component, error.why)
        context.database.add_event(
            NewEvent("rollback", component.id, None, "failure", text.en, text.ja, error.reason)
        )
        report.outcomes.append(Outcome(component.id, None, False, text.en, error.why, message_ja=text.ja))
        log.error("%s", text.en)
        return False
    version = display(state.current_version)
    text = messages.rolled_back(component, version)
    context.database.record_installed(
        component.id,
        state.current_version,
        state.previous_version,
        success=False,
        restart_pending=True,
        event=NewEvent("rollback", component.id, version, "success", text.en, text.ja),
    )
    if context.database.remove_from_schedule(component.id):
        log.info("%s removed from the scheduled update until re-enabled", component.id)
    report.outcomes.append(Outcome(component.id, version, True, text.en, message_ja=text.ja))
    log.info("%s", text.en)
    return True
