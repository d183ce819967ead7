"""The Fleet page (SPEC 7): every gateway sharing the database, its role, heartbeat, last
check, mirror URL and installed versions (those behind the leader's marked in red, with
words), each node linking to its events on the logs page. The navigation shows the page
only in a fleet: Fleet/Enabled=yes or more than one node registered (``fleet_nav``)."""

from __future__ import annotations

from flask import Blueprint, render_template
from flask.typing import ResponseReturnValue

from imss_updater import fleet_view, overview
from imss_updater.database.connection import local_node
from imss_updater.database.db import DatabaseError
from imss_updater.web.context import _, console, language
from imss_updater.web.overview import age_words

blueprint = Blueprint("fleet", __name__)


def show_fleet() -> bool:
    """For the navigation: True in a fleet (a database error hides the link, never the page)."""
    shown = console().fleet_nav.cached()
    if shown is not None:
        return shown
    try:
        with console().pool.connection() as database:
            return console().fleet_nav.refresh(database)
    except DatabaseError:  # the page itself reports a database problem
        console().fleet_nav.keep()
        return console().fleet_nav.shown


def heartbeat_text(row: fleet_view.NodeRow) -> str:
    if row.heartbeat_age is None:
        return _("never")
    amount, unit = overview.age_parts(row.heartbeat_age)
    return _("%(age)s ago", age=age_words(amount, unit))


@blueprint.route("/fleet")
def page() -> ResponseReturnValue:
    with console().pool.connection() as database:
        view = database.fleet()
        catalog = database.catalog()
    rows = fleet_view.rows(view, catalog)
    leader = fleet_view.leader_of(view)
    behind = (fleet_view.behind_text(leader.mirror_behind_since, leader.mirror_behind_reason, language())
              if leader is not None and leader.mirror_behind_since is not None else None)
    names = {component.id: component.name_ja if language() == "ja" else component.name_en
             for component in catalog}
    return render_template(
        "fleet.html", rows=rows, catalog=catalog, names=names, leader=leader, mirror_behind=behind,
        heartbeat_text=heartbeat_text, this_node=console().config.node or local_node(),
    )
