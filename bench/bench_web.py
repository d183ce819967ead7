"""Benchmark of the console as an administrator feels it; prints figures, asserts nothing.

Against a real ``imss-updater run`` (the daemon, its status page on waitress, a private
PostgreSQL cluster, a signed ActiveUpdate tree on loopback), logged on:

0. SQL statements per status page view with 10 and with 50 components (goal: a constant);
1. open-loop page views (``GET /``) arriving at 20/s for 30 s, then at 100/s for 30 s:
   each request is sent at its scheduled time whether or not the earlier ones were answered,
   and its latency counts from that scheduled time (so a stalled server is not hidden by a
   client that waits: no coordinated omission). Goal: p99 under 50 ms at 20/s;
2. one administrator's page views (open loop, 5/s) while the same daemon downloads,
   verifies and installs a 512 MB component (its scheduled run, started with SIGUSR1).
   Goal: p99 under 100 ms.

Usage: .venv/bin/python bench/bench_web.py [--seconds 30] [--size-mb 512] [--rates 20,100]
Needs a PostgreSQL server installed (it starts a private cluster). Figures depend on what
else runs on the machine: the load average is printed with them.
"""

from __future__ import annotations

import argparse
import datetime
import http.client
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import psycopg2  # noqa: E402
import psycopg2.extensions  # noqa: E402

from imss_updater.database.db import Database  # noqa: E402
from imss_updater.web import WebConfig, create_app, set_admin_password  # noqa: E402
from tests.support.autree import AUTree, SigningPKI  # noqa: E402
from tests.support.pg import create_database, free_port, make_state_dir, start_cluster  # noqa: E402
from tests.support.servers import StaticServer  # noqa: E402

PASSWORD = "benchmark password"
WORKERS = 32  # concurrent requests the load generator can have outstanding (keep-alive each)


def log_on(port: int) -> str:
    """Return the session cookie of a logged-on administrator."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("GET", "/login")
    response = connection.getresponse()
    page = response.read().decode()
    cookie = response.headers["Set-Cookie"].split(";")[0]
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found
    body = urllib.parse.urlencode({"csrf_token": found.group(1), "password": PASSWORD})
    connection.request("POST", "/login", body=body, headers={
        "Cookie": cookie, "Content-Type": "application/x-www-form-urlencoded"})
    response = connection.getresponse()
    response.read()
    assert response.status == 302, response.status
    # The session cookie (the log-on also sets the device cookie of the log-on throttle).
    cookies = [value.split(";")[0] for value in response.headers.get_all("Set-Cookie") or []]
    return next(cookie for cookie in cookies if cookie.startswith("imss_session="))


class OpenLoop:
    """Page views sent on a fixed schedule by a pool of keep-alive connections (as browsers
    keep theirs); ``latencies`` are measured from each request's scheduled time."""

    def __init__(self, port: int, cookie: str, path: str = "/") -> None:
        self.port, self.cookie, self.path = port, cookie, path
        self.latencies: list[float] = []
        self.errors = 0
        self.error_kinds: dict[str, int] = {}
        self._lock = threading.Lock()
        self._due: queue.Queue[float | None] = queue.Queue()
        self._stop = threading.Event()
        self._workers = [threading.Thread(target=self._work, daemon=True) for _ in range(WORKERS)]
        for worker in self._workers:
            worker.start()

    def run(self, rate: float, seconds: float | None = None, until: threading.Event | None = None) -> str:
        """Send ``rate`` views a second for ``seconds``, or until ``until`` is set; wait for
        the answers and return the figures of this run."""
        with self._lock:
            self.latencies, self.errors, self.error_kinds = [], 0, {}
        started = time.perf_counter()
        sent = 0
        while True:
            due = started + sent / rate
            if (seconds is not None and due >= started + seconds) or (until is not None and until.is_set()):
                break
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            self._due.put(due)
            sent += 1
        self._due.join()
        return self.figures()

    def close(self) -> None:
        for _ in self._workers:
            self._due.put(None)
        for worker in self._workers:
            worker.join()

    def _work(self) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        while True:
            due = self._due.get()
            if due is None:
                connection.close()
                self._due.task_done()
                return
            try:
                try:
                    connection.request("GET", self.path, headers={"Cookie": self.cookie})
                    response = connection.getresponse()
                except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                    # waitress closed the idle keep-alive connection (channel_timeout): a
                    # browser opens a new one and sends again, so does this client.
                    connection.close()
                    connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                    connection.request("GET", self.path, headers={"Cookie": self.cookie})
                    response = connection.getresponse()
                response.read()
                ok = response.status == 200
                kind = f"HTTP {response.status}"
            except (OSError, http.client.HTTPException) as error:
                ok = False
                kind = error.__class__.__name__
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            elapsed = time.perf_counter() - due
            with self._lock:
                if ok:
                    self.latencies.append(elapsed)
                else:
                    self.errors += 1
                    self.error_kinds[kind] = self.error_kinds.get(kind, 0) + 1
            self._due.task_done()

    def figures(self) -> str:
        values = sorted(self.latencies)
        if not values:
            return f"no answers, errors {self.errors}"

        def percentile(fraction: float) -> float:
            return values[min(len(values) - 1, int(len(values) * fraction))] * 1000

        return (f"{len(values)} views, p50 {percentile(0.50):.1f} ms, p99 {percentile(0.99):.1f} ms, "
                f"max {values[-1] * 1000:.1f} ms, errors {self.errors} {self.error_kinds or ''}")


