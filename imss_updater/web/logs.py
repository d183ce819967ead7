"""Logs: the update event log, filtered by kind, component, outcome and date range (and, in
a fleet, by node: every node's events, with a node column), paged;
and below it the latest notification delivery attempts (``notify.deliveries``)."""

from __future__ import annotations

import datetime

from flask import Blueprint, abort, render_template, request
from flask.typing import ResponseReturnValue

from imss_updater import notify
from imss_updater.notify.outbox import Delivery
from imss_updater.web import labels, queries
from imss_updater.web.context import _, console, language

PAGE_SIZE = 50
DELIVERY_LIMIT = 50
KINDS = ("scheduled", "manual", "rollback")
OUTCOMES = ("success", "failure")

blueprint = Blueprint("logs", __name__)


def _date(name: str) -> datetime.date | None:
    text = request.args.get(name, "").strip()
    if not text:
        return None
    try:
        return datetime.date.fromisoformat(text)
    except ValueError:
        abort(400, description=f"{name}: must be YYYY-MM-DD")


def _choice(name: str, allowed: tuple[str, ...] | set[str]) -> str | None:
    value = request.args.get(name, "").strip()
    if not value:
        return None
    if value not in allowed:
        abort(400, description=f"{name}: unknown value {value!r}")
    return value


def delivery_event_text(label: str) -> str:
    """Given an attempt-log event label ("update pattern failure", "stale spam fresh",
    "test"), return it in the request's language; an unknown label is shown as it is."""
    if label == "test":
        return _("Test message")
    parts = label.split()
    if len(parts) == 3:
        kind, group, outcome = parts
        key = f"{kind}.{outcome}"
        if key in labels.LABELS["delivery.event"]:
            return _(labels.label("delivery.event", key), group=_(labels.label("notify.group", group)))
    return label


def _deliveries(rows: list[Delivery]) -> list[dict[str, object]]:
    return [{"delivery": row, "event": delivery_event_text(row.event),
             "error": row.error_in(language()) or ""} for row in rows]


def _local_midnight(name: str, day: datetime.date, days_after: int = 0) -> datetime.datetime:
    """The local midnight ``days_after`` days after ``day``; 400 when it falls outside the
    calendar (``to=9999-12-31`` has no next day)."""
    try:
        moment = datetime.datetime.combine(day + datetime.timedelta(days=days_after), datetime.time())
        return moment.astimezone()
    except (OverflowError, ValueError, OSError):
        abort(400, description=f"{name}: {day.isoformat()} is out of range")


@blueprint.route("/logs")
def page() -> ResponseReturnValue:
    try:
        page_number = int(request.args.get("page", "1"))
    except ValueError:
        abort(400, description="page: must be a number")
    if page_number < 1:
        abort(400, description="page: must be 1 or more")
    with console().pool.connection() as database:
        catalog = database.catalog()
        names = {component.id: component.name_ja if language() == "ja" else component.name_en
                 for component in catalog}
        since, until = _date("from"), _date("to")
        fleet = console().fleet_nav.cached()
        if fleet is None:
            fleet = console().fleet_nav.refresh(database)
        nodes = database.node_names() if fleet else []
        where = queries.EventFilter(
            node=_choice("node", set(nodes)) if fleet else None,
            kind=_choice("kind", KINDS),
            component=_choice("component", set(names)),
            outcome=_choice("outcome", OUTCOMES),
            since=_local_midnight("from", since) if since else None,
            until=_local_midnight("to", until, days_after=1) if until else None,
        )
        found = queries.events_page(database, where, limit=PAGE_SIZE + 1,
                                    offset=(page_number - 1) * PAGE_SIZE)
        deliveries = notify.deliveries(database, limit=DELIVERY_LIMIT)
    arguments = {key: value for key, value in request.args.items() if key != "page" and value}
    return render_template(
        "logs.html",
        events=found[:PAGE_SIZE],
        names=names,
        catalog=catalog,
        kinds=KINDS,
        outcomes=OUTCOMES,
        arguments=arguments,
        page=page_number,
        has_older=len(found) > PAGE_SIZE,
        deliveries=_deliveries(deliveries),
        nodes=nodes,
        delivery_limit=DELIVERY_LIMIT,
    )
