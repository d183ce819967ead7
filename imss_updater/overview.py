"""What the status page and ``status`` show beyond the components: whether the daemon is
alive, licence expiry, the schedule in words. Pure code over plain data."""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass

HEARTBEAT_SECONDS = 30.0  # the daemon's loop records its heartbeat at least this often (loop.REPLAN_SECONDS)
HEARTBEAT_MISSED = 3  # this many missed heartbeats: "the updater is not running"
LICENSE_WARNING_DAYS = 30  # a licence expiring within this many days is flagged


def daemon_alive(heartbeat: datetime.datetime | None, now: datetime.datetime) -> bool:
    """Return True when the daemon's last heartbeat is recent enough (three periods)."""
    if heartbeat is None:
        return False
    return (now - heartbeat).total_seconds() <= HEARTBEAT_MISSED * HEARTBEAT_SECONDS


@dataclass(frozen=True)
class LicenseState:
    name: str
    expiry: datetime.date | None
    days_left: int | None  # None: not activated
    state: str  # "active", "expiring" (within LICENSE_WARNING_DAYS), "expired", "inactive"


def licenses(expiries: Mapping[str, datetime.date | None], today: datetime.date) -> list[LicenseState]:
    """Given each licence's expiry (None: not activated), return its state on ``today``
    (a licence is valid through its expiry day)."""
    states = []
    for name, expiry in expiries.items():
        if expiry is None:
            states.append(LicenseState(name, None, None, "inactive"))
            continue
        days = (expiry - today).days
        state = "expired" if days < 0 else "expiring" if days < LICENSE_WARNING_DAYS else "active"
        states.append(LicenseState(name, expiry, days, state))
    return states


def age_words(age: datetime.timedelta) -> str:
    """An age in English words, coarse as a person reads it: ``40 s``, ``5 min``, ``3 h``, ``2 days``."""
    amount, unit = age_parts(age)
    return f"{amount} {unit if unit != 'days' or amount != 1 else 'day'}"


def age_parts(age: datetime.timedelta) -> tuple[int, str]:
    """Return (amount, unit) for an age: unit one of ``s``, ``min``, ``h``, ``days``."""
    seconds = max(0, int(age.total_seconds()))
    if seconds < 120:
        return seconds, "s"
    if seconds < 2 * 3600:
        return seconds // 60, "min"
    if seconds < 2 * 86400:
        return seconds // 3600, "h"
    return seconds // 86400, "days"