def queries_per_view(dsn: str, root: Path) -> int:
    count = [0]

    class Counting(psycopg2.extensions.cursor):
        def execute(self, query: Any, variables: Any = None) -> Any:
            count[0] += 1
            return super().execute(query, variables)

    app = create_app(WebConfig(dsn, root, b"q" * 32))
    pool = app.extensions["imss_console"].pool

    def connect(text: str) -> Database:
        database = Database(text)
        database.connection.cursor_factory = Counting
        return database

    pool.connect = connect
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found
    client.post("/login", data={"csrf_token": found.group(1), "password": PASSWORD})
    count[0] = 0
    assert client.get("/").status_code == 200
    pool.close()
    return count[0]


def add_components(dsn: str, how_many: int) -> None:
    with Database(dsn) as database, database.transaction() as cursor:
        for number in range(how_many):
            cursor.execute(
                "INSERT INTO tb_component (id, name_en, name_ja, kind, source, au_key, license, feature,"
                " event_group, live_path, sort_order) VALUES (%s, %s, %s, 'pattern', 'update', %s,"
                " 'Antivirus', NULL, 'pattern', %s, 100)",
                (f"extra_{number}", f"Extra {number}", f"追加{number}", f"P.{9000 + number}",
                 f"lib/pattern/extra{number}"),
            )
            cursor.execute("INSERT INTO tb_component_state (id) VALUES (%s)", (f"extra_{number}",))


