"""The demo behind scripts/demo: a signed sample source on 127.0.0.1 and a private updater."""

from __future__ import annotations

import argparse
import functools
import http.server
import os
import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.autree import AUTree, SigningPKI  # noqa: E402  (the test tree builder)

DEMO = REPO / "demo"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def serve(directory: Path) -> str:
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(directory))
    handler.log_message = lambda *args: None  # type: ignore[method-assign]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}/activeupdate"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--daemon", action="store_true", help="leave the daemon running at the end")
    arguments = parser.parse_args()
    if DEMO.exists():
        subprocess.run([sys.executable, "-m", "imss_updater.cli", "status"], env=environment(),
                       cwd=REPO, capture_output=True, check=False)
        shutil.rmtree(DEMO / "root", ignore_errors=True)
        shutil.rmtree(DEMO / "source", ignore_errors=True)
    DEMO.mkdir(exist_ok=True)
    os.chmod(DEMO, 0o755)  # noqa: S103 - PostgreSQL (user postgres) must reach its data directory
    pki = SigningPKI(DEMO / "pki")
    tree = AUTree(DEMO / "source" / "activeupdate", pki)
    tree.add_pattern("P.4", "1569700")
    tree.add_pattern("P.8", "240100")
    tree.add_engine("VSAPI_LINUX_X86_64", "21.0.1008")
    tree.add_pattern("P.10001", "170000")
    base = serve(DEMO / "source")
    tree.write_ini(base_url=base)
    restart = DEMO / "restart-service"
    restart.write_text('#!/bin/sh\necho "$(date +%T) restarting the $1 service (demo)"\n')
    restart.chmod(0o755)
    step("the updater's own database, with a fresh schema", "db", "init")
    for section, name, value in [
        ("Update", "UpdateServer", base), ("Update", "TMASEServerurl", base),
        ("Update", "SignatureCAFile", str(pki.trust_file)), ("Update", "VerifySignature", "yes"),
        ("Service", "ScanServiceRestart", f"{restart} scan"),
        ("Service", "PolicyServiceRestart", f"{restart} policy"),
        ("Update", "RandomDelaySeconds", "5"),
    ]:
        run("config", "set", section, name, value, quiet=True)
    step("what the sample source offers (red = newer in the web page)", "check")
    step("a manual update of everything newer", "update", "--all")
    tree.add_pattern("P.4", "1569800")
    tree.write_ini(base_url=base)
    step("the source publishes virus pattern 15.698.00", "check")
    step("the scheduled update, once", "run", "--once")
    step("rolling the virus pattern back one generation", "rollback", "virus_pattern")
    step("the status: virus pattern back at 15.697.00 and off the schedule", "status")
    step("the event log", "logs")
    if arguments.daemon:
        print("\n== the daemon, with its status page; Ctrl-C stops it ==", flush=True)
        return subprocess.call([sys.executable, "-m", "imss_updater.cli", "run", "-v"],
                               env=environment(), cwd=REPO)
    print(f"\nThe demo's state is in {DEMO}; run `./scripts/demo --daemon` to keep the daemon up.")
    return 0


def environment() -> dict[str, str]:
    return {**os.environ, "IMSS_STATE": str(DEMO / "state"), "IMSS_ROOT": str(DEMO / "root"),
            "IMSS_DB_PORT": os.environ.get("IMSS_DB_PORT", "55432"), "IMSS_DSN": "",
            "PYTHONPATH": str(REPO)}


def run(*args: str, quiet: bool = False) -> int:
    completed = subprocess.run([sys.executable, "-m", "imss_updater.cli", *args], env=environment(),
                               cwd=REPO, capture_output=quiet, text=True, check=False)
    return completed.returncode


def step(title: str, *args: str) -> None:
    print(f"\n== {title}: imss-updater {' '.join(args)}", flush=True)
    run(*args)


if __name__ == "__main__":
    sys.exit(main())
