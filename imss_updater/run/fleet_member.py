"""A fleet member's update source (SPEC 7): the leader's mirror, or the origin in fallback.

With ``Fleet/Enabled=yes`` a node that does not lead reads the components of both roles
(UpdateServer and TMASEServerurl) from the current leader's mirror, whose address it reads
from the database, never from a setting. It trusts the mirror no more than the origin: the
mirror serves the origin's server.ini and server.ini.sig byte for byte, so the member checks
them against the pins of the origin(s) it would otherwise use (``trust``): a leader cannot
serve an unsigned index where the origin signs, nor an older signed one than the member
accepted from either, and every package is verified by the member itself.

When the mirror cannot be reached (or no leader serves one) for ``Fleet/FallbackMinutes``,
counted from the recorded ``mirror_unreachable_since``, the member uses the origin directly
(``source_mode = 'fallback'``) and goes back to the mirror the first time it answers again.
A mirror that answers with something the member refuses is reachable: it is not a reason to
fall back, it is a failure of that run.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
from collections.abc import Callable, Mapping

from imss_updater.database import fleet_member as fleet_db
from imss_updater.database.db import Database
from imss_updater.fleet_view import behind_reason
from imss_updater.i18n import N_, Reason
from imss_updater.run.context import RunContext
from imss_updater.settings import Settings

log = logging.getLogger(__name__)

NO_LEADER = N_("no fleet leader serves a mirror")

IndexFetch = Callable[[str, tuple[str, ...], list[str]], object]
"""(base URL, the pin keys whose pins apply, a list appended to if unreachable) -> the
source's index, or the reason it cannot be used (a str)."""


def member_indexes(
    context: RunContext,
    settings: Settings,
    origin_bases: Mapping[str, str],
    fetch: IndexFetch,
) -> tuple[dict[str, str], dict[str, object]] | None:
    """Given each component's origin base URL, return (each component's base URL, the
    index or failure reason per base URL) read from the leader's mirror; or None when this
    node reads the origin itself (not in a fleet, the leader, or in fallback)."""
    if not settings.fleet_enabled:
        return None
    database = context.database
    node = fleet_db.node_of(database)
    current = context.write("to read the fleet leader", lambda: fleet_db.leader(database), None)
    if current is not None and current.node == node:
        return None  # the leader reads the origin and fills the mirror
    before = context.write("to read this node's update source",
                           lambda: fleet_db.member_source(database, node),
                           fleet_db.MemberSource("origin", None, None))
    origins = tuple(dict.fromkeys(origin_bases.values()))
    mirror = current.mirror_url if current is not None else None
    if mirror is not None:
        unreachable: list[str] = []
        index = fetch(mirror, origins, unreachable)
        if not unreachable:
            if before.mode == "fallback":
                log.info("fleet: the leader's mirror %s answers again: updating from it, no longer "
                         "from the origin", mirror)
            elif (before.mode, before.mirror_url) != ("mirror", mirror):
                log.info("fleet: updating from the mirror of the leader %s (%s)",
                         current.node if current else "?", mirror)
            _record(context, node, fleet_db.MemberSource("mirror", mirror, None))
            return {component_id: mirror for component_id in origin_bases}, {mirror: index}
        reason = Reason(N_("the leader's mirror %(mirror)s cannot be reached: %(reason)s"),
                        {"mirror": mirror, "reason": index if isinstance(index, Reason) else str(index)})
    elif current is not None:
        reason = Reason(N_("the leader %(node)s serves no mirror (no IMSS_MIRROR)"), {"node": current.node})
    else:
        reason = Reason(NO_LEADER)
    now = datetime.datetime.now(datetime.UTC)
    since = before.unreachable_since or now
    limit = datetime.timedelta(minutes=settings.fleet_fallback_minutes)
    if now - since >= limit:
        if before.mode != "fallback":
            log.warning("fleet: %s since %s (Fleet/FallbackMinutes=%d): using the origin directly",
                        reason, since.isoformat(timespec="seconds"), settings.fleet_fallback_minutes)
        _record(context, node, fleet_db.MemberSource("fallback", mirror, since))
        return None
    mode = "fallback" if before.mode == "fallback" else "mirror"
    log.warning("fleet: %s; the origin is used directly if it stays so until %s", reason,
                (since + limit).isoformat(timespec="seconds"))
    _record(context, node, fleet_db.MemberSource(mode, mirror, since))
    base = mirror or "fleet mirror"
    return {component_id: base for component_id in origin_bases}, {base: reason}


def _record(context: RunContext, node: str, source: fleet_db.MemberSource) -> None:
    context.write("to record this node's update source",
                  lambda: fleet_db.record_member_source(context.database, node, source), None)


def source_line(source: fleet_db.MemberSource, *, enabled: bool) -> Reason | None:
    """One line for ``status`` and the status page: where this node takes its updates
    (None outside a fleet, and on a node that has never been a member), and whether the
    leader's mirror is behind the origin (``behind_line``)."""
    if not enabled:
        return None
    line = _where(source)
    behind = behind_line(source)
    if behind is None:
        return line
    if line is None:
        return behind
    return Reason(N_("%(line)s; %(behind)s"), {"line": line, "behind": behind})


def behind_line(source: fleet_db.MemberSource) -> Reason | None:
    """The leader's mirror lacks the origin's release since a sync could not complete it
    (fleet/behind.py), or None."""
    found = source.mirror_behind
    return None if found is None else behind_reason(found.since, found.reason)


def _where(source: fleet_db.MemberSource) -> Reason | None:
    if source.mirror_url is None and source.mode == "origin":
        return None
    since = source.unreachable_since.isoformat(timespec="seconds") if source.unreachable_since else "?"
    mirror = source.mirror_url or "-"
    if source.mode == "fallback":
        return Reason(N_("fallback: from the origin directly "
                         "(the leader's mirror unreachable since %(since)s)"), {"since": since})
    if source.mode == "mirror" and source.unreachable_since is not None:
        return Reason(N_("the leader's mirror %(mirror)s, unreachable since %(since)s"),
                      {"mirror": mirror, "since": since})
    if source.mode == "mirror":
        return Reason(N_("the leader's mirror %(mirror)s"), {"mirror": mirror})
    return Reason(N_("the origin (this node leads)"))


def source_of(database: Database, settings: Settings | None) -> tuple[fleet_db.MemberSource, bool]:
    """(this node's source, whether the fleet is on), for ``status`` and the page: the
    origin on the leader, else as its runs recorded it; with the leader's mirror's state."""
    if settings is None or not settings.fleet_enabled:
        return fleet_db.MemberSource("origin", None, None), False  # a gateway alone: no query
    node = fleet_db.node_of(database)
    current = fleet_db.leader(database)
    if current is not None and current.node == node:
        source = fleet_db.MemberSource("origin", current.mirror_url, None)
    else:
        source = fleet_db.member_source(database, node)
    if current is not None:
        source = dataclasses.replace(source, mirror_behind=fleet_db.mirror_behind(database, current.node))
    return source, True
