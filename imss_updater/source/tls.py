"""TLS for update sources: the verifying client context and its watched sockets.

Every HTTPS connection (direct, or tunnelled through a proxy with CONNECT) uses the context
of ``make_ssl_context``: TLS 1.2 or newer, certificates verified against the configured CA
file or the system store. Its sockets are ``WatchedSSLSocket``: their reads count towards
the low-speed limit and deadline of the running fetch (``source.pace``), and a handshake that
does not finish within its timeout (the connect timeout, or what is left of the deadline)
fails as a handshake timeout rather than as a read timeout.
"""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING

from imss_updater import oserrors
from imss_updater.i18n import N_, Reason
from imss_updater.source import pace
from imss_updater.source.fetch_errors import FetchError

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer


class WatchedSSLSocket(ssl.SSLSocket):
    """An SSLSocket under the current ``pace.TransferWatch`` (see the module docstring)."""

    _base_timeout: float | None = None

    def settimeout(self, value: float | None) -> None:
        self._base_timeout = value
        super().settimeout(value)

    def _set_effective(self, value: float | None) -> None:
        super().settimeout(value)

    def do_handshake(self, block: bool = False) -> None:
        base = self._base_timeout
        try:
            with pace.bounded(base, self._set_effective):
                super().do_handshake(block)
        except TimeoutError as error:
            # The handshake's own timeout: name the step, not "reading".
            if pace.current() is None:
                raise
            raise pace.TransferAborted(pace.HANDSHAKE, base or 0.0) from error
        finally:
            # SSLSocket.do_handshake restores the (shortened) timeout through settimeout.
            self.settimeout(base)

    def recv_into(self, buffer: WriteableBuffer, nbytes: int | None = None, flags: int = 0) -> int:
        with pace.bounded(self._base_timeout, self._set_effective) as watch:
            count = super().recv_into(buffer, nbytes, flags)
        if watch is not None:
            watch.received(count)
        return count

    def recv(self, buflen: int = 1024, flags: int = 0) -> bytes:
        with pace.bounded(self._base_timeout, self._set_effective) as watch:
            data = super().recv(buflen, flags)
        if watch is not None:
            watch.received(len(data))
        return data


def make_ssl_context(ca_file: str | None) -> ssl.SSLContext:
    """Given a CA file path or None (system store), return a verifying client context that
    refuses anything older than TLS 1.2. Raise FetchError(kind tls) if the file is unusable."""
    try:
        context = ssl.create_default_context(cafile=ca_file)
    except (OSError, ssl.SSLError) as error:
        raise FetchError(Reason(N_("cannot load CA file %(path)s: %(error)s"),
                                {"path": str(ca_file), "error": oserrors.describe(error)}), "tls") from error
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    context.sslsocket_class = WatchedSSLSocket
    return context
