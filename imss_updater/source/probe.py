"""Raw network probes for ``diagnose``: the only module that opens sockets by hand.

Each probe does one thing an administrator troubleshooting a gateway would do by hand
(``getent hosts``, ``nc -z``, ``curl -x``, ``openssl s_client``) and reports it as data:
it returns what it learned or raises ProbeError whose ``reason`` is one line and whose
``kind`` classifies the failure. Probes never send the proxy password anywhere but to
the proxy, and never put it in a reason.

The fetches the updater really makes go through ``imss_updater.source.http``; these probes exist
to say *which* layer fails (name, port, proxy, TLS) when such a fetch does.
"""

from __future__ import annotations

import base64
import contextlib
import ipaddress
import logging
import os
import socket
import ssl
import warnings
from collections.abc import Mapping
from dataclasses import dataclass

log = logging.getLogger(__name__)

MAX_HEADER_BYTES = 64 * 1024

# OpenSSL reasons meaning "client and server share no protocol version".
_VERSION_MISMATCH_REASONS = frozenset(
    {
        "UNSUPPORTED_PROTOCOL",
        "TLSV1_ALERT_PROTOCOL_VERSION",
        "NO_PROTOCOLS_AVAILABLE",
        "WRONG_SSL_VERSION",
    }
)
_VERSION_NAMES = {"TLSv1": "TLS 1.0", "TLSv1.1": "TLS 1.1", "TLSv1.2": "TLS 1.2", "TLSv1.3": "TLS 1.3",
                  "SSLv3": "SSL 3.0"}


