"""Restart: one restart per service per run; roll this run's installs back when a restart
fails, and clear the owed restarts only when every restart succeeded."""

from __future__ import annotations

import datetime
import logging
import os
import time
from collections.abc import Callable, Sequence

from imss_updater import messages, process
from imss_updater.catalog import Component
from imss_updater.database.db import DatabaseError, NewEvent
from imss_updater.i18n import N_, Reason
from imss_updater.run.context import RunContext
from imss_updater.run.planner import Restarts, restarts_for
from imss_updater.run.report import Outcome, RunReport, display
from imss_updater.run.services import ServiceState, probe
from imss_updater.settings import Settings
from imss_updater.store import install

log = logging.getLogger(__name__)

SYSTEMD_RUN = "systemd-run"
# A restart script may return a moment before its daemon answers "status": ask this many
# times, this far apart, before a stopped service counts as a failed restart.
STATUS_ATTEMPTS = 3
STATUS_INTERVAL_SECONDS = 1.0


def systemd_booted() -> bool:
    """Return True when systemd is PID 1 (``sd_booted()``: /run/systemd/system exists)."""
    return os.path.isdir("/run/systemd/system")


def outside_this_unit(
    argv: Sequence[str], service: str, timeout: float, under_systemd: bool
) -> list[str]:
    """Given a restart command, return the argument list that runs it outside the updater's
    own unit when systemd is PID 1, so that the scan and policy daemons it starts never live
    in imss-updater.service's cgroup or sandbox (stopping or restarting the updater must not
    kill the mail scanner, and the scanner must not inherit read-only /usr and /etc, a
    private /tmp or reduced capabilities).

    The command becomes the start command of a transient ``Type=forking`` service that PID 1
    starts with its own clean environment: ``systemd-run`` returns once the script has
    exited, with an error if it failed or exceeded ``timeout`` (systemd kills it then), and
    the daemons the script started stay in that transient unit. A command that is already
    ``systemctl ...`` asks PID 1 itself and runs unchanged; so does everything without systemd.
    """
    command = list(argv)
    if not under_systemd or not command or os.path.basename(command[0]) == "systemctl":
        return command
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%S%f")
    return [
        SYSTEMD_RUN,
        f"--unit=imss-updater-restart-{service}-{stamp}",
        f"--description=imss-updater: {service} service restart",
        "--service-type=forking",
        "--collect",
        "--quiet",
        f"--property=TimeoutStartSec={max(1, int(timeout))}",
        "--property=GuessMainPID=yes",
        "--",
        *command,
    ]


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
            reason = Reason(N_("%(reason)s; automatic rollback failed: %(error)s"),
                            {"reason": error, "error": rollback_error.why})
            context.record_failure(report, kind, component, None, reason, replace=True)
            continue
        back_to = display(state.current_version)
        attempted = next((o.version for o in report.outcomes if o.component == component.id), None)
        reason = Reason(N_("%(reason)s; rolled back to %(version)s"), {"reason": error, "version": back_to})
        text = messages.update_failed(component, attempted, reason)
        event = NewEvent(kind, component.id, attempted, "failure", text.en, text.ja, str(reason))
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
        report.outcomes.append(Outcome(component.id, attempted, False, text.en, reason, message_ja=text.ja))
        log.error("%s", text.en)
    if installed_now:
        second = restart(context, settings, restarts_for(changed), [c.id for c in changed])
        if second is not None:
            report.restart_error = Reason(N_("%(reason)s; after rollback: %(second)s"),
                                          {"reason": error, "second": second})


def restart(
    context: RunContext, settings: Settings, restarts: Restarts, component_ids: Sequence[str]
) -> Reason | None:
    """Restart the scan service and, if asked, the policy service (one each).

    Return None on success, else the reason; clear the components' restart flags only
    when every restart succeeded.
    """
    steps = []
    if restarts.scan:
        steps.append(("scan", settings.scan_restart, settings.scan_status))
    if restarts.policy:
        steps.append(("policy", settings.policy_restart, settings.policy_status))
    for service, argv, status_argv in steps:
        for component_id in component_ids:
            context.progress(component_id, "restarting", 0, 0)
        try:
            process.run(
                outside_this_unit(argv, service, settings.restart_timeout, systemd_booted()),
                timeout=settings.restart_timeout + 10,  # systemd's own start timeout fires first
            )
        except Exception as error:  # whatever breaks, the restart failed and is handled as such
            cause = error.why if isinstance(error, process.CommandError) else (
                f"internal error: {error.__class__.__name__}: {error}")
            if not isinstance(error, process.CommandError):
                log.debug("restarting the %s service failed", service, exc_info=True)
            reason = _restart_failed(service, cause)
            log.error("%s", reason)
            _record_service(context, service, f"failed: {cause}")
            return reason
        stopped = not_running_after_restart(status_argv)
        if stopped is not None:
            reason = _restart_failed(service, stopped)
            log.error("%s", reason)
            _record_service(context, service, f"failed: {stopped}")
            return reason
        log.info("%s service restarted", service)
        stamp = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        _record_service(context, service, f"restarted {stamp}")
    # If this is refused, the restart stays owed and the next run does it again: harmless.
    context.write("to record the restart",
                  lambda: context.database.clear_restart_pending(component_ids), None)
    return None


def not_running_after_restart(
    status_argv: Sequence[str],
    *,
    check: Callable[[Sequence[str]], ServiceState] = probe,
    sleep: Callable[[float], None] = time.sleep,
) -> Reason | None:
    """Given the service's status command (seed 001: exit 0 = running), return why the
    service is not running after its restart, or None when it runs.

    A stopped service is asked again (STATUS_ATTEMPTS, STATUS_INTERVAL_SECONDS apart) before
    it counts. A status command that is not set, cannot run or hangs says nothing about the
    service: it is logged and the restart's own exit status stands.
    """
    if not status_argv:
        return None
    state = check(status_argv)
    for _ in range(STATUS_ATTEMPTS - 1):
        if state.running is not False:
            break
        sleep(STATUS_INTERVAL_SECONDS)
        state = check(status_argv)
    if state.running is None:
        log.warning("cannot tell whether the service runs after its restart: %s", state.reason)
        return None
    if state.running:
        return None
    return Reason(N_("the service is not running after the restart (%(command)s exited with status "
                     "%(status)s)"), {"command": " ".join(status_argv), "status": state.exit_status})


def _restart_failed(service: str, cause: str | Reason) -> Reason:
    if service == "policy":
        return Reason(N_("policy service restart failed: %(reason)s"), {"reason": cause})
    return Reason(N_("scan service restart failed: %(reason)s"), {"reason": cause})


def _record_service(context: RunContext, service: str, text: str) -> None:
    changes: dict[str, str | None] = {"scan": None, "policy": None, service: text}
    context.write("to record the service state", lambda: context.database.record_services(**changes), None)
