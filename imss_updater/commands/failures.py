"""How a command ends: its exit status (SPEC 5) and ``CommandFailed``, the one line on stderr.

0 success; 1 the command ran but something failed (a component, a restart, a check that could
not reach a source); 2 usage or configuration error; 3 another process holds the download lock.
"""

from __future__ import annotations

from imss_updater.i18n import Reason

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_LOCKED = 3


class CommandFailed(Exception):
    """A command failed: ``reason`` (rendered in the CLI's language) and the exit code."""

    def __init__(self, reason: str | Reason, code: int = EXIT_FAILED) -> None:
        super().__init__(str(reason))
        self.reason = reason
        self.code = code