class ProbeError(Exception):
    """A probe failed. ``kind`` is one of: dns, refused, timeout, unreachable, connection,
    proxy_auth, proxy, tls_version, tls_certificate, tls, not_tls, protocol."""

    def __init__(self, reason: str, kind: str, status: int | None = None, *,
                 verify_code: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.kind = kind
        self.status = status
        self.verify_code = verify_code  # OpenSSL's X509_V_ERR_* for tls_certificate


@dataclass(frozen=True)
class ProxyAnswer:
    """The status line a proxy answered with (``status`` 200 for an open CONNECT tunnel)."""

    status: int
    text: str  # e.g. "HTTP/1.0 200 Connection established"

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def auth_failed(self) -> bool:
        # tinyproxy 1.11 answers wrong credentials with 401 instead of 407.
        return self.status in (401, 407)


@dataclass(frozen=True)
class TlsResult:
    version: str  # as ssl reports it: "TLSv1.3"
    cipher: str
    peer: str  # the certificate's subject common name, or "" when it has none

    @property
    def version_name(self) -> str:
        """The version as people write it: ``TLS 1.3``."""
        return _VERSION_NAMES.get(self.version, self.version)


def is_ip_address(host: str) -> bool:
    """Return True when ``host`` is an IPv4 or IPv6 literal (no name to resolve)."""
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def resolve(host: str, port: int) -> list[str]:
    """Given a host name and port, return its addresses (IPv4 first, no duplicates) as the
    system resolver gives them. Raise ProbeError(kind dns) if the name does not resolve."""
    try:
        infos = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise ProbeError(f"cannot resolve {host}: {error.strerror}", "dns") from error
    except UnicodeError as error:
        raise ProbeError(f"cannot resolve {host}: not a valid host name", "dns") from error
    ordered = sorted(infos, key=lambda info: 0 if info[0] == socket.AF_INET else 1)
    return list(dict.fromkeys(str(info[4][0]) for info in ordered))


def connect(host: str, port: int, timeout: float) -> socket.socket:
    """Given a host (name or address), a port and a timeout in seconds, return a connected
    TCP socket (every address is tried in turn). Raise ProbeError: dns, refused, timeout,
    unreachable or connection."""
    if not is_ip_address(host):
        resolve(host, port)  # a clear "cannot resolve" instead of a bare gaierror
    try:
        return socket.create_connection((host.strip("[]"), port), timeout=timeout)
    except ConnectionRefusedError as error:
        raise ProbeError(f"connection refused by {_address(host, port)}", "refused") from error
    except TimeoutError as error:
        raise ProbeError(
            f"no answer from {_address(host, port)} within {timeout:g} s (filtered by a firewall?)",
            "timeout",
        ) from error
    except socket.gaierror as error:
        raise ProbeError(f"cannot resolve {host}: {error.strerror}", "dns") from error
    except OSError as error:
        kind = "unreachable" if error.errno in (101, 113) else "connection"  # ENETUNREACH, EHOSTUNREACH
        raise ProbeError(f"cannot connect to {_address(host, port)}: {_strerror(error)}", kind) from error


def tcp_check(host: str, port: int, timeout: float) -> str:
    """Connect and close at once; return the peer address (``127.0.0.1:80``).
    Raise ProbeError as ``connect`` does."""
    with connect(host, port, timeout) as connection:
        peer = connection.getpeername()
        return _address(str(peer[0]), int(peer[1]))


def proxy_authorization(user: str, password: str) -> str | None:
    """Return the ``Proxy-Authorization`` value for Basic credentials, or None without a user."""
    if not user and not password:
        return None
    raw = f"{user}:{password}"
    try:
        encoded = raw.encode("latin-1")  # what requests/urllib3 send
    except UnicodeEncodeError:
        encoded = raw.encode("utf-8")
    return "Basic " + base64.b64encode(encoded).decode("ascii")


def proxy_connect(
    proxy_host: str,
    proxy_port: int,
    target_host: str,
    target_port: int,
    *,
    user: str = "",
    password: str = "",
    timeout: float,
) -> tuple[ProxyAnswer, socket.socket | None]:
    """Ask the proxy to open a tunnel (``CONNECT target:port``) with Basic credentials when
    a user is given. Return the proxy's answer and, when it is 2xx, the tunnelled socket
    (the caller closes it). Raise ProbeError if the proxy cannot be reached or does not
    answer HTTP."""
    authority = _address(target_host, target_port)
    lines = [f"CONNECT {authority} HTTP/1.1", f"Host: {authority}"]
    return _ask_proxy(proxy_host, proxy_port, lines, user, password, timeout, keep_open=True)


def proxy_get_status(
    proxy_host: str,
    proxy_port: int,
    url: str,
    *,
    user: str = "",
    password: str = "",
    timeout: float,
) -> ProxyAnswer:
    """Send ``GET url`` (an absolute http:// URL) to the proxy and return its status line,
    without reading the body. Raise ProbeError if the proxy cannot be reached or does not
    answer HTTP."""
    host = url.split("://", 1)[-1].split("/", 1)[0]
    lines = [f"GET {url} HTTP/1.1", f"Host: {host}", "Connection: close"]
    answer, _ = _ask_proxy(proxy_host, proxy_port, lines, user, password, timeout, keep_open=False)
    return answer


def _ask_proxy(
    proxy_host: str,
    proxy_port: int,
    lines: list[str],
    user: str,
    password: str,
    timeout: float,
    *,
    keep_open: bool,
) -> tuple[ProxyAnswer, socket.socket | None]:
    connection = connect(proxy_host, proxy_port, timeout)
    try:
        authorization = proxy_authorization(user, password)
        if authorization is not None:
            lines = [*lines, f"Proxy-Authorization: {authorization}"]
        request = "\r\n".join([*lines, "User-Agent: imss-updater-diagnose", "", ""])
        connection.sendall(request.encode("latin-1", errors="replace"))
        answer = _read_status(connection, _address(proxy_host, proxy_port), timeout)
    except BaseException:
        connection.close()
        raise
    if keep_open and answer.ok:
        return answer, connection
    connection.close()
    return answer, None


def _read_status(connection: socket.socket, peer: str, timeout: float) -> ProxyAnswer:
    """Read a response head byte by byte (nothing of a tunnel's payload is consumed)."""
    head = b""
    try:
        while not head.endswith(b"\r\n\r\n") and not head.endswith(b"\n\n"):
            byte = connection.recv(1)
            if not byte:
                break
            head += byte
            if len(head) > MAX_HEADER_BYTES:
                raise ProbeError(f"{peer} sent an oversized answer", "protocol")
    except TimeoutError as error:
        raise ProbeError(f"proxy {peer} did not answer within {timeout:g} s", "timeout") from error
    except OSError as error:
        raise ProbeError(f"proxy {peer} closed the connection: {_strerror(error)}", "connection") from error
    status_line = head.split(b"\n", 1)[0].decode("latin-1").strip()
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        shown = status_line or "nothing"
        raise ProbeError(f"{peer} did not answer as an HTTP proxy (got {shown!r})", "protocol")
    return ProxyAnswer(int(parts[1]), status_line)


def tls_handshake(connection: socket.socket, server_name: str, context: ssl.SSLContext) -> TlsResult:
    """Given a connected socket (direct, or a proxy tunnel), the server's host name and the
    updater's client context (which refuses anything older than TLS 1.2), perform a TLS
    handshake and return what was negotiated. The socket is closed either way.

    Raise ProbeError: tls_version when the two ends share no protocol version (the caller
    may then use ``legacy_tls_version`` to learn what the server speaks), tls_certificate
    when the certificate is not trusted or names another host, not_tls when the peer does
    not speak TLS, tls or connection otherwise.
    """
    host = server_name.strip("[]")
    try:
        with context.wrap_socket(connection, server_hostname=host) as wrapped:
            cipher = wrapped.cipher()
            certificate = wrapped.getpeercert() or {}
            return TlsResult(wrapped.version() or "?", cipher[0] if cipher else "?",
                             _common_name(certificate))
    except ssl.SSLCertVerificationError as error:
        detail = error.verify_message or error.reason or "certificate verify failed"
        raise ProbeError(f"certificate of {host} not accepted: {detail}", "tls_certificate",
                         verify_code=error.verify_code) from error
    except ssl.SSLError as error:
        if error.reason in _VERSION_MISMATCH_REASONS:
            raise ProbeError(f"{host} and this gateway share no TLS version", "tls_version") from error
        if error.reason in ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG"):
            raise ProbeError(f"{host} did not answer with TLS (is it plain HTTP?)", "not_tls") from error
        if isinstance(error, ssl.SSLEOFError):
            raise ProbeError(f"{host} closed the connection during the TLS handshake", "tls") from error
        detail = str(error.reason or error).replace("_", " ").lower()
        raise ProbeError(f"TLS handshake with {host} failed: {detail}", "tls") from error
    except TimeoutError as error:
        raise ProbeError(f"{host} did not complete the TLS handshake in time", "timeout") from error
    except OSError as error:
        raise ProbeError(f"TLS handshake with {host} failed: {_strerror(error)}", "connection") from error
    finally:
        connection.close()


def legacy_tls_version(connection: socket.socket, server_name: str) -> str | None:
    """Given a connected socket to a server that refused TLS 1.2+, handshake once more with
    every old version allowed and no certificate check, only to learn which version the
    server speaks; return it (``TLS 1.0``) or None if even that fails. Nothing is sent over
    this session: it is closed at once. The socket is closed either way."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # diagnostic handshake only; no data is exchanged
    context.set_ciphers("DEFAULT:@SECLEVEL=0")  # OpenSSL 3 refuses TLS 1.0/1.1 otherwise
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = ssl.TLSVersion.TLSv1
    try:
        with context.wrap_socket(connection, server_hostname=server_name.strip("[]")) as wrapped:
            version = wrapped.version()
    except (ssl.SSLError, OSError) as error:
        log.debug("legacy handshake with %s failed: %s", server_name, error)
        return None
    finally:
        with contextlib.suppress(OSError):
            connection.close()
    return _VERSION_NAMES.get(version or "", version)


@dataclass(frozen=True)
class PresentedCertificate:
    """One certificate of the chain a server sent: its subject and issuer as name tuples
    (as ``getpeercert`` gives them) and the CA Issuers URLs of its AIA extension."""

    subject: tuple[tuple[tuple[str, str], ...], ...]
    issuer: tuple[tuple[tuple[str, str], ...], ...]
    ca_issuers: tuple[str, ...] = ()


def presented_chain(connection: socket.socket, server_name: str) -> list[PresentedCertificate]:
    """Given a connected socket to a server whose certificate was not accepted, handshake
    once more without checking it, only to read the chain the server sends (leaf first);
    return it, or [] when it cannot be read. Nothing is sent over this session. The socket
    is closed either way."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # diagnostic handshake only; no data is exchanged
    try:
        with context.wrap_socket(connection, server_hostname=server_name.strip("[]")) as wrapped:
            # Public as SSLSocket.get_unverified_chain from Python 3.13; the C object has it before.
            reader = getattr(wrapped, "get_unverified_chain", None) or getattr(
                getattr(wrapped, "_sslobj", None), "get_unverified_chain", None)
            certificates = reader() if reader is not None else []
            chain = []
            for certificate in certificates or []:
                info = certificate.get_info()
                issuers = info.get("caIssuers", ())
                chain.append(PresentedCertificate(info.get("subject", ()), info.get("issuer", ()),
                                                  tuple(issuers) if isinstance(issuers, tuple) else ()))
            return chain
    except (ssl.SSLError, OSError, AttributeError, TypeError) as error:
        log.debug("reading the certificate chain of %s failed: %s", server_name, error)
        return []
    finally:
        with contextlib.suppress(OSError):
            connection.close()


def process_description(pid: int) -> str:
    """Return the command line of process ``pid`` (for "held by PID 1234 (...)"), or ""."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            raw = handle.read(4096)
    except OSError:
        return ""
    return " ".join(part.decode(errors="replace") for part in raw.split(b"\0") if part)


def _common_name(certificate: Mapping[str, object]) -> str:
    subject = certificate.get("subject", ())
    if isinstance(subject, tuple):
        for relative_name in subject:
            for key, value in relative_name:
                if key == "commonName":
                    return str(value)
    return ""


def _address(host: str, port: int) -> str:
    host = host.strip("[]")
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _strerror(error: OSError) -> str:
    if error.strerror:
        return error.strerror
    if error.errno:
        return os.strerror(error.errno)
    return str(error) or type(error).__name__
