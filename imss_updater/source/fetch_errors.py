"""Why a fetch failed, worded once and rendered in any language (part of the HTTP seam).

``FetchError`` is what every fetch raises: ``why`` is its reason as an ``i18n.Reason`` (the
console, ``--lang ja`` and Japanese notifications render it in Japanese), ``reason`` the same
line in English (logs, ``--json``, the English event column: contracts). The builders here
word every reason that needs no exception of requests (statuses, Retry-After, sizes, a full
disk); ``source.http_errors`` classifies requests' exceptions. What a server said (an HTTP
reason phrase, a library's or OpenSSL's own text) stays as it was said, inside the frame.
No reason ever contains the proxy password.
"""

from __future__ import annotations

import datetime
import email.utils
import errno
import http
import math
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

from imss_updater import oserrors
from imss_updater.i18n import N_, Reason

# Kinds worth another attempt: the peer or the path to it may recover within seconds.
# A source slower than the low-speed limit, a deadline spent and a source asking to be left
# alone until a given time are not: another attempt at once would only repeat them.
TRANSIENT_KINDS = frozenset({"timeout", "connection", "proxy"})

# A Retry-After further away than this is cut to it: one forged answer must not stop the
# updates for longer (an honest source asks for minutes, not days).
MAX_RETRY_AFTER = datetime.timedelta(hours=6)

# Statuses whose Retry-After means "come back later" (RFC 9110 10.2.3, RFC 6585 4).
RETRY_AFTER_STATUSES = frozenset({http.HTTPStatus.TOO_MANY_REQUESTS, http.HTTPStatus.SERVICE_UNAVAILABLE})

_DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})
_MB = 1024 * 1024


class FetchError(Exception):
    """A fetch failed; ``why`` says why (a Reason), ``reason`` the same in English, ``kind``
    classifies it.

    Kinds: http_status, retry_later, timeout, too_slow, deadline, tls, proxy_auth, proxy,
    connection, dns, size_mismatch, too_large, disk, protocol. ``status`` is the HTTP status
    when there was one; ``retry_after`` (kind retry_later) is the time, timezone-aware, before
    which the source asked not to be asked again.
    """

    def __init__(
        self,
        why: str | Reason,
        kind: str,
        status: int | None = None,
        *,
        retry_after: datetime.datetime | None = None,
    ) -> None:
        super().__init__(str(why))
        self.why = why
        self.reason = str(why)
        self.kind = kind
        self.status = status
        self.retry_after = retry_after

    @property
    def transient(self) -> bool:
        """True when another attempt may succeed (timeouts, lost connections, 5xx)."""
        if self.kind == "http_status":
            return self.status is not None and self.status >= 500
        return self.kind in TRANSIENT_KINDS


# -- statuses and Retry-After ---------------------------------------------------------------


def status_answer(status: int, phrase_text: str, url: str, proxy_address: str | None) -> Reason:
    """The answer ``HTTP 404 Not Found for URL`` (the reason phrase as the server sent it, else
    the standard one), saying when it came through the proxy (it may be the proxy's)."""
    words = f"{status} {phrase_text or phrase(status)}".strip()
    if proxy_address is None:
        return Reason(N_("HTTP %(status)s for %(url)s"), {"status": words, "url": safe_url(url)})
    return Reason(N_("HTTP %(status)s for %(url)s (via proxy %(proxy)s)"),
                  {"status": words, "url": safe_url(url), "proxy": proxy_address})


def proxy_auth_failed(status: int, proxy_address: str) -> FetchError:
    return FetchError(Reason(N_("proxy authentication failed (HTTP %(status)s) at %(proxy)s"),
                             {"status": status, "proxy": proxy_address}), "proxy_auth", status)


def parse_retry_after(value: str | None, now: datetime.datetime) -> datetime.datetime | None:
    """Given a Retry-After header (delay in seconds or HTTP-date) and the current time (aware),
    return the time before which the source asks not to be asked again, at most
    MAX_RETRY_AFTER ahead; None when the header is absent, unreadable, or already past."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if text.isdigit():
        until = now + datetime.timedelta(seconds=int(text))
    else:
        try:
            until = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if until.tzinfo is None:  # an HTTP-date is always GMT
            until = until.replace(tzinfo=datetime.UTC)
    if until <= now:
        return None
    return min(until, now + MAX_RETRY_AFTER)


def show_time(moment: datetime.datetime) -> str:
    """Return ``moment`` in the gateway's local time with its offset, to the second."""
    return moment.astimezone().isoformat(sep=" ", timespec="seconds")


