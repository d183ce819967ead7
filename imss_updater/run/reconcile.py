"""Recovery: after an interrupted run, repair the disk and bring the database in line
with it; tell whether an earlier run left work behind."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from imss_updater import messages
from imss_updater.catalog import Component
from imss_updater.database.db import NewEvent
from imss_updater.run.context import RunContext
from imss_updater.run.report import display
from imss_updater.store import install

log = logging.getLogger(__name__)


def needs_reconcile(context: RunContext, catalog: Sequence[Component]) -> bool:
    """Return True when an earlier run left work behind: a restart still owed, or a disk
    state the database does not know (a crash between switching and recording)."""
    states = context.database.component_states()
    for component in catalog:
        state = states.get(component.id)
        if state is None or state.restart_pending:
            return True
        on_disk = context.store(component).state()
        current = on_disk.current_version
        previous = on_disk.previous_version
        if (current, previous) != (state.current_version, state.previous_version):
            return True
    return any(install.staging_root(context.root).glob("*"))


def reconcile(context: RunContext, catalog: Sequence[Component], kind: str) -> list[Component]:
    """Repair the disk after an interrupted run and bring the database in line with it.

    Must be called under the download lock. Return the components whose services still
    need a restart (an install committed before a crash, or a failed restart).
    """
    staging = install.staging_root(context.root)
    for leftover in staging.glob("download-*"):
        log.info("removing leftover download %s", leftover.name)
        leftover.unlink(missing_ok=True)
    states = context.database.component_states()
    pending: list[Component] = []
    for component in catalog:
        store = context.store(component)
        for fix in store.repair():
            log.warning("%s", fix)  # each line already names the component
        on_disk = store.state()
        current = on_disk.current_version
        previous = on_disk.previous_version
        state = states.get(component.id)
        recorded = state.current_version if state else None
        if state is None or current != recorded or previous != state.previous_version:
            event = None
            if current is not None and current != recorded:
                # The disk switched before the run could record it: say so in the log.
                text = messages.downloaded(component, display(current))
                reason = "recorded after an interrupted run"
                event = NewEvent(kind, component.id, display(current), "success",
                                 text.en, text.ja, reason)
                log.warning("%s: %s", component.id, reason)
            context.database.record_installed(
                component.id, current, previous, success=False, restart_pending=True, event=event
            )
            pending.append(component)
        elif state.restart_pending:
            pending.append(component)
    return pending
