"""Why a fetch failed, in one line an administrator can act on (part of the HTTP seam).

``FetchError`` is what every fetch raises. ``classify`` turns an exception of requests,
urllib3, ssl or the socket (or a limit of ``source.pace``) into one; the helpers build the
reasons: the URL without credentials, ``host:port``, the cause of a TLS or socket error, a
Retry-After date, a full disk. No reason ever contains the proxy password.
"""

from __future__ import annotations

import datetime
import email.utils
import errno
import http
import math
import os
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote, urlsplit, urlunsplit

import requests
import urllib3.exceptions

from imss_updater.source import pace

if TYPE_CHECKING:
    from imss_updater.source.http import HttpOptions

# Kinds worth another attempt: the peer or the path to it may recover within seconds.
# A source slower than the low-speed limit, a deadline spent and a source asking to be left
# alone until a given time are not: another attempt at once would only repeat them.
TRANSIENT_KINDS = frozenset({"timeout", "connection", "proxy"})

# A Retry-After further away than this is cut to it: one forged answer must not stop the
# updates for longer (an honest source asks for minutes, not days).
MAX_RETRY_AFTER = datetime.timedelta(hours=6)

# Statuses whose Retry-After means "come back later" (RFC 9110 10.2.3, RFC 6585 4).
RETRY_AFTER_STATUSES = frozenset({http.HTTPStatus.TOO_MANY_REQUESTS, http.HTTPStatus.SERVICE_UNAVAILABLE})

_TLS_VERSION_ERRORS = frozenset(
    {"UNSUPPORTED_PROTOCOL", "TLSV1_ALERT_PROTOCOL_VERSION", "NO_PROTOCOLS_AVAILABLE"}
)
# What a failed chain means (OpenSSL X509_V_ERR_*), seed 003: the run cannot see the chain
# the server sent, so a missing issuer is named as one of two; `diagnose` tells which.
_CHAIN_EXPLANATIONS = {
    18: "the server's certificate is self-signed and not trusted",
    19: "missing root certificate: the root the server sent is not in Update/CAFile or the system store",
    20: "missing intermediate or root certificate: the server does not send an intermediate certificate, "
        "or the root is not in Update/CAFile; `imss-updater diagnose` names which",
}
# A deadline counts as reached when less than this is left (socket timers are not exact).
DEADLINE_SLACK = 0.01

_DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})
_MB = 1024 * 1024


