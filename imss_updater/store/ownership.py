"""Who else can change the directories the updater works in.

Root must never act on a path that another local user can redirect. This module holds the
one rule and its three uses:

- ``foreign_reason(status)``: why a directory is open to other users (owned by someone else,
  writable by group or others), or None when only we (and root) can change it;
- ``require_private(path, what)``: the start-up check of the state directory and the
  install root — refuse with one line naming the path and the command that fixes it;
- ``open_beneath`` / ``open_private`` / ``pinned``: descriptors of the directories the store
  works in, opened without following a symbolic link that another user could have planted,
  and a path (``/proc/self/fd/N``) that names the opened directory itself, so that renaming
  or replacing the directory afterwards cannot redirect what is done inside it.
"""

from __future__ import annotations

import contextlib
import errno
import grp
import logging
import os
import pwd
import shlex
import shutil
import stat
from pathlib import Path, PurePosixPath

from imss_updater import oserrors
from imss_updater.i18n import N_, Reason

log = logging.getLogger(__name__)

_DIRECTORY_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_OPEN_ATTEMPTS = 5


# What ``require_private`` checks (its ``what``), worded in the catalog.
WHATS = (N_("state directory"), N_("install root"))


class UntrustedPathError(PermissionError):
    """A path another user could change or redirect; ``reason`` is one line that names the
    path and what to do about it, ``why`` the same as a Reason (rendered in any language)."""

    def __init__(self, why: str | Reason) -> None:
        super().__init__(errno.EPERM, str(why))
        self.why = why
        self.reason = str(why)

    def __str__(self) -> str:
        return self.reason


def trusted_uids() -> tuple[int, ...]:
    """The owners whose directories we may work in: root, and ourselves."""
    return tuple(dict.fromkeys((0, os.geteuid())))


def user_name(uid: int) -> str:
    """Return ``uid N (name)``, or ``uid N`` for an unknown uid."""
    try:
        return f"uid {uid} ({pwd.getpwuid(uid).pw_name})"
    except KeyError:
        return f"uid {uid}"


def _group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def foreign_reason(status: os.stat_result, *, sticky_ok: bool = False) -> str | None:
    """Given a directory's status, return why another user can change its entries ("is owned
    by uid 65534 (nobody)", "is writable by others (mode 0777)"), or None if only root and
    we can. With ``sticky_ok``, a sticky directory (like /tmp) counts as safe: other users
    may add entries to it but not rename or remove ours."""
    reason = foreign_why(status, sticky_ok=sticky_ok)
    return None if reason is None else str(reason)


def foreign_why(status: os.stat_result, *, sticky_ok: bool = False) -> Reason | None:
    """``foreign_reason`` as a Reason (rendered in any language)."""
    if status.st_uid not in trusted_uids():
        return Reason(N_("is owned by %(user)s"), {"user": user_name(status.st_uid)})
    mode = stat.S_IMODE(status.st_mode)
    if sticky_ok and mode & stat.S_ISVTX:
        return None
    if mode & stat.S_IWOTH:
        return Reason(N_("is writable by others (mode %(mode)s)"), {"mode": f"{mode:04o}"})
    if mode & stat.S_IWGRP:
        return Reason(N_("is writable by group %(group)s (mode %(mode)s)"),
                      {"group": _group_name(status.st_gid), "mode": f"{mode:04o}"})
    return None


def require_private(path: Path, what: str) -> None:
    """When running as root, raise UntrustedPathError unless directory ``path`` (if it
    exists) is owned by root and not writable by group or others, and every directory above
    it (as given and as resolved) is owned by root and writable by nobody else unless sticky.
    The reason names the path and the fix, e.g. "state directory /x is owned by uid 65534
    (nobody); run: chown root:root /x && chmod 0755 /x". Do nothing for other users."""
    if os.geteuid() != 0:
        return
    named: str | Reason = Reason(what) if what in WHATS else what
    absolute = Path(os.path.abspath(path))
    try:
        status: os.stat_result | None = os.stat(absolute)
    except FileNotFoundError:
        status = None
    except OSError as error:
        raise UntrustedPathError(Reason(N_("%(what)s %(path)s cannot be checked: %(error)s"), {
            "what": named, "path": str(path), "error": _cause(error)})) from error
    if status is not None:
        if not stat.S_ISDIR(status.st_mode):
            raise UntrustedPathError(Reason(N_("%(what)s %(path)s is not a directory"),
                                            {"what": named, "path": str(path)}))
        reason = foreign_why(status)
        if reason is not None:
            quoted = shlex.quote(str(path))
            raise UntrustedPathError(Reason(
                N_("%(what)s %(path)s %(reason)s; run: chown root:root %(quoted)s && chmod 0755 %(quoted)s"),
                {"what": named, "path": str(path), "reason": reason, "quoted": quoted}))
    resolved = Path(os.path.realpath(absolute))
    ancestors = dict.fromkeys([*reversed(absolute.parents), *reversed(resolved.parents)])
    for ancestor in ancestors:
        try:
            ancestor_status = os.stat(ancestor)
        except FileNotFoundError:
            continue
        except OSError as error:
            raise UntrustedPathError(Reason(
                N_("%(what)s %(path)s: %(ancestor)s cannot be checked: %(error)s"),
                {"what": named, "path": str(path), "ancestor": str(ancestor), "error": _cause(error)},
            )) from error
        reason = foreign_why(ancestor_status, sticky_ok=True)
        if reason is not None:
            quoted = shlex.quote(str(ancestor))
            raise UntrustedPathError(Reason(
                N_("%(what)s %(path)s is inside %(ancestor)s, which %(reason)s; run: chown root "
                   "%(quoted)s && chmod go-w %(quoted)s"),
                {"what": named, "path": str(path), "ancestor": str(ancestor), "reason": reason,
                 "quoted": quoted}))


