"""System Status: components, versions, flags, Update / Rollback / Check Now, progress.

One page view costs a constant number of SQL statements whatever the catalog's size
(log-on check; catalog, settings and component states for the reports; settings, run
status and catalog again for licenses, the settings check and a job's messages).
"""

from __future__ import annotations

import datetime
import logging
from dataclasses import dataclass

from flask import Blueprint, abort, jsonify, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue

from imss_updater import messages
from imss_updater.catalog import Component
from imss_updater.database.db import Database
from imss_updater.i18n import N_, Reason, render, stored_text
from imss_updater.run import trust
from imss_updater.run.updater import ComponentReport, Outcome, Updater
from imss_updater.settings import Settings, SettingsError, load
from imss_updater.settings_check import problems as settings_problems
from imss_updater.store import lock
from imss_updater.web import fleet_overview, overview
from imss_updater.web.context import _, console, language, notify, when
from imss_updater.web.jobs import Job, JobBusy
from imss_updater.web.labels import label
from imss_updater.web.settings_pages import describe

log = logging.getLogger(__name__)

blueprint = Blueprint("status", __name__)
# The id of the last job whose result this session was shown: like the appliance's pop-up,
# the result dialog appears once, on the first view after the job ended.
RESULT_SHOWN = "job_result_shown"


@dataclass(frozen=True)
class Row:
    report: ComponentReport
    name: str
    selectable: bool
    flags: list[tuple[str, str]]  # (css class, text)
    unscheduled: bool
    age: str | None  # since the last successful update


def _rows(
    reports: list[ComponentReport], rows: dict[tuple[str, str], str], catalog: list[Component]
) -> list[Row]:
    licenses = {component.id: component.license for component in catalog}
    now = datetime.datetime.now(datetime.UTC)
    shown: list[Row] = []
    for report in reports:
        flags: list[tuple[str, str]] = []
        if not report.licensed:
            expiry = rows.get(("License", licenses.get(report.id, "")), "").strip()
            flags.append(("flag-license", _("license expired") if expiry else _("license not activated")))
        if not report.enabled:
            flags.append(("flag-disabled", _("feature disabled")))
        if report.unsigned:
            flags.append(("flag-unsigned", _("unsigned")))
        if report.available is not None and not report.authenticated:  # SPEC 3.1
            flags.append(("flag-unauthenticated", _("versions not authenticated")))
        if report.signed_before:  # SPEC 3.1: an unsigned package is refused until trust reset
            flags.append(("flag-signed-before", _("signed before: unsigned packages are refused")))
        if report.stale:  # the daemon flags it from the Staleness rows (seed 001)
            days = (now - report.last_success_at).days if report.last_success_at else 0
            flags.append(("flag-stale", _("not updated for %(days)s days", days=days)))
        if not report.scheduled:
            flags.append(("flag-unscheduled", _("excluded from scheduled update")))
        shown.append(Row(
            report=report,
            name=report.name_ja if language() == "ja" else report.name,
            selectable=report.licensed and report.enabled,
            flags=flags,
            unscheduled=not report.scheduled,
            age=overview.age(report.last_success_at, now) if report.last_success_at else None,
        ))
    return shown


def _service_text(value: str | None) -> str:
    if not value:
        return _("No restart recorded")
    if value.startswith("restarted "):
        moment = _parse_time(value.removeprefix("restarted "))
        return _("Restarted %(time)s", time=when(moment) if moment else value)
    if value.startswith("failed: "):
        return _("Restart failed: %(reason)s", reason=value.removeprefix("failed: "))
    return value


def _parse_time(text: str) -> datetime.datetime | None:
    try:
        return datetime.datetime.fromisoformat(text)
    except ValueError:
        return None


def job_messages(job: Job, catalog: list[Component]) -> tuple[bool, str, list[str]]:
    """Return (ok, headline, detail lines) for a finished job, in the request's language."""
    if job.lock_busy:
        return False, _("Another process is downloading files."), []
    if job.error is not None:
        return False, _("Could not run: %(reason)s", reason=render(job.error, language())), []
    if job.kind == "check":
        if job.check_ok:
            return True, _("Check finished: the update source was reachable."), []
        return False, _("Check failed: %(reason)s", reason=stored_text(job.check_text, language())), []
    report = job.report
    if report is None:
        return False, _("Could not run: %(reason)s", reason="no result"), []
    by_id = {component.id: component for component in catalog}
    details = [_outcome_text(outcome, by_id.get(outcome.component), job.kind) for outcome in report.outcomes]
    if report.restart_error:
        restart_error = render(report.restart_error, language())
        details.append(_("Service restart failed: %(reason)s", reason=restart_error))
    if job.kind == "update" and report.up_to_date and not report.outcomes:
        return True, _("All components are up to date."), details
    if report.ok:
        return True, _(label("job.ok", job.kind)), details
    return False, _(label("job.failed", job.kind)), details


