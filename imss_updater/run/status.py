"""Status: every component as last known, without contacting any source; staleness flags."""

from __future__ import annotations

import datetime
import logging

from imss_updater.catalog import Component
from imss_updater.database import trust as trust_db
from imss_updater.database.db import ComponentState
from imss_updater.run.context import RunContext
from imss_updater.run.planner import Availability, is_stale
from imss_updater.run.report import ComponentReport, parse_or_none
from imss_updater.settings import Settings, load

log = logging.getLogger(__name__)


def status(context: RunContext) -> list[ComponentReport]:
    """Return the components as last known, without contacting any source."""
    catalog = context.database.catalog()
    try:
        settings: Settings | None = load(
            context.database.settings_rows(), [component.id for component in catalog]
        )
    except ValueError as error:
        log.warning("%s", error)
        settings = None
    states = context.database.component_states()
    pins = trust_db.signature_pins(context.database)
    return [
        component_report(context, component, settings, states.get(component.id),
                         signed_before=component.id in pins)
        for component in catalog
    ]


def component_report(
    context: RunContext,
    component: Component,
    settings: Settings | None,
    state: ComponentState | None,
    *,
    signed_before: bool = False,
) -> ComponentReport:
    current = parse_or_none(state.current_version if state else None)
    previous = parse_or_none(state.previous_version if state else None)
    available: str | None = None
    update_available = False
    if state is not None and state.available_status == Availability.ABSENT:
        available = "0.0"
    elif state is not None and state.available_status == Availability.KNOWN:
        offered = parse_or_none(state.available_version)
        available = offered.display if offered else None
        update_available = offered is not None and (current is None or offered > current)
    today = context.today()
    return ComponentReport(
        id=component.id,
        name=component.name_en,
        name_ja=component.name_ja,
        kind=component.kind.value,
        current=current.display if current else None,
        previous=previous.display if previous else None,
        available=available,
        update_available=update_available,
        licensed=settings.license_active(component.license, today) if settings else False,
        enabled=settings.feature_enabled(component.feature) if settings else False,
        scheduled=component.id in settings.scheduled_components if settings else False,
        unsigned=state.unsigned if state else False,
        available_reason=state.available_reason if state else None,
        checked_at=state.checked_at if state else None,
        last_success_at=state.last_success_at if state else None,
        stale=state.stale if state else False,
        authenticated=state.available_authenticated if state else False,
        signed_before=signed_before,
    )


def refresh_staleness(
    context: RunContext, now: datetime.datetime
) -> list[tuple[Component, bool, datetime.datetime | None]]:
    """Flag components whose last successful update is older than their Staleness row
    (only those in use: licensed and enabled). Return (component, stale, last success)
    for each flag that changed, so the caller notifies once per change."""
    catalog, settings = context.load()
    states = context.database.component_states()
    today = context.today()
    changes = []
    for component in catalog:
        state = states.get(component.id)
        last_success = state.last_success_at if state else None
        stale = (
            settings.license_active(component.license, today)
            and settings.feature_enabled(component.feature)
            and is_stale(last_success, settings.stale_after_days.get(component.id), now)
        )
        if context.database.set_stale(component.id, stale):
            changes.append((component, stale, last_success))
            if stale:
                log.warning("%s has not been updated since %s", component.name_en,
                            last_success.isoformat() if last_success else "never")
            else:
                log.info("%s is current again", component.name_en)
    return changes
