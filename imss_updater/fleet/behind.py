"""The leader's mirror behind the origin (SPEC 7): a sync that could not complete a release.

When the leader cannot mirror the origin's release (fleet/sync.py: a package that times
out, answers 5xx, fails its signature, does not fit on the disk; or an index it cannot
use), nothing is published and every node keeps the release it has. What the leader's
administrators get is what a failed update gives them on a single gateway:

- one failure event of the leader's node per component the fleet updates that is not
  mirrored (``record``: added to the leader's own scheduled run, so the run's failure
  notification, its flood control (notify/repeat.py) and the recovery message when the
  component works again all apply as they do to any failed update);
- the mirror's state, since when it is behind and why (``tb_fleet_node.mirror_behind_*``,
  sql/017), shown by ``status``, ``fleet status`` and the Fleet page (``fleet_view.behind_text``),
  cleared by
  the first sync that publishes the origin's release or finds it current.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass

from imss_updater.catalog import Component
from imss_updater.fleet.sync import PackageFailure, SyncResult
from imss_updater.i18n import N_, Reason, stored
from imss_updater.run.check import base_url
from imss_updater.run.context import RunContext
from imss_updater.run.planner import unusable
from imss_updater.run.report import RunReport
from imss_updater.settings import Settings
from imss_updater.versions import Version

NOT_MIRRORED = N_("not mirrored for the fleet: %(reason)s (the mirror keeps its current release)")


@dataclass(frozen=True)
class Behind:
    """What one failed sync left undone: the components not mirrored (id, the version the
    origin offers, the cause) and the one line the mirror's state keeps (``stored``)."""

    failures: tuple[tuple[str, Version | None, str], ...]
    summary: str  # i18n.stored(): a Reason as JSON


def from_result(result: SyncResult) -> Behind | None:
    """The packages a sync could not mirror (None: it published, or the release was current)."""
    if not result.failed:
        return None
    failures = list(result.failed.values())
    return Behind(tuple((f.component, f.version, f.reason) for f in failures), _summary(failures))


def from_error(catalog: Sequence[Component], settings: Settings, today: datetime.date, reason: str) -> Behind:
    """A sync that could not start or write its release (the index unusable, the disk):
    every component the fleet updates from the UpdateServer is not mirrored, for ``reason``."""
    base = settings.update_server.rstrip("/")
    wanted = [component.id for component in catalog
              if base_url(component, settings).rstrip("/") == base
              and component.id in settings.scheduled_components
              and unusable(component, settings, today) is None]
    return Behind(tuple((component_id, None, reason) for component_id in wanted), stored(reason))


def _summary(failures: Sequence[PackageFailure]) -> str:
    first = Reason(N_("%(component)s: %(reason)s"),
                   {"component": failures[0].component, "reason": failures[0].reason})
    if len(failures) == 1:
        return stored(first)
    return stored(Reason(N_("%(first)s (and %(count)s more)"), {"first": first, "count": len(failures) - 1}))


def record(context: RunContext, report: RunReport, catalog: Sequence[Component], behind: Behind) -> None:
    """Record each component not mirrored as a failure of this (the leader's) scheduled run:
    an event of this node and an outcome of ``report``, which the run's notifications use."""
    by_id = {component.id: component for component in catalog}
    for component_id, version, cause in behind.failures:
        component = by_id.get(component_id)
        if component is not None:
            context.record_failure(report, report.kind, component, version,
                                   Reason(NOT_MIRRORED, {"reason": cause}), cause_logged=True)

