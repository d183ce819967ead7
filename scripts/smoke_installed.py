"""Smoke test of an installed imss-updater (the built wheel in a clean venv, outside the checkout).

Usage: python scripts/smoke_installed.py /path/to/venv/bin/imss-updater

Runs the installed command the way an administrator would, against real peers on 127.0.0.1:
``db init`` (embedded PostgreSQL in a temp state directory), ``check`` against a local
ActiveUpdate-format source, ``notify test --mail`` to a local SMTP server (aiosmtpd), and
``run`` with the status page serving ``/login`` (also in Japanese, from the compiled catalog)
and ``/static/style.css``; ``status --lang ja`` and ``update --help --lang ja`` print
Japanese. Any missing package
file (SQL, template, static file, MIB) makes one of these fail. Exit 0 when everything passed;
otherwise print what failed and exit 1.
"""

from __future__ import annotations

import http.server
import io
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import zipfile
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Message


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Inbox(Message):
    def __init__(self) -> None:
        super().__init__()
        self.subjects: list[str] = []

    def handle_message(self, message: object) -> None:
        self.subjects.append(str(message["Subject"]))  # type: ignore[index]


def make_source(directory: Path) -> None:
    """A one-component ActiveUpdate tree: server.ini and an unsigned virus pattern."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        bundle.writestr("vsapi.697", b"pattern data\n" * 100)
    (directory / "pattern").mkdir()
    (directory / "pattern" / "vsapi697.zip").write_bytes(buffer.getvalue())
    (directory / "server.ini").write_text(
        "[Server]\nServer.1=local\n\n[PATTERN]\n"
        f"P.4=pattern/vsapi697.zip,1569700,{len(buffer.getvalue())}\n"
    )


def serve(directory: Path) -> tuple[http.server.ThreadingHTTPServer, int]:
    handler = lambda *args: http.server.SimpleHTTPRequestHandler(  # noqa: E731
        *args, directory=str(directory)
    )
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, server.server_address[1]


def main() -> int:
    command = sys.argv[1]
    work = Path(tempfile.mkdtemp(prefix="imss-smoke-"))
    work.chmod(0o755)  # the embedded cluster runs as postgres and must traverse it
    state, root, source = work / "state", work / "root", work / "source"
    for path in (state, root, source):
        path.mkdir(mode=0o755)
    make_source(source)
    http_server, http_port = serve(source)
    inbox = Inbox()
    smtp_port = free_port()
    smtp = Controller(inbox, hostname="127.0.0.1", port=smtp_port)
    smtp.start()
    web_port = free_port()
    environment = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "IMSS_STATE": str(state),
        "IMSS_ROOT": str(root),
        "IMSS_DB_PORT": str(free_port()),
        "IMSS_WEB": f"127.0.0.1:{web_port}",
    }
    failures: list[str] = []

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([command, *args], env=environment, cwd=work, capture_output=True,
                                text=True, timeout=180, check=False)
        if result.returncode != 0:
            failures.append(f"imss-updater {' '.join(args)}: exit {result.returncode}: "
                            f"{result.stderr.strip()[-500:]}")
        return result

    daemon = None
    try:
        cli("--version")
        cli("db", "init")
        base = f"http://127.0.0.1:{http_port}"
        for section, name, value in (
            ("Update", "UpdateServer", base),
            ("Update", "TMASEServerurl", base),
            ("Service", "ScanServiceRestart", "/bin/true"),
            ("Service", "PolicyServiceRestart", "/bin/true"),
            ("Notification", "SMTPServer", "127.0.0.1"),
            ("Notification", "SMTPPort", str(smtp_port)),
            ("Notification", "MailFrom", "updater@example.test"),
            ("Notification", "MailTo", "admin@example.test"),
        ):
            cli("config", "set", section, name, value)
        checked = cli("check", "--json")
        if checked.returncode == 0:
            components = {item["id"]: item for item in json.loads(checked.stdout)["components"]}
            if components["virus_pattern"]["available"] != "15.697.00":
                failures.append(f"check: virus_pattern offered {components['virus_pattern']}")
        # The compiled catalog is in the wheel: Japanese CLI output and a Japanese page.
        status = cli("status", "--lang", "ja")
        if status.returncode == 0 and "ダウンロードロック" not in status.stdout:
            failures.append(f"status --lang ja: no Japanese in {status.stdout[-300:]!r}")
        helped = cli("update", "--help", "--lang", "ja")
        if helped.returncode == 0 and "使い方" not in helped.stdout:
            failures.append(f"update --help --lang ja: no Japanese in {helped.stdout[:300]!r}")
        cli("notify", "test", "--mail")
        if not inbox.subjects:
            failures.append("notify test --mail: no mail arrived")
        daemon = subprocess.Popen([command, "run"], env=environment, cwd=work,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        for path in ("/login", "/static/style.css"):
            status = wait_for_page(f"http://127.0.0.1:{web_port}{path}", daemon)
            if status != 200:
                failures.append(f"run: GET {path} answered {status}")
        japanese = page_text(f"http://127.0.0.1:{web_port}/login", {"Accept-Language": "ja"})
        if "管理者ログオン" not in japanese:
            failures.append(f"run: GET /login in Japanese showed {japanese[:300]!r}")
    finally:
        if daemon is not None:
            daemon.send_signal(signal.SIGTERM)
            try:
                _, errors = daemon.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                daemon.kill()
                _, errors = daemon.communicate()
            if failures and errors:
                print(errors[-2000:], file=sys.stderr)
        smtp.stop()
        http_server.shutdown()
    for failure in failures:
        print(f"SMOKE FAIL: {failure}", file=sys.stderr)
    if not failures:
        print("smoke test of the installed package: db init, check, ja catalog, notify test, run + page: OK")
    return 1 if failures else 0


def page_text(url: str, headers: dict[str, str]) -> str:
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 - our own page
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - our own page
            return str(response.read().decode("utf-8"))
    except OSError as error:
        return f"(no page: {error})"


def wait_for_page(url: str, daemon: subprocess.Popen[str], seconds: float = 90.0) -> int | str:
    deadline = time.monotonic() + seconds
    last: int | str = "no answer"
    while time.monotonic() < deadline and daemon.poll() is None:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - our own page
                return int(response.status)
        except urllib.error.HTTPError as error:
            return int(error.code)
        except OSError as error:
            last = str(error)
        time.sleep(0.5)
    return last if daemon.poll() is None else f"daemon exited with {daemon.returncode}"


if __name__ == "__main__":
    sys.exit(main())
