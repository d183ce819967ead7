"""Flood control of failure notifications (SPEC 4: RepeatFailureHours, NotifyRecovery): pure.

During an outage every scheduled run fails the same way. Of a run's failure events,
``decide`` keeps only the items that are due: a (group, component) failure not notified
since the component last worked, notified with another reason, or last notified at least
``RepeatFailureHours`` ago (0: every run). When a component whose failure was notified works
again, that failure is forgotten and, with ``NotifyRecovery``, the component goes into its
group's "recovered" message. What was notified (``Notified``, one per group and component)
is kept in PostgreSQL by ``outbox``; this module only decides.

Reasons are compared without their dates and times ("source asks to wait until 04:00" is
the same failure at 05:00), so that a reason quoting a moment does not defeat the rule.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from imss_updater.notify import events
from imss_updater.notify.events import Event, EventItem

Key = tuple[str, str]  # (event group, component id)

_MOMENTS = re.compile(
    r"\d{4}-\d{2}-\d{2}(?:[T ]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?(?:\s*(?:Z|[+-]\d{2}:?\d{2}|UTC|GMT))?"
    r"|\b\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:\s*(?:Z|[+-]\d{2}:?\d{2}|UTC|GMT))?"
)


def reason_key(reason: str | None) -> str:
    """Given a failure reason, return what decides whether two reasons are the same
    failure: the text with dates and times replaced and spaces collapsed."""
    return " ".join(_MOMENTS.sub("<time>", reason or "").split())


@dataclass(frozen=True)
class Notified:
    """The failure last notified for one (group, component) since it last worked."""

    group: str
    component: str
    reason: str
    first_notified_at: datetime.datetime  # when this outage was first notified
    last_notified_at: datetime.datetime  # when this reason was last sent

    @property
    def key(self) -> Key:
        return (self.group, self.component)


@dataclass(frozen=True)
class Policy:
    repeat_hours: int  # 0: every run
    recovery: bool


def is_due(
    last: Notified | None, reason: str | None, now: datetime.datetime, repeat_hours: int
) -> bool:
    """Given the failure last notified for a (group, component) (None: none since it last
    worked), the reason it fails with now, the time now and RepeatFailureHours, return
    whether the failure is to be sent now."""
    if last is None or repeat_hours == 0:
        return True
    if reason_key(last.reason) != reason_key(reason):
        return True
    return now - last.last_notified_at >= datetime.timedelta(hours=repeat_hours)


@dataclass
class Decision:
    """What one run notifies, and what the memory of notified failures becomes."""

    events: list[Event] = field(default_factory=list)  # to send, in order
    remember: list[Notified] = field(default_factory=list)  # failures sent now, per item
    forget: list[Key] = field(default_factory=list)  # failures that ended
    held_back: list[Key] = field(default_factory=list)  # failures not sent again yet

    def remembered_for(self, groups: set[str]) -> list[Notified]:
        """Return ``remember`` for the failures of ``groups`` only (those that reached a
        channel: a failure nobody was told about is not remembered)."""
        return [notified for notified in self.remember if notified.group in groups]


def decide(
    run_events: Sequence[Event],
    working: Sequence[tuple[str, EventItem]],
    memory: Mapping[Key, Notified],
    now: datetime.datetime,
    policy: Policy,
    *,
    host: str,
    sources: Mapping[str, str],
) -> Decision:
    """Given a run's update events (``events.from_run``), the components that worked in it
    without an outcome of their own (``working``: (group, item), e.g. checked and already up
    to date), the memory of notified failures and the time, return the Decision.

    Failure events keep only their due items (an event with none is dropped); other events
    are passed on unchanged; then one "recovered" event per group whose notified failures
    ended, when ``policy.recovery``.
    """
    decision = Decision()
    failing = {
        (event.group, item.component)
        for event in run_events
        if event.outcome == "failure" and event.group is not None
        for item in event.items
    }
    ended: dict[str, list[EventItem]] = {}

    def worked(group: str, item: EventItem) -> None:
        last = memory.get((group, item.component))
        if last is None or (group, item.component) in failing:
            return
        decision.forget.append(last.key)
        if policy.recovery:
            ended.setdefault(group, []).append(replace(item, outcome="recovered", reason=last.reason))

    for event in run_events:
        group = event.group
        if group is None:
            decision.events.append(event)
            continue
        if event.outcome != "failure":
            decision.events.append(event)
            if event.outcome == "success":
                for item in event.items:
                    worked(group, item)
            continue
        due: list[EventItem] = []
        for item in event.items:
            last = memory.get((group, item.component))
            if is_due(last, item.reason, now, policy.repeat_hours):
                due.append(item)
                since = last.first_notified_at if last is not None else now
                decision.remember.append(Notified(group, item.component, item.reason or "", since, now))
            else:
                decision.held_back.append((group, item.component))
        if due:
            decision.events.append(replace(event, items=tuple(due)))
    for group, item in working:
        worked(group, item)
    for group in events.GROUP_ORDER:
        if ended.get(group):
            decision.events.append(
                events.recovered_event(group, ended[group], time=now, host=host, sources=sources)
            )
    return decision
