"""The requests session to update sources (part of the HTTP seam with ``source.http``).

``make_session`` returns a session that takes nothing from the environment (no proxy, CA
bundle or netrc), whose every HTTPS connection, direct or tunnelled through the proxy with
CONNECT, uses one given SSLContext, whose every connection is watched by ``source.pace``
(low-speed limit and deadline, from the TCP connect on), and which authenticates to the proxy
with UTF-8 credentials.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable
from typing import Any

import requests
import urllib3.connection
import urllib3.connectionpool
from requests.adapters import HTTPAdapter

from imss_updater.source import pace


def make_session(
    context: ssl.SSLContext, proxy_address: str | None, proxy_authorization: str | None, user_agent: str
) -> requests.Session:
    """Given the TLS context, the proxy's ``host:port`` (None: direct) and the value of its
    ``Proxy-Authorization`` header (None: no credentials), return the session."""
    session = requests.Session()
    session.trust_env = False  # no proxy, CA bundle or netrc from the environment
    session.verify = True
    session.max_redirects = 5
    session.headers["User-Agent"] = user_agent
    session.headers["Accept-Encoding"] = "identity"  # sizes are of the raw file
    adapter = _SourceAdapter(context, proxy_authorization)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    if proxy_address is not None:
        proxy_url = f"http://{proxy_address}"  # credentials: _SourceAdapter.proxy_headers
        session.proxies = {"http": proxy_url, "https": proxy_url}
    return session


def _watched_connect(
    connection: urllib3.connection.HTTPConnection, connect: Callable[[], socket.socket]
) -> socket.socket:
    """Open the TCP connection within what is left of the deadline; return a socket whose
    reads the watch sees (TLS wraps it in a tls.WatchedSSLSocket)."""
    watch = pace.current()
    if watch is not None:
        timeout = connection.timeout if isinstance(connection.timeout, int | float) else None
        connection.timeout = watch.limit(timeout)[0]
    return pace.WatchedSocket.adopt(connect())


class _WatchedHTTPConnection(urllib3.connection.HTTPConnection):
    def _new_conn(self) -> socket.socket:
        return _watched_connect(self, super()._new_conn)


class _WatchedHTTPSConnection(urllib3.connection.HTTPSConnection):
    def _new_conn(self) -> socket.socket:
        return _watched_connect(self, super()._new_conn)


class _WatchedHTTPPool(urllib3.connectionpool.HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(urllib3.connectionpool.HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


_WATCHED_POOLS: dict[str, type[urllib3.connectionpool.HTTPConnectionPool]] = {
    "http": _WatchedHTTPPool,
    "https": _WatchedHTTPSPool,
}


class _SourceAdapter(HTTPAdapter):
    """An HTTPAdapter whose connections, direct or through the proxy, use one SSLContext
    (trust store and minimum version included), are watched by ``source.pace``, and
    authenticate to the proxy with the given (UTF-8) credentials."""

    def __init__(self, context: ssl.SSLContext, proxy_authorization: str | None) -> None:
        self._context = context  # set before super().__init__, which builds the pool manager
        self._proxy_authorization = proxy_authorization
        super().__init__(pool_connections=4, pool_maxsize=4, max_retries=0)

    def init_poolmanager(
        self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any
    ) -> None:
        pool_kwargs["ssl_context"] = self._context
        super().init_poolmanager(connections, maxsize, block=block, **pool_kwargs)
        self.poolmanager.pool_classes_by_scheme = _WATCHED_POOLS

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        # ProxyManager hands these keywords to the pools it opens for the target hosts,
        # so the tunnelled TLS session uses the same context as a direct one.
        proxy_kwargs["ssl_context"] = self._context
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        manager.pool_classes_by_scheme = _WATCHED_POOLS
        return manager

    def proxy_headers(self, proxy: str) -> dict[str, str]:
        # requests would take the credentials from the proxy URL and encode them as
        # Latin-1, which fails for 日本 and garbles ü: the session's proxy URL carries none.
        if self._proxy_authorization is None:
            return {}
        return {"Proxy-Authorization": self._proxy_authorization}

    def cert_verify(self, conn: Any, url: str, verify: Any, cert: Any) -> None:
        # requests would point ca_certs at certifi's bundle, and urllib3 would then load it
        # into our context on top of the configured CA file. The context already holds
        # exactly the trust anchors we want.
        conn.cert_reqs = "CERT_REQUIRED"
        conn.ca_certs = None
        conn.ca_cert_dir = None
