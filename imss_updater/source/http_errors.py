"""Why a fetch failed: requests', urllib3's, ssl's and the socket's exceptions classified
(part of the HTTP seam, with ``source.fetch_errors`` where the reasons without an exception
of requests are worded).

``classify`` turns an exception of requests, urllib3, ssl or the socket (or a limit of
``source.pace``) into a FetchError whose ``why`` is an ``i18n.Reason``: the URL without
credentials, ``host:port``, the cause of a TLS or socket error (an errno's text through
``oserrors``; OpenSSL's and the libraries' own words stay as they are). No reason ever
contains the proxy password.
"""

from __future__ import annotations

import http
import ssl
from collections.abc import Iterator
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import requests
import urllib3.exceptions

from imss_updater import oserrors
from imss_updater.i18n import N_, Reason
from imss_updater.source import pace
from imss_updater.source.fetch_errors import (
    MAX_RETRY_AFTER,
    RETRY_AFTER_STATUSES,
    TRANSIENT_KINDS,
    FetchError,
    content_length,
    disk_error,
    host_port,
    mask,
    not_enough_space,
    parse_retry_after,
    phrase,
    proxy_auth_failed,
    safe_url,
    secret_forms,
    show_time,
    strerror,
    wait_reason,
)

if TYPE_CHECKING:
    from imss_updater.source.http_options import HttpOptions

__all__ = [
    "MAX_RETRY_AFTER",
    "RETRY_AFTER_STATUSES",
    "TRANSIENT_KINDS",
    "FetchError",
    "classify",
    "content_length",
    "disk_error",
    "host_port",
    "mask",
    "not_enough_space",
    "parse_retry_after",
    "phrase",
    "safe_url",
    "secret_forms",
    "show_time",
    "strerror",
    "wait_reason",
]

_TLS_VERSION_ERRORS = frozenset(
    {"UNSUPPORTED_PROTOCOL", "TLSV1_ALERT_PROTOCOL_VERSION", "NO_PROTOCOLS_AVAILABLE"}
)
# What a failed chain means (OpenSSL X509_V_ERR_*), seed 003: the run cannot see the chain
# the server sent, so a missing issuer is named as one of two; `diagnose` tells which.
_CHAIN_EXPLANATIONS = {
    18: N_("the server's certificate is self-signed and not trusted"),
    19: N_("missing root certificate: the root the server sent is not in Update/CAFile or the system store"),
    20: N_("missing intermediate or root certificate: the server does not send an intermediate certificate, "
           "or the root is not in Update/CAFile; `imss-updater diagnose` names which"),
}
# OpenSSL's verify messages an administrator meets most, in the catalog (the others stay
# as OpenSSL words them).
_VERIFY_MESSAGES = frozenset({
    N_("certificate has expired"),
    N_("certificate is not yet valid"),
    N_("self-signed certificate"),
    N_("self-signed certificate in certificate chain"),
    N_("unable to get local issuer certificate"),
    N_("unable to get issuer certificate"),
    N_("certificate verify failed"),
    N_("certificate signature failure"),
    N_("unsupported certificate purpose"),
})
# A deadline counts as reached when less than this is left (socket timers are not exact).
DEADLINE_SLACK = 0.01


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


def tls_detail(error: ssl.SSLError) -> str | Reason:
    if error.reason in _TLS_VERSION_ERRORS:
        return Reason(N_("unsupported protocol (server offers TLS older than 1.2)"))
    if error.reason == "WRONG_VERSION_NUMBER":
        return Reason(N_("the server did not answer with TLS (is it plain HTTP?)"))
    if error.reason:
        return str(error.reason).replace("_", " ").lower()  # OpenSSL's words
    return str(error)