def _cause(error: OSError) -> str | Reason:
    """What ``error.strerror`` says (``None`` when it has none, as before), per language."""
    return oserrors.describe(error) if error.strerror else str(error.strerror)


def pinned(descriptor: int) -> Path:
    """Return a path naming the directory open on ``descriptor`` itself: whatever happens to
    the directory's name afterwards, paths below this one stay inside it."""
    return Path(f"/proc/self/fd/{descriptor}")


def pinned_for_children(descriptor: int) -> Path:
    """Like ``pinned``, but a path that the commands this process runs as root (openssl)
    can use too: ``/proc/self`` would name the child itself."""
    return Path(f"/proc/{os.getpid()}/fd/{descriptor}")


def open_beneath(root: Path, relative: str, *, create: bool, mode: int = 0o755) -> int | None:
    """Open directory ``root/relative`` and return its descriptor, or None if it is missing
    and not ``create``. Missing directories are created with ``mode``. ``root`` itself may be
    a symbolic link (the start-up check vouches for it); below it, a link found in a
    directory another user can change is not followed: raise UntrustedPathError. Raise
    OSError for other failures (e.g. a file where a directory should be)."""
    descriptor = os.open(root, _DIRECTORY_FLAGS)
    shown = root
    try:
        for part in PurePosixPath(relative).parts:
            reason = foreign_why(os.fstat(descriptor))
            flags = _DIRECTORY_FLAGS | (os.O_NOFOLLOW if reason else 0)
            child = _open_child(descriptor, part, flags, create=create, mode=mode)
            if child is None:
                os.close(descriptor)
                return None
            if child < 0:
                status = os.stat(part, dir_fd=descriptor, follow_symlinks=False)
                if reason is not None and stat.S_ISLNK(status.st_mode):
                    raise UntrustedPathError(Reason(
                        N_("%(path)s is a symbolic link in %(directory)s, which %(reason)s: not followed"),
                        {"path": str(shown / part), "directory": str(shown), "reason": reason}))
                raise NotADirectoryError(errno.ENOTDIR, "Not a directory", str(shown / part))
            os.close(descriptor)
            descriptor, shown = child, shown / part
    except BaseException:
        os.close(descriptor)
        raise
    return descriptor


def _open_child(parent: int, name: str, flags: int, *, create: bool, mode: int) -> int | None:
    """Open ``name`` in ``parent``; return its descriptor, None if missing and not
    ``create``, or -1 if it is a symbolic link not followed or not a directory."""
    for _ in range(_OPEN_ATTEMPTS):
        try:
            return os.open(name, flags, dir_fd=parent)
        except FileNotFoundError:
            if not create:
                return None
            try:
                os.mkdir(name, mode, dir_fd=parent)
            except FileExistsError:
                continue
            child = os.open(name, flags, dir_fd=parent)
            os.fchmod(child, mode)  # the umask may have narrowed or widened it
            return child
        except OSError as error:
            if error.errno in (errno.ELOOP, errno.ENOTDIR):
                return -1
            raise
    raise OSError(errno.EAGAIN, "keeps being replaced", name)