def _outcome_text(outcome: Outcome, component: Component | None, kind: str) -> str:
    if component is None or language() != "ja":
        return outcome.message
    if kind == "rollback":
        if outcome.ok:
            return messages.rolled_back(component, outcome.version or "").ja
        return messages.rollback_failed(component, outcome.reason or "").ja
    if outcome.ok:
        return messages.downloaded(component, outcome.version or "").ja
    return messages.update_failed(component, outcome.version, outcome.reason or "").ja


def progress_json(job: Job) -> dict[str, object]:
    components = {}
    for component_id, entry in job.progress.items():
        components[component_id] = {
            "phase": entry.phase,
            "percent": entry.percent,
            "text": _(label("phase", entry.phase), percent=entry.percent),
        }
    return {
        "id": job.id,
        "kind": job.kind,
        "running": job.running,
        "text": _("A %(kind)s is running…", kind=_(label("job.kind", job.kind))),
        "components": components,
    }


@blueprint.route("/")
def page() -> ResponseReturnValue:
    context = console()
    with context.pool.connection() as database:
        reports = Updater(database, context.config.root).status()
        rows = database.settings_rows()
        run = database.run_status()
        catalog = database.catalog()
        fleet = fleet_overview.facts(database, _settings(rows, catalog))
    job = context.runner.snapshot()
    # Invalid rows and unusable files (a CA file deleted after it was set) alike.
    problems = settings_problems(rows, [component.id for component in catalog])
    settings_error = "; ".join(describe(problem) for problem in problems) or None
    holder = lock.lock_holder(context.config.root)
    outcome = None
    if job is not None and not job.running and session.get(RESULT_SHOWN) != job.id:
        outcome = job_messages(job, catalog)
        session[RESULT_SHOWN] = job.id
    settings = _settings(rows, catalog)
    services = context.services
    return render_template(
        "status.html",
        rows=_rows(reports, rows, catalog),
        run=run,
        run_text=stored_text(run.last_run_text, language()),
        check_text=stored_text(run.last_check_text, language()),
        scan_service=_service_text(run.scan_service),
        policy_service=_service_text(run.policy_service),
        lock_holder=holder,
        job=job,
        job_progress=progress_json(job) if job is not None else None,
        outcome=outcome,
        settings_error=settings_error,
        facts=overview.facts(settings, run, holder) + fleet,
        licenses=overview.license_lines(settings),
        scan_state=overview.service_state(services, settings.scan_status if settings else None),
        policy_state=overview.service_state(services, settings.policy_status if settings else None),
    )


def _settings(rows: dict[tuple[str, str], str], catalog: list[Component]) -> Settings | None:
    try:
        return load(rows, [component.id for component in catalog])
    except SettingsError:
        return None  # the page says which rows are wrong (settings_error)


def _selection() -> list[str]:
    return [value for value in request.form.getlist("component") if value]


def _start(kind: str, components: list[str]) -> ResponseReturnValue:
    context = console()
    if kind != "check" and not components:
        notify(N_("Select at least one component."), "error")
        return redirect(url_for("status.page"))
    if lock.lock_holder(context.config.root) is not None:
        notify(N_("Another process is downloading files."), "error")
        return redirect(url_for("status.page"))
    try:
        context.runner.start(kind, components)
    except JobBusy:
        notify(N_("Another process is downloading files."), "error")
        return redirect(url_for("status.page"))
    notify(N_("Started: %(kind)s."), "info", kind=Reason(label("job.kind", kind)))
    return redirect(url_for("status.page"))


@blueprint.route("/update", methods=["POST"])
def update() -> ResponseReturnValue:
    return _start("update", _validated_selection())


@blueprint.route("/rollback", methods=["POST"])
def rollback() -> ResponseReturnValue:
    return _start("rollback", _validated_selection())


@blueprint.route("/trust-reset", methods=["POST"])
def trust_reset() -> ResponseReturnValue:
    """Forget that the selected components were signed (SPEC 3.1; ``trust reset ID``)."""
    selection = _validated_selection()
    if not selection:
        notify(N_("Select at least one component."), "error")
        return redirect(url_for("status.page"))
    with console().pool.connection() as database:
        cleared = trust.reset(database, selection)
    if cleared:
        notify(N_("%(components)s: unsigned packages are accepted again (VerifySignature=auto)."),
               "info", components=", ".join(cleared))
    else:
        notify(N_("%(components)s: was not signed before; nothing to reset."), "info",
               components=", ".join(selection))
    return redirect(url_for("status.page"))


@blueprint.route("/check", methods=["POST"])
def check() -> ResponseReturnValue:
    return _start("check", [])


def _validated_selection() -> list[str]:
    selection = _selection()
    with console().pool.connection() as database:
        known = _known(database)
    unknown = [component_id for component_id in selection if component_id not in known]
    if unknown:
        abort(400, description=_("unknown component(s): %(ids)s", ids=", ".join(unknown)))
    return selection


def _known(database: Database) -> set[str]:
    return {component.id for component in database.catalog()}


@blueprint.route("/jobs/current")
def current_job() -> ResponseReturnValue:
    job = console().runner.snapshot()
    if job is None:
        return jsonify({"id": None, "running": False, "components": {}})
    return jsonify(progress_json(job))
