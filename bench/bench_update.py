"""Benchmark of the update engine on loopback; prints figures, asserts nothing.

Measures, in one run:
1. a check when nothing changed: requests and bytes on the wire per source
   (goal: one request per source, under 1 KB);
2. download + verify + install of one large component, as a ratio of curl's time to fetch
   the same file from the same server (goal: at least 0.7);
3. peak RSS growth of the updater process during that install (goal: under 50 MB).

With ``--rate-mbit N`` both curl and the updater fetch through a relay throttled to N Mbit/s
(a LAN link: 1000 is 125 MB/s), and ``--repeat K`` runs curl and the update K times side by
side and prints the median ratio update/curl (goal at 1000 Mbit/s, 512 MiB: at most 1.15).

Usage: .venv/bin/python bench/bench_update.py [--size-mb 512] [--rate-mbit 1000] [--repeat 3]
Needs a PostgreSQL server installed (it starts a private cluster) and curl.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from imss_updater.database.db import Database  # noqa: E402
from tests.support.autree import AUTree, SigningPKI  # noqa: E402
from tests.support.pg import create_database, make_state_dir, start_cluster  # noqa: E402
from tests.support.servers import StaticServer  # noqa: E402

CHILD = r"""
import json, sys, time
from pathlib import Path
from imss_updater.database.db import Database
from imss_updater.run.planner import Mode
from imss_updater.run.updater import Updater

def status_kb(field):
    # VmHWM, not ru_maxrss: ru_maxrss survives exec and would report the parent's peak.
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0

dsn, root, component = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
marks = []
def progress(component_id, phase, done, total):
    if not marks or marks[-1][0] != phase:
        marks.append((phase, time.perf_counter()))
with Database(dsn) as database:
    updater = Updater(database, root, progress=progress)
    updater.status()
    before = status_kb("VmRSS")
    started = time.perf_counter()
    report = updater.update(Mode.MANUAL, [component])
    elapsed = time.perf_counter() - started
marks.append(("end", time.perf_counter()))
phases = {marks[i][0]: marks[i + 1][1] - marks[i][1] for i in range(len(marks) - 1)}
phases["check and plan"] = marks[0][1] - started
peak = status_kb("VmHWM")
print(json.dumps({"ok": report.ok, "seconds": elapsed, "rss_before_kb": before, "peak_kb": peak,
                  "summary": report.summary(), "phases": phases}))
