"""How the HTTP client fetches (timeouts, retries, limits, the CA file) and through which
proxy: plain settings, no I/O (``source.http`` uses them; re-exported there)."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from urllib.parse import quote


@dataclass(frozen=True)
class ProxySettings:
    host: str
    port: int
    user: str = ""
    password: str = ""

    @property
    def address(self) -> str:
        """Return ``host:port`` (IPv6 literals bracketed), safe to show and log."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def url(self) -> str:
        """Return the proxy URL with its credentials percent-encoded (UTF-8).

        Every character outside the unreserved set is encoded, so ``@ : / % #`` in a user
        name or password cannot change how the URL is split.
        """
        credentials = ""
        if self.user or self.password:
            credentials = f"{quote(self.user, safe='')}:{quote(self.password, safe='')}@"
        return f"http://{credentials}{self.address}"

    def authorization(self) -> str | None:
        """Return the ``Proxy-Authorization`` value (Basic, ``user:password`` in UTF-8, as
        squid, curl and browsers send it), or None without credentials."""
        if not (self.user or self.password):
            return None
        token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode("ascii")
        return f"Basic {token}"

    def __repr__(self) -> str:
        shown = "***" if self.password else ""
        return f"ProxySettings(host={self.host!r}, port={self.port}, user={self.user!r}, password={shown!r})"


@dataclass(frozen=True)
class HttpOptions:
    ca_file: str | None = None  # None: the system CA store
    proxy: ProxySettings | None = None
    connect_timeout: float = 10.0  # also bounds the TLS handshake
    read_timeout: float = 30.0
    retries: int = 2  # extra attempts after a transient failure
    backoff: float = 1.0  # first wait in seconds, doubled after each retry
    user_agent: str = "imss-updater/0.1"
    low_speed_bytes: int = 1024  # fail when fewer bytes than this arrive ... (0: no limit)
    low_speed_seconds: float = 60.0  # ... within this many seconds
    index_deadline: float | None = 120.0  # total seconds for one index (or .sig) fetch
    download_deadline: float | None = 3600.0  # total seconds for one download
