"""waitress's limits (``web.server``) against real sockets on 127.0.0.1: an oversized body is
refused before it is sent, and floods of clients that hang or trickle do not deny the log-on
page to the administrator. Bounds are generous timeouts; the assertions are on success."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from typing import Any

import requests
from flask import Flask

from imss_updater.web.app import MAX_BODY_BYTES
from imss_updater.web.server import serve
from tests.support.browser import LiveConsole

HALF_REQUEST = b"GET /login HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: slow"
GENEROUS = 90  # seconds: a bound on waiting, not a measurement


@contextlib.contextmanager
def served(app: Flask, **limits: Any) -> Iterator[str]:
    server = serve(app, "127.0.0.1", 0, **limits)
    thread = threading.Thread(target=server.run, name="waitress-limits", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.effective_port}"
    finally:
        server.close()
        thread.join(10)


@contextlib.contextmanager
def flood(url: str, count: int) -> Iterator[list[socket.socket]]:
    """Open ``count`` connections that each send half a request and then hang."""
    port = int(url.rsplit(":", 1)[1])
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            connection = socket.create_connection(("127.0.0.1", port), timeout=10)
            connection.sendall(HALF_REQUEST)
            sockets.append(connection)
        yield sockets
    finally:
        for connection in sockets:
            connection.close()


def test_a_300_mb_post_is_refused_with_413_before_its_body_is_sent(live_console: LiveConsole) -> None:
    port = int(live_console.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=GENEROUS) as connection:
        connection.sendall(b"POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                           b"Content-Type: application/x-www-form-urlencoded\r\n"
                           b"Content-Length: 314572800\r\n\r\npassword=")
        answer = connection.recv(4096)  # not one byte of the 300 MB was sent
    assert answer.startswith(b"HTTP/1.1 413 ")


def test_a_body_just_under_the_limit_still_reaches_the_console(live_console: LiveConsole) -> None:
    body = {"password": "x" * (MAX_BODY_BYTES - 2000)}  # every path but an upload ticket's
    answer = requests.post(live_console.url + "/login", data=body, timeout=GENEROUS)
    assert answer.status_code == 400  # the console's own answer: no CSRF token


def test_150_hanging_half_requests_do_not_deny_the_log_on_page(live_console: LiveConsole) -> None:
    with flood(live_console.url, 150):
        answer = requests.get(live_console.url + "/login", timeout=GENEROUS)
        assert answer.status_code == 200
        assert 'id="password"' in answer.text


def test_hanging_clients_beyond_the_connection_limit_are_dropped_and_the_page_comes_back(
    console_app: Flask,
) -> None:
    # The daemon's mechanism at a test's scale: 40 hanging sockets against 20 channels.
    with served(console_app, connection_limit=20, channel_timeout=1, cleanup_interval=1) as url, \
            flood(url, 40):
        assert requests.get(url + "/login", timeout=GENEROUS).status_code == 200


def test_clients_trickling_a_request_are_dropped_at_the_request_deadline(console_app: Flask) -> None:
    # One byte every 0.2 s keeps each connection active, so the idle timeout (30 s here)
    # never fires; only the whole-request deadline (2 s here) frees the channels.
    limits = {"connection_limit": 20, "channel_timeout": 30, "cleanup_interval": 1, "request_deadline": 2}
    stop = threading.Event()
    with served(console_app, **limits) as url, flood(url, 40) as sockets:
        def trickle() -> None:
            alive = list(sockets)
            while alive and not stop.wait(0.2):
                for connection in list(alive):
                    try:
                        connection.send(b"x")
                    except OSError:  # dropped by the server: that is the point
                        alive.remove(connection)

        trickler = threading.Thread(target=trickle, name="trickle", daemon=True)
        trickler.start()
        try:
            assert requests.get(url + "/login", timeout=GENEROUS).status_code == 200
        finally:
            stop.set()
            trickler.join(10)