def verify_detail(error: ssl.SSLCertVerificationError) -> str | Reason:
    """What OpenSSL said of the chain (in the catalog when it is a usual message), with what
    it means for a missing issuer (seed 003)."""
    said = error.verify_message or error.reason or "certificate verify failed"
    detail: str | Reason = Reason(said) if said in _VERIFY_MESSAGES else said
    explained = _CHAIN_EXPLANATIONS.get(error.verify_code)
    if explained:
        return Reason(N_("%(detail)s (%(explanation)s)"),
                      {"detail": detail, "explanation": Reason(explained)})
    return detail


def last_cause_text(chain: list[BaseException]) -> str:
    text = str(chain[-1]) if chain else ""
    return text or (type(chain[-1]).__name__ if chain else "unknown error")


# -- classification of requests' exceptions ----------------------------------------------


def classify(
    error: BaseException, url: str, options: HttpOptions, secrets: tuple[str, ...], *, reading: bool = False
) -> FetchError:
    """Given an exception from requests (raised while fetching ``url`` with ``options``),
    return the FetchError an administrator reads; ``secrets`` are masked in its reason."""
    shown_url = safe_url(url)
    chain = list(causes(error))

    for cause in chain:
        if isinstance(cause, pace.TransferAborted):
            return aborted_error(cause, shown_url, options)
    watch = pace.current()
    if watch is not None and watch.remaining() <= DEADLINE_SLACK:
        return aborted_error(pace.TransferAborted(pace.DEADLINE, watch.deadline or 0.0), shown_url, options)

    for cause in chain:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return tls_failure(shown_url, verify_detail(cause))
    for cause in chain:
        if isinstance(cause, ssl.SSLError) and not isinstance(cause, ssl.SSLEOFError):
            return tls_failure(shown_url, tls_detail(cause))

    found = proxy_failure(chain, url, options) or connection_failure(chain, url, options)
    if found is not None:
        return found
    if isinstance(error, requests.TooManyRedirects):
        return FetchError(Reason(N_("too many redirects for %(url)s"), {"url": shown_url}), "protocol")
    if isinstance(error, requests.exceptions.InvalidURL | requests.exceptions.MissingSchema):
        return FetchError(Reason(N_("invalid URL %(url)s"), {"url": shown_url}), "protocol")
    kind = "connection" if isinstance(error, requests.ConnectionError) else "protocol"
    if reading and kind == "protocol":
        kind = "connection"
    detail = mask(last_cause_text(chain), secrets)  # the library's own words
    return FetchError(Reason(N_("request for %(url)s failed: %(detail)s"),
                             {"url": shown_url, "detail": detail}), kind)


def tls_failure(shown_url: str, detail: str | Reason) -> FetchError:
    return FetchError(Reason(N_("TLS failure for %(url)s: %(detail)s"), {"url": shown_url, "detail": detail}),
                      "tls")


def proxy_failure(chain: list[BaseException], url: str, options: HttpOptions) -> FetchError | None:
    """The FetchError when the proxy refused or could not be reached, else None."""
    proxy = options.proxy
    if proxy is None:
        return None
    tunnel = tunnel_failure(chain)
    if tunnel is not None:
        status, text = tunnel
        if status in (401, 407):
            return proxy_auth_failed(status, proxy.address)
        return FetchError(Reason(N_("proxy %(proxy)s could not open a tunnel to %(target)s: %(answer)s"),
                                 {"proxy": proxy.address, "target": host_port(url), "answer": text}),
                          "proxy", status)
    if any(isinstance(c, urllib3.exceptions.ProxyError) for c in chain):
        return FetchError(Reason(N_("cannot connect to proxy %(proxy)s: %(detail)s"),
                                 {"proxy": proxy.address, "detail": connect_detail(chain)}), "proxy")
    return None


