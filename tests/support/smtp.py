"""Test support: real SMTP servers (aiosmtpd) on 127.0.0.1.

``smtp_server(mode, auth=None, ca=None, port=None)`` starts a server in one of the modes
``plain``, ``starttls`` (STARTTLS required) or ``ssl`` (SMTPS), with a certificate for
127.0.0.1 issued by ``ca`` (a trustme CA; the fixture's own by default, whose PEM file is
``smtp_ca_file``). ``auth=(user, password)`` requires that login. Each server records the
messages it received; ``stop()`` stops it (the port can be reused to bring it back).

``silent_relay`` is a hostile relay: a TCP server on 127.0.0.1 that accepts connections and
never writes a byte (no greeting), holding each connection open until the test ends.
"""

from __future__ import annotations

import contextlib
import email
import email.policy
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.support.pg import free_port


@dataclass
class Received:
    mail_from: str
    recipients: list[str]
    message: EmailMessage
    login: str | None


class _Recorder:
    def __init__(self, received: list[Received]) -> None:
        self.received = received

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        login = session.auth_data if session.authenticated else None
        self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), parsed, login))
        return "250 OK"


@dataclass
class SmtpServer:
    host: str
    port: int
    mode: str
    controller: Controller
    received: list[Received] = field(default_factory=list)

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None  # type: ignore[assignment]


ServerFactory = Callable[..., SmtpServer]


@pytest.fixture(scope="session")
def smtp_ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def smtp_ca_file(smtp_ca: trustme.CA, tmp_path: Path) -> Path:
    path = tmp_path / "smtp-ca.pem"
    smtp_ca.cert_pem.write_to_path(str(path))
    return path


def _authenticator(user: str, password: str) -> Callable[..., AuthResult]:
    def check(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        given = (data.login.decode(), data.password.decode()) if isinstance(data, LoginPassword) else None
        if given == (user, password):
            return AuthResult(success=True, auth_data=user)
        return AuthResult(success=False, handled=False)

    return check


@pytest.fixture
def smtp_server(smtp_ca: trustme.CA) -> Iterator[ServerFactory]:
    servers: list[SmtpServer] = []

    def start(
        mode: str = "plain",
        *,
        auth: tuple[str, str] | None = None,
        ca: trustme.CA | None = None,
        port: int | None = None,
        received: list[Received] | None = None,
    ) -> SmtpServer:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        (ca or smtp_ca).issue_cert("127.0.0.1", "localhost").configure_cert(context)
        records: list[Received] = received if received is not None else []
        options: dict[str, Any] = {}
        if mode == "starttls":
            options.update(tls_context=context, require_starttls=True)
        elif mode == "ssl":
            options.update(ssl_context=context)
        if auth is not None:
            options.update(authenticator=_authenticator(*auth), auth_required=True,
                           auth_require_tls=mode != "plain")
        last: Exception | None = None
        for _attempt in range(5):
            chosen = port or free_port()
            controller = Controller(_Recorder(records), hostname="127.0.0.1", port=chosen, **options)
            try:
                controller.start()
            except OSError as error:  # another worker took the port between probe and bind
                last = error
                if port:
                    raise
                continue
            server = SmtpServer("127.0.0.1", chosen, mode, controller, records)
            servers.append(server)
            return server
        assert last is not None
        raise last

    yield start
    for server in servers:
        server.stop()


class SilentRelay:
    """Accepts TCP connections on 127.0.0.1 and never answers; ``accepted`` counts them."""

    def __init__(self) -> None:
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.host = "127.0.0.1"
        self.port: int = self.listener.getsockname()[1]
        self.connections: list[socket.socket] = []
        self.accepted = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _address = self.listener.accept()
            except OSError:  # closed by stop()
                return
            self.connections.append(connection)
            self.accepted.set()

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        self.listener.close()
        self.thread.join(timeout=5)
        for connection in self.connections:
            connection.close()


@pytest.fixture
def silent_relay() -> Iterator[SilentRelay]:
    relay = SilentRelay()
    yield relay
    relay.stop()
