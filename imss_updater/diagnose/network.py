"""Diagnosis steps on the way to a server: name resolution, TCP connect, proxy, TLS handshake."""

from __future__ import annotations

import logging
import socket

from imss_updater.diagnose.certificates import CHAIN_CODES, missing_certificate
from imss_updater.diagnose.steps import Japanese, Recorder, Source, host_port
from imss_updater.settings import Settings
from imss_updater.source import probe
from imss_updater.source.http import FetchError, make_ssl_context

log = logging.getLogger(__name__)


class NetworkChecks(Recorder):
    """One step per hop; each returns why the later steps are blocked (None: not blocked)."""

    def check_name(
        self, host: str, port: int, timeout: float, *, proxy_note: str | None = None
    ) -> str | None:
        name = f"name resolution: {host}"
        note = f" (the proxy resolves {proxy_note} itself)" if proxy_note else ""
        if probe.is_ip_address(host):
            self.add(name, True, f"{host} is an IP address, nothing to resolve{note}")
            return None
        try:
            addresses = probe.resolve(host, port)
        except probe.ProbeError as error:
            detail = error.reason
            hint = ("check /etc/resolv.conf and that the DNS server answers (the firewall must allow "
                    "53/udp and 53/tcp); check the host name in the URL")
            known = self.known_addresses.get(host)
            if known is not None:
                try:
                    peer = probe.tcp_check(known, port, timeout)
                    detail += f"; connecting by IP {peer} works, so only name resolution is broken"
                    hint = ("fix DNS, or add the name to /etc/hosts, or use the IP address in the URL "
                            "(HTTPS needs a certificate that names that IP)")
                except probe.ProbeError as ip_error:
                    detail += f"; connecting by IP {known} fails too: {ip_error.reason}"
            else:
                detail += " (give --address HOST=IP to test connecting by IP)"
            self.add(name, False, detail + note, hint)
            return "name resolution failed"
        self.add(name, True, f"{host} -> {', '.join(addresses)}{note}")
        return None

    def check_connect(self, name: str, host: str, port: int, timeout: float, *, https: bool,
                      proxy: bool) -> str | None:
        try:
            peer = probe.tcp_check(host, port, timeout)
        except probe.ProbeError as error:
            what = "the proxy" if proxy else "the update server"
            if error.kind == "refused":
                hint = (f"nothing listens on port {port} of {host}: check the port in the URL"
                        + (" and Proxy/ProxyPort" if proxy else "") + f" and that {what} is running")
            elif error.kind == "timeout":
                hint = (f"a firewall drops the connection: allow outgoing {port}/tcp to {host} "
                        f"({'443 for HTTPS' if https else '80 for HTTP'} sources, or the proxy port)")
            else:
                hint = f"check routing and firewalls between this gateway and {host}"
            self.add(name, False, error.reason, hint)
            return "TCP connect failed"
        self.add(name, True, f"connected to {peer}")
        return None

    def check_proxy(
        self, name: str, settings: Settings, source: Source, host: str, port: int, https: bool
    ) -> tuple[str | None, socket.socket | None]:
        proxy = settings.proxy
        assert proxy is not None
        timeout = settings.connect_timeout
        tunnel: socket.socket | None = None
        try:
            if https:
                answer, tunnel = probe.proxy_connect(proxy.host, proxy.port, host, port, user=proxy.user,
                                                     password=proxy.password, timeout=timeout)
                asked = f"CONNECT {host_port(host, port)}"
            else:
                answer = probe.proxy_get_status(proxy.host, proxy.port, source.index_url,
                                                user=proxy.user, password=proxy.password,
                                                timeout=timeout)
                asked = f"GET {source.index_url}"
        except probe.ProbeError as error:
            self.add(name, False, error.reason, "check Proxy/ProxyHost and Proxy/ProxyPort: they must name "
                     "an HTTP proxy")
            return "the proxy did not answer", None
        if answer.auth_failed:
            if proxy.user:
                hint = ("check Proxy/ProxyUser and Proxy/ProxyPassword (any characters are allowed; "
                        "set them with `imss-updater config set`, not in a URL)")
            else:
                hint = "the proxy requires authentication: set Proxy/ProxyUser and Proxy/ProxyPassword"
            self.add(name, False, f"proxy authentication failed (HTTP {answer.status}) for {asked}", hint)
            return "proxy authentication failed", None
        credentials = f"credentials of {proxy.user!r} accepted" if proxy.user else "no credentials needed"
        self.add(name, True, f"{credentials}; {asked} -> {answer.text}")
        if https and not answer.ok:
            self.add(f"proxy tunnel: {host_port(host, port)}", False,
                     f"the proxy refused to open a tunnel: {answer.text}",
                     f"the proxy cannot reach {host}:{port} or does not allow CONNECT to port {port}: "
                     "check the proxy's own DNS, firewall and ConnectPort rules")
            return "the proxy opened no tunnel", None
        return None, tunnel

    def check_tls(
        self, name: str, settings: Settings, host: str, port: int, tunnel: socket.socket | None
    ) -> str | None:
        try:
            context = make_ssl_context(settings.ca_file)
        except FetchError as error:
            if tunnel is not None:
                tunnel.close()
            self.add(name, False, error.reason, "fix Update/CAFile (a PEM file of CA certificates), or "
                     "empty it to use the system store")
            return "no usable CA certificates"
        try:
            connection = tunnel if tunnel is not None else self.reconnect(settings, host, port)
            result = probe.tls_handshake(connection, host, context)
        except probe.ProbeError as error:
            return self.tls_failure(name, settings, host, port, error)
        peer = f", certificate for {result.peer}" if result.peer else ""
        self.add(name, True, f"{result.version_name} negotiated ({result.cipher}){peer}")
        return None

    def tls_failure(self, name: str, settings: Settings, host: str, port: int,
                    error: probe.ProbeError) -> str:
        if error.kind == "tls_version":
            offered = None
            try:
                offered = probe.legacy_tls_version(self.reconnect(settings, host, port), host)
            except probe.ProbeError as again:
                log.debug("second connection for the legacy probe failed: %s", again.reason)
            spoken = f"the server offers only {offered}" if offered else "no common TLS version"
            self.add(name, False,
                     f"{spoken}; this gateway requires TLS 1.2 or newer and refuses older versions",
                     f"both ends must share a TLS version: enable TLS 1.2 (or 1.3) on {host}; older "
                     "versions are refused on purpose (they are broken)")
            return "TLS handshake failed"
        if error.kind == "tls_certificate" and error.verify_code in CHAIN_CODES:
            missing = None
            try:
                chain = probe.presented_chain(self.reconnect(settings, host, port), host)
                missing = missing_certificate(chain)
            except probe.ProbeError as again:
                log.debug("second connection for the chain probe failed: %s", again.reason)
            if missing is not None:
                self.add(name, False, f"{error.reason}; {missing.detail}", missing.hint,
                         ja=Japanese(f"{host} の証明書を受け入れられません; {missing.detail_ja}",
                                     missing.hint_ja))
                return "TLS handshake failed"
        hints = {
            "tls_certificate": "add the CA that signed the server certificate to Update/CAFile, and "
                               "make sure the URL names a host the certificate is issued for",
            "not_tls": "the port speaks plain HTTP: use an http:// URL, or the server's HTTPS port",
        }
        self.add(name, False, error.reason, hints.get(error.kind, "check the server's TLS configuration"))
        return "TLS handshake failed"

    def reconnect(self, settings: Settings, host: str, port: int) -> socket.socket:
        """Return a new connection to host:port, through a CONNECT tunnel when a proxy is set."""
        proxy = settings.proxy
        if proxy is None:
            return probe.connect(host, port, settings.connect_timeout)
        answer, tunnel = probe.proxy_connect(proxy.host, proxy.port, host, port, user=proxy.user,
                                             password=proxy.password, timeout=settings.connect_timeout)
        if tunnel is None:
            raise probe.ProbeError(f"proxy answered {answer.text}", "proxy", answer.status)
        return tunnel
