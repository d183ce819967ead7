"""Mail to the administrator through an internal relay: the ONLY module importing yagmail
and smtplib.

yagmail's ``SMTP`` client holds the connection, but its login step is replaced
(``_RelayClient._login``) because, as published, it
- upgrades STARTTLS without a certificate check unless given a context,
- logs in as the sender address, while a relay account (``SMTPUser``) often differs, and
- asks the keyring, then prompts on the terminal, when no password is given.
Here the server certificate is always verified (``none`` sends in clear, by choice of the
administrator), login happens only when ``SMTPUser`` is set, and nothing ever prompts.
The message is built with ``email.message.EmailMessage`` (one text/plain part, UTF-8):
yagmail's own builder turns newlines into ``<br>`` and adds an HTML alternative.

``SMTPTimeout`` bounds the whole attempt, not each read: a relay that accepts and then says
nothing, or answers a byte at a time, is cut off by ``_Guard``, which shuts the socket down
at the deadline (or at once when the caller cancels), so the blocked read returns.
"""

from __future__ import annotations

import contextlib
import logging
import smtplib
import socket
import ssl
import threading
import time
from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

import yagmail

from imss_updater import oserrors
from imss_updater.i18n import N_, Reason
from imss_updater.notify.config import MailConfig
from imss_updater.notify.events import DeliveryError, DeliveryInterrupted

log = logging.getLogger(__name__)

READ_GRACE_SECONDS = 5.0


def tls_context(ca_file: str | None) -> ssl.SSLContext:
    """Return a client context that verifies the server (TLS 1.2+), trusting ``ca_file``
    or, when None, the system store."""
    context = ssl.create_default_context(cafile=ca_file)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


class _RelayClient(yagmail.SMTP):  # type: ignore[misc]
    """yagmail's client with a verified TLS set-up and an explicit, optional login."""

    def __init__(self, config: MailConfig, context: ssl.SSLContext) -> None:
        # Reads time out a little after the attempt's deadline: the guard ends it first, and
        # names what it waited for.
        extra: dict[str, Any] = {"timeout": config.timeout + READ_GRACE_SECONDS}
        if config.security == "ssl":
            extra["context"] = context
        super().__init__(
            user=config.sender,
            password=config.password,
            host=config.host,
            port=config.port,
            smtp_ssl=config.security == "ssl",
            smtp_starttls={"context": context} if config.security == "starttls" else False,
            smtp_skip_login=not config.user,
            soft_email_validation=False,
            **extra,
        )
        self.log = log  # yagmail installs its own stderr handler otherwise
        self.relay_user = config.user
        self.context = context
        self.stage = N_("connecting")  # what the attempt waits for (a msgid), named in a timeout's reason

    def _login(self, password: Any) -> None:
        # Built unconnected, then connected: the guard can reach the socket during the greeting.
        self.smtp = self.connection(**self.kwargs)
        self.smtp._host = self.host  # what the constructor would set: the TLS server name
        self.smtp.connect(self.host, int(self.port))
        if self.starttls:
            self.stage = N_("during STARTTLS")
            self.smtp.ehlo()
            self.smtp.starttls(context=self.context)  # verifies the certificate and host name
            self.smtp.ehlo()
        self.is_closed = False
        if self.relay_user:
            self.stage = N_("logging in")
            self.smtp.login(self.relay_user, password or "")

    def where_stuck(self) -> str:
        if self.stage == "connecting" and getattr(self.smtp, "sock", None) is not None:
            return N_("waiting for the greeting")
        return self.stage

    def socket(self) -> socket.socket | None:
        return getattr(self.smtp, "sock", None) if self.smtp is not None else None


class _Guard:
    """Ends one attempt at its deadline, or at once when ``cancel`` is set, by shutting the
    client's socket down: a read blocked on it then returns. ``fired`` says which, if
    either, and ``stuck`` what the attempt was waiting for then."""

    def __init__(self, seconds: float, cancel: threading.Event | None, client: _RelayClient) -> None:
        self.deadline = time.monotonic() + seconds
        self.cancel = cancel
        self.client = client
        self.fired: str | None = None  # "timeout" or "cancel"
        self.stuck = ""
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._watch, name="smtp-guard", daemon=True)
        self.thread.start()

    def _watch(self) -> None:
        while not self.done.wait(min(0.1, max(0.0, self.deadline - time.monotonic()))):
            if self.cancel is not None and self.cancel.is_set():
                fired = "cancel"
            elif time.monotonic() >= self.deadline:
                fired = "timeout"
            else:
                continue
            self.stuck = self.client.where_stuck()
            self.fired = fired
            sock = self.client.socket()
            if sock is not None:
                # The plain socket's shutdown, also under TLS: it must not touch the TLS state
                # that the blocked thread is using.
                with contextlib.suppress(OSError):
                    socket.socket.shutdown(sock, socket.SHUT_RDWR)
            return

    def stop(self) -> None:
        self.done.set()


