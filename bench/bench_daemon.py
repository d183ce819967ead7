"""Benchmark of the idle daemon; prints figures, asserts nothing.

1. Resident memory and CPU of an idle ``imss-updater run`` over a period (default 300 s;
   goal: under 80 MB, under 1 % of a core), sampled from /proc.
2. Time from SIGUSR1 to the first request at the update source (median of 5).

Usage: .venv/bin/python bench/bench_daemon.py [--seconds 300]
"""

from __future__ import annotations

import argparse
import datetime
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


from imss_updater.database.db import Database  # noqa: E402
from tests.support.autree import AUTree, SigningPKI  # noqa: E402
from tests.support.pg import create_database, free_port, make_state_dir, start_cluster  # noqa: E402
from tests.support.servers import StaticServer  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


def process_tree(pid: int) -> list[int]:
    children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    found = [pid]
    for child in children:
        found += process_tree(int(child))
    return found


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=300.0)
    arguments = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="imss-bench-daemon-"))
    state = make_state_dir("imss-bench-daemon-pg-")
    cluster = start_cluster(state)
    daemon = None
    try:
        dsn = create_database(cluster, "bench")
        pki = SigningPKI(work / "pki")
        tree = AUTree(work / "au", pki)
        tree.add_pattern("P.4", "1569700")
        server = StaticServer(work / "au").start()
        tree.write_ini(base_url=server.base_url)
        with Database(dsn) as database:
            database.init()
            for section, name, value in [
                ("Update", "UpdateServer", server.base_url), ("Update", "TMASEServerurl", server.base_url),
                ("Update", "SignatureCAFile", str(pki.trust_file)), ("Update", "RandomDelaySeconds", "0"),
                ("Service", "ScanServiceRestart", "/bin/true"),
                ("Service", "PolicyServiceRestart", "/bin/true"),
            ]:
                database.set_setting(section, name, value)
            database.record_scheduled_run(datetime.datetime.now(datetime.UTC))
        root = work / "root"
        root.mkdir()
        daemon = subprocess.Popen(
            [sys.executable, "-m", "imss_updater.cli", "run", "--dsn", dsn, "--root", str(root)],
            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env={**os.environ, "PYTHONPATH": str(REPO), "IMSS_STATE": str(work / "state"),
                 "IMSS_WEB": f"127.0.0.1:{free_port()}"},
        )
        time.sleep(5)  # start-up done
        pid = daemon.pid
        rss_samples = []
        start_ticks = cpu_ticks(pid)
        started = time.monotonic()
        while time.monotonic() - started < arguments.seconds:
            rss_samples.append(rss_kb(pid))
            time.sleep(1)
        elapsed = time.monotonic() - started
        cpu_share = (cpu_ticks(pid) - start_ticks) / TICKS / elapsed * 100
        print(f"idle daemon over {elapsed:.0f} s: RSS {min(rss_samples) / 1024:.1f}-"
              f"{max(rss_samples) / 1024:.1f} MB (goal < 80 MB), CPU {cpu_share:.2f} % of a core "
              "(goal < 1 %)")
        latencies = []
        for _ in range(5):
            before = len(server.requests)
            sent = time.monotonic()
            os.kill(pid, signal.SIGUSR1)
            while len(server.requests) == before:
                time.sleep(0.005)
            latencies.append(time.monotonic() - sent)
            time.sleep(2)
        print(f"SIGUSR1 to first request at the source: median {statistics.median(latencies) * 1000:.0f} ms "
              f"(min {min(latencies) * 1000:.0f}, max {max(latencies) * 1000:.0f})")
        server.stop()
        return 0
    finally:
        if daemon is not None:
            daemon.terminate()
            daemon.wait(timeout=20)
        cluster.stop()
        shutil.rmtree(state, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
