"""``imss-updater diagnose``: connection troubleshooting step by step (seed 002).

The steps follow what a support engineer asks an administrator to check, in order:
database, settings, licenses, source URLs, signature trust, then for each update source
name resolution, TCP connect (direct or to the proxy), proxy authentication, TLS
handshake, HTTP status of server.ini and its parse; finally the download lock and the
restart commands. Each step is data (a Step: PASS/FAIL/SKIP, a one-line detail, a hint
saying what to do); a step that cannot run because an earlier one failed is skipped and
says which. Diagnosing changes nothing: no setting, state, cache or event is written.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import os
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from imss_updater.catalog import Component, SourceRole
from imss_updater.database.db import Database, DatabaseError
from imss_updater.run.updater import INDEX_NAME, MAX_INDEX_BYTES, http_options, is_control_manager
from imss_updater.settings import Settings, SettingsError, load
from imss_updater.source import probe, serverini
from imss_updater.source.http import FetchError, HttpClient, make_ssl_context
from imss_updater.store import lock

log = logging.getLogger(__name__)

PASS, FAIL, SKIP = "PASS", "FAIL", "SKIP"


@dataclass(frozen=True)
class Step:
    """One diagnosis step: ``ok`` True (PASS), False (FAIL) or None (SKIP: an earlier step
    failed). ``hint`` says what to do about a failure (may be empty on PASS)."""

    name: str
    ok: bool | None
    detail: str
    hint: str = ""

    @property
    def result(self) -> str:
        return SKIP if self.ok is None else PASS if self.ok else FAIL


def passed(steps: Sequence[Step]) -> bool:
    """Return True when no step failed (skipped steps do not count: each follows a failure)."""
    return all(step.ok is not False for step in steps)


def to_json(steps: Sequence[Step]) -> dict[str, object]:
    """Given the steps, return ``{"ok": bool, "steps": [{name, result, detail, hint}]}``."""
    return {
        "ok": passed(steps),
        "steps": [
            {"name": step.name, "result": step.result, "detail": step.detail, "hint": step.hint}
            for step in steps
        ],
    }


def to_text(steps: Sequence[Step]) -> str:
    """Given the steps, return the report people read: one line per step, hints indented."""
    lines = []
    for step in steps:
        lines.append(f"{step.result}  {step.name}: {step.detail}")
        if step.hint and step.ok is not True:
            lines.append(f"      -> {step.hint}")
    failures = sum(1 for step in steps if step.ok is False)
    lines.append("all checks passed" if not failures else f"{failures} check(s) failed")
    return "\n".join(lines)


def run_diagnosis(
    database: Database | None,
    dsn_error: str | None,
    root: Path,
    *,
    known_addresses: Mapping[str, str] | None = None,
    today: Callable[[], datetime.date] = datetime.date.today,
) -> list[Step]:
    """Given an open database (None when it could not be opened, ``dsn_error`` saying why)
    and the install root, run every check and return the steps in order.

    ``known_addresses`` maps a host name to an IP address believed to be the server's
    (``diagnose --address HOST=IP``): when the name does not resolve, connecting to that
    address tells whether only name resolution is broken. Never raises for a failed
    check; each failure is a FAIL step.
    """
    return _Diagnosis(root, dict(known_addresses or {}), today()).run(database, dsn_error)


@dataclass
class _Source:
    base_url: str
    setting_names: list[str]
    components: list[Component]

    @property
    def index_url(self) -> str:
        return f"{self.base_url}/{INDEX_NAME}"


class _Diagnosis:
    def __init__(self, root: Path, known_addresses: dict[str, str], today: datetime.date) -> None:
        self.root = root
        self.known_addresses = known_addresses
        self.today = today
        self.steps: list[Step] = []
        self._done: dict[str, Step] = {}  # shared steps (a proxy used by two sources) run once

    def add(self, name: str, ok: bool | None, detail: str, hint: str = "") -> Step:
        step = Step(name, ok, detail, hint)
        self.steps.append(step)
        self._done[name] = step
        if ok is False:
            log.info("diagnose: FAIL %s: %s", name, detail)
        return step

    def skip(self, name: str, because: str) -> None:
        self.add(name, None, f"skipped: {because}")

    # -- the run --------------------------------------------------------------------------

    def run(self, database: Database | None, dsn_error: str | None) -> list[Step]:
        catalog = self.check_database(database, dsn_error)
        settings = None
        if database is not None and catalog is not None:
            settings = self.check_settings(database, catalog)
        else:
            self.skip("settings", "the database is not reachable")
        if settings is None or catalog is None:
            because = "the settings could not be read" if catalog is None else "the settings are invalid"
            for name in ("licenses", "source URLs", "signature trust"):
                self.skip(name, because)
            self.skip("update sources", because)
        else:
            self.check_licenses(settings, catalog)
            sources = self.check_source_urls(settings, catalog)
            self.check_signature_trust(settings)
            for source in sources:
                self.check_source(source, settings)
        self.check_lock()
        if settings is None:
            self.skip("restart commands", "the settings could not be read or are invalid")
        else:
            self.check_restart_commands(settings)
        return self.steps

    # -- database and settings --------------------------------------------------------------

    def check_database(self, database: Database | None, dsn_error: str | None) -> list[Component] | None:
        name = "database reachable"
        if database is None:
            self.add(name, False, dsn_error or "no database connection",
                     "start PostgreSQL, or check IMSS_DSN / --dsn (the embedded database lives in "
                     "the state directory and is started by any imss-updater command)")
            return None
        try:
            version = database.schema_version()
            if version == 0:
                self.add(name, False, "connected, but the database has no schema",
                         "run `imss-updater db init`")
                return None
            catalog = database.catalog()
        except DatabaseError as error:
            self.add(name, False, str(error), "check that PostgreSQL is running and the role may read "
                     "the imss tables")
            return None
        self.add(name, True, f"connected, schema version {version}, {len(catalog)} components in the catalog")
        return catalog

    def check_settings(self, database: Database, catalog: Sequence[Component]) -> Settings | None:
        name = "settings"
        try:
            rows = database.settings_rows()
            settings = load(rows, [component.id for component in catalog])
        except SettingsError as error:
            detail = f"{len(error.problems)} invalid row(s): " + "; ".join(str(p) for p in error.problems)
            self.add(name, False, detail,
                     "correct each row with `imss-updater config set SECTION NAME VALUE` (or psql); "
                     "`imss-updater db init` restores missing rows")
            return None
        except DatabaseError as error:
            self.add(name, False, str(error), "check the database")
            return None
        self.add(name, True, f"{len(rows)} rows read, every value the updater uses is valid")
        return settings

    def check_licenses(self, settings: Settings, catalog: Sequence[Component]) -> None:
        parts: list[str] = []
        expired: list[str] = []
        active = 0
        for license_name, expiry in sorted(settings.licenses.items()):
            used_by = [c.id for c in catalog if c.license == license_name]
            if expiry is None:
                parts.append(f"{license_name}: not activated ({len(used_by)} components are not updated)")
            elif expiry < self.today:
                expired.append(license_name)
                parts.append(f"{license_name}: expired on {expiry.isoformat()}")
            else:
                active += 1
                parts.append(f"{license_name}: active until {expiry.isoformat()}")
        ok = not expired and active > 0
        hint = ""
        if expired:
            hint = ("renew the license and enter its new expiry date: "
                    + ", ".join(f"`imss-updater config set License {n} YYYY-MM-DD`" for n in expired))
        elif active == 0:
            hint = "no license is activated: nothing can be updated until one is"
        self.add("licenses", ok, "; ".join(parts), hint)

    def check_source_urls(self, settings: Settings, catalog: Sequence[Component]) -> list[_Source]:
        sources: dict[str, _Source] = {}
        for setting_name, url, role in (
            ("UpdateServer", settings.update_server, SourceRole.UPDATE),
            ("TMASEServerurl", settings.tmase_server, SourceRole.TMASE),
        ):
            source = sources.setdefault(url, _Source(url, [], []))
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
        via = (f" through proxy {_host_port(settings.proxy.host, settings.proxy.port)}"
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

    def check_source(self, source: _Source, settings: Settings) -> None:
        parts = urlsplit(source.base_url)
        host = parts.hostname or ""
        https = parts.scheme == "https"
        port = parts.port or (443 if https else 80)
        target = _host_port(host, port)
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
            proxy_address = _host_port(proxy.host, proxy.port)
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

    def shared(self, name: str, check: Callable[[], str | None]) -> str | None:
        """Run a step shared by several sources once; return why later steps are blocked."""
        done = self._done.get(name)
        if done is None:
            return check()
        return None if done.ok else f"{name.split(':')[0]} failed"

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
        self, name: str, settings: Settings, source: _Source, host: str, port: int, https: bool
    ) -> tuple[str | None, socket.socket | None]:
        proxy = settings.proxy
        assert proxy is not None
        timeout = settings.connect_timeout
        tunnel: socket.socket | None = None
        try:
            if https:
                answer, tunnel = probe.proxy_connect(proxy.host, proxy.port, host, port, user=proxy.user,
                                                     password=proxy.password, timeout=timeout)
                asked = f"CONNECT {_host_port(host, port)}"
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
            self.add(f"proxy tunnel: {_host_port(host, port)}", False,
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

    def check_index(self, name: str, settings: Settings, source: _Source) -> bytes | None:
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

    def check_parse(self, name: str, settings: Settings, source: _Source, body: bytes) -> None:
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

    # -- local checks -----------------------------------------------------------------------

    def check_lock(self) -> None:
        path = lock.lock_path(self.root)
        problem = lock.lock_problem(self.root)
        if problem is not None:
            self.add("lock file", False, problem,
                     "every update fails with this reason until it is fixed")
            return
        holder = lock.lock_holder(self.root)
        if holder is None:
            moved = ("" if path.parent == self.root / "lib" else
                     f"; kept in the install root because {self.root / 'lib'} is open to other users")
            self.add("lock file", True, f"free ({path}{moved})")
            return
        command = probe.process_description(holder)
        shown = f" ({command})" if command else ""
        self.add("lock file", False, f"held by PID {holder}{shown} ({path}): an update started now "
                 "fails with \"Another process is downloading files.\"",
                 f"an update is in progress: wait for it to finish; if PID {holder} hangs, stop it "
                 "(a lock held by a dead process is released by itself)")

    def check_restart_commands(self, settings: Settings) -> None:
        for service, setting_name, argv in (
            ("scan", "ScanServiceRestart", settings.scan_restart),
            ("policy", "PolicyServiceRestart", settings.policy_restart),
        ):
            name = f"restart command: {service} service"
            program = argv[0] if argv else ""
            hint = (f"fix Service/{setting_name}: its program must exist, be executable and be given "
                    "by absolute path")
            if not program:
                self.add(name, False, f"Service/{setting_name} is empty", hint)
            elif not os.path.exists(program):
                self.add(name, False, f"{program} does not exist", hint)
            elif not os.path.isfile(program):
                self.add(name, False, f"{program} is not a file", hint)
            elif not os.access(program, os.X_OK):
                self.add(name, False, f"{program} is not executable", hint + f" (chmod +x {program})")
            else:
                self.add(name, True, f"{' '.join(argv)} (present and executable; not run)")


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


__all__ = ["FAIL", "PASS", "SKIP", "Step", "passed", "run_diagnosis", "to_json", "to_text"]
