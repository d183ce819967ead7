"""Benchmark of the fleet's leader side; prints figures, asserts nothing.

Two ``imss-updater run`` nodes (each with IMSS_NODE, IMSS_MIRROR, its own root and state)
on one PostgreSQL, one origin on loopback that records every request:

1. origin requests and bytes for one release mirrored by the leader (goal: one download of
   each package, whatever the number of nodes);
2. the cost of a member's no-op check at the mirror: one conditional GET of server.ini,
   answered 304 (goal: one request under 1 KB);
3. failover time: from SIGKILL (and from SIGSTOP: a hung leader) of the leader to the other
   node recorded as leader with the next term, and to its mirror serving the release
   (goal: under Fleet/FailoverSeconds), median of ``--rounds``.

Usage: .venv/bin/python bench/bench_fleet_failover.py [--failover 10] [--rounds 3]
"""

from __future__ import annotations

import argparse
import datetime
import http.client
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


from imss_updater.database.db import Database  # noqa: E402
from tests.support.autree import AUTree, SigningPKI  # noqa: E402
from tests.support.fleet import leader_row, lock_backend  # noqa: E402
from tests.support.pg import create_database, free_port, make_state_dir, start_cluster  # noqa: E402
from tests.support.servers import StaticServer  # noqa: E402


def start_node(dsn: str, work: Path, name: str, mirror: str) -> subprocess.Popen[bytes]:
    root = work / f"root-{name}"
    root.mkdir(exist_ok=True)
    return subprocess.Popen(
        [sys.executable, "-m", "imss_updater.cli", "run", "--dsn", dsn, "--root", str(root)],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(REPO), "IMSS_STATE": str(work / f"state-{name}"),
             "IMSS_WEB": f"127.0.0.1:{free_port()}", "IMSS_NODE": name, "IMSS_MIRROR": mirror},
    )


def mirror_get(address: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes, int]:
    """GET server.ini; return status, headers, body, and the bytes on the wire (approx.)."""
    host, port = address.split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        connection.request("GET", "/activeupdate/server.ini", headers=headers or {})
        response = connection.getresponse()
        body = response.read()
        found = {k.lower(): v for k, v in response.getheaders()}
        wire = len("HTTP/1.1 000 X\r\n") + sum(len(k) + len(v) + 4 for k, v in found.items()) + 2 + len(body)
        return response.status, found, body, wire
    finally:
        connection.close()


def serving(address: str, index: bytes) -> bool:
    try:
        return mirror_get(address)[2] == index
    except OSError:
        return False


def wait(predicate: Callable[[], bool], timeout: float) -> float | None:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if predicate():
            return time.monotonic() - started
        time.sleep(0.02)
    return None


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--failover", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    arguments = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="imss-bench-fleet-"))
    state = make_state_dir("imss-bench-fleet-pg-")
    cluster = start_cluster(state)
    nodes: dict[str, subprocess.Popen[bytes]] = {}
    try:
        dsn = create_database(cluster, "bench")
        pki = SigningPKI(work / "pki")
        tree = AUTree(work / "au", pki)
        tree.add_pattern("P.4", "1569700", size_bytes=8 << 20)
        tree.add_engine("VSAPI_LINUX_X86_64", "21.0.1008", size_bytes=2 << 20)
        server = StaticServer(work / "au").start()
        tree.write_ini(base_url=server.base_url)
        index = tree.ini_path().read_bytes()
        with Database(dsn) as database:
            database.init()
            for section, name, value in [
                ("Update", "UpdateServer", server.base_url), ("Update", "TMASEServerurl", server.base_url),
                ("Update", "SignatureCAFile", str(pki.trust_file)), ("Update", "RandomDelaySeconds", "0"),
                ("Service", "ScanServiceRestart", "/bin/true"),
                ("Service", "PolicyServiceRestart", "/bin/true"),
                ("Fleet", "Enabled", "yes"), ("Fleet", "FailoverSeconds", str(arguments.failover)),
            ]:
                database.set_setting(section, name, value)
        mirrors = {name: f"127.0.0.1:{free_port()}" for name in ("gw-a", "gw-b")}
        for name in mirrors:  # their schedules just ran: only the leader's takeover runs
            with Database(dsn, node=name) as database:
                database.ensure_node()
                database.record_scheduled_run(datetime.datetime.now(datetime.UTC))
        kill_times: list[float] = []
        stop_times: list[float] = []
        for round_number in range(arguments.rounds * 2):
            how = signal.SIGKILL if round_number % 2 == 0 else signal.SIGSTOP
            for name, mirror in mirrors.items():
                if name not in nodes or nodes[name].poll() is not None:
                    nodes[name] = start_node(dsn, work, name, mirror)
            def leader_serving() -> bool:
                found = leader_row(dsn)
                return found is not None and serving(mirrors[str(found[0])], index)

            wait(leader_serving, 60)
            wait(lambda: all(lock_backend(dsn, name) is not None for name in mirrors), 60)  # both stand
            row = leader_row(dsn)
            assert row is not None
            leader, term = str(row[0]), int(str(row[1]))
            if round_number == 0:
                packages = [r for r in server.requests if r.path.endswith(".zip")]
                print(f"one release of 2 packages, two nodes: {len(packages)} downloads from the origin,"
                      f" {sum(r.bytes_sent for r in server.requests)} bytes in "
                      f"{len(server.requests)} requests (goal: one download per package)")
                _status, headers, _body, _wire = mirror_get(mirrors[leader])
                status, _h, _b, wire = mirror_get(mirrors[leader], {"If-None-Match": headers["etag"]})
                print(f"member's no-op check at the mirror: 1 request, answered {status}, about {wire} bytes"
                      " of response (goal: under 1 KB)")
            other = next(name for name in mirrors if name != leader)
            time.sleep(1)
            nodes[leader].send_signal(how)
            started = time.monotonic()
            wait(lambda: (leader_row(dsn) or ("", 0))[1] == term + 1, 3 * arguments.failover)  # noqa: B023
            elected = time.monotonic() - started
            wait(lambda: serving(mirrors[other], index), 60)  # noqa: B023
            (kill_times if how == signal.SIGKILL else stop_times).append(time.monotonic() - started)
            print(f"  {signal.Signals(how).name}: lock taken after {elected:.2f} s, the new mirror serving "
                  f"after {time.monotonic() - started:.2f} s")
            if how == signal.SIGSTOP:
                nodes[leader].send_signal(signal.SIGCONT)
                nodes[leader].kill()
            nodes[leader].wait()
        print(f"failover to serving after SIGKILL: median {statistics.median(kill_times):.2f} s "
              f"(max {max(kill_times):.2f}) with FailoverSeconds={arguments.failover}")
        print(f"failover to serving after SIGSTOP: median {statistics.median(stop_times):.2f} s "
              f"(max {max(stop_times):.2f}) with FailoverSeconds={arguments.failover}")
        server.stop()
        return 0
    finally:
        for process in nodes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGCONT)
                process.terminate()
                process.wait(timeout=20)
        cluster.stop()
        shutil.rmtree(state, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
