"""Notification events built from an update run, a staleness change or a test (pure).

An Event is plain data: what happened (``update``, ``stale``, ``test``, a fleet ``node``
going down or up), to which event
group and with which outcome, for which components, when, where and from which source.
``compose`` turns it into a subject and a plain-text body with the templates, and
``payload`` into the data an SNMP trap carries.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from imss_updater.catalog import Component
from imss_updater.i18n import N_, Reason, render
from imss_updater.notify import templates
from imss_updater.run.updater import RunReport

GROUP_ORDER = ("pattern", "engine", "spam")


class DeliveryError(Exception):
    """A message could not be delivered; ``transient`` says whether a later try may succeed.
    ``reason`` says why in any language (``str(error)``: in English)."""

    def __init__(self, reason: Reason, *, transient: bool) -> None:
        super().__init__(str(reason))
        self.reason = reason
        self.transient = transient


class DeliveryInterrupted(DeliveryError):
    """The attempt was ended because the updater is stopping: the message is tried again
    at the next start, and this attempt does not count against MaxAttempts."""

    def __init__(self, reason: Reason) -> None:
        super().__init__(reason, transient=True)


@dataclass(frozen=True)
class EventItem:
    component: str
    name_en: str
    name_ja: str
    version: str | None
    outcome: str  # success, failure, stale, fresh, test, recovered, down, up
    reason: str | None = None  # English (compared by the repeat rule)
    reason_ja: str | None = None  # the same reason in Japanese, when the updater worded it

    def name(self, language: str) -> str:
        return self.name_ja if language == "ja" else self.name_en

    def reason_in(self, language: str) -> str | None:
        return self.reason_ja if language == "ja" and self.reason_ja else self.reason


@dataclass(frozen=True)
class Event:
    kind: str  # update, stale, test, node
    group: str | None  # pattern, engine, spam; None for a test or a node
    outcome: str  # success, failure, stale, fresh, test, recovered, down, up
    items: tuple[EventItem, ...]
    time: datetime.datetime
    host: str
    source: str

    @property
    def label(self) -> str:
        """Return e.g. "update pattern failure", as shown in the attempt log."""
        if self.kind == "test":
            return "test"
        return " ".join(part for part in (self.kind, self.group, self.outcome) if part)


def from_run(
    catalog: Sequence[Component],
    report: RunReport,
    *,
    time: datetime.datetime,
    host: str,
    sources: Mapping[str, str],
) -> list[Event]:
    """Given the catalog and a run's report, return one Event per (event group, outcome)
    that has components, in group order, failures first; none when nothing was attempted.

    ``sources`` maps a component id to the update source URL it was read from.
    Outcomes for components the catalog does not know are ignored.
    """
    by_id = {component.id: component for component in catalog}
    order = {component.id: index for index, component in enumerate(catalog)}
    buckets: dict[tuple[str, str], list[EventItem]] = {}
    for outcome in report.outcomes:
        component = by_id.get(outcome.component)
        if component is None:
            continue
        result = "success" if outcome.ok else "failure"
        item = EventItem(
            component.id, component.name_en, component.name_ja, outcome.version, result,
            str(outcome.reason) if not outcome.ok and outcome.reason is not None else None,
            render(outcome.reason, "ja") if not outcome.ok and outcome.reason is not None else None,
        )
        buckets.setdefault((component.event_group.value, result), []).append(item)
    events = []
    for group in GROUP_ORDER:
        for result in ("failure", "success"):
            items = sorted(buckets.get((group, result), []), key=lambda item: order[item.component])
            if not items:
                continue
            used = (sources.get(item.component, "") for item in items)
            source = ", ".join(dict.fromkeys(url for url in used if url))
            events.append(Event("update", group, result, tuple(items), time, host, source))
    return events


def stale_event(
    component: Component,
    version: str | None,
    last_success: datetime.datetime | None,
    stale: bool,
    *,
    time: datetime.datetime,
    host: str,
    source: str,
) -> Event:
    """Return the Event for ``component`` becoming stale (``stale``) or fresh again."""
    reason: Reason | None = None
    if stale:
        reason = (
            Reason(N_("no successful update since %(time)s"), {"time": templates.format_date(last_success)})
            if last_success else Reason(N_("never updated successfully"))
        )
        outcome = "stale"
    else:
        outcome = "fresh"
    item = EventItem(component.id, component.name_en, component.name_ja, version, outcome,
                     str(reason) if reason else None, reason.render("ja") if reason else None)
    return Event("stale", component.event_group.value, outcome, (item,), time, host, source)


def node_event(
    node: str, heartbeat: datetime.datetime, down: bool, *, time: datetime.datetime, host: str
) -> Event:
    """Return the Event for fleet node ``node`` going down (``down``) or coming back, as the
    leader ``host`` saw it: its one item is the node, its reason the node's last heartbeat
    (``%COMPONENT%`` and ``%REASON%`` in the texts)."""
    outcome = "down" if down else "up"
    item = EventItem(node, node, node, None, outcome, templates.format_date(heartbeat))
    return Event("node", None, outcome, (item,), time, host, "")


def recovered_event(
    group: str,
    items: Sequence[EventItem],
    *,
    time: datetime.datetime,
    host: str,
    sources: Mapping[str, str],
) -> Event:
    """Return the Event saying that ``items`` (outcome ``recovered``, reason: the failure
    last notified) of event group ``group`` work again."""
    used = (sources.get(item.component, "") for item in items)
    source = ", ".join(dict.fromkeys(url for url in used if url))
    return Event("update", group, "recovered", tuple(items), time, host, source)


def self_test_event(*, time: datetime.datetime, host: str) -> Event:
    return Event("test", None, "test", (), time, host, "")


def compose(event: Event, subject_template: str, body_template: str, language: str) -> tuple[str, str]:
    """Return (subject, plain-text body) of ``event`` rendered with the templates."""
    context = templates.Context(
        items=[
            templates.Item(item.name(language), item.version, item.outcome, item.reason_in(language))
            for item in event.items
        ],
        time=event.time,
        host=event.host,
        source=event.source,
        language=language,
    )
    return templates.render_subject(subject_template, context), templates.render_body(body_template, context)


def payload(event: Event, summary: str, language: str) -> dict[str, object]:
    """Return the event as JSON-ready data: what an SNMP trap carries."""
    return {
        "kind": event.kind,
        "group": event.group,
        "outcome": event.outcome,
        "host": event.host,
        "time": event.time.astimezone().isoformat(timespec="seconds"),
        "summary": summary,
        "items": [
            {
                "id": item.component,
                "name": item.name(language),
                "version": item.version or "",
                "outcome": item.outcome,
                "reason": item.reason or "",
            }
            for item in event.items
        ],
    }
