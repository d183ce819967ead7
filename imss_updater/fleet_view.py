"""What ``fleet status`` and the console's Fleet page show (SPEC 7): every gateway sharing the
database, its role, mirror URL, heartbeat (down after three missed heartbeats), last check,
and each component's installed version, marked when it is behind the leader's. Pure code
over what ``Database.fleet`` read."""

from __future__ import annotations

import contextlib
import datetime
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from imss_updater import overview
from imss_updater.catalog import Component
from imss_updater.database.fleet import FleetNode, FleetView
from imss_updater.i18n import N_, Reason, format_moment, gettext, stored_text
from imss_updater.versions import Version, VersionError

LEADER = "leader"


@dataclass(frozen=True)
class NodeComponent:
    id: str
    version: str | None  # as displayed (15.697.00), None: nothing installed
    behind: bool  # older than the leader's installed version (or missing where it has one)
    leader_version: str | None  # the leader's, as displayed, when behind


@dataclass(frozen=True)
class NodeRow:
    node: FleetNode
    mirror_url: str | None
    heartbeat_age: datetime.timedelta | None
    down: bool
    leader: bool
    components: list[NodeComponent]

    @property
    def behind(self) -> bool:
        return any(component.behind for component in self.components)


def behind_reason(since: datetime.datetime, reason: str | None) -> Reason:
    """The leader's mirror lacks the origin's release (fleet/behind.py; ``reason`` as
    ``tb_fleet_node.mirror_behind_reason`` keeps it): the line ``status``, ``fleet status``
    and the Fleet page show."""
    why: str | Reason = reason or ""
    if reason and reason.startswith('{"msgid"'):
        with contextlib.suppress(ValueError, KeyError, TypeError, AssertionError):
            why = Reason.from_json(json.loads(reason))
    return Reason(N_("mirror behind the origin since %(since)s: %(reason)s"),
                  {"since": since.isoformat(timespec="seconds"), "reason": why})


def behind_text(since: datetime.datetime, reason: str | None, language: str = "en") -> str:
    return behind_reason(since, reason).render(language)


def mirror_url(address: str | None) -> str | None:
    """The URL members take the mirror from (SPEC 7: ``http://IMSS_MIRROR/activeupdate/``)."""
    return f"http://{address}/activeupdate/" if address else None


def node_down(heartbeat: datetime.datetime | None, now: datetime.datetime) -> bool:
    """A node is down when its daemon missed three heartbeats (or never wrote one): the same
    rule as the status page's "the updater is not running"."""
    return not overview.daemon_alive(heartbeat, now)


def leader_of(view: FleetView) -> FleetNode | None:
    """The node recorded as leader (the freshest heartbeat, should two rows say so), or None."""
    leaders = [node for node in view.nodes if node.role == LEADER]
    if not leaders:
        return None
    oldest = datetime.datetime.min.replace(tzinfo=datetime.UTC)
    return max(leaders, key=lambda node: node.heartbeat or oldest)


def rows(view: FleetView, catalog: Sequence[Component]) -> list[NodeRow]:
    """Return one row per node, by name, with its versions in catalog order."""
    leader = leader_of(view)
    reference = view.installed.get(leader.node, {}) if leader is not None else {}
    found = []
    for node in view.nodes:
        installed = view.installed.get(node.node, {})
        is_leader = leader is not None and node.node == leader.node
        components = [
            _component(component.id, installed.get(component.id),
                       None if is_leader or leader is None else reference.get(component.id))
            for component in catalog
        ]
        found.append(NodeRow(
            node=node,
            mirror_url=mirror_url(node.mirror_address),
            heartbeat_age=(view.now - node.heartbeat) if node.heartbeat else None,
            down=node_down(node.heartbeat, view.now),
            leader=is_leader,
            components=components,
        ))
    return found


