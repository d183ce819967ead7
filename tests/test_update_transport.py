"""End-to-end: HTTPS and proxies from the settings, the lock between real processes, and
processes killed in the middle of a run."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import psycopg2

from imss_updater.store import lock
from tests.support.gateway import Gateway
from tests.support.servers import ServerFactory


def wait_for(predicate, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


def test_verbatim_psql_switch_to_https_is_used_by_the_next_check(
    gateway: Gateway, https_server: ServerFactory, test_ca_file: Path
) -> None:
    gateway.tree.add_pattern("P.4", "1569700")
    gateway.publish()
    secure = https_server(gateway.tree.directory)
    gateway.set("Update", "CAFile", str(test_ca_file))
    connection = psycopg2.connect(gateway.dsn)
    with connection, connection.cursor() as cursor:
        # The SPEC's statement, pointed at the test server instead of the real AU host.
        cursor.execute(
            "UPDATE tb_global_setting SET value = %s"
            " WHERE section = 'Update' AND ( name = 'UpdateServer' OR name = 'TMASEServerurl' )",
            (secure.base_url,),
        )
        assert cursor.rowcount == 2
    connection.close()
    result = gateway.cli("update", "virus_pattern")
    assert result.code == 0, result.stderr
    assert [r.path for r in secure.requests][:1] == ["/server.ini"]
    assert secure.requests_for("/" + gateway.tree.entries["P.4"].path)


def test_https_source_with_an_untrusted_certificate_is_unknown_with_a_tls_reason(
    gateway: Gateway, https_server: ServerFactory, other_ca_file: Path
) -> None:
    secure = https_server(gateway.tree.directory)
    gateway.set("Update", "CAFile", str(other_ca_file))
    gateway.set("Update", "UpdateServer", secure.base_url)
    gateway.set("Update", "TMASEServerurl", secure.base_url)
    result = gateway.cli("check", "--json")
    assert result.code == 1
    payload = json.loads(result.stdout)
    assert payload["components"][0]["available"] is None
    assert "TLS" in payload["last_check"]["result"]


def test_update_through_an_authenticating_proxy(gateway: Gateway, tinyproxy) -> None:  # type: ignore[no-untyped-def]
    proxy = tinyproxy(user="imss", password="pr0xy-pass")
    gateway.tree.add_pattern("P.4", "1569700")
    gateway.publish()
    for name, value in {"ProxyHost": "127.0.0.1", "ProxyPort": str(proxy.port),
                        "ProxyUser": "imss", "ProxyPassword": "pr0xy-pass"}.items():
        gateway.set("Proxy", name, value)
    gateway.set("Update", "UseProxySetting", "yes")
    result = gateway.cli("update", "virus_pattern")
    assert result.code == 0, result.stderr
    assert proxy.saw("/server.ini")


def test_https_through_the_proxy_uses_connect_with_special_character_password(
    gateway: Gateway, tinyproxy, https_server: ServerFactory, test_ca_file: Path  # type: ignore[no-untyped-def]
) -> None:
    password = "p@ss:w/rd%#"
    proxy = tinyproxy(user="imss", password=password)
    gateway.tree.add_pattern("P.4", "1569700")
    gateway.publish()
    secure = https_server(gateway.tree.directory)
    for section, name, value in [
        ("Update", "UpdateServer", secure.base_url), ("Update", "TMASEServerurl", secure.base_url),
        ("Update", "CAFile", str(test_ca_file)), ("Proxy", "ProxyHost", "127.0.0.1"),
        ("Proxy", "ProxyPort", str(proxy.port)), ("Proxy", "ProxyUser", "imss"),
        ("Proxy", "ProxyPassword", password), ("Update", "UseProxySetting", "yes"),
    ]:
        gateway.set(section, name, value)
    result = gateway.cli("update", "virus_pattern", "-v")
    assert result.code == 0, result.stderr
    assert proxy.saw("CONNECT")
    assert password not in result.stderr


def test_update_through_squid_with_a_password_outside_latin1_over_http_and_connect(
    gateway: Gateway, squid, https_server: ServerFactory, test_ca_file: Path  # type: ignore[no-untyped-def]
) -> None:
    password = "p@ss:w/rd%41; #&x ü日本"
    proxy = squid(users={"imss": password})
    gateway.tree.add_pattern("P.4", "1569700")
    gateway.publish()
    secure = https_server(gateway.tree.directory)
    for section, name, value in [
        # The virus pattern comes over plain HTTP, TMASE's source over HTTPS through CONNECT.
        ("Update", "TMASEServerurl", secure.base_url), ("Update", "CAFile", str(test_ca_file)),
        ("Proxy", "ProxyHost", "127.0.0.1"), ("Proxy", "ProxyPort", str(proxy.port)),
        ("Proxy", "ProxyUser", "imss"), ("Proxy", "ProxyPassword", password),
        ("Update", "UseProxySetting", "yes"),
    ]:
        gateway.set(section, name, value)
    result = gateway.cli("update", "virus_pattern", "-v")
    assert result.code == 0, result.stderr
    assert proxy.saw(f"GET {gateway.base_url}/server.ini imss ")
    assert proxy.saw(f"CONNECT 127.0.0.1:{secure.port} imss ")
    assert password not in result.stderr


def test_wrong_proxy_password_makes_versions_unknown_with_the_reason(gateway: Gateway, tinyproxy) -> None:  # type: ignore[no-untyped-def]
    proxy = tinyproxy(user="imss", password="right")
    for name, value in {"ProxyHost": "127.0.0.1", "ProxyPort": str(proxy.port),
                        "ProxyUser": "imss", "ProxyPassword": "wrong"}.items():
        gateway.set("Proxy", name, value)
    gateway.set("Update", "UseProxySetting", "yes")
    result = gateway.cli("check", "--json")
    assert result.code == 1
    payload = json.loads(result.stdout)
    assert "proxy authentication failed" in payload["last_check"]["result"]
    assert all(item["available"] is None for item in payload["components"])


def test_second_run_fails_at_once_while_a_download_holds_the_lock(gateway: Gateway) -> None:
    gateway.tree.add_pattern("P.4", "1569700", size_bytes=256 * 1024)
    gateway.publish()
    payload_path = "/" + gateway.tree.entries["P.4"].path
    gateway.server.stall(payload_path)
    gateway.set("Update", "ReadTimeout", "30")
    first = gateway.spawn("update", "virus_pattern")
    try:
        wait_for(lambda: lock.lock_holder(gateway.root) == first.pid)
        second = gateway.cli("update", "virus_pattern")
        assert second.code == 3
        assert "Another process is downloading files." in second.stderr
        assert "別のプロセスでファイルをダウンロード中です。" in second.stderr
    finally:
        first.kill()
        first.wait()
    # The dead holder blocks nothing, and its partial download is cleaned up by the next run.
    gateway.server.knobs_for(payload_path).stall = False
    result = gateway.cli("update", "virus_pattern")
    assert result.code == 0, result.stderr
    assert not list((gateway.root / "lib" / ".staging").iterdir())


def test_process_killed_during_restart_owes_the_restart_to_the_next_run(gateway: Gateway) -> None:
    gateway.tree.add_pattern("P.4", "1569700")
    gateway.publish()
    slow = gateway.bin_dir / "slow-scan"
    started = gateway.bin_dir / "slow-started"
    slow.write_text(f'#!/bin/sh\ntouch "{started}"\nsleep 30\n')
    slow.chmod(0o755)
    gateway.set("Service", "ScanServiceRestart", str(slow))
    process = gateway.spawn("update", "virus_pattern")
    wait_for(started.exists)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    gateway.set("Service", "ScanServiceRestart", f"{gateway.bin_dir / 'scan-restart'} restart")
    # The install was committed with its event before the restart began.
    assert gateway.events() == [("manual", "virus_pattern", "15.697.00", "success")]
    result = gateway.cli("run", "--once")
    assert result.code == 0, result.stderr
    assert gateway.restarts() == ["scan"]
    assert gateway.events() == [("manual", "virus_pattern", "15.697.00", "success")]
