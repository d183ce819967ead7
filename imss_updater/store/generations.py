"""The generations of one component on disk, read-only: which exist, which one the live
link points to (current) and which one is kept to roll back to (previous); plus the
directories every change is made in and the one atomic change of the live link.

The layout and the rules are in ``imss_updater.store.install``'s docstring.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from imss_updater import oserrors
from imss_updater.i18n import N_, Reason
from imss_updater.store import ownership
from imss_updater.store.layout import Directories, generations_root
from imss_updater.store.unpack import fsync_directory

GENERATION_PATTERN = re.compile(r"([0-9]+)-([0-9]+(?:\.[0-9]+)*)\Z")
_COMPONENT_PATTERN = re.compile(r"[A-Za-z0-9_-]+\Z")
ADOPTED_SEQ = 0
ADOPTED_VERSION = "0"


@dataclass(frozen=True)
class Generation:
    seq: int
    version: str
    path: Path


@dataclass(frozen=True)
class InstalledState:
    current: Generation | None
    previous: Generation | None

    @property
    def current_version(self) -> str | None:
        return self.current.version if self.current else None

    @property
    def previous_version(self) -> str | None:
        return self.previous.version if self.previous else None


# What a store change was doing when the disk failed (``_os_reason``'s ``doing``).
DOINGS = (N_("preparing the install"), N_("unpacking"), N_("installing"), N_("rolling back"))


def _os_reason(error: OSError, doing: str) -> str | Reason:
    if isinstance(error, ownership.UntrustedPathError):
        return error.why
    step = Reason(doing) if doing in DOINGS else doing
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return Reason(N_("disk full while %(doing)s"), {"doing": step})
    cause = oserrors.describe(error) if error.strerror else str(error)
    if error.filename:
        return Reason(N_("%(error)s while %(doing)s: %(path)s"),
                      {"error": cause, "doing": step, "path": str(error.filename)})
    return Reason(N_("%(error)s while %(doing)s"), {"error": cause, "doing": step})


class Generations:
    """The generations of one component under one install root, and its live link."""

    def __init__(self, root: Path, component_id: str, live_path: str) -> None:
        """Given the install root, a component id and its live path relative to the root,
        return a store. Raise ValueError if the id or the live path is unsafe."""
        if not _COMPONENT_PATTERN.match(component_id):
            raise ValueError(f"invalid component id: {component_id!r}")
        relative = PurePosixPath(live_path)
        if (
            not live_path
            or relative.is_absolute()
            or any(part in ("..", ".") for part in relative.parts)
            or relative.parts[:2] in (("lib", ".generations"), ("lib", ".staging"))
        ):
            raise ValueError(f"invalid live path for {component_id}: {live_path!r}")
        self._root = root
        self._id = component_id
        self._live = root / relative
        self._generations = generations_root(root) / component_id
        self._switch_name = f".{self._live.name}.switch"
        self._switch_link = self._live.parent / self._switch_name
        self._opened: Directories | None = None

    # ----------------------------------------------------------------- directories

    @contextmanager
    def _directories(self) -> Iterator[Directories]:
        """Open the store's directories for the duration of one operation (re-entrant)."""
        if self._opened is not None:
            yield self._opened
            return
        self._opened = Directories(self._root, self._id, self._live)
        try:
            yield self._opened
        finally:
            self._opened.close()
            self._opened = None

    def _generations_dir(self, *, create: bool) -> Path | None:
        """Return the pinned ``.generations/<id>`` (None if missing and not ``create``); outside
        an operation, its plain path (for reading only)."""
        if self._opened is None:
            return self._generations
        return self._opened.generations(create=create)

    def _live_dir(self, *, create: bool) -> Path | None:
        """Return the pinned parent of the live path (None if missing and not ``create``)."""
        assert self._opened is not None, "changes happen inside _directories()"
        return self._opened.live_parent(create=create)

    def _reason(self, error: OSError, doing: str) -> str | Reason:
        """The one-line reason for ``error``, naming paths as the administrator knows them."""
        reason = _os_reason(error, doing)
        if self._opened is None:
            return reason
        if isinstance(reason, Reason):
            return Reason(reason.msgid, {name: self._opened.show(value) if isinstance(value, str) else value
                                         for name, value in reason.params.items()})
        return self._opened.show(reason)

    # ----------------------------------------------------------------- reading

    def state(self) -> InstalledState:
        """Return the current and previous generations without changing anything.

        A live path that is a real directory (an install that predates the updater) is
        reported as current generation seq 0, version "0", at the live path itself; a
        missing or dangling live path as no current generation.
        """
        if self._live.is_dir() and not self._live.is_symlink():
            return InstalledState(Generation(ADOPTED_SEQ, ADOPTED_VERSION, self._live), None)
        current = self._current()
        if current is None:
            return InstalledState(None, None)
        return InstalledState(current, self._previous_of(current, self._generations_list()))

    def _generations_list(self) -> list[Generation]:
        """Return the complete generations on disk, lowest seq first."""
        directory = self._generations_dir(create=False)
        if directory is None:
            return []
        try:
            entries = list(os.scandir(directory))
        except FileNotFoundError:
            return []
        found = []
        for entry in entries:
            match = GENERATION_PATTERN.match(entry.name)
            if match and entry.is_dir(follow_symlinks=False):
                found.append(
                    Generation(int(match.group(1)), match.group(2), self._generations / entry.name)
                )
        return sorted(found, key=lambda generation: (generation.seq, generation.version))

    def _current(self) -> Generation | None:
        """Return the generation the live link points to, or None if it points to none."""
        if not self._live.is_symlink():
            return None
        target = Path(os.path.realpath(self._live))
        if target.parent != Path(os.path.realpath(self._generations)):
            return None
        match = GENERATION_PATTERN.match(target.name)
        if not match or not target.is_dir():
            return None
        return Generation(int(match.group(1)), match.group(2), self._generations / target.name)

    @staticmethod
    def _previous_of(current: Generation, generations: list[Generation]) -> Generation | None:
        below = [generation for generation in generations if generation.seq < current.seq]
        return below[-1] if below else None

    # ----------------------------------------------------------------- the live link

    def _switch(self, generation: Generation) -> None:
        """Point the live link at ``generation`` atomically and durably."""
        live_dir = self._live_dir(create=True)
        assert live_dir is not None  # created when missing
        switch = live_dir / self._switch_name
        if os.path.lexists(switch):
            os.unlink(switch)
        os.symlink(os.path.relpath(generation.path, self._live.parent), switch)
        os.replace(switch, live_dir / self._live.name)
        fsync_directory(live_dir)


def remove_tree(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        os.unlink(path)
