"""Whether the scan and policy services run: Service/ScanServiceStatus and
PolicyServiceStatus (seed 001), run without a shell, exit status 0 = running."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from imss_updater import i18n, process
from imss_updater.i18n import N_, Reason

log = logging.getLogger(__name__)

STATUS_TIMEOUT_SECONDS = 5.0  # a status script answers at once; a page must not hang on one
CACHE_SECONDS = 30.0  # a page view at most every 30 s runs the scripts


@dataclass(frozen=True)
class ServiceState:
    """``running`` True or False, or None when unknown; ``reason`` says why it is unknown, in
    English (or a msgid such as NOT_CONFIGURED), ``why`` the same as a Reason when the
    command could not run: ``reason_in`` renders it in a language."""

    running: bool | None
    reason: str | None = None
    exit_status: int | None = None  # the status command's, when it ran
    why: Reason | str | None = None

    @property
    def word(self) -> str:
        """``running``, ``stopped`` or ``unknown (reason)``: one line for the CLI and logs."""
        if self.running is None:
            return f"unknown ({self.reason})"
        return "running" if self.running else "stopped"

    def reason_in(self, language: str) -> str:
        """Why the state is unknown, in ``language`` ("" when it is known)."""
        if isinstance(self.why, Reason):
            return self.why.render(language)
        if self.reason is None:
            return ""
        return i18n.gettext(language, self.reason)  # a msgid, or an English text as it is


NOT_CONFIGURED = N_("no status command is set")  # translated where shown (web/overview.py)


def probe(argv: Sequence[str], *, timeout: float = STATUS_TIMEOUT_SECONDS) -> ServiceState:
    """Given a status command (empty: none set), run it and return the service's state:
    running on exit status 0, stopped on any other, unknown when it cannot run or hangs."""
    if not argv:
        return ServiceState(None, NOT_CONFIGURED)
    try:
        result = process.run(argv, timeout=timeout, check=False)
    except process.CommandError as error:
        log.warning("service status unknown: %s", error.reason)
        return ServiceState(None, error.reason, why=error.why)
    return ServiceState(result.returncode == 0, exit_status=result.returncode)


class ServiceCache:
    """Remembers each status command's answer for ``seconds`` (thread-safe: the console's
    threads share one)."""

    def __init__(self, seconds: float = CACHE_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self.clock = clock
        self._lock = threading.Lock()
        self._answers: dict[tuple[str, ...], tuple[float, ServiceState]] = {}

    def state(self, argv: Sequence[str]) -> ServiceState:
        key = tuple(argv)
        with self._lock:
            cached = self._answers.get(key)
            if cached is not None and self.clock() - cached[0] < self.seconds:
                return cached[1]
        answer = probe(key)  # outside the lock: two first views may both run it, none waits
        with self._lock:
            self._answers[key] = (self.clock(), answer)
        return answer
