"""Diagnosis steps per update source: the URLs, signature trust, then for each source the
network path (network.py), the HTTP status of server.ini and its parse."""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

from imss_updater.catalog import Component, SourceRole
from imss_updater.diagnose.network import NetworkChecks
from imss_updater.diagnose.steps import Source, host_port
from imss_updater.diagnose.texts import Text, joined
from imss_updater.i18n import N_, Reason
from imss_updater.run.updater import MAX_INDEX_BYTES, http_options, is_control_manager
from imss_updater.settings import Settings
from imss_updater.source import probe, serverini
from imss_updater.source.http import FetchError, HttpClient


class SourceChecks(NetworkChecks):
    """The source URLs and signature trust, then every step of one update source."""

    def check_source_urls(self, settings: Settings, catalog: Sequence[Component]) -> list[Source]:
        sources: dict[str, Source] = {}
        for setting_name, url, role in (
            ("UpdateServer", settings.update_server, SourceRole.UPDATE),
            ("TMASEServerurl", settings.tmase_server, SourceRole.TMASE),
        ):
            source = sources.setdefault(url, Source(url, [], []))
            source.setting_names.append(setting_name)
            source.components.extend(c for c in catalog if c.source is role)
        described: list[Text] = []
        problems: list[Text] = []
        for source in sources.values():
            kind = "Control Manager" if is_control_manager(source.base_url) else "ActiveUpdate"
            described.append(f"{source.base_url} ({', '.join(source.setting_names)}; {kind})")
            if is_control_manager(source.base_url) and settings.verify_signature == "yes":
                problems.append(Reason(N_("%(url)s is a Control Manager source, which publishes no .sig "
                                          "files, but Update/VerifySignature=yes rejects unsigned "
                                          "components"), {"url": source.base_url}))
        via = (Reason(N_(" through proxy %(proxy)s"),
                      {"proxy": host_port(settings.proxy.host, settings.proxy.port)})
               if settings.proxy else Reason(N_(" directly (UseProxySetting=no)")))
        detail = Reason(N_("%(sources)s%(via)s"), {"sources": joined(described), "via": via})
        name = Reason(N_("source URLs"))
        if problems:
            self.add(name, False, Reason(N_("%(detail)s. %(problems)s"),
                                         {"detail": detail, "problems": joined(problems)}),
                     Reason(N_("set Update/VerifySignature to auto for a Control Manager source")))
        else:
            self.add(name, True, detail)
        return list(sources.values())

    def check_signature_trust(self, settings: Settings) -> None:
        name = Reason(N_("signature trust"))
        if settings.verify_signature == "no":
            self.add(name, True, Reason(N_("signatures are not verified (Update/VerifySignature=no)")))
            return
        hint = Reason(N_("set Update/SignatureCAFile to the PEM bundle of the update-signing root and "
                         "intermediate certificates"))
        path = settings.signature_ca_file
        if path is None:
            self.add(name, False, Reason(N_("Update/VerifySignature=%(value)s but Update/SignatureCAFile is "
                                            "empty: every signed component will be rejected"),
                                         {"value": settings.verify_signature}), hint)
            return
        try:
            text = Path(path).read_text(encoding="ascii", errors="replace")
        except OSError as error:
            self.add(name, False, Reason(N_("cannot read %(path)s: %(error)s"),
                                         {"path": str(path), "error": error.strerror or str(error)}), hint)
            return
        count = text.count("-----BEGIN CERTIFICATE-----")
        if count == 0:
            self.add(name, False, Reason(N_("%(path)s holds no PEM certificate"), {"path": str(path)}), hint)
            return
        self.add(name, True, Reason(N_("VerifySignature=%(value)s; %(count)s trusted certificate(s) in "
                                       "%(path)s"),
                                    {"value": settings.verify_signature, "count": count, "path": str(path)}))

    # -- one update source ------------------------------------------------------------------

    def check_source(self, source: Source, settings: Settings) -> None:
        parts = urlsplit(source.base_url)
        host = parts.hostname or ""
        https = parts.scheme == "https"
        port = parts.port or (443 if https else 80)
        target = host_port(host, port)
        timeout = settings.connect_timeout
        blocked: Text | None = None
        tunnel: socket.socket | None = None
        proxy = settings.proxy

        connect_name = Reason(N_("TCP connect: %(target)s"), {"target": target})
        if proxy is None:
            blocked = self.check_name(host, port, timeout)
            if blocked is None:
                blocked = self.check_connect(connect_name, host, port, timeout, https=https, proxy=False)
            else:
                self.skip(connect_name, blocked)
        else:
            proxy_address = host_port(proxy.host, proxy.port)
            blocked = self.shared(Reason(N_("name resolution: %(host)s"), {"host": proxy.host}),
                                  lambda: self.check_name(proxy.host, proxy.port, timeout,
                                                          proxy_note=None if probe.is_ip_address(host)
                                                          else host),
                                  Reason(N_("name resolution failed")))
            connect_name = Reason(N_("TCP connect to proxy: %(proxy)s"), {"proxy": proxy_address})
            if blocked is None:
                blocked = self.shared(connect_name, lambda: self.check_connect(
                    connect_name, proxy.host, proxy.port, timeout, https=https, proxy=True),
                    Reason(N_("TCP connect to proxy failed")))
            elif not self.done(connect_name):
                self.skip(connect_name, blocked)
            auth_name = Reason(N_("proxy authentication: %(proxy)s -> %(target)s"),
                               {"proxy": proxy_address, "target": target})
            if blocked is None:
                blocked, tunnel = self.check_proxy(auth_name, settings, source, host, port, https)
            else:
                self.skip(auth_name, blocked)

        tls_name = Reason(N_("TLS handshake: %(target)s"), {"target": target})
        if https:
            if blocked is None:
                blocked = self.check_tls(tls_name, settings, host, port, tunnel)
            else:
                self.skip(tls_name, blocked)
        elif tunnel is not None:
            tunnel.close()

        status_name = Reason(N_("HTTP status: %(url)s"), {"url": source.index_url})
        not_fetched = Reason(N_("server.ini could not be fetched"))
        body: bytes | None = None
        if blocked is None:
            body = self.check_index(status_name, settings, source)
            if body is None:
                blocked = not_fetched
        else:
            self.skip(status_name, blocked)

        parse_name = Reason(N_("parse server.ini: %(url)s"), {"url": source.base_url})
        if body is None:
            self.skip(parse_name, blocked or not_fetched)
        else:
            self.check_parse(parse_name, settings, source, body)

    def check_index(self, name: Text, settings: Settings, source: Source) -> bytes | None:
        options = dataclasses.replace(http_options(settings), retries=0)
        try:
            with HttpClient(options) as client:
                result = client.fetch_index(source.index_url, max_bytes=MAX_INDEX_BYTES)
        except FetchError as error:
            hint = {
                "http_status": N_("check the URL path: it must be the directory that holds server.ini"),
                "proxy_auth": N_("check Proxy/ProxyUser and Proxy/ProxyPassword"),
                "tls": N_("see the TLS handshake step"),
                "timeout": N_("the server or the proxy is too slow: retry, or raise Update/ReadTimeout"),
            }.get(error.kind, N_("retry later; if it persists, check the server"))
            if error.status is not None and error.status >= 500 and settings.proxy is not None:
                hint = N_("the proxy or the server failed: check the proxy's log and that it can reach "
                          "the server")
            self.add(name, False, error.reason, Reason(hint))
            return None
        body = result.body or b""
        self.add(name, True, Reason(N_("HTTP 200, %(size)s bytes"), {"size": len(body)}))
        return body

    def check_parse(self, name: Text, settings: Settings, source: Source, body: bytes) -> None:
        try:
            index = serverini.parse(body.decode("utf-8", errors="replace"))
        except serverini.ServerIniError as error:
            self.add(name, False, Reason(N_("not a usable server.ini: %(error)s"), {"error": str(error)}),
                     Reason(N_("the URL must point at an ActiveUpdate (or Control Manager) update source")))
            return
        offered = [c for c in source.components if index.lookup(c.au_key, c.is_engine) is not None]
        missing = [c.id for c in source.components if c not in offered]
        findings: list[Text] = [Reason(
            N_("patterns: %(patterns)s, engines: %(engines)s; %(offered)s of %(total)s components served "
               "from here are offered"),
            {"patterns": len(index.patterns), "engines": len(index.engines), "offered": len(offered),
             "total": len(source.components)})]
        if missing:
            findings.append(Reason(N_(" (not offered: %(ids)s)"), {"ids": ", ".join(missing)}))
        if index.problems:
            unusable = joined(f"{key}: {why}" for key, why in sorted(index.problems.items()))
            findings.append(Reason(N_("; unusable entries: %(entries)s"), {"entries": unusable}))
        detail = joined(findings, "")
        used = [c for c in source.components
                if settings.license_active(c.license, self.today) and settings.feature_enabled(c.feature)]
        if used and not any(c in offered for c in used):
            self.add(name, False, detail, Reason(N_("the source offers none of the components this gateway "
                                                    "uses (licensed and enabled): check the URL")))
            return
        self.add(name, True, detail)
