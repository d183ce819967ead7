"""Benchmark of a fleet on loopback: N member daemons and a leader on one PostgreSQL, one
origin. Prints figures, asserts nothing.

Measures, in one run:
1. origin requests and bytes for one release (goal: each changed package once, whatever N);
2. each member's no-op check: requests and bytes to the mirror (goal: one request, < 1 KB);
3. time from publication to the last node installed, with the stagger window;
4. memory (RSS) per member process;
5. failover time after SIGKILL of the leader (needs the leader election; "n/a" without it).

Members are lean: the real daemon loop (imss_updater.daemon.loop.Daemon) without its
status page. Until the leader's own mirror server is on main, the leader is a real daemon
node that reads the origin (it holds the leader record) and the bench stands in for its
mirror step: once the leader has installed, the origin's files are copied byte for byte
under a static HTTP server's /activeupdate/ and the release is announced (NOTIFY), as the
leader will do. The origin's count is therefore the leader's download only.

Usage: .venv/bin/python bench/bench_fleet.py [--members 50] [--stagger 60] [--size-mb 8]
"""

from __future__ import annotations

import argparse
import datetime
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from zoneinfo import ZoneInfo

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from imss_updater.database import fleet_member as fleet_db  # noqa: E402
from imss_updater.database.db import Database  # noqa: E402
from tests.support.autree import AUTree, SigningPKI  # noqa: E402
from tests.support.fleet import announce, record_leader  # noqa: E402
from tests.support.pg import admin_connection, create_database, make_state_dir, start_cluster  # noqa: E402
from tests.support.servers import RecordedRequest, StaticServer  # noqa: E402

LEAN = r"""
import os, sys
from imss_updater import config, logsetup
from imss_updater.daemon import loop
loop.Daemon.start_web = lambda self: None  # lean: no status page
logsetup.configure(1, daemon=True)
sys.exit(loop.Daemon(config.from_environment(os.environ, {}), None).serve())
"""
LEADER = "leader"
COMPONENT = "virus_pattern"


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def installed(dsn: str) -> dict[str, str | None]:
    with Database(dsn) as database, database.transaction() as cursor:
        cursor.execute("SELECT node, current_version FROM tb_component_state WHERE id = %s", (COMPONENT,))
        return {row[0]: row[1] for row in cursor.fetchall()}


def listeners(dsn: str) -> int:
    with Database(dsn) as database, database.transaction() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE query = %s",
                       (f"LISTEN {fleet_db.ANNOUNCE_CHANNEL}",))
        row = cursor.fetchone()
        return int(row[0]) if row else 0


def wait(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.2)
    raise SystemExit(f"timed out waiting for {what}")


def header_bytes(requests: list[RecordedRequest]) -> float:
    """The request headers' size per request (name: value CRLF), roughly what went up."""
    total = sum(len(k) + len(v) + 4 for r in requests for k, v in r.headers.items())
    return total / max(1, len(requests))


def prepare(dsn: str, origin: StaticServer, pki: SigningPKI, nodes: list[str], stagger: int) -> None:
    later = datetime.datetime.now(ZoneInfo("UTC")) + datetime.timedelta(hours=12)
    with Database(dsn, node=LEADER) as database:
        database.init()
        for (section, name), value in {
            ("Update", "UpdateServer"): origin.base_url, ("Update", "TMASEServerurl"): origin.base_url,
            ("Update", "SignatureCAFile"): str(pki.trust_file), ("Update", "RandomDelaySeconds"): "0",
            ("Update", "ScheduleFrequency"): "daily", ("Update", "ScheduleTime"): later.strftime("%H:%M"),
            ("Service", "ScanServiceRestart"): "/bin/true", ("Service", "PolicyServiceRestart"): "/bin/true",
            ("Service", "ScanServiceStatus"): "/bin/true", ("Service", "PolicyServiceStatus"): "/bin/true",
            ("Fleet", "Enabled"): "yes", ("Fleet", "StaggerSeconds"): str(stagger),
        }.items():
            database.set_setting(section, name, value)
    for node in nodes:  # the schedule just ran on every node: only announcements start runs
        with Database(dsn, node=node) as database:
            database.ensure_node()
            database.record_scheduled_run(datetime.datetime.now(datetime.UTC))