"""


class CountingRelay:
    """A TCP relay in front of the server that counts the bytes of each connection and, with
    ``rate`` (bytes per second), paces what it sends down each connection to that rate."""

    def __init__(self, target_port: int, rate: float = 0.0) -> None:
        self.target_port = target_port
        self.rate = rate
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.connections = 0
        self.bytes_up = 0
        self.bytes_down = 0
        self.lock = threading.Lock()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            threading.Thread(target=self._pipe, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, False), daemon=True).start()

    def _pipe(self, source: socket.socket, target: socket.socket, up: bool) -> None:
        started = time.perf_counter()
        sent = 0
        try:
            while data := source.recv(65536):
                if self.rate and not up:
                    sent += len(data)
                    ahead = started + sent / self.rate - time.perf_counter()
                    if ahead > 0:
                        time.sleep(ahead)
                with self.lock:
                    if up:
                        self.bytes_up += len(data)
                    else:
                        self.bytes_down += len(data)
                target.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, target):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mb", type=int, default=512)
    parser.add_argument("--rate-mbit", type=float, default=0.0,
                        help="throttle curl and the update to this many Mbit/s (0: loopback speed)")
    parser.add_argument("--repeat", type=int, default=1, help="curl + update pairs; the median is printed")
    arguments = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="imss-bench-"))
    state = make_state_dir("imss-bench-pg-")
    cluster = start_cluster(state)
    try:
        return run(work, cluster, arguments.size_mb, arguments.rate_mbit, arguments.repeat)
    finally:
        cluster.stop()
        shutil.rmtree(state, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)


def run(work: Path, cluster, size_mb: int, rate_mbit: float, repeat: int) -> int:  # type: ignore[no-untyped-def]
    dsn = create_database(cluster, "bench")
    pki = SigningPKI(work / "pki")
    tree = AUTree(work / "au", pki)
    tree.add_pattern("P.4", "1569700")
    started = time.perf_counter()
    big = tree.add_pattern("P.8", "240100", size_bytes=size_mb * 1024 * 1024)
    print(f"prepared a signed {big.size / 2**20:.0f} MiB component in {time.perf_counter() - started:.1f} s")
    server = StaticServer(work / "au").start()
    relay = CountingRelay(server.port, rate_mbit * 1e6 / 8)
    base = f"http://127.0.0.1:{relay.port}"
    tree.write_ini(base_url=base)
    root = work / "root"
    root.mkdir()
    with Database(dsn) as database:
        database.init()
        for section, name, value in [
            ("Update", "UpdateServer", base), ("Update", "TMASEServerurl", base),
            ("Update", "SignatureCAFile", str(pki.trust_file)), ("Update", "VerifySignature", "yes"),
            ("Service", "ScanServiceRestart", "/bin/true"), ("Service", "PolicyServiceRestart", "/bin/true"),
        ]:
            database.set_setting(section, name, value)
    cli = [sys.executable, "-m", "imss_updater.cli"]
    common = ["--dsn", dsn, "--root", str(root)]
    subprocess.run([*cli, "update", "virus_pattern", *common], check=True, cwd=REPO,
                   stdout=subprocess.DEVNULL)

    # 1. A check that finds nothing new.
    subprocess.run([*cli, "check", *common], cwd=REPO, stdout=subprocess.DEVNULL, check=True)
    before = (relay.connections, relay.bytes_up, relay.bytes_down, len(server.requests))
    subprocess.run([*cli, "check", *common], cwd=REPO, stdout=subprocess.DEVNULL, check=True)
    time.sleep(0.2)
    requests = len(server.requests) - before[3]
    up, down = relay.bytes_up - before[1], relay.bytes_down - before[2]
    statuses = [r.status for r in server.requests[before[3]:]]
    print(f"check, nothing changed: {requests} request(s) to 1 source {statuses}, "
          f"{up} B sent + {down} B received = {up + down} B (goal: 1 request, < 1024 B)")

    # 2. curl alone, then the whole update of the large component (through the throttled
    # relay with --rate-mbit, so both share the same link), --repeat times side by side.
    through = f"http://127.0.0.1:{relay.port}" if rate_mbit else server.base_url
    link = f"through {rate_mbit:g} Mbit/s" if rate_mbit else "on loopback"
    url = f"{through}/{big.path}"
    ratios: list[float] = []
    curl_best = 0.0
    result: dict[str, Any] = {}
    mib = big.size / 2**20
    for number in range(repeat):
        if number:
            big = tree.add_pattern("P.8", str(240100 + number), size_bytes=size_mb * 1024 * 1024)
            tree.write_ini(base_url=base)
            url = f"{through}/{big.path}"
        curl_times = []
        for _ in range(1 if rate_mbit or repeat > 1 else 3):
            target = work / "curl.out"
            started = time.perf_counter()
            subprocess.run(["curl", "-sS", "-o", str(target), url], check=True)
            curl_times.append(time.perf_counter() - started)
            target.unlink()
        curl_best = min(curl_times)
        child = subprocess.run([sys.executable, "-c", CHILD, dsn, str(root), "spyware_pattern"],
                               cwd=REPO, capture_output=True, text=True, check=True)
        result = json.loads(child.stdout.strip().splitlines()[-1])
        ratios.append(result["seconds"] / curl_best)
        print(f"[{number + 1}/{repeat}] {link}: curl {curl_best:.2f} s ({mib / curl_best:.0f} MiB/s), "
              f"update {result['seconds']:.2f} s, ok={result['ok']}, ratio update/curl "
              f"{ratios[-1]:.2f}")
        print("  phases: " + ", ".join(f"{name} {seconds:.2f} s"
                                       for name, seconds in result["phases"].items()))
    print(f"update/curl time for {mib:.0f} MiB {link}: median {statistics.median(ratios):.2f} "
          f"of {repeat} (goal at 1000 Mbit/s: <= 1.15)")
    pipeline = work / "pipeline"
    started = time.perf_counter()
    subprocess.run(["curl", "-sS", "-o", str(work / "p.zip"), url], check=True)
    subprocess.run(["openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in",
                    str(tree.signature_file("P.8")), "-content", str(work / "p.zip"), "-CAfile",
                    str(pki.trust_file), "-purpose", "any", "-out", "/dev/null"],
                   check=True, capture_output=True)
    shutil.unpack_archive(work / "p.zip", pipeline, "zip")
    subprocess.run(["sync", "-f", str(pipeline)], check=True)
    by_hand = time.perf_counter() - started
    print(f"the same work by hand (curl, openssl cms -verify, unzip, sync): {by_hand:.2f} s; "
          f"ratio updater/by-hand: {by_hand / result['seconds']:.2f}")
    print(f"throughput ratio updater/curl: {curl_best / result['seconds']:.2f} (goal: >= 0.7)")
    growth = (result["peak_kb"] - result["rss_before_kb"]) / 1024
    print(f"peak RSS growth of the updater during the install: {growth:.1f} MB "
          f"(before {result['rss_before_kb'] / 1024:.1f} MB, peak {result['peak_kb'] / 1024:.1f} MB; "
          "goal < 50 MB)")
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
