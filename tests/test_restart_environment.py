"""Restart commands run with a minimal environment: nothing of the daemon's leaks to them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from psycopg2.extensions import parse_dsn

from imss_updater import process
from tests.support.gateway import Gateway

# /proc/self/environ is the environment as exec'd, before Python adds anything (LC_CTYPE).
DUMP_ENVIRONMENT = """#!/usr/bin/python3
import json, sys
with open("/proc/self/environ", "rb") as given:
    pairs = [item.decode().split("=", 1) for item in given.read().split(b"\\0") if item]
with open(sys.argv[1], "w") as dump:
    json.dump(dict(pairs), dump)
"""


def database_password(dsn: str) -> str:
    """The real password of the test database, as the passfile in its DSN records it."""
    line = Path(parse_dsn(dsn)["passfile"]).read_text().splitlines()[0]
    return line.rsplit(":", 1)[1]


def test_restart_script_sees_only_path_and_the_language(
    gateway: Gateway, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    script = tmp_path / "dump-environment"
    script.write_text(DUMP_ENVIRONMENT)
    script.chmod(0o755)
    dump = tmp_path / "environment.json"
    gateway.set("Service", "ScanServiceRestart", f"{script} {dump}")
    for name, value in {
        "PATH": f"{tmp_path}:/usr/bin:/bin", "LANG": "ja_JP.UTF-8", "LC_ALL": "C.UTF-8",
        "IMSS_DSN": gateway.dsn, "PGPASSWORD": database_password(gateway.dsn),
        "HTTPS_PROXY": "http://user:proxy-secret@127.0.0.1:3128", "http_proxy": "http://x:y@h:1",
        "PYTHONPATH": str(tmp_path), "LD_PRELOAD": "/nonexistent.so",
    }.items():
        monkeypatch.setenv(name, value)
    gateway.tree.add_pattern("P.4", "1569700")
    gateway.publish()

    result = gateway.cli("update", "virus_pattern")

    assert result.code == 0, result.stderr
    assert json.loads(dump.read_text()) == {
        "PATH": process.SAFE_PATH, "LANG": "ja_JP.UTF-8", "LC_ALL": "C.UTF-8",
    }


def test_language_is_left_out_when_the_daemon_has_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    script = tmp_path / "dump-environment"
    script.write_text(DUMP_ENVIRONMENT)
    script.chmod(0o755)
    dump = tmp_path / "environment.json"
    monkeypatch.delenv("LANG", raising=False)
    monkeypatch.delenv("LC_ALL", raising=False)
    monkeypatch.setenv("PGPASSWORD", "database-secret")

    process.run([str(script), str(dump)], timeout=30)

    assert json.loads(dump.read_text()) == {"PATH": process.SAFE_PATH}
