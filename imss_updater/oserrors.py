"""What an operating-system error says, in any language: Python's ``strerror`` is English.

``describe(error)`` returns the cause of an OSError as a Reason when its errno is in MEANINGS
(the msgid is the C library's own English text, so ``str()`` of it is exactly what
``error.strerror`` says today), and the English ``strerror`` as it is otherwise: the reason
around it is still rendered in the reader's language.
"""

from __future__ import annotations

import errno
import os

from imss_updater.i18n import N_, Reason

# errno -> the glibc strerror text (the msgid; its Japanese is in the catalog).
MEANINGS: dict[int, str] = {
    errno.ENOENT: N_("No such file or directory"),
    errno.EACCES: N_("Permission denied"),
    errno.EPERM: N_("Operation not permitted"),
    errno.ECONNREFUSED: N_("Connection refused"),
    errno.ECONNRESET: N_("Connection reset by peer"),
    errno.ECONNABORTED: N_("Software caused connection abort"),
    errno.ETIMEDOUT: N_("Connection timed out"),
    errno.EHOSTUNREACH: N_("No route to host"),
    errno.ENETUNREACH: N_("Network is unreachable"),
    errno.ENETDOWN: N_("Network is down"),
    errno.EHOSTDOWN: N_("Host is down"),
    errno.EADDRNOTAVAIL: N_("Cannot assign requested address"),
    errno.EADDRINUSE: N_("Address already in use"),
    errno.ENOSPC: N_("No space left on device"),
    errno.EDQUOT: N_("Disk quota exceeded"),
    errno.EROFS: N_("Read-only file system"),
    errno.EEXIST: N_("File exists"),
    errno.ENOTDIR: N_("Not a directory"),
    errno.EISDIR: N_("Is a directory"),
    errno.ENOTEMPTY: N_("Directory not empty"),
    errno.ELOOP: N_("Too many levels of symbolic links"),
    errno.ENAMETOOLONG: N_("File name too long"),
    errno.EXDEV: N_("Invalid cross-device link"),
    errno.EIO: N_("Input/output error"),
    errno.EMFILE: N_("Too many open files"),
    errno.ENFILE: N_("Too many open files in system"),
    errno.EPIPE: N_("Broken pipe"),
    errno.ENOEXEC: N_("Exec format error"),
    errno.E2BIG: N_("Argument list too long"),
    errno.EBUSY: N_("Device or resource busy"),
    errno.ETXTBSY: N_("Text file busy"),
    errno.ENOMEM: N_("Cannot allocate memory"),
    errno.EFBIG: N_("File too large"),
    errno.EAGAIN: N_("Resource temporarily unavailable"),
    errno.EINVAL: N_("Invalid argument"),
}


def english(error: BaseException) -> str:
    """Return the English cause of ``error``: its strerror, else the errno's text, else the
    exception's own text (or its class name)."""
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    if isinstance(error, OSError) and error.errno:
        return os.strerror(error.errno)
    return str(error) or type(error).__name__


def describe(error: BaseException) -> str | Reason:
    """Return the cause of ``error`` for a reason: a Reason (rendered per language) when its
    errno has a meaning here and its text is the usual one, the English text otherwise."""
    text = english(error)
    if isinstance(error, OSError) and error.errno is not None:
        return meaning(error.errno, text)
    return text


def meaning(number: int, text: str | None = None) -> str | Reason:
    """Given an errno (and the English text the error carried, if any), return its Reason;
    the English text as it is when the errno is unknown here or the text is not the usual one
    (an English reason must stay exactly what the error said)."""
    msgid = MEANINGS.get(number)
    if msgid is None or (text is not None and text != msgid):
        return text if text is not None else os.strerror(number)
    return Reason(msgid)
