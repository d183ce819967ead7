"""Logging set-up for the CLI and the daemon: a level an operator chooses, and lines that
journald stores at the right priority.

Under systemd (stderr is the journal: ``JOURNAL_STREAM`` names its device and inode) each
record is one line with a ``<N>`` syslog priority prefix and no timestamp (journald adds
its own), so ``journalctl -p err -u imss-updater`` shows exactly the errors; a record with
several lines (a traceback) is folded into one line so that it stays one journal entry.
Elsewhere lines carry a timestamp. APScheduler's own INFO chatter ("Running job ...") is
kept at WARNING.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from typing import TextIO

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
          "error": logging.ERROR, "critical": logging.CRITICAL}
# syslog priorities (RFC 5424) for the journal's <N> prefix
PRIORITIES = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2}
FOLD = " \u2502 "  # between the lines of a folded multi-line record
QUIET_LOGGERS = ("apscheduler", "waitress.queue")
_OURS = "_imss_updater_handler"


class JournalFormatter(logging.Formatter):
    """``<N>logger: message`` on one line, for journald's stream protocol."""

    def __init__(self) -> None:
        super().__init__("%(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        priority = next((value for level, value in sorted(PRIORITIES.items(), reverse=True)
                         if record.levelno >= level), 7)
        return f"<{priority}>" + FOLD.join(line for line in text.splitlines() if line.strip())


def level_from(name: str | None) -> int | None:
    """Given a level name (``debug`` ... ``critical``, any case) or None, return the level.
    Raise ValueError naming the valid names for anything else."""
    if name is None or not name.strip():
        return None
    try:
        return LEVELS[name.strip().lower()]
    except KeyError:
        raise ValueError(f"unknown log level {name!r} (use one of: {', '.join(LEVELS)})") from None


def writes_to_journal(environ: Mapping[str, str], stream: TextIO) -> bool:
    """Return True when ``stream`` is the journal socket systemd connected us to."""
    expected = environ.get("JOURNAL_STREAM", "")
    if not expected:
        return False
    try:
        status = os.fstat(stream.fileno())
    except (OSError, ValueError):
        return False
    return expected == f"{status.st_dev}:{status.st_ino}"


def configure(
    verbosity: int,
    *,
    daemon: bool,
    level_name: str | None = None,
    environ: Mapping[str, str] = os.environ,
    stream: TextIO | None = None,
) -> None:
    """Set up the root logger.

    The CLI keeps stderr to its one-line reason unless ``-v`` (INFO) or ``-vv`` (DEBUG) or a
    level (``--log-level`` / ``IMSS_LOG_LEVEL``) asks for the log; the daemon always logs,
    at INFO unless told otherwise. Raise ValueError for an unknown level name.
    """
    stream = stream or sys.stderr
    chosen = level_from(level_name) or level_from(environ.get("IMSS_LOG_LEVEL"))
    if verbosity >= 2:
        chosen = logging.DEBUG
    elif verbosity == 1 and (chosen is None or chosen > logging.INFO):
        chosen = logging.INFO
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, _OURS, False):  # configured before in this process: replace it
            root.removeHandler(handler)
    if chosen is None and not daemon:
        if not root.handlers:  # (a host program's own handlers, e.g. pytest's, are left alone)
            root.setLevel(logging.CRITICAL + 1)
        return
    handler = logging.StreamHandler(stream)
    setattr(handler, _OURS, True)
    if writes_to_journal(environ, stream):
        handler.setFormatter(JournalFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(chosen or logging.INFO)
    for name in QUIET_LOGGERS:
        # Their INFO lines are per job/request; keep them only when debugging.
        logging.getLogger(name).setLevel(logging.DEBUG if chosen == logging.DEBUG else logging.WARNING)
