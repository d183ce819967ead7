"""Manual update, rollback and check, run in a background thread with live progress.

The console never blocks on a run: a POST starts a Job and returns; the status page
polls ``/jobs/current`` for the per-component phase (downloading with percentage,
verifying, installing, restarting). One job at a time per process; a run held by
another process (the scheduler, the CLI) ends the job at once with the lock message.
"""

from __future__ import annotations

import datetime
import logging
import shutil
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from imss_updater.database.db import Database, DatabaseError
from imss_updater.i18n import Reason
from imss_updater.run import importer
from imss_updater.run.planner import Mode
from imss_updater.run.updater import RunError, RunReport, Updater
from imss_updater.settings import SettingsError
from imss_updater.store.lock import LockUnusable
from imss_updater.store.spool import EventSpool
from imss_updater.web.metrics import RunClock, RunMetrics

log = logging.getLogger(__name__)

KINDS = ("update", "rollback", "check", "import")


@dataclass(frozen=True)
class ImportRequest:
    """An uploaded package (and its ``.sig`` beside it) in ``directory``, which the job
    removes when it ends, and the form's ``--component``/``--version``/``--force``."""

    package: Path
    directory: Path
    component_id: str | None = None
    version: str | None = None
    force: bool = False


@dataclass
class ComponentProgress:
    phase: str = "queued"
    done: int = 0
    total: int = 0

    @property
    def percent(self) -> int:
        return int(self.done * 100 / self.total) if self.total else 0


@dataclass
class Job:
    """One background run. ``report`` is set when an update or rollback finished;
    ``error`` when the run could not start or crashed; ``lock_busy`` for the lock."""

    id: str
    kind: str
    components: list[str]
    started_at: datetime.datetime
    progress: dict[str, ComponentProgress] = field(default_factory=dict)
    finished_at: datetime.datetime | None = None
    report: RunReport | None = None
    check_ok: bool | None = None
    check_text: str | None = None
    error: str | Reason | None = None  # a Reason renders in the page's language
    lock_busy: bool = False
    upload: ImportRequest | None = None

    @property
    def running(self) -> bool:
        return self.finished_at is None

    @property
    def ok(self) -> bool:
        if self.error is not None or self.lock_busy:
            return False
        if self.report is not None:
            return self.report.ok
        return bool(self.check_ok)


class JobBusy(Exception):
    """A job of this console is still running."""


class JobRunner:
    """Starts at most one Job at a time against ``dsn`` and ``root``."""

    def __init__(self, dsn: str, root: Path, metrics: RunMetrics, *,
                 spool: EventSpool | None = None, node: str | None = None) -> None:
        self.dsn = dsn
        self.node = node  # None: the host name
        self.spool = spool  # failure events the database refuses are kept there
        self.root = root
        self.metrics = metrics
        self.lock = threading.Lock()
        self.current: Job | None = None
        self.thread: threading.Thread | None = None

    def start(self, kind: str, component_ids: Sequence[str], upload: ImportRequest | None = None) -> Job:
        """Start a ``kind`` job (update, rollback, check; import with ``upload``) on
        ``component_ids``; return it.

        Raise JobBusy if a job of this console is still running (an upload's directory is
        then the caller's to remove).
        """
        if kind not in KINDS or (kind == "import") != (upload is not None):
            raise ValueError(f"unknown job kind {kind!r} or upload missing")
        with self.lock:
            if self.current is not None and self.current.running:
                raise JobBusy(self.current.id)
            job = Job(
                id=uuid.uuid4().hex,
                kind=kind,
                components=list(component_ids),
                started_at=datetime.datetime.now(datetime.UTC),
                progress={component_id: ComponentProgress() for component_id in component_ids},
                upload=upload,
            )
            self.current = job
            self.thread = threading.Thread(target=self._run, args=(job,), name=f"web-{kind}", daemon=True)
            self.thread.start()
            return job

    def snapshot(self) -> Job | None:
        """Return the current or last job (its fields are only written under the lock)."""
        with self.lock:
            return self.current

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the running job's thread; return True if none is running any more."""
        thread = self.thread
        if thread is None:
            return True
        thread.join(timeout)
        return not thread.is_alive()

    def _progress(
        self, job: Job, clock: RunClock, component_id: str, phase: str, done: int, total: int
    ) -> None:
        clock.progressed()
        with self.lock:
            entry = job.progress.setdefault(component_id, ComponentProgress())
            if phase == "downloading":
                self.metrics.add_downloaded(max(0, done - entry.done) if entry.phase == phase else done)
            entry.phase, entry.done, entry.total = phase, done, total

    def _run(self, job: Job) -> None:
        log.info("console %s started for %s", job.kind, ", ".join(job.components) or "all components")
        try:
            with Database(self.dsn, node=self.node) as database:
                clock = RunClock()
                updater = Updater(
                    database, self.root, spool=self.spool,
                    progress=lambda component_id, phase, done, total: self._progress(
                        job, clock, component_id, phase, done, total
                    ),
                )
                if job.kind == "check":
                    started = time.monotonic()
                    updater.check()
                    self.metrics.observe_check(time.monotonic() - started)
                    status = database.run_status()
                    with self.lock:
                        job.check_ok = bool(status.last_check_ok)
                        job.check_text = status.last_check_text
                elif job.kind == "import" and job.upload is not None:
                    upload = job.upload
                    report = importer.import_package(
                        database, self.root, upload.package, component_id=upload.component_id,
                        version=upload.version, force=upload.force,
                    )
                    self.metrics.finish_run(clock, report, checked=False)
                    self._finish_report(job, report)
                elif job.kind == "update":
                    report = updater.update(Mode.MANUAL, job.components)
                    self.metrics.finish_run(clock, report)
                    self._finish_report(job, report)
                else:
                    report = updater.rollback(job.components)
                    self.metrics.finish_run(clock, report, checked=False)
                    self._finish_report(job, report)
        except RunError as error:
            with self.lock:
                job.error = str(error)
                job.lock_busy = "Another process" in str(error)
            log.warning("console %s did not run: %s", job.kind, error)
        except (SettingsError, DatabaseError, LockUnusable, importer.PackageError) as error:
            with self.lock:
                job.error = error.reason if isinstance(error, importer.PackageError) else str(error)
            log.error("console %s did not run: %s", job.kind, error)
        except Exception as error:  # the job thread must always finish its job
            log.debug("console %s crashed", job.kind, exc_info=True)
            with self.lock:
                job.error = f"internal error: {error}"
            log.error("console %s crashed: %s", job.kind, error)
        finally:
            if job.upload is not None:
                shutil.rmtree(job.upload.directory, ignore_errors=True)  # the upload was used once
            with self.lock:
                for entry in job.progress.values():
                    if entry.phase not in ("done", "failed"):
                        entry.phase = "failed" if not job.ok else "done"
                job.finished_at = datetime.datetime.now(datetime.UTC)
            log.info("console %s finished", job.kind)

    def _finish_report(self, job: Job, report: RunReport) -> None:
        with self.lock:
            job.report = report
            by_component = {outcome.component: outcome for outcome in report.outcomes}
            for component_id, entry in job.progress.items():
                outcome = by_component.get(component_id)
                if outcome is not None:
                    entry.phase = "done" if outcome.ok else "failed"
                elif entry.phase != "failed":
                    entry.phase = "done"
