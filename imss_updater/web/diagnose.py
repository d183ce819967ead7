"""The Diagnose page: the steps of ``imss-updater diagnose`` (the same ``diagnose`` module),
run when an administrator asks (POST), each shown PASS/FAIL/SKIP with its hint.

Bounded: every network wait is capped at ``NETWORK_TIMEOUT`` seconds, and the page waits
at most ``PAGE_SECONDS`` for the whole run; steps still running then are reported as not
finished (they end by themselves in the background, bounded by the same caps). One
diagnosis runs at a time per console: a second request while one runs is told so.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from flask import Blueprint, current_app, render_template, request
from flask.typing import ResponseReturnValue

from imss_updater import diagnose
from imss_updater.database.db import Database, DatabaseError
from imss_updater.i18n import N_, Reason
from imss_updater.web.context import WebConfig, console, language

log = logging.getLogger(__name__)
blueprint = Blueprint("diagnose", __name__)

NETWORK_TIMEOUT = 5.0  # each connect, read, handshake and server.ini fetch on the page
PAGE_SECONDS = 45.0  # the longest the page waits for all steps (under a browser's patience)


@dataclass(frozen=True)
class Line:
    """One step as the page shows it, in the request's language."""

    name: str
    result: str  # PASS, FAIL or SKIP
    detail: str
    hint: str


def run_bounded(config: WebConfig, seconds: float = PAGE_SECONDS) -> list[diagnose.Step] | None:
    """Run the diagnosis for the console's database and root, waiting at most ``seconds``;
    return the steps (a last "time limit" FAIL step when it did not finish), or None when
    another diagnosis is still running."""
    busy: threading.Lock = current_app.extensions.setdefault("imss_diagnose", threading.Lock())
    if not busy.acquire(blocking=False):
        return None
    steps: list[diagnose.Step] = []
    worker = threading.Thread(target=_run, args=(config, steps, busy), name="diagnose", daemon=True)
    worker.start()
    worker.join(seconds)
    shown = list(steps)
    if worker.is_alive():
        log.warning("diagnose: the page stopped waiting after %s s; %s steps done", seconds, len(shown))
        shown.append(diagnose.Step(
            Reason(N_("time limit")), False,
            Reason(N_("the diagnosis did not finish within %(seconds)s s; the steps after the last one "
                      "shown are still waiting on the network"), {"seconds": f"{seconds:.0f}"}),
            Reason(N_("run `imss-updater diagnose` on the gateway for the whole report"))))
    return shown


def _run(config: WebConfig, steps: list[diagnose.Step], busy: threading.Lock) -> None:
    """The worker: its own database connection (the page may stop waiting before it ends)."""
    try:
        try:
            database = Database(config.dsn)
        except DatabaseError as error:
            diagnose.run_diagnosis(None, str(error), config.root, network_timeout=NETWORK_TIMEOUT,
                                   steps=steps)
            return
        with database:
            diagnose.run_diagnosis(database, None, config.root, network_timeout=NETWORK_TIMEOUT,
                                   steps=steps)
    except Exception:  # a bug in a step must not kill the thread silently with the lock held
        log.exception("diagnose: a step failed unexpectedly")
        steps.append(diagnose.Step(Reason(N_("diagnosis")), False,
                                   Reason(N_("a step failed unexpectedly (see the log)"))))
    finally:
        busy.release()


def lines(steps: list[diagnose.Step]) -> list[Line]:
    shown = []
    for step in steps:
        name, detail, hint = step.texts(language())
        shown.append(Line(name, step.result, detail, hint if step.ok is not True else ""))
    return shown


@blueprint.route("/diagnose", methods=["GET", "POST"])
def page() -> ResponseReturnValue:
    """GET shows the button; POST (an administrator, with the CSRF token) runs the steps."""
    steps = run_bounded(console().config) if request.method == "POST" else []
    return render_template(
        "diagnose.html", seconds=f"{NETWORK_TIMEOUT:.0f}", busy=steps is None,
        steps=lines(steps) if steps else None,
        failures=sum(1 for step in steps or [] if step.ok is False),
    )
