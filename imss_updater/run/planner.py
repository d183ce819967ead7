"""The core decisions of a run, as pure functions over plain data (no I/O).

Which components to update, why the others are left alone, and which services to
restart afterwards are decided here, so they can be tested exhaustively and read in
one place.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from imss_updater.catalog import Component
from imss_updater.i18n import N_, Reason
from imss_updater.settings import Settings
from imss_updater.source.serverini import Entry
from imss_updater.versions import ABSENT_DISPLAY, Version


class Availability(StrEnum):
    KNOWN = "known"  # the source offers a version
    ABSENT = "absent"  # the source does not carry it: shown as 0.0
    UNKNOWN = "unknown"  # the source could not be reached or read: shown as Unknown


@dataclass(frozen=True)
class Offer:
    """What a source offers for one component."""

    availability: Availability
    entry: Entry | None = None
    base_url: str | None = None
    reason: str | Reason | None = None  # why Unknown, or why the entry is unusable
    authenticated: bool = False  # the index offering it carried a valid signature (SPEC 3.1)

    @property
    def version(self) -> Version | None:
        return self.entry.version if self.entry else None

    def display(self) -> str | None:
        """The available version as the status shows it: version, ``0.0``, or None (Unknown)."""
        if self.availability is Availability.KNOWN and self.entry:
            return self.entry.version.display
        if self.availability is Availability.ABSENT:
            return ABSENT_DISPLAY
        return None


class Mode(StrEnum):
    SCHEDULED = "scheduled"
    MANUAL = "manual"


@dataclass(frozen=True)
class Decision:
    component: Component
    update: bool
    reason: str | Reason  # why it is (not) updated, one line
    refused: bool = False  # a manual request that cannot be honoured (a failure, not a skip)


def is_update_available(current: Version | None, offer: Offer) -> bool:
    """Return True when the offer is a known version newer than ``current``."""
    version = offer.version
    if offer.availability is not Availability.KNOWN or version is None:
        return False
    return current is None or version > current


def unusable(component: Component, settings: Settings, today: datetime.date) -> Reason | None:
    """Return why ``component`` cannot be updated at all (licence not activated or expired,
    feature switched off), or None when it can."""
    if not settings.license_active(component.license, today):
        expiry = settings.licenses.get(component.license)
        if expiry is None:
            return Reason(N_("%(license)s license is not activated"), {"license": component.license})
        return Reason(N_("%(license)s license expired on %(date)s"),
                      {"license": component.license, "date": expiry.isoformat()})
    if not settings.feature_enabled(component.feature):
        return Reason(N_("disabled (Scan/%(feature)s=no)"), {"feature": component.feature})
    return None


def decide(
    components: Sequence[Component],
    settings: Settings,
    current: Mapping[str, Version | None],
    offers: Mapping[str, Offer],
    mode: Mode,
    requested: Iterable[str] | None,
    today: datetime.date,
) -> list[Decision]:
    """Given the catalog, settings, installed and offered versions, return one Decision per
    component considered, in catalog order.

    ``requested`` is None for "all" (the schedule, or ``update --all``); otherwise only the
    named components are considered. A scheduled run considers only scheduled components
    and is silent about the others' licences; a manual request for an unlicensed or
    disabled component is refused with the reason.
    """
    wanted = None if requested is None else set(requested)
    decisions: list[Decision] = []
    for component in components:
        if wanted is not None and component.id not in wanted:
            continue
        if mode is Mode.SCHEDULED and component.id not in settings.scheduled_components:
            continue
        explicit = wanted is not None
        why_not = unusable(component, settings, today)
        if why_not is not None:
            decisions.append(Decision(component, False, why_not, refused=explicit))
            continue
        offer = offers.get(component.id, Offer(Availability.UNKNOWN, reason="not checked"))
        installed = current.get(component.id)
        if offer.availability is Availability.UNKNOWN:
            decisions.append(
                Decision(component, False, Reason(N_("available version unknown: %(reason)s"),
                                                  {"reason": offer.reason}), refused=True)
            )
        elif offer.availability is Availability.ABSENT:
            decisions.append(Decision(component, False, Reason(N_("not offered by the update source"))))
        elif offer.version is not None and is_update_available(installed, offer):
            shown = installed.display if installed else "none"
            decisions.append(Decision(component, True, f"{shown} -> {offer.version.display}"))
        else:
            decisions.append(Decision(component, False, Reason(N_("already up to date"))))
    return decisions


@dataclass(frozen=True)
class Restarts:
    scan: bool
    policy: bool


def restarts_for(changed: Iterable[Component]) -> Restarts:
    """Given the components changed on disk by a run, return which services to restart:
    the scan service when anything changed, the policy service when an engine changed."""
    changed = list(changed)
    return Restarts(scan=bool(changed), policy=any(component.is_engine for component in changed))


def offers_from_indexes(
    components: Sequence[Component],
    base_urls: Mapping[str, str],
    indexes: Mapping[str, object],
) -> dict[str, Offer]:
    """Given each component's base URL and, per base URL, either a parsed SourceIndex or the
    reason it could not be had (a str or a Reason), return each component's Offer."""
    from imss_updater.source.serverini import SourceIndex  # local: keeps the module's imports light

    offers: dict[str, Offer] = {}
    for component in components:
        base = base_urls[component.id]
        index = indexes.get(base)
        if not isinstance(index, SourceIndex):
            why = index if isinstance(index, Reason) else str(index)
            offers[component.id] = Offer(Availability.UNKNOWN, base_url=base, reason=why)
            continue
        entry = index.lookup(component.au_key, component.is_engine)
        problem = index.problem(component.au_key)
        signed = index.authenticated
        if entry is not None:
            offers[component.id] = Offer(Availability.KNOWN, entry=entry, base_url=base,
                                         authenticated=signed)
        elif problem is not None:  # listed, but the entry cannot be read
            offers[component.id] = Offer(Availability.UNKNOWN, base_url=base, reason=problem,
                                         authenticated=signed)
        else:
            offers[component.id] = Offer(Availability.ABSENT, base_url=base, authenticated=signed)
    return offers


def is_stale(
    last_success: datetime.datetime | None, stale_after_days: int | None, now: datetime.datetime
) -> bool:
    """Return True when a component's last successful update is older than its threshold.

    ``stale_after_days`` None means never stale (engines by default). A component never
    updated by this updater has no reference time and is not flagged.
    """
    if stale_after_days is None or last_success is None:
        return False
    return now - last_success > datetime.timedelta(days=stale_after_days)


SCHEDULE_INTERVAL_SECONDS = {"15min": 900, "hourly": 3600, "daily": 86400, "weekly": 7 * 86400}


def lock_stuck(held: datetime.timedelta, settings: Settings) -> bool:
    """Given how long scheduled runs have found the download lock busy without a break,
    return True when that is a failure rather than a skip: busy at two scheduled runs in a
    row. The next scheduled run comes at least one interval minus the random delay later,
    so that is the threshold."""
    interval = SCHEDULE_INTERVAL_SECONDS.get(settings.schedule_frequency, 900)
    jitter = min(settings.random_delay_seconds, interval // 2)
    return held.total_seconds() >= interval - jitter
