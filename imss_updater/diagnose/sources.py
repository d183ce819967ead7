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
        described = []
        problems = []
        for source in sources.values():
            kind = "Control Manager" if is_control_manager(source.base_url) else "ActiveUpdate"
            described.append(f"{source.base_url} ({', '.join(source.setting_names)}; {kind})")
            if is_control_manager(source.base_url) and settings.verify_signature == "yes":
                problems.append(f"{source.base_url} is a Control Manager source, which publishes no .sig "
                                f"files, but Update/VerifySignature=yes rejects unsigned components")
        via = (f" through proxy {host_port(settings.proxy.host, settings.proxy.port)}"
               if settings.proxy else " directly (UseProxySetting=no)")
        detail = "; ".join(described) + via
        if problems:
            self.add("source URLs", False, detail + ". " + "; ".join(problems),
                     "set Update/VerifySignature to auto for a Control Manager source")
        else:
            self.add("source URLs", True, detail)
        return list(sources.values())

    def check_signature_trust(self, settings: Settings) -> None:
        name = "signature trust"
        if settings.verify_signature == "no":
            self.add(name, True, "signatures are not verified (Update/VerifySignature=no)")
            return
        hint = ("set Update/SignatureCAFile to the PEM bundle of the update-signing root and "
                "intermediate certificates")
        path = settings.signature_ca_file
        if path is None:
            self.add(name, False, f"Update/VerifySignature={settings.verify_signature} but "
                     "Update/SignatureCAFile is empty: every signed component will be rejected", hint)
            return
        try:
            text = Path(path).read_text(encoding="ascii", errors="replace")
        except OSError as error:
            self.add(name, False, f"cannot read {path}: {error.strerror or error}", hint)
            return
        count = text.count("-----BEGIN CERTIFICATE-----")
        if count == 0:
            self.add(name, False, f"{path} holds no PEM certificate", hint)
            return
        self.add(name, True, f"VerifySignature={settings.verify_signature}; {count} trusted "
                 f"certificate(s) in {path}")

    # -- one update source ------------------------------------------------------------------

    def check_source(self, source: Source, settings: Settings) -> None:
        parts = urlsplit(source.base_url)
        host = parts.hostname or ""
        https = parts.scheme == "https"
        port = parts.port or (443 if https else 80)
        target = host_port(host, port)
        timeout = settings.connect_timeout
        blocked: str | None = None
        tunnel: socket.socket | None = None
        proxy = settings.proxy

        if proxy is None:
            blocked = self.check_name(host, port, timeout)
            if blocked is None:
                blocked = self.check_connect(f"TCP connect: {target}", host, port, timeout,
                                             https=https, proxy=False)
            else:
                self.skip(f"TCP connect: {target}", blocked)
        else:
            proxy_address = host_port(proxy.host, proxy.port)
            blocked = self.shared(f"name resolution: {proxy.host}",
                                  lambda: self.check_name(proxy.host, proxy.port, timeout,
                                                          proxy_note=None if probe.is_ip_address(host)
                                                          else host))
            connect_name = f"TCP connect to proxy: {proxy_address}"
            if blocked is None:
                blocked = self.shared(connect_name, lambda: self.check_connect(
                    connect_name, proxy.host, proxy.port, timeout, https=https, proxy=True))
            elif connect_name not in self._done:
                self.skip(connect_name, blocked)
            auth_name = f"proxy authentication: {proxy_address} -> {target}"
            if blocked is None:
                blocked, tunnel = self.check_proxy(auth_name, settings, source, host, port, https)
            else:
                self.skip(auth_name, blocked)

        tls_name = f"TLS handshake: {target}"
        if https:
            if blocked is None:
                blocked = self.check_tls(tls_name, settings, host, port, tunnel)
            else:
                self.skip(tls_name, blocked)
        elif tunnel is not None:
            tunnel.close()

        status_name = f"HTTP status: {source.index_url}"
        body: bytes | None = None
        if blocked is None:
            body = self.check_index(status_name, settings, source)
            if body is None:
                blocked = "server.ini could not be fetched"
        else:
            self.skip(status_name, blocked)

        parse_name = f"parse server.ini: {source.base_url}"
        if body is None:
            self.skip(parse_name, blocked or "server.ini could not be fetched")
        else:
            self.check_parse(parse_name, settings, source, body)

    def check_index(self, name: str, settings: Settings, source: Source) -> bytes | None:
        options = dataclasses.replace(http_options(settings), retries=0)
        try:
            with HttpClient(options) as client:
                result = client.fetch_index(source.index_url, max_bytes=MAX_INDEX_BYTES)
        except FetchError as error:
            hint = {
                "http_status": "check the URL path: it must be the directory that holds server.ini",
                "proxy_auth": "check Proxy/ProxyUser and Proxy/ProxyPassword",
                "tls": "see the TLS handshake step",
                "timeout": "the server or the proxy is too slow: retry, or raise Update/ReadTimeout",
            }.get(error.kind, "retry later; if it persists, check the server")
            if error.status is not None and error.status >= 500 and settings.proxy is not None:
                hint = ("the proxy or the server failed: check the proxy's log and that it can "
                        "reach the server")
            self.add(name, False, error.reason, hint)
            return None
        body = result.body or b""
        self.add(name, True, f"HTTP 200, {len(body)} bytes")
        return body

    def check_parse(self, name: str, settings: Settings, source: Source, body: bytes) -> None:
        try:
            index = serverini.parse(body.decode("utf-8", errors="replace"))
        except serverini.ServerIniError as error:
            self.add(name, False, f"not a usable server.ini: {error}",
                     "the URL must point at an ActiveUpdate (or Control Manager) update source")
            return
        offered = [c for c in source.components if index.lookup(c.au_key, c.is_engine) is not None]
        missing = [c.id for c in source.components if c not in offered]
        detail = (f"patterns: {len(index.patterns)}, engines: {len(index.engines)}; "
                  f"{len(offered)} of {len(source.components)} components served from here are offered")
        if missing:
            detail += f" (not offered: {', '.join(missing)})"
        if index.problems:
            unusable = sorted(index.problems.items())
            detail += "; unusable entries: " + "; ".join(f"{key}: {why}" for key, why in unusable)
        used = [c for c in source.components
                if settings.license_active(c.license, self.today) and settings.feature_enabled(c.feature)]
        if used and not any(c in offered for c in used):
            self.add(name, False, detail, "the source offers none of the components this gateway uses "
                     "(licensed and enabled): check the URL")
            return
        self.add(name, True, detail)
