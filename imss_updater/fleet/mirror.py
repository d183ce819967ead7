"""The leader's mirror on disk: the source's files, one directory per release.

Layout under ``<state>/mirror/``::

    releases/<id>/server.ini, server.ini.sig, pattern/..., engine/...   (byte for byte)
    activeupdate -> releases/<id>       the current release (a symbolic link)
    previous     -> releases/<id>       the one before it
    incoming-<token>/                   a release being written
    held/                               what a release that could not be completed had

A release is written whole in ``incoming-*`` (packages and signatures, then the index, every
file fsynced), renamed into ``releases/``, and made current by replacing the ``activeupdate``
link in one rename. A release that cannot be completed (a package the origin would not
give) is never published: its directory becomes ``held/`` (``hold``), whose verified files
the next try takes as hard links instead of downloading them again; it is removed when a
release is published. A reader resolves the link once per request, so it sees the old release
or the new one, never a part; the old one stays as ``previous`` (members still updating from
it keep their files), and any older one is removed. ``<id>`` is the first 16 hex digits of
the SHA-256 of the release's server.ini.

``open_file`` is how the mirror server reads: the link must name a release directory, and
every path segment is opened with ``O_NOFOLLOW`` relative to its parent, so nothing in the
mirror can lead a reader out of it.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import shutil
import stat
import uuid
from pathlib import Path

log = logging.getLogger(__name__)

CURRENT = "activeupdate"
PREVIOUS = "previous"
HELD = "held"
RELEASES = "releases"
INDEX = "server.ini"
INDEX_SIGNATURE = "server.ini.sig"
_RELEASE_ID = re.compile(r"^[0-9a-f]{16}$")
_SEGMENT = re.compile(r"^[^./\\\x00-\x1f\x7f][^/\\\x00-\x1f\x7f]*$")  # no hidden name, no ".."
_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class MirrorPathError(ValueError):
    """A relative path the mirror does not hold (a hidden name, ``..``, an empty segment)."""


def release_id(index: bytes) -> str:
    return hashlib.sha256(index).hexdigest()[:16]


def segments(relative: str) -> list[str]:
    """Split a relative path the mirror may hold; raise MirrorPathError otherwise."""
    parts = relative.split("/")
    if not parts or any(not _SEGMENT.match(part) for part in parts):
        raise MirrorPathError(f"not a mirror path: {relative!r}")
    return parts


class Release:
    """A release being written (``Mirror.begin``); nothing of it is visible until published."""

    def __init__(self, mirror: Mirror, identifier: str, directory: Path) -> None:
        self.mirror = mirror
        self.id = identifier
        self.directory = directory

    def path_for(self, relative: str) -> Path:
        """Where ``relative`` goes in this release (its directories made)."""
        target = self.directory.joinpath(*segments(relative))
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    def write(self, relative: str, data: bytes) -> None:
        with open(self.path_for(relative), "wb") as output:
            output.write(data)

    def reuse(self, relative: str, size: int) -> bool:
        """Take ``relative`` from the current or previous release, or from what a failed
        try kept, when it is there with ``size`` bytes: a hard link, no download. Return
        whether it did."""
        for found in self.mirror.reusable():
            source = found.joinpath(*segments(relative))
            try:
                status = os.stat(source, follow_symlinks=False)
            except OSError:
                continue
            if not stat.S_ISREG(status.st_mode) or status.st_size != size:
                continue
            os.link(source, self.path_for(relative))
            return True
        return False

    def reuse_signature(self, relative: str) -> bool:
        for found in self.mirror.reusable():
            source = found.joinpath(*segments(relative))
            if source.is_file() and not source.is_symlink():
                os.link(source, self.path_for(relative))
                return True
        return False

    def discard(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)


class Mirror:
    """The mirror directory of one node (see the module text)."""

    def __init__(self, state: Path) -> None:
        self.root = state / "mirror"

    def current(self) -> str | None:
        """The current release's id, or None."""
        return self._link(CURRENT)

    def previous(self) -> str | None:
        return self._link(PREVIOUS)

    def release_directory(self, name: str) -> Path | None:
        identifier = self._link(name)
        return None if identifier is None else self.root / RELEASES / identifier

    def reusable(self) -> list[Path]:
        """Where a release being written may take unchanged files from, in order: the
        current release, the previous one, what a failed try kept."""
        found = [self.release_directory(name) for name in (CURRENT, PREVIOUS)]
        held = self.root / HELD
        if held.is_dir() and not held.is_symlink():
            found.append(held)
        return [directory for directory in found if directory is not None]

    def begin(self, index: bytes) -> Release:
        """Start writing the release whose server.ini is ``index``."""
        (self.root / RELEASES).mkdir(parents=True, exist_ok=True, mode=0o755)
        directory = self.root / f"incoming-{uuid.uuid4().hex[:12]}"
        directory.mkdir(mode=0o755)
        return Release(self, release_id(index), directory)

    def publish(self, release: Release, index: bytes, index_signature: bytes | None) -> None:
        """Write the index last, make everything durable, and make ``release`` current (the
        one it replaces becomes the previous; any older one is removed). Raise OSError."""
        release.write(INDEX, index)
        if index_signature is not None:
            release.write(INDEX_SIGNATURE, index_signature)
        _sync_tree(release.directory)
        target = self.root / RELEASES / release.id
        if target.exists():  # the same index published again (after a restart): keep the one there
            release.discard()
        else:
            os.rename(release.directory, target)
        _sync_directory(self.root / RELEASES)
        before = self.current()
        if before is not None and before != release.id:
            self._point(PREVIOUS, before)
        self._point(CURRENT, release.id)
        self.prune()
        log.info("mirror: release %s is current%s", release.id,
                 f" (previous {before})" if before and before != release.id else "")

    def hold(self, release: Release) -> None:
        """Keep what ``release`` has (verified files only: a failed one was removed) as
        ``held/`` for the next try, in place of what an earlier try kept; the current and
        previous releases are left as they are. Raise OSError."""
        held = self.root / HELD
        _remove(held)
        os.rename(release.directory, held)
        for entry in self.root.glob("incoming-*"):  # a killed try's
            _remove(entry)

    def prune(self) -> None:
        """Remove what is neither the current nor the previous release, what a failed try
        kept, and stale incoming directories."""
        keep = {self.current(), self.previous()}
        releases = self.root / RELEASES
        for entry in list(releases.iterdir()) if releases.is_dir() else []:
            if entry.name not in keep:
                _remove(entry)
        for entry in [*self.root.glob("incoming-*"), self.root / HELD]:
            _remove(entry)

    def open_file(self, relative: str, *, current_only: bool = False) -> tuple[int, str] | None:
        """Open ``relative`` for reading from the current release, else (unless
        ``current_only``) the previous one; return (descriptor, release id), or None if
        neither holds it as a plain file."""
        try:
            parts = segments(relative)
        except MirrorPathError:
            return None
        for _attempt in range(3):  # a release published meanwhile: look again in the new ones
            names = [self._link(CURRENT)] + ([] if current_only else [self._link(PREVIOUS)])
            for identifier in names:
                opened = None if identifier is None else _open_under(self.root / RELEASES,
                                                                     [identifier, *parts])
                if opened is not None and identifier is not None:
                    return opened, identifier
            if names[0] == self._link(CURRENT):
                return None
        return None

    # -- the links ------------------------------------------------------------------------

    def _link(self, name: str) -> str | None:
        try:
            target = os.readlink(self.root / name)
        except OSError:
            return None
        folder, _slash, identifier = target.partition("/")
        if folder != RELEASES or not _RELEASE_ID.match(identifier):
            return None
        return identifier

    def _point(self, name: str, identifier: str) -> None:
        temporary = self.root / f".{name}.{uuid.uuid4().hex[:8]}"
        os.symlink(f"{RELEASES}/{identifier}", temporary)
        os.replace(temporary, self.root / name)  # one rename: readers see old or new
        _sync_directory(self.root)


def _open_under(base: Path, parts: list[str]) -> int | None:
    """Open ``base/parts...`` without following any link; None if it is not a plain file."""
    try:
        directory = os.open(base, _DIRECTORY)
    except OSError:
        return None
    try:
        for part in parts[:-1]:
            following = os.open(part, _DIRECTORY, dir_fd=directory)
            os.close(directory)
            directory = following
        descriptor = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK,
                             dir_fd=directory)
    except OSError:
        return None
    finally:
        os.close(directory)
    if not stat.S_ISREG(os.fstat(descriptor).st_mode):
        os.close(descriptor)
        return None
    return descriptor


def _sync_tree(directory: Path) -> None:
    for folder, _subfolders, files in os.walk(directory):
        for name in files:
            descriptor = os.open(os.path.join(folder, name), os.O_RDONLY | os.O_CLOEXEC)
            try:
                os.fsync(descriptor)
            finally:
                os.close(descriptor)
        _sync_directory(Path(folder))


def _sync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _remove(entry: Path) -> None:
    with contextlib.suppress(OSError):
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
