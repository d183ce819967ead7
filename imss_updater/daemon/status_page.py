"""The status page inside the daemon: its session key and its server thread."""

from __future__ import annotations

import logging
import os
import secrets
import threading
from collections.abc import Callable
from pathlib import Path

from imss_updater import config
from imss_updater.run.report import Progress, RunReport

log = logging.getLogger(__name__)

TimedRun = Callable[[Callable[[], RunReport | None]], RunReport | None]
"""Calls a scheduled run and times it for ``/metrics`` (``RunMetrics.scheduled_run``)."""


def session_key(state: Path) -> bytes:
    """Return the status page's session-signing key, created once in the state directory
    (0600), so that sessions survive a restart of the daemon."""
    state.mkdir(parents=True, exist_ok=True)
    path = state / "web-session.key"
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    key = secrets.token_bytes(32)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(key)
    return key




def start(
    bootstrap: config.Bootstrap, dsn: str, *, scheduler_ok: Callable[[], bool]
) -> tuple[Progress, TimedRun, Callable[[], None]] | None:
    """Serve the status page with waitress (threads, no fork, the limits of ``web.server``)
    on IMSS_WEB in a thread of this process. Return the progress callback that feeds its
    metrics, the function that times a scheduled run for them, and the one that stops it;
    None when the port cannot be had (logged: the daemon goes on, updates matter more than
    the page)."""
    from imss_updater.web import RunMetrics, WebConfig, create_app
    from imss_updater.web.server import serve

    metrics = RunMetrics()
    app = create_app(WebConfig(
        dsn=dsn,  # the embedded DSN names its password file; no connection yet
        root=bootstrap.root,
        secret_key=session_key(bootstrap.state),
        scheduler_ok=scheduler_ok,
        metrics=metrics,
        host=bootstrap.web_host,
        state=bootstrap.state,
        node=bootstrap.node,
    ))
    try:
        server = serve(app, bootstrap.web_host, bootstrap.web_port)
    except OSError as error:
        log.error("status page not started on %s:%s: %s", bootstrap.web_host, bootstrap.web_port, error)
        return None
    threading.Thread(target=server.run, name="status-page", daemon=True).start()
    log.info("status page on http://%s:%s/", bootstrap.web_host, bootstrap.web_port)
    return metrics.progress, metrics.scheduled_run, server.close
