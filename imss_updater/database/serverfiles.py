"""The files root touches in the embedded cluster's directories, never through a link.

The server user (``postgres``) owns ``pgdata``, ``pgsock`` and the server log, so it could
plant a symbolic link or a hard link there. Root therefore reads a file there only if it is
a plain file of the server user's with a single name, opened with ``O_NOFOLLOW``; replaces a
file by writing a new one beside it and renaming it (see ``ownership.write_replacing``);
and changes modes and owners through descriptors, never by path.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
from pathlib import Path

from imss_updater.store import ownership

log = logging.getLogger(__name__)

_DIRECTORY_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


def make_server_dir(path: Path, mode: int, owner: tuple[int, int] | None, *,
                    fresh: bool = False) -> None:
    """Make ``path`` a directory with ``mode``, given to ``owner`` (uid, gid) if not None.
    Anything else found there (a link, a file) — with ``fresh``, anything at all — is
    removed first. Raise OSError if the disk refuses."""
    parent = os.open(path.parent, _DIRECTORY_FLAGS)
    try:
        try:
            found = os.stat(path.name, dir_fd=parent, follow_symlinks=False)
        except FileNotFoundError:
            pass
        else:
            if fresh or not stat.S_ISDIR(found.st_mode):
                if not fresh:
                    log.warning("replacing %s: it is not a directory", path)
                ownership.remove_entry(parent, path.name)
        with contextlib.suppress(FileExistsError):
            os.mkdir(path.name, mode, dir_fd=parent)
        descriptor = os.open(path.name, _DIRECTORY_FLAGS | os.O_NOFOLLOW, dir_fd=parent)
    finally:
        os.close(parent)
    try:
        os.fchmod(descriptor, mode)
        if owner is not None:
            os.fchown(descriptor, *owner)
    finally:
        os.close(descriptor)


def directory_problem(path: Path, owner_uid: int) -> str | None:
    """Return why ``path`` is not a real directory of ``owner_uid``'s, or None."""
    status = os.stat(path, follow_symlinks=False)
    if stat.S_ISLNK(status.st_mode) or not stat.S_ISDIR(status.st_mode):
        return "is not a directory"
    if status.st_uid != owner_uid:
        return f"is owned by {ownership.user_name(status.st_uid)}"
    return None


def read_server_file(path: Path, owner_uid: int) -> str | None:
    """Return the text of file ``path``, or None if missing. Raise UntrustedPathError if it
    is not a plain file of ``owner_uid``'s with one name (it is then not read), OSError if
    it cannot be read."""
    content = ownership.read_plain(path.parent, path.name, owner=owner_uid)
    return None if content is None else content.decode("utf-8", errors="replace")


def write_server_file(path: Path, text: str, owner: tuple[int, int] | None) -> None:
    """Replace file ``path`` by one holding ``text`` (mode 0600, given to ``owner``), unless
    it is already a plain file of the owner's holding exactly that. Raise OSError."""
    uid = os.geteuid() if owner is None else owner[0]
    try:
        if read_server_file(path, uid) == text:
            return
    except ownership.UntrustedPathError as error:
        log.warning("%s: replaced, not read", error.reason)
    ownership.write_replacing(path.parent, path.name, text.encode("utf-8"), mode=0o600,
                              owner=owner)


def prepare_log_file(path: Path, owner: tuple[int, int] | None) -> None:
    """Make ``path`` a plain file (created 0640) given to ``owner``; a link or anything else
    there is replaced. Raise OSError if the disk refuses."""
    try:
        found = os.stat(path, follow_symlinks=False)
        if not stat.S_ISREG(found.st_mode) or found.st_nlink != 1:
            log.warning("replacing %s: it is not a plain file", path)
            parent = os.open(path.parent, _DIRECTORY_FLAGS)
            try:
                ownership.remove_entry(parent, path.name)
            finally:
                os.close(parent)
    except FileNotFoundError:
        pass
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    descriptor = os.open(path, flags, 0o640)
    try:
        if owner is not None:
            os.fchown(descriptor, *owner)
    finally:
        os.close(descriptor)