def remove_components(dsn: str) -> None:
    with Database(dsn) as database, database.transaction() as cursor:
        cursor.execute("DELETE FROM tb_component_state WHERE id LIKE 'extra_%%'")
        cursor.execute("DELETE FROM tb_component WHERE id LIKE 'extra_%%'")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load() -> str:
    return "load average " + " ".join(f"{value:.1f}" for value in os.getloadavg())


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--size-mb", type=int, default=512)
    parser.add_argument("--rates", default="20,100")
    arguments = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="imss-bench-web-"))
    state = make_state_dir("imss-bench-web-pg-")
    cluster = start_cluster(state)
    daemon: subprocess.Popen[bytes] | None = None
    server: StaticServer | None = None
    try:
        dsn = create_database(cluster, "bench")
        root = work / "root"
        root.mkdir()
        pki = SigningPKI(work / "pki")
        tree = AUTree(work / "au", pki)
        tree.add_pattern("P.4", "1569700")
        server = StaticServer(work / "au").start()
        tree.write_ini(base_url=server.base_url)
        with Database(dsn) as database:
            database.init()
            set_admin_password(database, PASSWORD)
            for section, name, value in [
                ("Update", "UpdateServer", server.base_url), ("Update", "TMASEServerurl", server.base_url),
                ("Update", "SignatureCAFile", str(pki.trust_file)), ("Update", "RandomDelaySeconds", "0"),
                ("Service", "ScanServiceRestart", "/bin/true"),
                ("Service", "PolicyServiceRestart", "/bin/true"),
                ("Service", "ScanServiceStatus", "/bin/true"),
                ("Service", "PolicyServiceStatus", "/bin/true"),
            ]:
                database.set_setting(section, name, value)
            database.record_scheduled_run(datetime.datetime.now(datetime.UTC))  # no run at start
        before = queries_per_view(dsn, root)
        add_components(dsn, 40)
        after = queries_per_view(dsn, root)
        remove_components(dsn)
        print(f"SQL statements per status page view: {before} with 10 components, {after} with 50")

        cli = [sys.executable, "-m", "imss_updater.cli"]
        subprocess.run([*cli, "update", "virus_pattern", "--dsn", dsn, "--root", str(root)], check=True,
                       cwd=REPO, stdout=subprocess.DEVNULL,
                       env={**os.environ, "IMSS_STATE": str(work / "cli")})
        port = free_port()
        daemon = subprocess.Popen(
            [*cli, "run", "--dsn", dsn, "--root", str(root)], cwd=REPO,
            stdout=subprocess.DEVNULL, stderr=open(work / "daemon.log", "wb"),  # noqa: SIM115
            env={**os.environ, "PYTHONPATH": str(REPO), "IMSS_STATE": str(work / "state"),
                 "IMSS_WEB": f"127.0.0.1:{port}"},
        )
        for _ in range(300):
            try:
                cookie = log_on(port)
                break
            except OSError:
                time.sleep(0.1)
        else:
            raise SystemExit("the daemon's status page did not start")
        views = OpenLoop(port, cookie)
        views.run(200, seconds=1)  # open every keep-alive connection, warm the pool and templates
        for rate in (float(text) for text in arguments.rates.split(",")):
            cpu = cpu_seconds(daemon.pid)
            figures = views.run(rate, seconds=arguments.seconds)
            per_view = (cpu_seconds(daemon.pid) - cpu) / max(1, len(views.latencies)) * 1000
            print(f"open loop {rate:.0f}/s for {arguments.seconds:.0f} s: {figures}; daemon CPU "
                  f"{per_view:.1f} ms per view ({load()})")

        started = time.perf_counter()
        tree.add_pattern("P.8", "240100", size_bytes=arguments.size_mb * 1024 * 1024)
        tree.write_ini(base_url=server.base_url)
        print(f"prepared a signed {arguments.size_mb} MiB component in {time.perf_counter() - started:.1f} s")
        with Database(dsn) as database:
            last_run = database.run_status().last_run_at
        finished = threading.Event()

        def watch() -> None:
            with Database(dsn) as database:
                while database.run_status().last_run_at == last_run:
                    time.sleep(0.2)
            finished.set()

        watcher = threading.Thread(target=watch, daemon=True)
        began = time.perf_counter()
        os.kill(daemon.pid, signal.SIGUSR1)  # the daemon's scheduled run: download, verify, install
        watcher.start()
        figures = views.run(5, until=finished)
        views.close()
        took = time.perf_counter() - began
        with Database(dsn) as database:
            run = database.run_status()
        print(f"one administrator (5 views/s) during the {arguments.size_mb} MiB update by the daemon "
              f"({took:.1f} s, run ok: {run.last_run_ok}): {figures} ({load()})")
        return 0
    finally:
        if daemon is not None:
            daemon.terminate()
            daemon.wait(timeout=30)
        if server is not None:
            server.stop()
        cluster.stop()
        shutil.rmtree(state, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
