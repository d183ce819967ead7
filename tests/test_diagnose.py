"""diagnose: each step against real peers (HTTP/HTTPS servers, tinyproxy, a held lock)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest

from imss_updater.database.db import Database
from imss_updater.diagnose import Step, run_diagnosis, to_json, to_text
from imss_updater.store import lock
from tests.support.gateway import REPO, Gateway
from tests.support.proxy import ProxyFactory
from tests.support.servers import ServerFactory


def diagnose(gateway: Gateway, known_addresses: Mapping[str, str] | None = None) -> list[Step]:
    with Database(gateway.dsn) as database:
        return run_diagnosis(database, None, gateway.root, known_addresses=known_addresses)


def step(steps: list[Step], prefix: str) -> Step:
    found = [s for s in steps if s.name.startswith(prefix)]
    assert len(found) == 1, (prefix, to_text(steps))
    return found[0]


def results(steps: list[Step]) -> dict[str, str]:
    """Step name up to the colon -> PASS/FAIL/SKIP (first occurrence)."""
    table: dict[str, str] = {}
    for s in steps:
        table.setdefault(s.name.split(":")[0], s.result)
    return table


def publish(gateway: Gateway) -> None:
    gateway.tree.add_pattern("P.4", "1569700")
    gateway.tree.add_engine("VSAPI_LINUX_X86_64", "21.0.1008")
    gateway.publish()


def status_script(gateway: Gateway, name: str, exit_status: int = 0) -> Path:
    """A real service status script that exits with ``exit_status`` (0: running)."""
    path = gateway.bin_dir / f"{name}-status"
    path.write_text(f"#!/bin/sh\nexit {exit_status}\n")
    path.chmod(0o755)
    return path


def checked(gateway: Gateway) -> None:
    """Make the gateway one with nothing left to find: both services run, and a check has
    succeeded against the source as configured now (so the available versions are known)."""
    gateway.set("Service", "ScanServiceStatus", f"{status_script(gateway, 'scan')} status")
    gateway.set("Service", "PolicyServiceStatus", f"{status_script(gateway, 'policy')} status")
    result = gateway.cli("check")
    assert result.code == 0, result.stderr


def use_source(gateway: Gateway, url: str) -> None:
    gateway.set("Update", "UpdateServer", url)
    gateway.set("Update", "TMASEServerurl", url)


def use_proxy(gateway: Gateway, port: int, user: str = "", password: str = "") -> None:
    gateway.set("Update", "UseProxySetting", "yes")
    gateway.set("Proxy", "ProxyHost", "127.0.0.1")
    gateway.set("Proxy", "ProxyPort", str(port))
    gateway.set("Proxy", "ProxyUser", user)
    gateway.set("Proxy", "ProxyPassword", password)


def test_healthy_http_gateway_passes_every_step_in_order(gateway: Gateway) -> None:
    publish(gateway)
    checked(gateway)
    steps = diagnose(gateway)
    assert [s.name.split(":")[0] for s in steps] == [
        "database reachable", "settings",
        "scheduled update", "components on the schedule", "stale components",  # seed 004 Q8 step 1
        "last check", "available versions",  # step 2
        "licenses", "source URLs", "signature trust",
        "name resolution", "TCP connect", "HTTP status", "parse server.ini", "lock file",
        "restart command", "restart command", "service running", "service running",
    ]
    assert all(s.ok for s in steps), to_text(steps)
    assert "2 of 10 components" in step(steps, "parse server.ini").detail
    assert "HTTP 200" in step(steps, "HTTP status").detail
    payload = to_json(steps)
    assert payload["ok"] is True
    assert json.loads(json.dumps(payload))["steps"][0] == {
        "name": "database reachable", "result": "PASS",
        "detail": step(steps, "database reachable").detail, "hint": "",
    }


def test_https_source_reports_the_negotiated_tls_version(
    gateway: Gateway, https_server: ServerFactory, test_ca_file: Path
) -> None:
    publish(gateway)
    server = https_server(gateway.tree.directory)
    use_source(gateway, server.base_url)
    gateway.set("Update", "CAFile", str(test_ca_file))
    checked(gateway)
    steps = diagnose(gateway)
    tls = step(steps, "TLS handshake")
    assert tls.ok, to_text(steps)
    assert tls.detail.startswith(("TLS 1.3 negotiated", "TLS 1.2 negotiated"))
    assert step(steps, "HTTP status").ok
    assert to_json(steps)["ok"] is True


def test_untrusted_server_certificate_fails_the_handshake_with_a_ca_hint(
    gateway: Gateway, https_server: ServerFactory, other_ca_file: Path
) -> None:
    publish(gateway)
    use_source(gateway, https_server(gateway.tree.directory).base_url)
    gateway.set("Update", "CAFile", str(other_ca_file))
    steps = diagnose(gateway)
    tls = step(steps, "TLS handshake")
    assert tls.ok is False
    assert "certificate" in tls.detail and "Update/CAFile" in tls.hint
    assert step(steps, "HTTP status").ok is None


def test_server_offering_only_tls_1_0_is_refused_and_explained(
    gateway: Gateway, legacy_tls_server: ServerFactory, test_ca_file: Path
) -> None:
    publish(gateway)
    use_source(gateway, legacy_tls_server(gateway.tree.directory).base_url)
    gateway.set("Update", "CAFile", str(test_ca_file))
    steps = diagnose(gateway)
    tls = step(steps, "TLS handshake")
    assert tls.ok is False
    assert "the server offers only TLS 1.0" in tls.detail
    assert "requires TLS 1.2 or newer" in tls.detail
    assert "both ends must share a TLS version" in tls.hint
    assert step(steps, "TCP connect").ok is True
    assert step(steps, "HTTP status").ok is None
    assert step(steps, "parse server.ini").ok is None
    assert to_json(steps)["ok"] is False


def test_proxy_with_the_right_password_tunnels_to_an_https_source(
    gateway: Gateway, https_server: ServerFactory, test_ca_file: Path, tinyproxy: ProxyFactory
) -> None:
    publish(gateway)
    use_source(gateway, https_server(gateway.tree.directory).base_url)
    gateway.set("Update", "CAFile", str(test_ca_file))
    proxy = tinyproxy(user="updater", password="s3cret")
    use_proxy(gateway, proxy.port, "updater", "s3cret")
    checked(gateway)
    steps = diagnose(gateway)
    assert all(s.ok for s in steps), to_text(steps)
    assert step(steps, "TCP connect to proxy").detail == f"connected to 127.0.0.1:{proxy.port}"
    assert "credentials of 'updater' accepted" in step(steps, "proxy authentication").detail
    assert step(steps, "TLS handshake").ok
    assert proxy.saw("CONNECT")


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_proxy_with_a_wrong_password_fails_authentication(
    gateway: Gateway, https_server: ServerFactory, test_ca_file: Path, tinyproxy: ProxyFactory,
    scheme: str,
) -> None:
    publish(gateway)
    if scheme == "https":
        use_source(gateway, https_server(gateway.tree.directory).base_url)
        gateway.set("Update", "CAFile", str(test_ca_file))
    proxy = tinyproxy(user="updater", password="s3cret")
    use_proxy(gateway, proxy.port, "updater", "Not-The-Pw9")
    steps = diagnose(gateway)
    auth = step(steps, "proxy authentication")
    assert auth.ok is False
    assert "proxy authentication failed" in auth.detail
    assert "Proxy/ProxyPassword" in auth.hint
    assert "Not-The-Pw9" not in to_text(steps)
    assert step(steps, "HTTP status").ok is None
    assert results(steps)["TCP connect to proxy"] == "PASS"


def test_proxy_password_with_special_characters_is_sent_exactly(
    gateway: Gateway, tinyproxy: ProxyFactory
) -> None:
    publish(gateway)
    password = "p@ss:w/rd%#"
    proxy = tinyproxy(user="gw", password=password)
    use_proxy(gateway, proxy.port, "gw", password)
    checked(gateway)
    steps = diagnose(gateway)
    assert all(s.ok for s in steps), to_text(steps)


def test_refused_port_fails_tcp_connect_and_skips_the_rest(gateway: Gateway, refused_port: int) -> None:
    use_source(gateway, f"http://127.0.0.1:{refused_port}/activeupdate")
    steps = diagnose(gateway)
    connect = step(steps, "TCP connect")
    assert connect.ok is False
    assert "connection refused" in connect.detail
    assert f"port {refused_port}" in connect.hint
    assert step(steps, "HTTP status").ok is None
    assert step(steps, "HTTP status").detail == "skipped: TCP connect failed"
    assert step(steps, "lock file").ok is True


def test_refused_proxy_port_fails_the_connect_to_the_proxy(gateway: Gateway, refused_port: int) -> None:
    publish(gateway)
    use_proxy(gateway, refused_port)
    steps = diagnose(gateway)
    assert step(steps, "TCP connect to proxy").ok is False
    assert step(steps, "proxy authentication").ok is None


def test_unresolvable_name_fails_and_says_whether_the_ip_works(gateway: Gateway) -> None:
    publish(gateway)
    port = gateway.server.port
    use_source(gateway, f"http://no-such-host.invalid:{port}")
    steps = diagnose(gateway, known_addresses={"no-such-host.invalid": "127.0.0.1"})
    name = step(steps, "name resolution")
    assert name.ok is False
    assert "cannot resolve no-such-host.invalid" in name.detail
    assert f"connecting by IP 127.0.0.1:{port} works" in name.detail
    assert "/etc/hosts" in name.hint
    assert step(steps, "TCP connect").ok is None

    without = step(diagnose(gateway), "name resolution")
    assert without.ok is False
    assert "--address" in without.detail


def test_lock_held_by_another_process_is_reported_with_its_pid(gateway: Gateway) -> None:
    publish(gateway)
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys; from pathlib import Path; from imss_updater.store import lock\n"
         "with lock.download_lock(Path(sys.argv[1])):\n"
         "    print('held', flush=True); sys.stdin.read()\n",
         str(gateway.root)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        locked = step(diagnose(gateway), "lock file")
        assert locked.ok is False
        assert f"held by PID {holder.pid}" in locked.detail
        assert lock.LOCK_MESSAGE_EN in locked.detail
    finally:
        holder.communicate("", timeout=10)
    assert step(diagnose(gateway), "lock file").ok is True


def test_missing_and_non_executable_restart_commands_fail(gateway: Gateway, tmp_path: Path) -> None:
    publish(gateway)
    plain = tmp_path / "not-executable"
    plain.write_text("#!/bin/sh\n")
    plain.chmod(0o644)
    gateway.set("Service", "ScanServiceRestart", "/nonexistent/S99IMSS restart")
    gateway.set("Service", "PolicyServiceRestart", f"{plain} restart")
    steps = diagnose(gateway)
    scan = step(steps, "restart command: scan")
    policy = step(steps, "restart command: policy")
    assert (scan.ok, policy.ok) == (False, False)
    assert scan.detail == "/nonexistent/S99IMSS does not exist"
    assert policy.detail == f"{plain} is not executable"
    assert "Service/PolicyServiceRestart" in policy.hint


def test_invalid_settings_rows_are_all_listed_and_dependent_steps_skipped(gateway: Gateway) -> None:
    gateway.set("Update", "ScheduleFrequency", "sometimes")
    gateway.set("Update", "MaxDownloadMB", "lots")
    steps = diagnose(gateway)
    settings = step(steps, "settings")
    assert settings.ok is False
    assert "2 invalid row(s)" in settings.detail
    assert "Update/ScheduleFrequency" in settings.detail and "Update/MaxDownloadMB" in settings.detail
    assert "config set" in settings.hint
    assert results(steps) == {
        "database reachable": "PASS", "settings": "FAIL", "scheduled update": "SKIP",
        "available versions": "SKIP", "licenses": "SKIP", "source URLs": "SKIP",
        "signature trust": "SKIP", "update sources": "SKIP", "lock file": "PASS",
        "restart commands": "SKIP", "service running": "SKIP",
    }


def test_unreachable_database_fails_first_and_local_checks_still_run(tmp_path: Path) -> None:
    steps = run_diagnosis(None, "cannot connect to the database (host=127.0.0.1 port=1)", tmp_path)
    assert step(steps, "database reachable").ok is False
    assert "port=1" in step(steps, "database reachable").detail
    assert step(steps, "settings").ok is None
    assert step(steps, "lock file").ok is True
    assert to_json(steps)["ok"] is False


def test_expired_license_and_missing_signature_trust_fail(gateway: Gateway) -> None:
    publish(gateway)
    gateway.set("License", "Antispam", "2020-01-31")
    gateway.set("Update", "SignatureCAFile", "")
    steps = diagnose(gateway)
    licenses = step(steps, "licenses")
    assert licenses.ok is False
    assert "Antispam: expired on 2020-01-31" in licenses.detail
    assert "License Antispam" in licenses.hint
    assert step(steps, "signature trust").ok is False
    assert step(steps, "HTTP status").ok is True  # the network checks still run


def test_missing_server_ini_and_garbage_server_ini_fail_their_steps(gateway: Gateway) -> None:
    gateway.server.set_status("/server.ini", 404)
    steps = diagnose(gateway)
    status = step(steps, "HTTP status")
    assert status.ok is False and "HTTP 404" in status.detail
    assert step(steps, "parse server.ini").ok is None

    gateway.server.set_status("/server.ini", None)
    gateway.tree.ini_path().write_text("<html>this is a portal login page</html>\n")
    parse = step(diagnose(gateway), "parse server.ini")
    assert parse.ok is False
    assert "not a usable server.ini" in parse.detail


def test_control_manager_source_with_required_signatures_is_flagged(gateway: Gateway) -> None:
    publish(gateway)
    gateway.set("Update", "VerifySignature", "yes")
    use_source(gateway, gateway.base_url + "/TvcsDownload/ActiveUpdate")
    sources = step(diagnose(gateway), "source URLs")
    assert sources.ok is False
    assert "Control Manager" in sources.detail
    assert "VerifySignature" in sources.hint


def test_two_sources_through_one_proxy_share_its_steps_and_check_each_source(
    gateway: Gateway, https_server: ServerFactory, test_ca_file: Path, tinyproxy: ProxyFactory
) -> None:
    gateway.tree.add_pattern("P.10001", "1234500")
    publish(gateway)
    secure = https_server(gateway.tree.directory)
    gateway.set("Update", "TMASEServerurl", secure.base_url)
    gateway.set("Update", "CAFile", str(test_ca_file))
    proxy = tinyproxy()
    use_proxy(gateway, proxy.port)
    checked(gateway)
    steps = diagnose(gateway)
    assert all(s.ok for s in steps), to_text(steps)
    names = [s.name.split(":")[0] for s in steps]
    assert names.count("TCP connect to proxy") == 1
    assert names.count("proxy authentication") == 2
    assert names.count("HTTP status") == 2
    assert names.count("TLS handshake") == 1
    assert "no credentials needed" in steps[names.index("proxy authentication")].detail



def test_source_offering_none_of_the_components_in_use_fails_the_parse_step(gateway: Gateway) -> None:
    gateway.tree.add_pattern("P.10001", "1234500")  # only the antispam pattern
    gateway.publish()
    parse = step(diagnose(gateway), "parse server.ini")
    assert parse.ok is True
    assert "1 of 10 components" in parse.detail
    gateway.set("License", "Antispam", "")  # now nothing offered is of use to this gateway
    steps = diagnose(gateway)
    assert step(steps, "licenses").ok is True
    unused = step(steps, "parse server.ini")
    assert unused.ok is False
    assert "none of the components this gateway uses" in unused.hint
