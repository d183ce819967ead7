"""Unpack a component archive into an empty directory, refusing unsafe or unsound archives.

Every member must stay inside the directory: no absolute path, no ``..``, no symbolic link,
no device or special file. Files are created exclusively and without following links, and
every file and directory is fsynced, so a directory renamed into place afterwards is
complete on disk.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path

from imss_updater.i18n import N_, Reason
from imss_updater.store import zipbomb

_COPY_CHUNK = 1024 * 1024


class ArchiveError(Exception):
    """The archive is unsafe or unsound; ``why`` is one line an administrator can act on (a
    Reason when worded here), ``reason`` the same in English."""

    def __init__(self, why: str | Reason) -> None:
        super().__init__(str(why))
        self.why = why
        self.reason = str(why)


def _refused(msgid: str, **params: str) -> ArchiveError:
    return ArchiveError(Reason(msgid, params))


def fsync_directory(path: Path) -> None:
    """Make the entries of directory ``path`` durable."""
    descriptor = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def member_parts(info: zipfile.ZipInfo) -> tuple[str, ...]:
    """Given a zip member, return its path parts inside the install directory. Raise
    ArchiveError if the member is unsafe."""
    name = info.filename
    if "\x00" in name or "\\" in name:
        raise _refused(N_("zip member has an unsafe name: %(name)s"), name=repr(name))
    if name.startswith("/") or re.match(r"[A-Za-z]:", name):
        raise _refused(N_("zip member has an absolute path: %(name)s"), name=name)
    parts = tuple(part for part in name.split("/") if part not in ("", "."))
    if ".." in parts:
        raise _refused(N_("zip member escapes the install directory: %(name)s"), name=name)
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        raise _refused(N_("zip member is a symbolic link: %(name)s"), name=name)
    if stat.S_IFMT(mode) not in (0, stat.S_IFREG, stat.S_IFDIR):
        raise _refused(N_("zip member is a device or special file: %(name)s"), name=name)
    return parts


def unpack(archive: Path, destination: Path, max_unpacked_bytes: int) -> None:
    """Given a zip archive and an empty directory, unpack every member into it and fsync
    files and directories. Raise ArchiveError for an unsafe or unsound archive (a zip bomb
    among them, see ``zipbomb``); let
    OSError through for disk failures."""
    with archive_errors(archive), zipfile.ZipFile(archive) as bundle:
        members = checked_members(bundle, archive, max_unpacked_bytes)
        budget = zipbomb.UnpackBudget(max_unpacked_bytes)
        directories = {destination}
        for info, parts in members:
            if not parts:
                continue
            target = destination.joinpath(*parts)
            if info.is_dir():
                make_directories(destination, parts, directories)
                continue
            make_directories(destination, parts[:-1], directories)
            _extract_file(bundle, info, target, budget)
        fsync_directories(directories)


def checked_members(
    bundle: zipfile.ZipFile, archive: Path, max_unpacked_bytes: int
) -> list[tuple[zipfile.ZipInfo, tuple[str, ...]]]:
    """Return the members of an open archive with their path parts, once the declared
    sizes pass the zip-bomb checks and every member is safe; raise ArchiveError (or
    ZipBombError, inside ``archive_errors``) otherwise."""
    zipbomb.check_declared_sizes(bundle.infolist(), archive.stat().st_size, max_unpacked_bytes)
    return [(info, member_parts(info)) for info in bundle.infolist()]


def fsync_directories(directories: set[Path]) -> None:
    """Deepest first, so each directory is synced after its entries."""
    for directory in sorted(directories, key=lambda path: len(path.parts), reverse=True):
        fsync_directory(directory)


def member_mode(info: zipfile.ZipInfo) -> int:
    return 0o755 if (info.external_attr >> 16) & 0o111 else 0o644


@contextlib.contextmanager
def archive_errors(archive: Path) -> Iterator[None]:
    """Turn what reading and unpacking ``archive`` can raise into ArchiveError (disk
    failures, OSError, go through)."""
    try:
        yield
    except ArchiveError:
        raise
    except zipbomb.ZipBombError as error:
        raise ArchiveError(error.why) from error
    except FileNotFoundError as error:
        if error.filename == str(archive) or error.filename == archive:
            raise _refused(N_("archive not found: %(path)s"), path=str(archive)) from error
        raise _conflict(error) from error
    except (FileExistsError, NotADirectoryError, IsADirectoryError) as error:
        raise _conflict(error) from error
    except (zipfile.BadZipFile, zlib.error, EOFError) as error:
        raise _refused(N_("bad zip file: %(detail)s"), detail=str(error)) from error
    except (NotImplementedError, RuntimeError) as error:
        raise _refused(N_("unsupported zip file: %(detail)s"), detail=str(error)) from error


def _conflict(error: OSError) -> ArchiveError:
    return _refused(N_("zip member conflicts with another member: %(name)s"), name=str(error.filename))


def make_directories(destination: Path, parts: tuple[str, ...], made: set[Path]) -> None:
    current = destination
    for part in parts:
        current = current / part
        if current not in made:
            try:
                os.mkdir(current, 0o755)
            except FileExistsError:
                if not current.is_dir() or current.is_symlink():
                    raise
            made.add(current)


def _extract_file(
    bundle: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, budget: zipbomb.UnpackBudget
) -> None:
    mode = member_mode(info)
    descriptor = os.open(
        target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode
    )
    with open(descriptor, "wb") as output, bundle.open(info) as source:
        budget.copy(source, output, info)  # counts what is really written (zip bombs)
        output.flush()
        os.fchmod(output.fileno(), mode)
        os.fsync(output.fileno())
