"""Diagnosis steps on the way to a server: name resolution, TCP connect, proxy, TLS handshake."""

from __future__ import annotations

import logging
import socket

from imss_updater.diagnose.certificates import CHAIN_CODES, missing_certificate
from imss_updater.diagnose.steps import Recorder, Source, host_port
from imss_updater.diagnose.texts import Text, words
from imss_updater.i18n import N_, Reason
from imss_updater.settings import Settings
from imss_updater.source import probe
from imss_updater.source.http import FetchError, make_ssl_context

log = logging.getLogger(__name__)

TLS_FAILED = N_("TLS handshake failed")


class NetworkChecks(Recorder):
    """One step per hop; each returns why the later steps are blocked (None: not blocked)."""

    def check_name(
        self, host: str, port: int, timeout: float, *, proxy_note: str | None = None
    ) -> Text | None:
        name = Reason(N_("name resolution: %(host)s"), {"host": host})
        note: Text = (Reason(N_(" (the proxy resolves %(host)s itself)"), {"host": proxy_note})
                      if proxy_note else "")
        if probe.is_ip_address(host):
            self.add(name, True, Reason(N_("%(host)s is an IP address, nothing to resolve%(note)s"),
                                        {"host": host, "note": note}))
            return None
        try:
            addresses = probe.resolve(host, port)
        except probe.ProbeError as error:
            detail: Reason
            hint = Reason(N_("check /etc/resolv.conf and that the DNS server answers (the firewall must "
                             "allow 53/udp and 53/tcp); check the host name in the URL"))
            known = self.known_addresses.get(host)
            if known is not None:
                try:
                    peer = probe.tcp_check(known, port, timeout)
                    detail = Reason(N_("%(reason)s; connecting by IP %(peer)s works, so only name "
                                       "resolution is broken%(note)s"),
                                    {"reason": error.reason, "peer": peer, "note": note})
                    hint = Reason(N_("fix DNS, or add the name to /etc/hosts, or use the IP address in the "
                                     "URL (HTTPS needs a certificate that names that IP)"))
                except probe.ProbeError as ip_error:
                    detail = Reason(N_("%(reason)s; connecting by IP %(address)s fails too: "
                                       "%(why)s%(note)s"),
                                    {"reason": error.reason, "address": known, "why": ip_error.reason,
                                     "note": note})
            else:
                detail = Reason(N_("%(reason)s (give --address HOST=IP to test connecting by IP)%(note)s"),
                                {"reason": error.reason, "note": note})
            self.add(name, False, detail, hint)
            return Reason(N_("name resolution failed"))
        self.add(name, True, Reason(N_("%(host)s -> %(addresses)s%(note)s"),
                                    {"host": host, "addresses": ", ".join(addresses), "note": note}))
        return None

    def check_connect(self, name: Text, host: str, port: int, timeout: float, *, https: bool,
                      proxy: bool) -> Text | None:
        try:
            peer = probe.tcp_check(host, port, timeout)
        except probe.ProbeError as error:
            what = Reason(N_("the proxy") if proxy else N_("the update server"))
            hint: Reason
            if error.kind == "refused":
                hint = Reason(N_("nothing listens on port %(port)s of %(host)s: check the port in the URL "
                                 "and Proxy/ProxyPort and that %(what)s is running") if proxy else
                              N_("nothing listens on port %(port)s of %(host)s: check the port in the URL "
                                 "and that %(what)s is running"),
                              {"port": port, "host": host, "what": what})
            elif error.kind == "timeout":
                hint = Reason(N_("a firewall drops the connection: allow outgoing %(port)s/tcp to %(host)s "
                                 "(%(usual)s sources, or the proxy port)"),
                              {"port": port, "host": host,
                               "usual": Reason(N_("443 for HTTPS") if https else N_("80 for HTTP"))})
            else:
                hint = Reason(N_("check routing and firewalls between this gateway and %(host)s"),
                              {"host": host})
            self.add(name, False, error.reason, hint)
            return Reason(N_("TCP connect failed"))
        self.add(name, True, Reason(N_("connected to %(peer)s"), {"peer": peer}))
        return None

    def check_proxy(
        self, name: Text, settings: Settings, source: Source, host: str, port: int, https: bool
    ) -> tuple[Text | None, socket.socket | None]:
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
            self.add(name, False, error.reason, Reason(N_("check Proxy/ProxyHost and Proxy/ProxyPort: they "
                                                          "must name an HTTP proxy")))
            return Reason(N_("the proxy did not answer")), None
        if answer.auth_failed:
            if proxy.user:
                hint = Reason(N_("check Proxy/ProxyUser and Proxy/ProxyPassword (any characters are "
                                 "allowed; set them with `imss-updater config set`, not in a URL)"))
            else:
                hint = Reason(N_("the proxy requires authentication: set Proxy/ProxyUser and "
                                 "Proxy/ProxyPassword"))
            self.add(name, False, Reason(N_("proxy authentication failed (HTTP %(status)s) for %(asked)s"),
                                         {"status": answer.status, "asked": asked}), hint)
            return Reason(N_("proxy authentication failed")), None
        credentials = (Reason(N_("credentials of %(user)s accepted"), {"user": repr(proxy.user)})
                       if proxy.user else Reason(N_("no credentials needed")))
        self.add(name, True, Reason(N_("%(credentials)s; %(asked)s -> %(answer)s"),
                                    {"credentials": credentials, "asked": asked, "answer": answer.text}))
        if https and not answer.ok:
            self.add(Reason(N_("proxy tunnel: %(target)s"), {"target": host_port(host, port)}), False,
                     Reason(N_("the proxy refused to open a tunnel: %(answer)s"), {"answer": answer.text}),
                     Reason(N_("the proxy cannot reach %(host)s:%(port)s or does not allow CONNECT to port "
                               "%(port)s: check the proxy's own DNS, firewall and ConnectPort rules"),
                            {"host": host, "port": port}))
            return Reason(N_("the proxy opened no tunnel")), None
        return None, tunnel

    def check_tls(
        self, name: Text, settings: Settings, host: str, port: int, tunnel: socket.socket | None
    ) -> Text | None:
        try:
            context = make_ssl_context(settings.ca_file)
        except FetchError as error:
            if tunnel is not None:
                tunnel.close()
            self.add(name, False, error.reason, Reason(N_("fix Update/CAFile (a PEM file of CA "
                                                          "certificates), or empty it to use the system "
                                                          "store")))
            return Reason(N_("no usable CA certificates"))
        try:
            connection = tunnel if tunnel is not None else self.reconnect(settings, host, port)
            result = probe.tls_handshake(connection, host, context)
        except probe.ProbeError as error:
            return self.tls_failure(name, settings, host, port, error)
        self.add(name, True, Reason(N_("%(version)s negotiated (%(cipher)s), certificate for %(peer)s"),
                                    {"version": result.version_name, "cipher": result.cipher,
                                     "peer": result.peer}) if result.peer else
                 Reason(N_("%(version)s negotiated (%(cipher)s)"),
                        {"version": result.version_name, "cipher": result.cipher}))
        return None

    def tls_failure(self, name: Text, settings: Settings, host: str, port: int,
                    error: probe.ProbeError) -> Text:
        if error.kind == "tls_version":
            offered = None
            try:
                offered = probe.legacy_tls_version(self.reconnect(settings, host, port), host)
            except probe.ProbeError as again:
                log.debug("second connection for the legacy probe failed: %s", again.reason)
            spoken = (Reason(N_("the server offers only %(version)s"), {"version": offered}) if offered
                      else Reason(N_("no common TLS version")))
            self.add(name, False,
                     Reason(N_("%(spoken)s; this gateway requires TLS 1.2 or newer and refuses older "
                               "versions"), {"spoken": spoken}),
                     Reason(N_("both ends must share a TLS version: enable TLS 1.2 (or 1.3) on %(host)s; "
                               "older versions are refused on purpose (they are broken)"), {"host": host}))
            return Reason(TLS_FAILED)
        if error.kind == "tls_certificate" and error.verify_code in CHAIN_CODES:
            missing = None
            try:
                chain = probe.presented_chain(self.reconnect(settings, host, port), host)
                missing = missing_certificate(chain)
            except probe.ProbeError as again:
                log.debug("second connection for the chain probe failed: %s", again.reason)
            if missing is not None:
                # English keeps the TLS library's words; Japanese says it plainly.
                self.add(name, False, words(
                    Reason(N_("%(reason)s; %(missing)s"), {"reason": error.reason, "missing": missing.said}),
                    Reason(N_("the certificate of %(host)s is not accepted; %(missing)s"),
                           {"host": host, "missing": missing.said})), missing.advice)
                return Reason(TLS_FAILED)
        hints = {
            "tls_certificate": N_("add the CA that signed the server certificate to Update/CAFile, and "
                                  "make sure the URL names a host the certificate is issued for"),
            "not_tls": N_("the port speaks plain HTTP: use an http:// URL, or the server's HTTPS port"),
        }
        self.add(name, False, error.reason,
                 Reason(hints.get(error.kind, N_("check the server's TLS configuration"))))
        return Reason(TLS_FAILED)
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