class FetchError(Exception):
    """A fetch failed; ``reason`` says why in one line, ``kind`` classifies it.

    Kinds: http_status, retry_later, timeout, too_slow, deadline, tls, proxy_auth, proxy,
    connection, dns, size_mismatch, too_large, disk, protocol. ``status`` is the HTTP status
    when there was one; ``retry_after`` (kind retry_later) is the time, timezone-aware, before
    which the source asked not to be asked again.
    """

    def __init__(
        self,
        reason: str,
        kind: str,
        status: int | None = None,
        *,
        retry_after: datetime.datetime | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.kind = kind
        self.status = status
        self.retry_after = retry_after

    @property
    def transient(self) -> bool:
        """True when another attempt may succeed (timeouts, lost connections, 5xx)."""
        if self.kind == "http_status":
            return self.status is not None and self.status >= 500
        return self.kind in TRANSIENT_KINDS


# -- Retry-After --------------------------------------------------------------------------


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


def wait_reason(until: datetime.datetime, answer: str) -> str:
    """Given the Retry-After time and the answer that carried it, return the reason."""
    return f"source asks to wait until {show_time(until)} ({answer})"


# -- disk -----------------------------------------------------------------------------------


def disk_error(destination: Path, error: OSError, url: str) -> FetchError:
    """Return the FetchError for a failed write of ``destination`` (kind disk)."""
    if error.errno in _DISK_FULL:
        return FetchError(
            f"disk full while downloading {safe_url(url)} into {destination.parent}", "disk"
        )
    return FetchError(f"cannot write {destination}: {strerror(error)}", "disk")


def not_enough_space(needed: int, free: int, directory: Path) -> FetchError:
    return FetchError(
        f"not enough free space: {math.ceil(needed / _MB)} MB needed, {free // _MB} MB free "
        f"in {directory}",
        "disk",
    )


# -- exceptions ---------------------------------------------------------------------------


def causes(error: BaseException) -> Iterator[BaseException]:
    """Yield ``error`` and every exception nested in it (args, reason, cause, context)."""
    seen: set[int] = set()
    pending: list[BaseException] = [error]
    while pending:
        current = pending.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        nested: list[object] = [
            getattr(current, "reason", None),
            current.__cause__,
            current.__context__,
            *current.args,
        ]
        pending.extend(item for item in nested if isinstance(item, BaseException))


def tunnel_failure(chain: list[BaseException]) -> tuple[int, str] | None:
    """Return (status, text) when the proxy answered CONNECT with an error status."""
    marker = "Tunnel connection failed: "
    for cause in chain:
        text = str(cause)
        if isinstance(cause, OSError) and text.startswith(marker):
            answer = text.removeprefix(marker).strip()
            code = answer.split(" ", 1)[0]
            return (int(code), answer) if code.isdigit() else (0, answer)
    return None


def tls_detail(error: ssl.SSLError) -> str:
    if error.reason in _TLS_VERSION_ERRORS:
        return "unsupported protocol (server offers TLS older than 1.2)"
    if error.reason == "WRONG_VERSION_NUMBER":
        return "the server did not answer with TLS (is it plain HTTP?)"
    if error.reason:
        return str(error.reason).replace("_", " ").lower()
    return str(error)


def last_cause_text(chain: list[BaseException]) -> str:
    text = str(chain[-1]) if chain else ""
    return text or (type(chain[-1]).__name__ if chain else "unknown error")


def strerror(error: BaseException) -> str:
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    if isinstance(error, OSError) and error.errno:
        return os.strerror(error.errno)
    return str(error) or type(error).__name__


# -- classification of requests' exceptions ----------------------------------------------


def classify(
    error: BaseException, url: str, options: HttpOptions, secrets: tuple[str, ...], *, reading: bool = False
) -> FetchError:
    """Given an exception from requests (raised while fetching ``url`` with ``options``),
    return the FetchError an administrator reads; ``secrets`` are masked in its reason."""
    shown_url = safe_url(url)
    target = host_port(url)
    proxy = options.proxy
    chain = list(causes(error))

    for cause in chain:
        if isinstance(cause, pace.TransferAborted):
            return aborted_error(cause, shown_url, options)
    watch = pace.current()
    if watch is not None and watch.remaining() <= DEADLINE_SLACK:
        return aborted_error(pace.TransferAborted(pace.DEADLINE, watch.deadline or 0.0), shown_url, options)

    for cause in chain:
        if isinstance(cause, ssl.SSLCertVerificationError):
            detail = cause.verify_message or cause.reason or "certificate verify failed"
            explained = _CHAIN_EXPLANATIONS.get(cause.verify_code)
            if explained:
                detail += f" ({explained})"
            return FetchError(f"TLS failure for {shown_url}: {detail}", "tls")
    for cause in chain:
        if isinstance(cause, ssl.SSLError) and not isinstance(cause, ssl.SSLEOFError):
            return FetchError(f"TLS failure for {shown_url}: {tls_detail(cause)}", "tls")

    if proxy is not None:
        tunnel = tunnel_failure(chain)
        if tunnel is not None:
            status, text = tunnel
            if status in (401, 407):
                return FetchError(
                    f"proxy authentication failed (HTTP {status}) at {proxy.address}",
                    "proxy_auth",
                    status,
                )
            return FetchError(
                f"proxy {proxy.address} could not open a tunnel to {target}: {text}",
                "proxy",
                status,
            )
        if any(isinstance(c, urllib3.exceptions.ProxyError) for c in chain):
            detail = connect_detail(chain)
            return FetchError(f"cannot connect to proxy {proxy.address}: {detail}", "proxy")

    for cause in chain:
        if isinstance(cause, urllib3.exceptions.NameResolutionError):
            host = urlsplit(url).hostname or target
            return FetchError(f"cannot resolve host {host}", "dns")
        if isinstance(cause, urllib3.exceptions.NewConnectionError):
            detail = connect_detail(chain)
            if detail == "connection refused":
                return FetchError(f"connection refused: {target}", "connection")
            return FetchError(f"cannot connect to {target}: {detail}", "connection")
        if isinstance(cause, urllib3.exceptions.ConnectTimeoutError):
            return FetchError(
                f"timed out after {options.connect_timeout:g} s connecting to {target}",
                "timeout",
            )
        if isinstance(cause, urllib3.exceptions.ReadTimeoutError | TimeoutError):
            return FetchError(
                f"timed out after {options.read_timeout:g} s reading {shown_url}",
                "timeout",
            )
    for cause in chain:
        if isinstance(cause, urllib3.exceptions.IncompleteRead):
            return FetchError(
                f"connection closed by {target} after {cause.partial} bytes of "
                f"{shown_url} ({cause.expected} more were announced)",
                "connection",
            )
        if isinstance(cause, ConnectionResetError | BrokenPipeError | ssl.SSLEOFError):
            return FetchError(f"connection reset by {target} for {shown_url}", "connection")
        if isinstance(cause, http.client.RemoteDisconnected):
            return FetchError(
                f"{target} closed the connection without answering {shown_url}",
                "connection",
            )
    if isinstance(error, requests.TooManyRedirects):
        return FetchError(f"too many redirects for {shown_url}", "protocol")
    if isinstance(error, requests.exceptions.InvalidURL | requests.exceptions.MissingSchema):
        return FetchError(f"invalid URL {shown_url}", "protocol")
    kind = "connection" if isinstance(error, requests.ConnectionError) else "protocol"
    if reading and kind == "protocol":
        kind = "connection"
    detail = mask(last_cause_text(chain), secrets)
    return FetchError(f"request for {shown_url} failed: {detail}", kind)

def aborted_error(aborted: pace.TransferAborted, shown_url: str, options: HttpOptions) -> FetchError:
    """Return the FetchError for a fetch stopped by a limit of ``source.pace``."""
    proxy = options.proxy
    via = f" (via proxy {proxy.address})" if proxy is not None else ""
    if aborted.cause == pace.TOO_SLOW:
        return FetchError(
            f"source too slow: fewer than {options.low_speed_bytes} bytes in "
            f"{aborted.seconds:g} s reading {shown_url}{via}",
            "too_slow",
        )
    if aborted.cause == pace.HANDSHAKE:
        return FetchError(
            f"TLS handshake timed out after {aborted.seconds:g} s for {shown_url}{via}",
            "timeout",
        )
    return FetchError(
        f"deadline exceeded: {shown_url} not received within {aborted.seconds:g} s{via}",
        "deadline",
    )


def connect_detail(chain: list[BaseException]) -> str:
    for cause in chain:
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cause, urllib3.exceptions.ConnectTimeoutError) and not isinstance(
            cause, urllib3.exceptions.NewConnectionError
        ):
            return "timed out"
        if isinstance(cause, TimeoutError):
            return "timed out"
        if isinstance(cause, OSError) and cause.errno is not None:
            return strerror(cause)
    return last_cause_text(chain)


# -- URLs, statuses and secrets --------------------------------------------------------------


def content_length(value: str | None, url: str) -> int | None:
    """Given a Content-Length header, return it; raise FetchError (protocol) if invalid."""
    if value is None:
        return None
    try:
        length = int(value)
    except ValueError:
        length = -1
    if length < 0:
        raise FetchError(
            f"invalid Content-Length {value!r} from {host_port(url)} for {safe_url(url)}",
            "protocol",
        )
    return length


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
