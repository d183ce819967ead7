"""In-process metrics for ``/metrics`` that the database does not keep.

The daemon passes one RunMetrics to ``create_app`` and feeds it from its scheduler too:
``progress`` is its Updater progress callback (bytes downloaded), ``scheduled_run`` times
each scheduled run. The console's job runner times its own runs and checks
(``finish_run`` with a RunClock, ``observe_check``). RunMetrics is a prometheus_client collector that
no registry holds by default: each app registers it in a registry of its own
(``web.prometheus``), so two consoles in one process (the tests) never share a series.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterable

from prometheus_client import Counter, Histogram
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from imss_updater.run.report import RunReport

RESTART_SERVICES = ("scan", "policy")
# A check asks one or two sources (seconds); a run may download for many minutes.
CHECK_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
RUN_BUCKETS = (0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
_RESTART_FAILED = re.compile(r"\b(scan|policy) service restart failed\b")


def restart_failures(report: RunReport) -> list[str]:
    """Given a run's report, return the service of each restart that failed in it (the
    restart and, after an automatic rollback, the second restart)."""
    return _RESTART_FAILED.findall(str(report.restart_error or ""))


class RunClock:
    """Times one update run and the check that opens it: the check ends at the first
    progress of a component (a download, a restart owed), or with the run if none comes."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.first_progress: float | None = None

    def progressed(self) -> None:
        if self.first_progress is None:
            self.first_progress = time.monotonic()


class RunMetrics(Collector):
    """Thread-safe: bytes downloaded, run and check durations, restart failures."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.downloaded = Counter("imss_downloaded_bytes", "Bytes of components downloaded by this process.",
                                  registry=None)
        self.run_seconds = Histogram(
            "imss_run_duration_seconds",
            "Duration of the update and rollback runs of this process (scheduled: the daemon's).",
            ["kind"], buckets=RUN_BUCKETS, registry=None,
        )
        self.check_seconds = Histogram(
            "imss_check_duration_seconds",
            "Duration of the checks of the update sources by this process: a check asked for,"
            " and the check that opens each update run (up to its first download).",
            buckets=CHECK_BUCKETS, registry=None,
        )
        self.restart_failed = Counter("imss_restart_failures",
                                      "Failed restarts of the scan and policy services by this process.",
                                      ["service"], registry=None)
        for service in RESTART_SERVICES:
            self.restart_failed.labels(service=service)
        self._seen: dict[str, int] = {}
        self._clock: RunClock | None = None  # the scheduled run in progress

    # -- what the runs tell -----------------------------------------------------------------

    def add_downloaded(self, count: int) -> None:
        if count > 0:
            self.downloaded.inc(count)

    def observe_check(self, seconds: float) -> None:
        self.check_seconds.observe(seconds)

    def finish_run(self, clock: RunClock, report: RunReport, *, checked: bool = True) -> None:
        """Record one finished run: its duration by kind, the check that opened it (when
        ``checked`` and the run got past its settings), and its failed restarts."""
        ended = time.monotonic()
        self.run_seconds.labels(kind=report.kind).observe(ended - clock.started)
        if checked and (report.problem is None or report.problem.step != "settings"):
            self.observe_check((clock.first_progress or ended) - clock.started)
        for service in restart_failures(report):
            self.restart_failed.labels(service=service).inc()

    def progress(self, component_id: str, phase: str, done: int, total: int) -> None:
        """An Updater progress callback that counts downloaded bytes (and marks the end of
        the check that opens a scheduled run)."""
        with self.lock:
            if self._clock is not None:
                self._clock.progressed()
            if phase != "downloading":
                self._seen.pop(component_id, None)
                return
            before = self._seen.get(component_id, 0)
            self._seen[component_id] = done
        self.add_downloaded(max(0, done - before))

    def scheduled_run(self, run: Callable[[], RunReport | None]) -> RunReport | None:
        """Call ``run``, a scheduled update whose progress comes to ``progress`` (one at a
        time: the scheduler has one worker), and time it with its opening check. A run that
        did not happen (None, or an exception) is not observed."""
        clock = RunClock()
        with self.lock:
            self._clock = clock
        try:
            report = run()
        finally:
            with self.lock:
                self._clock = None
        if report is not None:
            self.finish_run(clock, report)
        return report

    # -- the collector ----------------------------------------------------------------------

    def collect(self) -> Iterable[Metric]:
        """The families, without the ``*_created`` series (the start of each series says
        nothing to an alert; the process start time is ``process_start_time_seconds``)."""
        for metric in (self.downloaded, self.run_seconds, self.check_seconds, self.restart_failed):
            for family in metric.collect():  # fresh objects at each call: ours to trim
                family.samples = [sample for sample in family.samples if not sample.name.endswith("_created")]
                yield family