def open_private(parent: int, name: str, *, shown: Path, create: bool, replace: bool,
                 mode: int = 0o755) -> int | None:
    """Open ``name`` in directory ``parent`` as a directory that only we can change, without
    following a symbolic link; return its descriptor, or None if missing and not ``create``.

    Anything else found there — a symbolic link, a file, a directory owned by another user or
    writable by others — is, with ``replace``, removed (one log line says why) and a fresh
    directory made; without ``replace``, a directory of ours that others could write is
    narrowed to ``mode`` (logged), and anything else raises UntrustedPathError naming
    ``shown`` (the path to report) and the fix.
    """
    for _ in range(_OPEN_ATTEMPTS):
        child = _open_child(parent, name, _DIRECTORY_FLAGS | os.O_NOFOLLOW, create=create,
                            mode=mode)
        if child is None:
            return None
        if child < 0:
            is_link = stat.S_ISLNK(os.stat(name, dir_fd=parent, follow_symlinks=False).st_mode)
            why = Reason(N_("is a symbolic link") if is_link else N_("is not a directory"))
        else:
            status = os.fstat(child)
            reason = foreign_why(status)
            if reason is None:
                return child
            if not replace and status.st_uid == os.geteuid():
                log.warning("%s %s; made it mode %04o", shown, reason, mode)
                os.fchmod(child, mode)
                return child
            os.close(child)
            why = reason
        if not replace:
            quoted = shlex.quote(str(shown))
            raise UntrustedPathError(Reason(
                N_("%(path)s %(reason)s; make it a directory of root's: chown -R root:root "
                   "%(quoted)s && chmod 0755 %(quoted)s"),
                {"path": str(shown), "reason": why, "quoted": quoted}))
        log.warning("replacing %s: it %s", shown, why)
        remove_entry(parent, name)
    raise UntrustedPathError(Reason(N_("%(path)s keeps being replaced"), {"path": str(shown)}))


def remove_entry(parent: int, name: str) -> None:
    """Remove ``name`` from directory ``parent``: a directory with everything in it (links in
    it are removed, never followed), anything else by unlinking it. Missing is fine."""
    try:
        status = os.stat(name, dir_fd=parent, follow_symlinks=False)
        if stat.S_ISDIR(status.st_mode):
            shutil.rmtree(name, dir_fd=parent)
        else:
            os.unlink(name, dir_fd=parent)
    except FileNotFoundError:
        pass


def read_plain(directory: Path, name: str, *, owner: int, private: bool = False) -> bytes | None:
    """Return the content of file ``name`` in ``directory``, read without following a
    symbolic link, or None if it is missing. Raise UntrustedPathError if it is a link, not a
    regular file, has another name (hard link), is not owned by ``owner``, or — with
    ``private`` — group or others may open it: then it may be someone else's choice."""
    path = directory / name
    try:
        descriptor = os.open(directory, _DIRECTORY_FLAGS)
    except FileNotFoundError:
        return None
    try:
        try:
            handle = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                             dir_fd=descriptor)
        except FileNotFoundError:
            return None
        except OSError as error:
            if error.errno == errno.ELOOP:
                raise UntrustedPathError(Reason(N_("%(path)s is a symbolic link"),
                                                {"path": str(path)})) from error
            raise
    finally:
        os.close(descriptor)
    with os.fdopen(handle, "rb") as opened:
        status = os.fstat(opened.fileno())
        mode = stat.S_IMODE(status.st_mode)
        if not stat.S_ISREG(status.st_mode):
            raise UntrustedPathError(Reason(N_("%(path)s is not a regular file"), {"path": str(path)}))
        if status.st_nlink != 1:
            raise UntrustedPathError(Reason(N_("%(path)s has another name (hard link)"), {"path": str(path)}))
        if status.st_uid != owner:
            raise UntrustedPathError(Reason(N_("%(path)s is owned by %(user)s"),
                                            {"path": str(path), "user": user_name(status.st_uid)}))
        if private and mode & 0o077:
            raise UntrustedPathError(Reason(N_("%(path)s can be opened by other users (mode %(mode)s)"),
                                            {"path": str(path), "mode": f"{mode:04o}"}))
        return opened.read()


def write_replacing(directory: Path, name: str, data: bytes, *, mode: int = 0o600,
                    owner: tuple[int, int] | None = None) -> None:
    """Replace file ``name`` in ``directory`` atomically by one holding ``data``: written to
    ``name.new``, created exclusively without following links (a leftover of that name is
    removed first), given ``mode`` and ``owner`` (uid, gid) through its descriptor, synced,
    then renamed over ``name``. Whatever ``name`` was (a link included) is replaced, never
    written through. Raise OSError if the disk refuses."""
    staging = f"{name}.new"
    descriptor = os.open(directory, _DIRECTORY_FLAGS)
    try:
        for attempt in range(_OPEN_ATTEMPTS):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(staging, dir_fd=descriptor)
            try:
                handle = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                                 | os.O_CLOEXEC, mode, dir_fd=descriptor)
                break
            except FileExistsError:
                if attempt == _OPEN_ATTEMPTS - 1:
                    raise
        with os.fdopen(handle, "wb") as output:
            os.fchmod(output.fileno(), mode)
            if owner is not None:
                os.fchown(output.fileno(), *owner)
            output.write(data)
            output.flush()
            os.fsync(output.fileno())
        os.replace(staging, name, src_dir_fd=descriptor, dst_dir_fd=descriptor)
    finally:
        os.close(descriptor)
