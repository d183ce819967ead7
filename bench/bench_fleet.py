"""Benchmark of a fleet on loopback: N member daemons and a leader on one PostgreSQL, one
origin. Prints figures, asserts nothing.

Measures, in one run:
1. origin requests and bytes for one release (goal: each changed package once, whatever N);
2. each member's no-op check: requests and bytes to the mirror (goal: one request, < 1 KB);
3. time from publication to the last node installed, with the stagger window;
4. memory (RSS) per member process;
5. failover time after SIGKILL of the leader: to another node holding the lock with the next
   term, and to its mirror serving the release (goal: under Fleet/FailoverSeconds).

Every node is the real daemon loop (imss_updater.daemon.loop.Daemon) without its status page
(lean), with its own IMSS_NODE, root, state and IMSS_MIRROR: the leader is the node that
started first and won the election; it mirrors the origin's release, installs from its own
mirror server and announces the release; the members take it from that mirror after their
stagger. The members' requests to the mirror are counted in each member process (a wrapper
around requests.Session.send in the bench's start script logs method, URL, status and
Content-Length): the leader's mirror server keeps no request log.

Usage: .venv/bin/python bench/bench_fleet.py [--members 50] [--stagger 60] [--size-mb 8]
       [--failover 10]
"""

from __future__ import annotations

import argparse
import datetime
import http.client
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
from tests.support.fleet import announced_release, leader_row  # noqa: E402
from tests.support.pg import admin_connection, create_database, free_port, make_state_dir, start_cluster  # noqa: E402
from tests.support.servers import StaticServer  # noqa: E402