def wait_reason(until: datetime.datetime, answer: str | Reason) -> Reason:
    """Given the Retry-After time and the answer that carried it, return the reason."""
    return Reason(N_("source asks to wait until %(time)s (%(answer)s)"),
                  {"time": show_time(until), "answer": answer})


# -- sizes ----------------------------------------------------------------------------------


def over_limit(url: str, size: int, limit: int) -> FetchError:
    return FetchError(Reason(N_("%(url)s is %(size)s bytes, over the limit of %(limit)s bytes"),
                             {"url": safe_url(url), "size": size, "limit": limit}), "too_large")


def larger_than_limit(url: str, limit: int) -> FetchError:
    return FetchError(Reason(N_("%(url)s is larger than the limit of %(limit)s bytes"),
                             {"url": safe_url(url), "limit": limit}), "too_large")


def announced_mismatch(url: str, announced: int, expected: int) -> FetchError:
    return FetchError(Reason(N_("size mismatch for %(url)s: the server announces %(announced)s bytes, "
                                "the index says %(expected)s"),
                             {"url": safe_url(url), "announced": announced, "expected": expected}),
                      "size_mismatch")


def received_mismatch(url: str, received: int, expected: int) -> FetchError:
    return FetchError(Reason(N_("size mismatch for %(url)s: received %(received)s bytes, the index "
                                "says %(expected)s"),
                             {"url": safe_url(url), "received": received, "expected": expected}),
                      "size_mismatch")


def received_too_much(url: str, expected: int) -> FetchError:
    return FetchError(Reason(N_("size mismatch for %(url)s: received more than the %(expected)s bytes "
                                "the index announces"), {"url": safe_url(url), "expected": expected}),
                      "size_mismatch")


def content_length(value: str | None, url: str) -> int | None:
    """Given a Content-Length header, return it; raise FetchError (protocol) if invalid."""
    if value is None:
        return None
    try:
        length = int(value)
    except ValueError:
        length = -1
    if length < 0:
        raise FetchError(Reason(N_("invalid Content-Length %(value)s from %(host)s for %(url)s"),
                                {"value": repr(value), "host": host_port(url), "url": safe_url(url)}),
                         "protocol")
    return length


# -- disk -----------------------------------------------------------------------------------


def disk_error(destination: Path, error: OSError, url: str) -> FetchError:
    """Return the FetchError for a failed write of ``destination`` (kind disk)."""
    if error.errno in _DISK_FULL:
        return FetchError(Reason(N_("disk full while downloading %(url)s into %(directory)s"),
                                 {"url": safe_url(url), "directory": str(destination.parent)}), "disk")
    return FetchError(Reason(N_("cannot write %(path)s: %(error)s"),
                             {"path": str(destination), "error": oserrors.describe(error)}), "disk")


def not_enough_space(needed: int, free: int, directory: Path) -> FetchError:
    return FetchError(Reason(N_("not enough free space: %(needed)s MB needed, %(free)s MB free in "
                                "%(directory)s"),
                             {"needed": math.ceil(needed / _MB), "free": free // _MB,
                              "directory": str(directory)}), "disk")


def strerror(error: BaseException) -> str:
    """The English cause of ``error`` (see ``oserrors``: ``describe`` gives it per language)."""
    return oserrors.english(error)


# -- URLs, statuses and secrets --------------------------------------------------------------


def phrase(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return ""


def safe_url(url: str) -> str:
    """Return ``url`` without any user:password part, for messages and logs."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def host_port(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or "?"
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is None:
        port = 443 if parts.scheme == "https" else 80
    return f"{host}:{port}"


def secret_forms(password: str, token: str) -> tuple[str, ...]:
    """Return every form in which a proxy password could appear in a message."""
    if not password:
        return ()
    return (password, quote(password, safe=""), token)


def mask(text: str, secrets: tuple[str, ...]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text
