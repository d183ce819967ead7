"""Benchmark of the status page on loopback; prints figures, asserts nothing.

Measures: requests per second and latency percentiles of ``GET /`` (logged on) under
50 concurrent keep-alive clients against waitress serving ``create_app`` in a separate
process, and the number of SQL statements per page view with 10 and with 50 components
(goal: a constant; p99 under 50 ms).

Usage: .venv/bin/python bench/bench_web.py [--clients 50] [--seconds 10] [--threads 8]
Needs a PostgreSQL server installed (it starts a private cluster).
"""

from __future__ import annotations

import argparse
import http.client
import re
import shutil
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
from tests.support.pg import create_database, free_port, make_state_dir, start_cluster  # noqa: E402

PASSWORD = "benchmark password"
SERVER = r"""
import sys
from pathlib import Path
from waitress import serve
from imss_updater.web import WebConfig, create_app
dsn, root, port, threads = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
serve(create_app(WebConfig(dsn, root, b"b" * 32)), host="127.0.0.1", port=port, threads=threads,
      connection_limit=200, backlog=256, _quiet=True)
"""


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
    return str(response.headers["Set-Cookie"].split(";")[0])


def hammer(port: int, cookie: str, clients: int, seconds: float) -> tuple[int, list[float], int]:
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients
    start = threading.Barrier(clients + 1)
    deadline = [0.0]

    def client(index: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        start.wait()
        while time.perf_counter() < deadline[0]:
            began = time.perf_counter()
            try:
                connection.request("GET", "/", headers={"Cookie": cookie})
                response = connection.getresponse()
                response.read()
                if response.status != 200:
                    errors[index] += 1
            except (OSError, http.client.HTTPException):
                errors[index] += 1
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                continue
            latencies[index].append(time.perf_counter() - began)
        connection.close()

    threads = [threading.Thread(target=client, args=(index,)) for index in range(clients)]
    for thread in threads:
        thread.start()
    deadline[0] = time.perf_counter() + seconds
    start.wait()
    for thread in threads:
        thread.join()
    flat = sorted(value for values in latencies for value in values)
    return len(flat), flat, sum(errors)


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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--threads", type=int, default=8)
    arguments = parser.parse_args()
    state = make_state_dir("imss-bench-web-")
    work = Path(tempfile.mkdtemp(prefix="imss-bench-web-root-"))
    cluster = start_cluster(state)
    server: subprocess.Popen[bytes] | None = None
    try:
        dsn = create_database(cluster, "bench")
        with Database(dsn) as database:
            database.init()
            set_admin_password(database, PASSWORD)
        before = queries_per_view(dsn, work)
        add_components(dsn, 40)
        after = queries_per_view(dsn, work)
        print(f"SQL statements per status page view: {before} with 10 components, {after} with 50")
        port = free_port()
        server = subprocess.Popen([sys.executable, "-c", SERVER, dsn, str(work), str(port),
                                   str(arguments.threads)], cwd=REPO)
        for _ in range(100):
            try:
                cookie = log_on(port)
                break
            except OSError:
                time.sleep(0.1)
        else:
            raise SystemExit("the console did not start")
        hammer(port, cookie, 5, 1.0)  # warm the connection pool
        count, latencies, errors = hammer(port, cookie, arguments.clients, arguments.seconds)

        def percentile(fraction: float) -> float:
            return latencies[min(len(latencies) - 1, int(len(latencies) * fraction))] * 1000

        print(f"{arguments.clients} clients, {arguments.seconds:.0f} s, "
              f"waitress threads {arguments.threads}, "
              f"50 components: {count / arguments.seconds:.0f} requests/s, "
              f"p50 {percentile(0.50):.1f} ms, p99 {percentile(0.99):.1f} ms, errors {errors}")
    finally:
        if server is not None:
            server.terminate()
            server.wait(10)
        cluster.stop()
        shutil.rmtree(state, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