LEAN = r"""
import os, sys
import requests
from imss_updater import config, logsetup
from imss_updater.daemon import loop
loop.Daemon.start_web = lambda self: None  # lean: no status page
_send = requests.Session.send
def send(self, request, **options):  # the bench's count of this member's HTTP requests
    response = _send(self, request, **options)
    up = sum(len(k) + len(v) + 4 for k, v in request.headers.items())
    print("bench-http", request.method, request.url, response.status_code,
          response.headers.get("Content-Length", "-"), up, file=sys.stderr, flush=True)
    return response
requests.Session.send = send
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


def mirror_requests(log: Path, mirror: str) -> list[tuple[int, int, int]]:
    """(status, Content-Length, request header bytes) of each request the member logged to
    the mirror at ``mirror`` (host:port)."""
    found = []
    for line in log.read_text(errors="replace").splitlines():
        words = line.split()
        if len(words) == 6 and words[0] == "bench-http" and f"//{mirror}/" in words[2]:
            found.append((int(words[3]), int(words[4]) if words[4].isdigit() else 0, int(words[5])))
    return found


def serving(address: str, index: bytes) -> bool:
    """The mirror at ``address`` serves ``index`` as its server.ini."""
    host, port = address.split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=2)
    try:
        connection.request("GET", "/activeupdate/server.ini")
        response = connection.getresponse()
        return response.status == 200 and response.read() == index
    except OSError:
        return False
    finally:
        connection.close()


def prepare(dsn: str, origin: StaticServer, pki: SigningPKI, nodes: list[str], stagger: int,
            failover: int) -> None:
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
            ("Fleet", "FailoverSeconds"): str(failover),
        }.items():
            database.set_setting(section, name, value)
    for node in nodes:  # the schedule just ran on every node: only announcements start runs
        with Database(dsn, node=node) as database:
            database.ensure_node()
            database.record_scheduled_run(datetime.datetime.now(datetime.UTC))


def start(dsn: str, node: str, work: Path, mirror: str) -> subprocess.Popen[bytes]:
    (work / node / "root").mkdir(parents=True)
    env = {**os.environ, "PYTHONPATH": str(REPO), "IMSS_DSN": dsn, "IMSS_NODE": node, "TZ": "UTC",
           "IMSS_ROOT": str(work / node / "root"), "IMSS_STATE": str(work / node / "state"),
           "IMSS_WEB": "127.0.0.1:1", "IMSS_MIRROR": mirror}
    log = (work / f"{node}.log").open("wb")
    return subprocess.Popen([sys.executable, "-c", LEAN], env=env, stdout=log, stderr=subprocess.STDOUT)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=50)
    parser.add_argument("--stagger", type=int, default=60, help="Fleet/StaggerSeconds")
    parser.add_argument("--size-mb", type=int, default=8, help="size of the released package")
    parser.add_argument("--failover", type=int, default=10, help="Fleet/FailoverSeconds")
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
        members = [f"member-{index:02d}" for index in range(1, n + 1)]
        mirrors = {node: f"127.0.0.1:{free_port()}" for node in [LEADER, *members]}
        prepare(dsn, origin, pki, [LEADER, *members], arguments.stagger, arguments.failover)
        processes[LEADER] = start(dsn, LEADER, work, mirrors[LEADER])
        wait(lambda: leader_row(dsn) == (LEADER, 1), 60, "the leader to win the election")
        for node in members:
            processes[node] = start(dsn, node, work, mirrors[node])
        wait(lambda: listeners(dsn) >= n + 1, 120 + 2 * n, "every daemon to listen")
        idle_rss = {node: rss_kb(processes[node].pid) for node in members}
        logs = {node: work / f"{node}.log" for node in members}

        # 1 + 3: one release, from publication to the last node installed
        tree.add_pattern("P.4", "1569700", size_bytes=arguments.size_mb << 20)
        earlier = len(origin.requests)  # the leader's takeover run found no index yet (404)
        published = time.monotonic()
        tree.write_ini(base_url=origin.base_url)
        index = tree.ini_path().read_bytes()
        processes[LEADER].send_signal(signal.SIGUSR1)  # the leader's check finds it
        wait(lambda: installed(dsn).get(LEADER) == "1569700", 300, "the leader to install")
        leader_done = time.monotonic() - published
        wait(lambda: (announced_release(dsn) or ("", 0, None))[2] is not None, 60, "the announcement")
        announced = time.monotonic() - published
        wait(lambda: all(installed(dsn).get(node) == "1569700" for node in members),
             arguments.stagger + 300 + 5 * n, "every member to install")
        last = time.monotonic() - published
        origin_requests = origin.requests[earlier:]
        busy_rss = {node: rss_kb(processes[node].pid) for node in members}

        # 2: each member's no-op check, from the mirror
        before = {node: len(mirror_requests(logs[node], mirrors[LEADER])) for node in members}
        for node in members:
            processes[node].send_signal(signal.SIGUSR1)
        wait(lambda: all(path.read_text(errors="replace").count("scheduled update:") >= 2
                         for path in logs.values()), 120 + 5 * n, "every member's no-op run")
        noop = [request for node in members
                for request in mirror_requests(logs[node], mirrors[LEADER])[before[node]:]]

        # 5: failover after SIGKILL of the leader
        processes[LEADER].kill()
        killed = time.monotonic()
        wait(lambda: (leader_row(dsn) or (LEADER, 1))[1] == 2, 3 * arguments.failover + 60, "a new leader")
        elected = time.monotonic() - killed
        found = leader_row(dsn)
        assert found is not None
        wait(lambda: serving(mirrors[str(found[0])], index), 120, "the new leader's mirror")
        new_serving = time.monotonic() - killed
        processes[LEADER].wait()
        failover = (f"{found[0]!s} took the lock after {elected:.2f} s, its mirror served the release"
                    f" after {new_serving:.2f} s (Fleet/FailoverSeconds={arguments.failover}); origin"
                    f" requests since then: {len(origin.requests) - earlier - len(origin_requests)}"
                    " (the new leader mirrors it once)")

        print(f"fleet of {n} members + 1 leader (elected), one PostgreSQL, origin on loopback,"
              f" package {arguments.size_mb} MiB, Fleet/StaggerSeconds={arguments.stagger}")
        per_file: dict[str, int] = {}
        for request in origin_requests:
            per_file[request.path] = per_file.get(request.path, 0) + 1
        print(f"origin: {len(origin_requests)} requests, "
              f"{sum(r.bytes_sent for r in origin_requests)} body bytes for the release: "
              + ", ".join(f"{path} x{count}" for path, count in sorted(per_file.items())))
        print(f"no-op check per member: {len(noop) / n:.2f} requests to the leader's mirror, "
              f"{sum(length for _s, length, _u in noop) / n:.0f} body bytes "
              f"(statuses {sorted({status for status, _l, _u in noop})}; request headers "
              f"~{sum(up for _s, _l, up in noop) / max(1, len(noop)):.0f} B)")
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
