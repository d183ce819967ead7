"""In-process counters for ``/metrics`` that the database does not keep.

The daemon passes one RunMetrics to ``create_app`` and may feed it from its scheduler
too (``progress`` is an Updater progress callback; ``observe_check`` takes seconds).
"""

from __future__ import annotations

import threading


class RunMetrics:
    """Thread-safe: bytes downloaded and the last check's duration."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.bytes_downloaded = 0
        self.last_check_seconds: float | None = None
        self._seen: dict[str, int] = {}

    def add_downloaded(self, count: int) -> None:
        with self.lock:
            self.bytes_downloaded += count

    def observe_check(self, seconds: float) -> None:
        with self.lock:
            self.last_check_seconds = seconds

    def progress(self, component_id: str, phase: str, done: int, total: int) -> None:
        """An Updater progress callback that counts downloaded bytes."""
        with self.lock:
            if phase != "downloading":
                self._seen.pop(component_id, None)
                return
            before = self._seen.get(component_id, 0)
            self.bytes_downloaded += max(0, done - before)
            self._seen[component_id] = done