def _component(component_id: str, raw: str | None, leader_raw: str | None) -> NodeComponent:
    mine, theirs = _parse(raw), _parse(leader_raw)
    behind = theirs is not None and (mine is None or mine < theirs)
    return NodeComponent(
        id=component_id,
        version=str(mine) if mine is not None else raw,
        behind=behind,
        leader_version=str(theirs) if behind and theirs is not None else None,
    )


def _parse(raw: str | None) -> Version | None:
    if raw is None:
        return None
    try:
        return Version.parse(raw)
    except VersionError:
        return None


def as_json(view: FleetView, found: Sequence[NodeRow]) -> dict[str, Any]:
    leader = leader_of(view)
    return {
        "leader": leader.node if leader is not None else None,
        "nodes": [
            {
                "node": row.node.node,
                "role": row.node.role,
                "leader": row.leader,
                "mirror_url": row.mirror_url,
                "heartbeat": row.node.heartbeat.isoformat() if row.node.heartbeat else None,
                "heartbeat_age_seconds": (int(row.heartbeat_age.total_seconds())
                                          if row.heartbeat_age is not None else None),
                "down": row.down,
                "last_check": row.node.last_check.isoformat() if row.node.last_check else None,
                "source_mode": row.node.source_mode,
                "mirror_behind_since": (row.node.mirror_behind_since.isoformat()
                                        if row.leader and row.node.mirror_behind_since else None),
                "mirror_behind_reason": (stored_text(row.node.mirror_behind_reason, "en")
                                         if row.leader and row.node.mirror_behind_since else None),
                "behind_leader": row.behind,
                "components": [
                    {"id": item.id, "version": item.version, "behind_leader": item.behind,
                     "leader_version": item.leader_version}
                    for item in row.components
                ],
            }
            for row in found
        ],
    }


# a node's role and where it takes its updates from, in words (the Fleet page's labels too)
ROLE_LABELS = {"leader": N_("Leader"), "member": N_("Member")}
SOURCE_LABELS = {
    "origin": N_("origin"),
    "mirror": N_("leader's mirror"),
    "fallback": N_("origin (mirror unreachable)"),
}


def _word(language: str, labels: dict[str, str], stored: str) -> str:
    """``stored`` as English shows it (the stored word), else its label in ``language``."""
    if language == "en" or stored not in labels:
        return stored
    return gettext(language, labels[stored])


def as_text(found: Sequence[NodeRow], language: str = "en") -> str:
    """A block per node: its state line, then a line per component (in ``language``; in
    English the roles and source modes are the stored words; names and versions as stored)."""
    lines = []
    never = gettext(language, N_("never"))
    for row in found:
        heartbeat = (never if row.heartbeat_age is None
                     else gettext(language, N_("%(age)s ago"), age=overview.age_words(row.heartbeat_age)))
        state = gettext(language, N_("DOWN") if row.down else N_("up"))
        last_check = format_moment(row.node.last_check, language) if row.node.last_check else never
        lines.append(gettext(
            language, N_("%(node)s  %(role)s  %(state)s (heartbeat %(heartbeat)s)  last check %(check)s"
                         "  source %(source)s  mirror %(mirror)s"),
            node=row.node.node, role=_word(language, ROLE_LABELS, row.node.role), state=state,
            heartbeat=heartbeat, check=last_check,
            source=_word(language, SOURCE_LABELS, row.node.source_mode), mirror=row.mirror_url or "-"))
        if row.leader and row.node.mirror_behind_since is not None:
            lines.append("    " + behind_text(row.node.mirror_behind_since, row.node.mirror_behind_reason,
                                              language))
        for item in row.components:
            mark = ("  " + gettext(language, N_("BEHIND the leader (%(version)s)"),
                                   version=item.leader_version or gettext(language, N_("installed")))
                    if item.behind else "")
            lines.append(f"    {item.id:<24} {item.version or '-'}{mark}")
    return "\n".join(lines) if lines else gettext(language, N_("no node has registered in this database"))
