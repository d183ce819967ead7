"""The download lock ``<root>/lib/.audownload.lck``: one download at a time (SPEC section 1).

The lock is an ``flock`` on the file, never the file's existence, so a holder that dies
releases it by itself and the file is never removed on release. The original appliance's
field bug — a lock file left owned by another user blocked updates until deleted by hand —
is avoided by opening the file read-only when it cannot be opened read-write (flock works
on a read-only descriptor) and by replacing it when it cannot be opened at all. Files this
module creates are made mode 0644 so that every user can at least open them read-only.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger(__name__)

LOCK_MESSAGE_EN = "Another process is downloading files."
LOCK_MESSAGE_JA = "別のプロセスでファイルをダウンロード中です。"
_LOCK_FILE_MODE = 0o644
_OPEN_ATTEMPTS = 5
_OPEN_FLAGS = os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK


class LockBusy(Exception):
    """Another process holds the download lock; ``holder_pid`` is its PID when known."""

    def __init__(self, holder_pid: int | None = None) -> None:
        super().__init__(LOCK_MESSAGE_EN)
        self.holder_pid = holder_pid
        self.message_ja = LOCK_MESSAGE_JA


def lock_path(root: Path) -> Path:
    """Given the install root, return the path of the download lock file."""
    return root / "lib" / ".audownload.lck"


@contextmanager
def download_lock(root: Path) -> Iterator[None]:
    """Hold the download lock for the duration of the ``with`` block.

    Raise LockBusy at once if another process holds it. Raise OSError if the lock file
    can be neither opened nor replaced (e.g. the directory is not writable).
    """
    path = lock_path(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, writable = _acquire(path)
    try:
        if writable:
            text = f"{os.getpid()}\n".encode()
            os.ftruncate(descriptor, 0)
            os.pwrite(descriptor, text, 0)
        log.debug("download lock %s acquired", path)
        yield
    finally:
        # Closing the descriptor releases the flock; the file stays for the next holder.
        os.close(descriptor)
        log.debug("download lock %s released", path)


def lock_holder(root: Path) -> int | None:
    """Given the install root, return the PID of the process holding the download lock, or
    None if nobody holds it. Never takes the lock where the kernel's lock table is
    readable, so asking never makes a real download fail."""
    path = lock_path(root)
    try:
        file_status = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return None
    listed = _holder_from_lock_table(file_status)
    if listed is not None:
        locked, pid = listed
        if not locked:
            return None
        return pid if pid is not None and pid > 0 else _pid_in_file(path)
    return _probe_holder(path)


def _acquire(path: Path) -> tuple[int, bool]:
    """Open and flock the lock file; return the descriptor and whether it is writable."""
    for _ in range(_OPEN_ATTEMPTS):
        try:
            descriptor, writable = _open_lock_file(path)
        except FileExistsError:
            continue  # another process recreated the file while we were replacing it
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder_of_descriptor(descriptor)
            os.close(descriptor)
            raise LockBusy(holder) from None
        except BaseException:
            os.close(descriptor)
            raise
        # Someone may have replaced the file between our open and our flock; a lock on
        # an unlinked inode excludes nobody, so start again on the file now at the path.
        if _same_file(descriptor, path):
            return descriptor, writable
        os.close(descriptor)
    raise OSError(errno.EAGAIN, "the lock file keeps being replaced", str(path))


def _open_lock_file(path: Path) -> tuple[int, bool]:
    try:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT | _OPEN_FLAGS, _LOCK_FILE_MODE)
        writable = True
    except PermissionError:
        try:
            descriptor = os.open(path, os.O_RDONLY | _OPEN_FLAGS)
            writable = False
        except PermissionError:
            return _replace_lock_file(path, "it cannot be opened by this user")
    except OSError as error:
        if error.errno != errno.ELOOP:
            raise
        return _replace_lock_file(path, "it is a symbolic link")
    file_status = os.fstat(descriptor)
    if not stat.S_ISREG(file_status.st_mode):
        os.close(descriptor)
        return _replace_lock_file(path, "it is not a regular file")
    if file_status.st_uid == os.geteuid() and stat.S_IMODE(file_status.st_mode) != _LOCK_FILE_MODE:
        # A umask may have narrowed it; other users must still be able to open it.
        os.fchmod(descriptor, _LOCK_FILE_MODE)
    return descriptor, writable


def _replace_lock_file(path: Path, why: str) -> tuple[int, bool]:
    """Unlink the lock file and create a fresh one (needs write access to the directory
    only). Raise FileExistsError if another process created one meanwhile."""
    log.warning("replacing lock file %s: %s", path, why)
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except PermissionError as error:
        raise PermissionError(
            error.errno, f"cannot open or replace the lock file ({why})", str(path)
        ) from error
    descriptor = os.open(
        path, os.O_RDWR | os.O_CREAT | os.O_EXCL | _OPEN_FLAGS, _LOCK_FILE_MODE
    )
    os.fchmod(descriptor, _LOCK_FILE_MODE)
    return descriptor, True


def _same_file(descriptor: int, path: Path) -> bool:
    try:
        on_disk = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return False
    held = os.fstat(descriptor)
    return (on_disk.st_dev, on_disk.st_ino) == (held.st_dev, held.st_ino)


def _holder_of_descriptor(descriptor: int) -> int | None:
    listed = _holder_from_lock_table(os.fstat(descriptor))
    if listed is not None and listed[1] is not None and listed[1] > 0:
        return listed[1]
    return _parse_pid(os.pread(descriptor, 32, 0))


def _holder_from_lock_table(file_status: os.stat_result) -> tuple[bool, int | None] | None:
    """Look the file up in /proc/locks; return (locked, holder PID or None), or None when
    the table cannot be read."""
    try:
        with open("/proc/locks", encoding="ascii", errors="replace") as table:
            lines = table.readlines()
    except OSError:
        return None
    wanted = (os.major(file_status.st_dev), os.minor(file_status.st_dev), file_status.st_ino)
    for line in lines:
        fields = line.split()
        # "1: FLOCK  ADVISORY  WRITE 4060 fe:00:2146612 0 EOF"; waiters carry a "->" field.
        if len(fields) < 6 or fields[1] != "FLOCK" or fields[3] != "WRITE":
            continue
        try:
            major, minor, inode = fields[5].split(":")
            key = (int(major, 16), int(minor, 16), int(inode))
            pid = int(fields[4])
        except ValueError:
            continue
        if key == wanted:
            return True, pid
    return False, None


def _probe_holder(path: Path) -> int | None:
    """Without /proc/locks: try a shared lock briefly to learn whether it is held."""
    try:
        descriptor = os.open(path, os.O_RDONLY | _OPEN_FLAGS)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _parse_pid(os.pread(descriptor, 32, 0))
        return None
    finally:
        os.close(descriptor)


def _pid_in_file(path: Path) -> int | None:
    try:
        with open(path, "rb") as lock_file:
            return _parse_pid(lock_file.read(32))
    except OSError:
        return None


def _parse_pid(content: bytes) -> int | None:
    try:
        pid = int(content.decode("ascii", errors="replace").strip())
    except ValueError:
        return None
    return pid if pid > 0 else None
