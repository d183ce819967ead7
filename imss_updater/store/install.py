"""Install a component crash-safely, keeping exactly one previous generation to roll back to.

Layout under the install root ``R`` (one filesystem, so every rename is atomic):

- ``R/lib/.generations/<component id>/<seq>-<version>/`` — complete, read-only-by-convention
  copies of a component. A directory with such a name exists only once it is complete: it is
  born by renaming a fully written and fsynced staging directory, and it dies by being
  renamed into staging before it is deleted.
- ``R/lib/.staging/`` — unpacking and deletion happen here; everything in it is garbage
  once no operation is running.
- the component's live path (``Component.live_path``, e.g. ``lib/pattern/vsapi``) — a
  relative symbolic link to the current generation, switched with ``os.replace``.

The rules that make any crash recoverable: *current* is the live link's target;
*previous* is the generation with the highest seq below current; every other generation
(higher seq than current: an interrupted install or a rolled-back generation; lower than
previous) and every staging entry is garbage that ``repair()`` removes. Seq 0 is reserved
for a pre-existing real directory adopted on the first install.

Callers hold the download lock (``imss_updater.store.lock``) around every mutating call; the
store itself does no locking.

Another user may be able to write ``R/lib`` or a live path's parent: every change is made
in the directories as opened and checked by ``imss_updater.store.layout``, so no link that
user plants is ever followed.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from imss_updater.store import ownership
from imss_updater.store.layout import Directories, generations_root, open_staging
from imss_updater.store.layout import staging_root as staging_root  # callers use install's
from imss_updater.store.unpack import ArchiveError, fsync_directory, unpack

log = logging.getLogger(__name__)

_VERSION_PATTERN = re.compile(r"[0-9]+(?:\.[0-9]+)*\Z")
_GENERATION_PATTERN = re.compile(r"([0-9]+)-([0-9]+(?:\.[0-9]+)*)\Z")
_COMPONENT_PATTERN = re.compile(r"[A-Za-z0-9_-]+\Z")
_ADOPTED_SEQ = 0
_ADOPTED_VERSION = "0"


class InstallError(Exception):
    """An install or rollback failed; ``reason`` is one line an administrator can act on."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


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


def _os_reason(error: OSError, doing: str) -> str:
    if isinstance(error, ownership.UntrustedPathError):
        return error.reason
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"disk full while {doing}"
    where = f": {error.filename}" if error.filename else ""
    return f"{error.strerror or error} while {doing}{where}"


