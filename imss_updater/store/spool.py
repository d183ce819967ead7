"""Events the database could not take, kept on disk until it can.

A failure that cannot be recorded because the database is down must not be lost when the
process that saw it exits (the CLI always does; the daemon may be killed). Each such event
is appended to ``<state>/unrecorded-events.jsonl`` — JSON lines, mode 0600, fsynced before
the append returns — and written to the database when it is back (``daemon.backlog``).

Lines are of three kinds, never rewritten: an event ``{"id", "event": {...}, "notify"}``,
and the markers ``{"recorded": [ids]}`` (now in the database) and ``{"notified": [ids]}``
(its notification is queued), so a flush interrupted half-way neither loses nor doubles
anything. An ``flock`` on the file serialises appenders (daemon, CLI) and the flush; the
flush empties the file (truncates it: an appender waiting for the lock still appends to
the same file) once every event is recorded and notified.
"""

from __future__ import annotations

import datetime
import fcntl
import json
import logging
import os
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from imss_updater.database.db import NewEvent

log = logging.getLogger(__name__)

SPOOL_NAME = "unrecorded-events.jsonl"
_MODE = 0o600
_FLAGS = os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW

Marker = Callable[[str, Sequence[str]], None]
"""marker(kind, ids): append a ``recorded`` or ``notified`` marker during a flush."""


@dataclass(frozen=True)
class SpooledEvent:
    id: str
    event: NewEvent  # its time is when it happened
    notify: bool  # a scheduled run's failure: its notification is owed too
    recorded: bool
    notified: bool


class EventSpool:
    """The spool file of one state directory."""

    def __init__(self, state: Path) -> None:
        self.path = state / SPOOL_NAME

    def append(self, event: NewEvent, *, notify: bool) -> str:
        """Append ``event`` durably (stamped with the time now unless it has one); return its
        id. Raise OSError if the file cannot be written."""
        now = datetime.datetime.now(datetime.UTC)
        stamped = event if event.time is not None else replace(event, time=now)
        entry_id = uuid.uuid4().hex
        line = {"id": entry_id, "event": _event_json(stamped), "notify": notify}
        with self._locked() as descriptor:
            _append(descriptor, line)
        return entry_id

    def mark(self, marker: str, ids: Sequence[str]) -> None:
        """Append a ``recorded`` or ``notified`` marker for ``ids`` (nothing when empty)."""
        if not ids or not self.path.exists():
            return
        with self._locked() as descriptor:
            _append(descriptor, {marker: list(ids)})

    def pending(self) -> list[SpooledEvent]:
        """Return the events in the file, each with what is already done for it."""
        if not self.path.exists():
            return []
        with self._locked() as descriptor:
            return _read(descriptor)

    @contextmanager
    def flushing(self) -> Iterator[tuple[list[SpooledEvent], Marker]]:
        """Hold the spool for a flush: yield its events and a function that appends a marker;
        when the block ends without an error and every event is recorded and notified (as
        far as it needs to be), empty the file."""
        with self._locked() as descriptor:
            entries = _read(descriptor)
            done: dict[str, set[str]] = {"recorded": set(), "notified": set()}

            def marker(kind: str, ids: Sequence[str]) -> None:
                if ids:
                    _append(descriptor, {kind: list(ids)})
                    done[kind].update(ids)

            yield entries, marker
            finished = all(
                (entry.recorded or entry.id in done["recorded"])
                and (not entry.notify or entry.notified or entry.id in done["notified"])
                for entry in entries
            )
            if finished and entries:
                os.ftruncate(descriptor, 0)
                os.fsync(descriptor)

    @contextmanager
    def _locked(self) -> Iterator[int]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        created = not self.path.exists()
        descriptor = os.open(self.path, _FLAGS, _MODE)
        try:
            if os.fstat(descriptor).st_uid == os.geteuid():
                os.fchmod(descriptor, _MODE)  # a umask or an older file must not widen it
            if created:
                _fsync_directory(self.path.parent)
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            yield descriptor
        finally:
            os.close(descriptor)  # releases the flock


def _append(descriptor: int, line: dict[str, object]) -> None:
    data = (json.dumps(line, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
    size = os.fstat(descriptor).st_size
    if size and os.pread(descriptor, 1, size - 1) != b"\n":
        data = b"\n" + data  # after a line torn by a crash: start a line of our own
    os.write(descriptor, data)
    os.fsync(descriptor)


def _read(descriptor: int) -> list[SpooledEvent]:
    size = os.fstat(descriptor).st_size
    content = os.pread(descriptor, size, 0) if size else b""
    events: dict[str, tuple[NewEvent, bool]] = {}
    recorded: set[str] = set()
    notified: set[str] = set()
    for number, raw in enumerate(content.splitlines(), start=1):
        try:
            line = json.loads(raw)
            if "event" in line:
                events[str(line["id"])] = (_event_from_json(line["event"]), bool(line.get("notify")))
            recorded.update(line.get("recorded", ()))
            notified.update(line.get("notified", ()))
        except (ValueError, KeyError, TypeError) as error:
            # A line torn by a crash mid-append; the lines around it are whole.
            log.warning("%s line %d is unreadable and is skipped: %s", SPOOL_NAME, number, error)
    return [
        SpooledEvent(entry_id, event, notify, entry_id in recorded, entry_id in notified)
        for entry_id, (event, notify) in events.items()
    ]


def _event_json(event: NewEvent) -> dict[str, object]:
    data = asdict(event)
    data["time"] = event.time.isoformat() if event.time else None
    return data


def _event_from_json(data: dict[str, object]) -> NewEvent:
    time = data.get("time")
    fields = {key: data.get(key) for key in ("kind", "component", "version", "outcome", "message",
                                             "message_ja", "reason")}
    return NewEvent(
        kind=str(fields["kind"]), component=str(fields["component"]),
        version=None if fields["version"] is None else str(fields["version"]),
        outcome=str(fields["outcome"]), message=str(fields["message"]),
        message_ja=str(fields["message_ja"]),
        reason=None if fields["reason"] is None else str(fields["reason"]),
        time=datetime.datetime.fromisoformat(str(time)) if time else None,
    )


def _fsync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