def start(dsn: str, node: str, work: Path, mirror: str | None = None) -> subprocess.Popen[bytes]:
    (work / node / "root").mkdir(parents=True)
    env = {**os.environ, "PYTHONPATH": str(REPO), "IMSS_DSN": dsn, "IMSS_NODE": node, "TZ": "UTC",
           "IMSS_ROOT": str(work / node / "root"), "IMSS_STATE": str(work / node / "state"),
           "IMSS_WEB": "127.0.0.1:1", **({"IMSS_MIRROR": mirror} if mirror else {})}
    log = (work / f"{node}.log").open("wb")
    return subprocess.Popen([sys.executable, "-c", LEAN], env=env, stdout=log, stderr=subprocess.STDOUT)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=50)
    parser.add_argument("--stagger", type=int, default=60, help="Fleet/StaggerSeconds")
    parser.add_argument("--size-mb", type=int, default=8, help="size of the released package")
    arguments = parser.parse_args()
    n = arguments.members
    work = Path(tempfile.mkdtemp(prefix="imss-bench-fleet-"))
    state = make_state_dir()
    cluster = start_cluster(state)
    processes: dict[str, subprocess.Popen[bytes]] = {}
    try:
        with admin_connection(cluster) as connection, connection.cursor() as cursor:
            cursor.execute(f"ALTER SYSTEM SET max_connections = {max(100, 8 * (n + 1) + 20)}")
        cluster.stop()
        cluster.start()
        dsn = create_database(cluster, "fleet")
        pki = SigningPKI(work / "pki")
        tree = AUTree(work / "origin", pki, sign_index=True)
        origin = StaticServer(tree.directory).start()
        (work / "mirror" / "activeupdate").mkdir(parents=True)
        mirror = StaticServer(work / "mirror").start()
        members = [f"member-{index:02d}" for index in range(1, n + 1)]
        prepare(dsn, origin, pki, [LEADER, *members], arguments.stagger)
        record_leader(dsn, LEADER, f"127.0.0.1:{mirror.port}")
        processes[LEADER] = start(dsn, LEADER, work, f"127.0.0.1:{mirror.port}")
        for node in members:
            processes[node] = start(dsn, node, work)
        wait(lambda: listeners(dsn) >= n + 1, 120 + 2 * n, "every daemon to listen")
        idle_rss = {node: rss_kb(processes[node].pid) for node in members}

        # 1 + 3: one release, from publication to the last node installed
        tree.add_pattern("P.4", "1569700", size_bytes=arguments.size_mb << 20)
        published = time.monotonic()
        tree.write_ini(base_url=origin.base_url)
        processes[LEADER].send_signal(signal.SIGUSR1)  # the leader's check finds it
        wait(lambda: installed(dsn).get(LEADER) == "1569700", 300, "the leader to install")
        leader_done = time.monotonic() - published
        shutil.rmtree(work / "mirror" / "activeupdate")
        shutil.copytree(tree.directory, work / "mirror" / "activeupdate")  # the leader's mirror step
        announce(dsn, LEADER, 1, "1569700")
        announced = time.monotonic() - published
        wait(lambda: all(installed(dsn).get(node) == "1569700" for node in members),
             arguments.stagger + 300 + 5 * n, "every member to install")
        last = time.monotonic() - published
        origin_requests = origin.requests
        busy_rss = {node: rss_kb(processes[node].pid) for node in members}

        # 2: each member's no-op check, from the mirror
        before = len(mirror.requests)
        for node in members:
            processes[node].send_signal(signal.SIGUSR1)
        logs = {node: work / f"{node}.log" for node in members}
        wait(lambda: all(path.read_text(errors="replace").count("scheduled update:") >= 2
                         for path in logs.values()), 120 + 5 * n, "every member's no-op run")
        noop = mirror.requests[before:]

        # 5: failover (the election is fleetlead's part)
        failover = "n/a (leader election not on main yet)"

        print(f"fleet of {n} members + 1 leader, one PostgreSQL, origin and mirror on loopback,"
              f" package {arguments.size_mb} MiB, Fleet/StaggerSeconds={arguments.stagger}")
        per_file: dict[str, int] = {}
        for request in origin_requests:
            per_file[request.path] = per_file.get(request.path, 0) + 1
        print(f"origin: {len(origin_requests)} requests, "
              f"{sum(r.bytes_sent for r in origin_requests)} body bytes for the release: "
              + ", ".join(f"{path} x{count}" for path, count in sorted(per_file.items())))
        print(f"no-op check per member: {len(noop) / n:.2f} requests, "
              f"{sum(r.bytes_sent for r in noop) / n:.0f} body bytes "
              f"(statuses {sorted({r.status for r in noop})}; request headers "
              f"~{header_bytes(noop):.0f} B)")
        print(f"publication -> leader installed {leader_done:.1f} s -> announced {announced:.1f} s"
              f" -> last member installed {last:.1f} s")
        idle = sorted(idle_rss.values())
        busy = sorted(busy_rss.values())
        print(f"RSS per member process: idle median {idle[len(idle) // 2] / 1024:.1f} MiB,"
              f" after its update median {busy[len(busy) // 2] / 1024:.1f} MiB,"
              f" max {busy[-1] / 1024:.1f} MiB")
        print(f"failover after SIGKILL of the leader: {failover}")
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.terminate()
        for process in processes.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        cluster.stop()
        shutil.rmtree(state, ignore_errors=True)
        if os.environ.get("BENCH_KEEP"):
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