class ComponentStore:
    """The generations of one component under one install root."""

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

    def _reason(self, error: OSError, doing: str) -> str:
        """The one-line reason for ``error``, naming paths as the administrator knows them."""
        reason = _os_reason(error, doing)
        return reason if self._opened is None else self._opened.show(reason)

    # ----------------------------------------------------------------- reading

    def state(self) -> InstalledState:
        """Return the current and previous generations without changing anything.

        A live path that is a real directory (an install that predates the updater) is
        reported as current generation seq 0, version "0", at the live path itself; a
        missing or dangling live path as no current generation.
        """
        if self._live.is_dir() and not self._live.is_symlink():
            return InstalledState(Generation(_ADOPTED_SEQ, _ADOPTED_VERSION, self._live), None)
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
            match = _GENERATION_PATTERN.match(entry.name)
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
        match = _GENERATION_PATTERN.match(target.name)
        if not match or not target.is_dir():
            return None
        return Generation(int(match.group(1)), match.group(2), self._generations / target.name)

    @staticmethod
    def _previous_of(current: Generation, generations: list[Generation]) -> Generation | None:
        below = [generation for generation in generations if generation.seq < current.seq]
        return below[-1] if below else None

    # ----------------------------------------------------------------- repair

    def repair(self) -> list[str]:
        """Make the disk consistent after any interruption; return one line per fix.

        Keeps the live link's target and the previous generation, restores the live link
        of an interrupted adoption, and removes every other generation, this component's
        staging leftovers and a leftover temporary link. Raise OSError if the disk cannot
        be changed.
        """
        with self._directories():
            return self._repair()

    def _repair(self) -> list[str]:
        fixes: list[str] = []
        live_dir = self._live_dir(create=False)
        if live_dir is not None and os.path.lexists(live_dir / self._switch_name):
            os.unlink(live_dir / self._switch_name)
            fixes.append(f"{self._id}: removed leftover temporary link {self._switch_link}")
        fixes.extend(self._remove_staging_leftovers())

        generations = self._generations_list()
        keep: list[Generation] = []
        if self._live.is_dir() and not self._live.is_symlink():
            # A real directory is what the scanner uses; no generation can be current.
            pass
        else:
            current = self._current()
            if current is None:
                adopted = [g for g in generations if g.seq == _ADOPTED_SEQ]
                if adopted:
                    # Only an adoption interrupted between moving the directory away and
                    # linking it back leaves the live path without a target.
                    self._switch(adopted[0])
                    fixes.append(
                        f"{self._id}: relinked {self._live} to adopted generation "
                        f"{adopted[0].path.name}"
                    )
                    current = adopted[0]
                elif self._live.is_symlink():
                    fixes.append(f"{self._id}: live link {self._live} points to no generation")
            if current is not None:
                keep.append(current)
                previous = self._previous_of(current, generations)
                if previous is not None:
                    keep.append(previous)
        fixes.extend(self._remove_generations_except(keep))
        for line in fixes:
            log.info("repair: %s", line)
        return fixes

    def _remove_staging_leftovers(self) -> list[str]:
        fixes = []
        with self._directories() as opened:
            for entry in os.scandir(opened.staging):
                if entry.name.partition(".")[0] == self._id:
                    _remove_tree(opened.staging / entry.name)
                    shown = self._root / "lib" / ".staging" / entry.name
                    fixes.append(f"{self._id}: removed leftover staging {shown}")
        return fixes

    def _remove_generations_except(self, keep: list[Generation]) -> list[str]:
        """Remove every entry of the generations directory not named in ``keep``."""
        kept = {generation.path.name for generation in keep}
        fixes = []
        directory = self._generations_dir(create=False)
        if directory is None:
            return []
        entries = sorted(os.scandir(directory), key=lambda entry: entry.name)
        for entry in entries:
            if entry.name not in kept:
                self._discard(entry.name)
                fixes.append(f"{self._id}: removed generation {entry.name}")
        return fixes

    def _discard(self, name: str) -> None:
        """Delete generation ``name`` so that no partly deleted generation is ever visible:
        move it into staging first (atomic), then delete it there."""
        with self._directories() as opened:
            directory = self._generations_dir(create=False)
            if directory is None:
                return
            trash = opened.staging / f"{self._id}.trash-{secrets.token_hex(6)}"
            try:
                os.rename(directory / name, trash)
            except OSError as error:
                if error.errno != errno.EXDEV:
                    raise
                _remove_tree(directory / name)
                return
            fsync_directory(directory)
            _remove_tree(trash)

    # ----------------------------------------------------------------- changing

    def install(self, archive: Path, version: str, *, max_unpacked_bytes: int) -> InstalledState:
        """Given a zip archive and its version, make it the current generation and keep the
        one before it as previous; return the new state.

        Raise InstallError if the version is malformed, the archive is not a sound zip, a
        member is unsafe (absolute, ``..``, symbolic link, device file), the unpacked size
        exceeds ``max_unpacked_bytes``, or the disk fails; the current generation is then
        untouched and no staging is left.
        """
        if not _VERSION_PATTERN.match(version):
            raise InstallError(f"invalid version {version!r}: digits and dots only")
        try:
            with self._directories():
                return self._install(archive, version, max_unpacked_bytes)
        except OSError as error:  # opening or closing the directories
            raise InstallError(self._reason(error, "preparing the install")) from error

    def _install(self, archive: Path, version: str, max_unpacked_bytes: int) -> InstalledState:
        assert self._opened is not None
        try:
            self._repair()
            self._adopt_if_needed()
            before = self._current()
            staging = Path(tempfile.mkdtemp(prefix=f"{self._id}.unpack-",
                                            dir=self._opened.staging))
        except OSError as error:
            raise InstallError(self._reason(error, "preparing the install")) from error
        generation: Generation | None = None
        doing = "unpacking"
        try:
            # mkdtemp makes it 0700; the scan service, maybe another user, reads it.
            os.chmod(staging, 0o755)  # noqa: S103
            try:
                unpack(archive, staging, max_unpacked_bytes)
            except ArchiveError as error:
                raise InstallError(error.reason) from error
            doing = "installing"
            generation = self._commit(staging, version)
            self._switch(generation)
        except (InstallError, OSError) as error:
            self._abandon(staging, generation, before)
            if isinstance(error, InstallError):
                raise
            raise InstallError(self._reason(error, doing)) from error
        log.info("%s: installed version %s as generation %s", self._id, version,
                 generation.path.name)
        self._prune(generation)
        return self.state()

    def rollback(self) -> InstalledState:
        """Make the previous generation current and delete the one rolled away from; return
        the new state. Raise InstallError if there is no previous generation or the disk
        fails."""
        try:
            with self._directories():
                self._repair()
                before = self.state()
                if before.current is None or before.previous is None:
                    raise InstallError("no previous generation to roll back to")
                self._switch(before.previous)
                log.info("%s: rolled back from generation %s to %s", self._id,
                         before.current.path.name, before.previous.path.name)
                self._discard(before.current.path.name)
        except OSError as error:
            raise InstallError(self._reason(error, "rolling back")) from error
        return self.state()

    def _adopt_if_needed(self) -> None:
        """Move a pre-existing real live directory into the generations as seq 0."""
        if not (self._live.is_dir() and not self._live.is_symlink()):
            return
        directory = self._generations_dir(create=True)
        live_dir = self._live_dir(create=True)
        assert directory is not None and live_dir is not None  # created when missing
        name = f"{_ADOPTED_SEQ}-{_ADOPTED_VERSION}"
        adopted = Generation(_ADOPTED_SEQ, _ADOPTED_VERSION, self._generations / name)
        switch = live_dir / self._switch_name
        if os.path.lexists(switch):
            os.unlink(switch)
        os.symlink(os.path.relpath(adopted.path, self._live.parent), switch)
        # A directory cannot be atomically replaced by a link: between these two renames
        # the live path is missing, and repair() relinks it to the adopted generation.
        os.rename(live_dir / self._live.name, directory / name)
        os.replace(switch, live_dir / self._live.name)
        fsync_directory(directory)
        fsync_directory(live_dir)
        log.info("%s: adopted existing directory %s as generation %s", self._id, self._live,
                 adopted.path.name)

    def _commit(self, staging: Path, version: str) -> Generation:
        """Rename a complete staging directory into the generations under the next seq."""
        directory = self._generations_dir(create=True)
        assert directory is not None  # created when missing
        existing = self._generations_list()
        seq = max([_ADOPTED_SEQ, *(generation.seq for generation in existing)]) + 1
        generation = Generation(seq, version, self._generations / f"{seq}-{version}")
        os.rename(staging, directory / generation.path.name)
        fsync_directory(directory)
        fsync_directory(staging.parent)
        return generation

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

    def _abandon(
        self, staging: Path, generation: Generation | None, before: Generation | None
    ) -> None:
        """Best-effort cleanup after a failed install, back to ``before``; repair() finishes
        what this cannot."""
        try:
            if generation is not None:
                if self._current() == generation and before is not None:
                    self._switch(before)
                if self._current() != generation:
                    self._discard(generation.path.name)
            elif os.path.lexists(staging):
                _remove_tree(staging)
            live_dir = self._live_dir(create=False)
            if live_dir is not None and os.path.lexists(live_dir / self._switch_name):
                os.unlink(live_dir / self._switch_name)
        except OSError as error:
            log.warning("%s: could not clean up after the failed install: %s", self._id, error)

    def _prune(self, current: Generation) -> None:
        """Keep only current and previous; a failure here leaves garbage, not a failed
        install, so it is logged and left to the next repair()."""
        keep = [current]
        previous = self._previous_of(current, self._generations_list())
        if previous is not None:
            keep.append(previous)
        try:
            for line in self._remove_generations_except(keep):
                log.debug("prune: %s", line)
        except OSError as error:
            log.warning("%s: could not remove an old generation: %s", self._id, error)


def repair_all(root: Path, components: Iterable[tuple[str, str]]) -> list[str]:
    """Given the install root and (component id, live path) pairs, repair each component and
    remove staging entries that belong to none; return one line per fix. A component whose
    repair fails is reported as a line and the others are still repaired."""
    fixes: list[str] = []
    known: set[str] = set()
    for component_id, live_path in components:
        known.add(component_id)
        try:
            fixes.extend(ComponentStore(root, component_id, live_path).repair())
        except (OSError, ValueError) as error:
            log.error("repair of %s failed: %s", component_id, error)
            fixes.append(f"{component_id}: repair failed: {error}")
    with ExitStack() as stack:
        staging = open_staging(stack, root)
        for entry in os.scandir(staging):
            if entry.name.partition(".")[0] not in known:
                shown = root / "lib" / ".staging" / entry.name
                try:
                    _remove_tree(staging / entry.name)
                except OSError as error:
                    fixes.append(f"could not remove leftover staging {shown}: {error}")
                    continue
                fixes.append(f"removed leftover staging {shown}")
                log.info("repair: removed leftover staging %s", shown)
    return fixes


def _remove_tree(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        os.unlink(path)