def build_message(sender: str, recipients: Sequence[str], subject: str, body: str) -> EmailMessage:
    """Return a plain-text UTF-8 message (no HTML part)."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Subject"] = subject
    message["Date"] = formatdate(localtime=True)
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies
    message.set_content(body, charset="utf-8")
    return message


def send(
    config: MailConfig,
    recipients: Sequence[str],
    subject: str,
    body: str,
    *,
    cancel: threading.Event | None = None,
) -> Reason | None:
    """Send one message to ``recipients`` through the relay of ``config``, within
    ``config.timeout`` seconds for the whole attempt.

    Return None, or a note naming recipients the relay refused while accepting others.
    Raise DeliveryError (transient for network trouble, timeouts and 4xx answers, permanent
    for certificate, TLS, authentication and 5xx problems); never a password in its reason.
    Raise DeliveryInterrupted when ``cancel`` is set before the relay has answered.
    """
    message = build_message(config.sender, recipients, subject, body)
    where = f"{config.host}:{config.port}"
    try:
        context = tls_context(config.ca_file)
    except (OSError, ssl.SSLError) as error:
        reason = Reason(N_("cannot read SMTPCAFile %(path)s: %(error)s"),
                        {"path": config.ca_file, "error": str(error)})
        raise DeliveryError(reason, transient=False) from error
    client = _RelayClient(config, context)
    guard = _Guard(config.timeout, cancel, client)
    try:
        client.login()
        client.stage = N_("sending the message")
        refused = client.smtp.send_message(message, from_addr=config.sender, to_addrs=list(recipients))
        client.stage = N_("closing")
        client.close()
    except Exception as error:
        if guard.fired == "cancel":
            raise DeliveryInterrupted(Reason(N_("%(where)s: interrupted %(stage)s: the updater is stopping"),
                                             {"where": where, "stage": Reason(guard.stuck)})) from error
        if guard.fired == "timeout":
            reason = Reason(N_("%(where)s: no answer within %(seconds)s s (SMTPTimeout) %(stage)s"),
                            {"where": where, "seconds": f"{config.timeout:g}", "stage": Reason(guard.stuck)})
            raise DeliveryError(reason, transient=True) from error
        if not isinstance(error, OSError):
            raise
        raise _reason(error, where, config) from error
    finally:
        guard.stop()
        _close(client)
    log.info("mail %r sent through %s to %s", subject, where, ", ".join(recipients))
    if refused:
        return Reason(N_("refused: %(refusals)s"), {"refusals": _refusals(refused)})
    return None


def _reason(error: OSError, where: str, config: MailConfig) -> DeliveryError:
    """Return the DeliveryError that an SMTP, TLS or network error amounts to: the relay's
    answer and the TLS or OS error text are parameters, as they came."""
    def said(msgid: str, transient: bool, **values: str | Reason) -> DeliveryError:
        return DeliveryError(Reason(msgid, {"where": where, **values}), transient=transient)

    if isinstance(error, ssl.SSLCertVerificationError):
        return said(N_("%(where)s: server certificate not trusted (%(detail)s)"), False,
                    detail=str(error.verify_message))
    if isinstance(error, ssl.SSLError):
        return said(N_("%(where)s: TLS failed: %(detail)s"), False, detail=str(error.reason or error))
    if isinstance(error, smtplib.SMTPNotSupportedError):  # no STARTTLS, or no AUTH, offered
        text = str(error)
        if text in _NOT_SUPPORTED:
            return said(_NOT_SUPPORTED[text], False)
        return said(N_("%(where)s: %(error)s"), False, error=text)
    if isinstance(error, smtplib.SMTPAuthenticationError):
        return said(N_("%(where)s: login as %(user)s refused: %(answer)s"), False, user=config.user or "",
                    answer=_answer(error.smtp_code, error.smtp_error))
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        transient = all(400 <= code < 500 for code, _text in error.recipients.values())
        return said(N_("%(where)s: all recipients refused: %(refusals)s"), transient,
                    refusals=_refusals(error.recipients))
    if isinstance(error, smtplib.SMTPResponseException):
        return said(N_("%(where)s: %(error)s"), 400 <= error.smtp_code < 500,
                    error=_answer(error.smtp_code, error.smtp_error))
    if isinstance(error, smtplib.SMTPServerDisconnected):
        return said(N_("%(where)s: connection closed: %(error)s"), True, error=str(error))
    if isinstance(error, smtplib.SMTPException):
        return said(N_("%(where)s: %(error)s"), True, error=str(error))
    if isinstance(error, socket.gaierror):
        return said(N_("%(where)s: cannot resolve %(host)s: %(error)s"), True, host=config.host,
                    error=oserrors.describe(error) if error.strerror else str(error.strerror))
    if isinstance(error, TimeoutError):
        return said(N_("%(where)s: timed out after %(seconds)s s"), True, seconds=f"{config.timeout:g}")
    return said(N_("%(where)s: %(error)s"), True, error=_os_text(error))


def _os_text(error: BaseException) -> str | Reason:
    """An OS error's text as a reason's parameter (its Reason where oserrors knows it; what it
    said otherwise), exactly ``str(error.strerror or error)`` in English."""
    if isinstance(error, OSError) and error.strerror:
        return oserrors.describe(error)
    return str(error)


# smtplib's own words when the relay does not offer what the settings ask for
_NOT_SUPPORTED = {
    "STARTTLS extension not supported by server.":
        N_("%(where)s: STARTTLS extension not supported by server."),
    "SMTP AUTH extension not supported by server.":
        N_("%(where)s: SMTP AUTH extension not supported by server."),
}


def _refusals(refused: dict[str, tuple[int, bytes]]) -> str:
    return "; ".join(f"{address}: {_answer(code, answer)}" for address, (code, answer) in refused.items())


def _answer(code: int, text: bytes | str) -> str:
    shown = text.decode("utf-8", errors="replace") if isinstance(text, bytes) else str(text)
    return f"{code} {' '.join(shown.split())}"


def _close(client: _RelayClient) -> None:
    """Close the connection without a QUIT (sent already when the attempt succeeded): a
    relay that stopped answering must not hold the attempt any longer."""
    client.is_closed = True
    if client.smtp is None:
        return
    try:
        client.smtp.close()
    except OSError:  # the connection is already broken: nothing to do
        log.debug("closing the SMTP connection failed", exc_info=True)
