"""Test support: a whole gateway for end-to-end tests of the update run.

``gateway`` gives a fresh database (``db init`` applied), an install root, an ActiveUpdate
tree served by a real HTTP server on 127.0.0.1, signature trust set to the test PKI, and
service-restart commands that are real executables appending to a log file (and failing
while a flag file exists). ``gateway.cli(...)`` runs the real command line in-process;
``gateway.spawn(...)`` runs it as a separate process.
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from imss_updater import cli
from imss_updater.database.db import Database
from tests.support.autree import AUTree, SigningPKI
from tests.support.servers import ServerFactory, StaticServer

REPO = Path(__file__).resolve().parents[2]


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str


class Gateway:
    def __init__(self, dsn: str, root: Path, tree: AUTree, server: StaticServer, bin_dir: Path) -> None:
        self.dsn = dsn
        self.root = root
        self.tree = tree
        self.server = server
        self.bin_dir = bin_dir
        self.restart_log = bin_dir / "restarts.log"
        self.fail_flag = bin_dir / "fail-restart"

    @property
    def base_url(self) -> str:
        return self.server.base_url

    def database(self) -> Database:
        return Database(self.dsn)

    def set(self, section: str, name: str, value: str) -> None:
        with self.database() as database:
            database.set_setting(section, name, value)

    def get(self, section: str, name: str) -> str | None:
        with self.database() as database:
            return database.get_setting(section, name)

    def publish(self, **kwargs: object) -> None:
        self.tree.write_ini(base_url=self.base_url, **kwargs)  # type: ignore[arg-type]

    def restarts(self) -> list[str]:
        if not self.restart_log.exists():
            return []
        return self.restart_log.read_text().split()

    def common_args(self) -> list[str]:
        return ["--dsn", self.dsn, "--root", str(self.root)]

    def cli(self, *args: str) -> CliResult:
        """Run ``imss-updater ARGS`` in this process and capture its output."""
        command, rest = _split(args)
        stdout, stderr = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            code = cli.main([*command, *self.common_args(), *rest])
        return CliResult(code, stdout.getvalue(), stderr.getvalue())

    def spawn(self, *args: str, **kwargs: object) -> subprocess.Popen[str]:
        """Start ``imss-updater ARGS`` as a separate process (stdout/stderr piped)."""
        command, rest = _split(args)
        return subprocess.Popen(
            [sys.executable, "-m", "imss_updater.cli", *command, *self.common_args(), *rest],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)}, **kwargs,  # type: ignore[arg-type]
        )

    def events(self) -> list[tuple[str, str, str | None, str]]:
        """(kind, component, version, outcome) of every event, oldest first."""
        with self.database() as database:
            events = reversed(database.events(limit=1000))
            return [(e.kind, e.component, e.version, e.outcome) for e in events]

    def live(self, live_path: str) -> Path:
        return self.root / live_path


def _split(args: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """Split ``("config", "set", "A", "B")`` so common options go after the subcommand words."""
    words = list(args)
    if words[:1] in (["db"], ["config"], ["admin"], ["notify"], ["trust"], ["fleet"]):
        return words[:2], words[2:]
    return words[:1], words[1:]


def _script(path: Path, name: str, log: Path, flag: Path) -> None:
    path.write_text(
        "#!/bin/sh\n"
        f'echo {name} >> "{log}"\n'
        f'if [ -e "{flag}" ]; then echo "{name} service failed to start" >&2; exit 1; fi\n'
    )
    path.chmod(0o755)


@pytest.fixture
def gateway(
    db_dsn: str, tmp_path: Path, signing_pki: SigningPKI, http_server: ServerFactory
) -> Iterator[Gateway]:
    tree = AUTree(tmp_path / "au", signing_pki)
    tree.write_ini()
    server = http_server(tmp_path / "au")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    root = tmp_path / "root"
    root.mkdir()
    gateway = Gateway(db_dsn, root, tree, server, bin_dir)
    _script(bin_dir / "scan-restart", "scan", gateway.restart_log, gateway.fail_flag)
    _script(bin_dir / "policy-restart", "policy", gateway.restart_log, gateway.fail_flag)
    with Database(db_dsn) as database:
        database.init()
        for (section, name), value in {
            ("Update", "UpdateServer"): server.base_url,
            ("Update", "TMASEServerurl"): server.base_url,
            ("Update", "SignatureCAFile"): str(signing_pki.trust_file),
            ("Update", "ConnectTimeout"): "2",
            ("Update", "ReadTimeout"): "2",
            ("Update", "RetryCount"): "1",
            ("Update", "RetryBackoff"): "0.05",
            ("Service", "ScanServiceRestart"): f"{bin_dir / 'scan-restart'} restart",
            ("Service", "PolicyServiceRestart"): f"{bin_dir / 'policy-restart'} restart",
            ("Service", "RestartTimeout"): "20",
        }.items():
            database.set_setting(section, name, value)
    yield gateway
