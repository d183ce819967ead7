"""The download lock ``<root>/lib/.audownload.lck``: one download at a time (SPEC section 1).

The lock is an ``flock`` on the file, never the file's existence, so a holder that dies
releases it by itself and the file is never removed on release.

Only its owner can open the lock file: mode 0600, in a directory only root can change,
opened with ``O_NOFOLLOW``. Otherwise any local user could open it read-only and hold an
``flock`` on it forever (flock works on a read-only descriptor), blocking every update. A
lock file that someone else could have opened — owned by another user, readable by group or
others, a symbolic link, not a regular file — is therefore replaced by a fresh one (one log
line says why): a holder of the old file then holds a lock on an inode nobody asks about.

When ``<root>/lib`` itself belongs to another user or is writable by others, a lock file
there would be that user's to replace, so the lock is kept in the install root instead
(``<root>/.audownload.lck``), which the start-up check requires to be root's. Every process
derives the place from the install root alone, so all of them agree.
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

from imss_updater import oserrors
from imss_updater.i18n import N_, Reason
from imss_updater.store import ownership

log = logging.getLogger(__name__)

LOCK_MESSAGE_EN = "Another process is downloading files."
LOCK_MESSAGE_JA = "別のプロセスでファイルをダウンロード中です。"
LOCK_NAME = ".audownload.lck"
_LOCK_FILE_MODE = 0o600
_OPEN_ATTEMPTS = 5
_OPEN_FLAGS = os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK
_moved_logged: set[Path] = set()


class LockBusy(Exception):
    """Another process holds the download lock; ``holder_pid`` is its PID when known."""

    def __init__(self, holder_pid: int | None = None) -> None:
        super().__init__(LOCK_MESSAGE_EN)
        self.holder_pid = holder_pid
        self.message_ja = LOCK_MESSAGE_JA


class LockUnusable(Exception):
    """The download lock cannot be taken for a reason other than another holder (its file
    is a directory, its directory is not root's, permission denied); ``reason`` is one line
    that names the path and the cause, ``why`` the same as a Reason (rendered per language)."""

    def __init__(self, why: str | Reason) -> None:
        super().__init__(str(why))
        self.why = why
        self.reason = str(why)


def lock_path(root: Path) -> Path:
    """Given the install root, return the path of the download lock file:
    ``<root>/lib/.audownload.lck`` unless ``<root>/lib`` exists and another user can change
    it, then ``<root>/.audownload.lck``."""
    return _lock_directory(root)[0] / LOCK_NAME


def _lock_directory(root: Path) -> tuple[Path, str | None]:
    """Return the directory of the lock and, when it is not ``lib/``, why not."""
    library = root / "lib"
    try:
        status = os.stat(library)
    except OSError:
        return library, None  # created by the first download_lock, as root's
    reason = ownership.foreign_reason(status)
    if reason is None and stat.S_ISDIR(status.st_mode):
        return library, None
    return root, f"{library} {reason or 'is not a directory'}"


@contextmanager
def download_lock(root: Path) -> Iterator[None]:
    """Hold the download lock for the duration of the ``with`` block.

    Raise LockBusy at once if another process holds it. Raise LockUnusable with a one-line
    reason if it cannot be taken otherwise (the lock file is a directory, its directory is
    not root's, permission denied, read-only file system).
    """
    directory, moved_because = _lock_directory(root)
    path = directory / LOCK_NAME
    if moved_because is not None and path not in _moved_logged:
        _moved_logged.add(path)
        log.warning("download lock kept in %s: %s", path, moved_because)
    directory_descriptor = _open_directory(directory, path)
    try:
        descriptor = _acquire(directory_descriptor, path)
    finally:
        os.close(directory_descriptor)
    try:
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
    None if nobody holds it or it cannot be told. A lock file that download_lock would
    replace counts as free. Never takes the lock where the kernel's lock table is readable,
    so asking never makes a real download fail."""
    path = lock_path(root)
    try:
        file_status = os.stat(path, follow_symlinks=False)
    except OSError:
        return None
    if _unsafe_reason(file_status, owners=ownership.trusted_uids()) is not None:
        return None
    listed = _holder_from_lock_table(file_status)
    if listed is not None:
        locked, pid = listed
        if not locked:
            return None
        return pid if pid is not None and pid > 0 else _pid_in_file(path)
    return _probe_holder(path)


def lock_problem(root: Path) -> str | None:
    """Return why download_lock would fail for a reason other than another holder, without
    taking the lock, or None if it can be taken."""
    directory, _moved = _lock_directory(root)
    path = directory / LOCK_NAME
    if not directory.exists():
        return None  # the first download_lock creates it
    try:
        os.close(_open_directory(directory, path, create=False))
        file_status = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return None
    except LockUnusable as error:
        return error.reason
    except OSError as error:
        return str(_cannot_use(path, error))
    if stat.S_ISDIR(file_status.st_mode):
        return str(_is_a_directory(path))
    return None


def _open_directory(directory: Path, path: Path, *, create: bool = True) -> int:
    """Open the lock's directory and check that only we and root can change it."""
    try:
        if create and not directory.exists():
            directory.mkdir(parents=True, exist_ok=True)
            os.chmod(directory, 0o755)  # noqa: S103 - lib/ is read by the scan service
        descriptor = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as error:
        raise LockUnusable(Reason(N_("cannot use the download lock %(path)s: %(error)s: %(directory)s"),
                                  {"path": str(path), "error": _cause(error), "directory": str(directory)})
                           ) from error
    reason = ownership.foreign_reason(os.fstat(descriptor))
    if reason is not None:
        os.close(descriptor)
        raise LockUnusable(Reason(N_("cannot keep the download lock %(path)s safe: %(directory)s %(reason)s; "
                                     "run: chown root:root %(directory)s && chmod 0755 %(directory)s"),
                                  {"path": str(path), "directory": str(directory), "reason": reason}))
    return descriptor


def _acquire(directory: int, path: Path) -> int:
    """Open and flock the lock file; return the descriptor."""
    for _ in range(_OPEN_ATTEMPTS):
        try:
            descriptor = _open_lock_file(directory, path)
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
        if _same_file(descriptor, directory):
            return descriptor
        os.close(descriptor)
    raise LockUnusable(Reason(N_("cannot use the download lock %(path)s: it keeps being replaced"),
                              {"path": str(path)}))


def _open_lock_file(directory: int, path: Path) -> int:
    """Open the lock file read-write, replacing it if someone else could open it."""
    try:
        descriptor = os.open(LOCK_NAME, os.O_RDWR | os.O_CREAT | _OPEN_FLAGS, _LOCK_FILE_MODE,
                             dir_fd=directory)
    except OSError as error:
        if error.errno == errno.ELOOP:
            return _replace_lock_file(directory, path, None, "it is a symbolic link")
        if error.errno == errno.EISDIR:
            raise LockUnusable(_is_a_directory(path)) from error
        if error.errno in (errno.EACCES, errno.EPERM):
            return _replace_lock_file(directory, path, None, "it cannot be opened by this user")
        raise LockUnusable(Reason(N_("cannot open the download lock %(path)s: %(error)s"),
                                  {"path": str(path), "error": _cause(error)})) from error
    file_status = os.fstat(descriptor)
    why = _unsafe_reason(file_status, owners=(os.geteuid(),))
    if why is not None:
        os.close(descriptor)
        return _replace_lock_file(directory, path, file_status, why)
    if stat.S_IMODE(file_status.st_mode) != _LOCK_FILE_MODE:
        os.fchmod(descriptor, _LOCK_FILE_MODE)  # e.g. 0400: nobody else could open it
    return descriptor


def _unsafe_reason(file_status: os.stat_result, *, owners: tuple[int, ...]) -> str | None:
    """Return why another user may hold a descriptor of this lock file, or None."""
    if not stat.S_ISREG(file_status.st_mode):
        return "it is not a regular file"
    if file_status.st_uid not in owners:
        return f"it is owned by {ownership.user_name(file_status.st_uid)}"
    mode = stat.S_IMODE(file_status.st_mode)
    if mode & 0o077:
        return f"other users can open it (mode {mode:04o})"
    return None


def _is_a_directory(path: Path) -> Reason:
    return Reason(N_("the download lock %(path)s is a directory: remove it (rmdir %(path)s)"),
                  {"path": str(path)})


def _cause(error: OSError) -> str | Reason:
    """The OS error's cause as the reasons here name it (its strerror, else its text)."""
    return oserrors.describe(error) if error.strerror else str(error)


def _cannot_use(path: Path, error: OSError) -> Reason:
    return Reason(N_("cannot use the download lock %(path)s: %(error)s"),
                  {"path": str(path), "error": _cause(error)})


def _replace_lock_file(directory: int, path: Path, examined: os.stat_result | None,
                       why: str) -> int:
    """Unlink the lock file and create a fresh one (needs write access to the directory
    only). Raise FileExistsError if another process created one meanwhile."""
    log.warning("replacing lock file %s: %s", path, why)
    try:
        current = os.stat(LOCK_NAME, dir_fd=directory, follow_symlinks=False)
        # Only the file we judged: another updater may have replaced it by a good one.
        if examined is None or (current.st_dev, current.st_ino) == (examined.st_dev,
                                                                    examined.st_ino):
            os.unlink(LOCK_NAME, dir_fd=directory)
    except FileNotFoundError:
        pass
    except OSError as error:
        raise LockUnusable(Reason(N_("cannot replace the download lock %(path)s (%(why)s): %(error)s"),
                                  {"path": str(path), "why": why, "error": _cause(error)})) from error
    try:
        descriptor = os.open(LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_EXCL | _OPEN_FLAGS,
                             _LOCK_FILE_MODE, dir_fd=directory)
    except FileExistsError:
        raise
    except OSError as error:
        raise LockUnusable(Reason(N_("cannot create the download lock %(path)s: %(error)s"),
                                  {"path": str(path), "error": _cause(error)})) from error
    os.fchmod(descriptor, _LOCK_FILE_MODE)
    return descriptor


def _same_file(descriptor: int, directory: int) -> bool:
    try:
        on_disk = os.stat(LOCK_NAME, dir_fd=directory, follow_symlinks=False)
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
        descriptor = os.open(path, os.O_RDONLY | _OPEN_FLAGS)
    except OSError:
        return None
    try:
        return _parse_pid(os.pread(descriptor, 32, 0))
    finally:
        os.close(descriptor)


def _parse_pid(content: bytes) -> int | None:
    try:
        pid = int(content.decode("ascii", errors="replace").strip())
    except ValueError:
        return None
    return pid if pid > 0 else None