def connection_failure(chain: list[BaseException], url: str, options: HttpOptions) -> FetchError | None:
    """The FetchError for a name, a connection or a read that failed, else None."""
    shown_url, target = safe_url(url), host_port(url)
    for cause in chain:
        if isinstance(cause, urllib3.exceptions.NameResolutionError):
            host = urlsplit(url).hostname or target
            return FetchError(Reason(N_("cannot resolve host %(host)s"), {"host": host}), "dns")
        if isinstance(cause, urllib3.exceptions.NewConnectionError):
            detail = connect_detail(chain)
            if isinstance(detail, Reason) and detail.msgid == CONNECTION_REFUSED:
                return FetchError(Reason(N_("connection refused: %(target)s"), {"target": target}),
                                  "connection")
            return FetchError(Reason(N_("cannot connect to %(target)s: %(detail)s"),
                                     {"target": target, "detail": detail}), "connection")
        if isinstance(cause, urllib3.exceptions.ConnectTimeoutError):
            return FetchError(Reason(N_("timed out after %(seconds)s s connecting to %(target)s"),
                                     {"seconds": f"{options.connect_timeout:g}", "target": target}),
                              "timeout")
        if isinstance(cause, urllib3.exceptions.ReadTimeoutError | TimeoutError):
            return FetchError(Reason(N_("timed out after %(seconds)s s reading %(url)s"),
                                     {"seconds": f"{options.read_timeout:g}", "url": shown_url}), "timeout")
    for cause in chain:
        if isinstance(cause, urllib3.exceptions.IncompleteRead):
            return FetchError(Reason(N_("connection closed by %(target)s after %(partial)s bytes of %(url)s "
                                        "(%(expected)s more were announced)"),
                                     {"target": target, "partial": cause.partial, "url": shown_url,
                                      "expected": cause.expected}), "connection")
        if isinstance(cause, ConnectionResetError | BrokenPipeError | ssl.SSLEOFError):
            return FetchError(Reason(N_("connection reset by %(target)s for %(url)s"),
                                     {"target": target, "url": shown_url}), "connection")
        if isinstance(cause, http.client.RemoteDisconnected):
            return FetchError(Reason(N_("%(target)s closed the connection without answering %(url)s"),
                                     {"target": target, "url": shown_url}), "connection")
    return None


def aborted_error(aborted: pace.TransferAborted, shown_url: str, options: HttpOptions) -> FetchError:
    """Return the FetchError for a fetch stopped by a limit of ``source.pace``."""
    proxy = options.proxy
    via: str | Reason = ""
    if proxy is not None:
        via = Reason(N_(" (via proxy %(proxy)s)"), {"proxy": proxy.address})
    seconds = f"{aborted.seconds:g}"
    if aborted.cause == pace.TOO_SLOW:
        return FetchError(Reason(N_("source too slow: fewer than %(bytes)s bytes in %(seconds)s s reading "
                                    "%(url)s%(via)s"),
                                 {"bytes": options.low_speed_bytes, "seconds": seconds, "url": shown_url,
                                  "via": via}), "too_slow")
    if aborted.cause == pace.HANDSHAKE:
        return FetchError(Reason(N_("TLS handshake timed out after %(seconds)s s for %(url)s%(via)s"),
                                 {"seconds": seconds, "url": shown_url, "via": via}), "timeout")
    return FetchError(Reason(N_("deadline exceeded: %(url)s not received within %(seconds)s s%(via)s"),
                             {"url": shown_url, "seconds": seconds, "via": via}), "deadline")


CONNECTION_REFUSED = N_("connection refused")


def connect_detail(chain: list[BaseException]) -> str | Reason:
    for cause in chain:
        if isinstance(cause, ConnectionRefusedError):
            return Reason(CONNECTION_REFUSED)
        if isinstance(cause, urllib3.exceptions.ConnectTimeoutError) and not isinstance(
            cause, urllib3.exceptions.NewConnectionError
        ):
            return Reason(N_("timed out"))
        if isinstance(cause, TimeoutError):
            return Reason(N_("timed out"))
        if isinstance(cause, OSError) and cause.errno is not None:
            return oserrors.describe(cause)
    return last_cause_text(chain)
