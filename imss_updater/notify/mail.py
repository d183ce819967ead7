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
"""

from __future__ import annotations

import logging
import smtplib
import socket
import ssl
from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

import yagmail

from imss_updater.notify.config import MailConfig
from imss_updater.notify.events import DeliveryError

log = logging.getLogger(__name__)


def tls_context(ca_file: str | None) -> ssl.SSLContext:
    """Return a client context that verifies the server (TLS 1.2+), trusting ``ca_file``
    or, when None, the system store."""
    context = ssl.create_default_context(cafile=ca_file)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


class _RelayClient(yagmail.SMTP):  # type: ignore[misc]
    """yagmail's client with a verified TLS set-up and an explicit, optional login."""

    def __init__(self, config: MailConfig, context: ssl.SSLContext) -> None:
        extra: dict[str, Any] = {"timeout": config.timeout}
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

    def _login(self, password: Any) -> None:
        self.smtp = self.connection(self.host, self.port, **self.kwargs)
        if self.starttls:
            self.smtp.ehlo()
            self.smtp.starttls(context=self.context)  # verifies the certificate and host name
            self.smtp.ehlo()
        self.is_closed = False
        if self.relay_user:
            self.smtp.login(self.relay_user, password or "")


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


def send(config: MailConfig, recipients: Sequence[str], subject: str, body: str) -> str | None:
    """Send one message to ``recipients`` through the relay of ``config``.

    Return None, or a note naming recipients the relay refused while accepting others.
    Raise DeliveryError (transient for network trouble and 4xx answers, permanent for
    certificate, TLS, authentication and 5xx problems); never a password in its reason.
    """
    message = build_message(config.sender, recipients, subject, body)
    where = f"{config.host}:{config.port}"
    try:
        context = tls_context(config.ca_file)
    except (OSError, ssl.SSLError) as error:
        raise DeliveryError(f"cannot read SMTPCAFile {config.ca_file}: {error}", transient=False) from error
    client = _RelayClient(config, context)
    try:
        client.login()
        refused = client.smtp.send_message(message, from_addr=config.sender, to_addrs=list(recipients))
    except ssl.SSLCertVerificationError as error:
        raise DeliveryError(
            f"{where}: server certificate not trusted ({error.verify_message})", transient=False
        ) from error
    except ssl.SSLError as error:
        raise DeliveryError(f"{where}: TLS failed: {error.reason or error}", transient=False) from error
    except smtplib.SMTPNotSupportedError as error:  # no STARTTLS, or no AUTH, offered
        raise DeliveryError(f"{where}: {error}", transient=False) from error
    except smtplib.SMTPAuthenticationError as error:
        raise DeliveryError(
            f"{where}: login as {config.user} refused: {_answer(error.smtp_code, error.smtp_error)}",
            transient=False,
        ) from error
    except smtplib.SMTPRecipientsRefused as error:
        transient = all(400 <= code < 500 for code, _text in error.recipients.values())
        text = _refusals(error.recipients)
        raise DeliveryError(f"{where}: all recipients refused: {text}", transient=transient) from error
    except smtplib.SMTPResponseException as error:
        raise DeliveryError(
            f"{where}: {_answer(error.smtp_code, error.smtp_error)}", transient=400 <= error.smtp_code < 500
        ) from error
    except smtplib.SMTPServerDisconnected as error:
        raise DeliveryError(f"{where}: connection closed: {error}", transient=True) from error
    except smtplib.SMTPException as error:
        raise DeliveryError(f"{where}: {error}", transient=True) from error
    except socket.gaierror as error:
        reason = f"{where}: cannot resolve {config.host}: {error.strerror}"
        raise DeliveryError(reason, transient=True) from error
    except TimeoutError as error:
        raise DeliveryError(f"{where}: timed out after {config.timeout:g} s", transient=True) from error
    except OSError as error:
        raise DeliveryError(f"{where}: {error.strerror or error}", transient=True) from error
    finally:
        _close(client)
    log.info("mail %r sent through %s to %s", subject, where, ", ".join(recipients))
    if refused:
        return "refused: " + _refusals(refused)
    return None


def _refusals(refused: dict[str, tuple[int, bytes]]) -> str:
    return "; ".join(f"{address}: {_answer(code, answer)}" for address, (code, answer) in refused.items())


def _answer(code: int, text: bytes | str) -> str:
    shown = text.decode("utf-8", errors="replace") if isinstance(text, bytes) else str(text)
    return f"{code} {' '.join(shown.split())}"


def _close(client: _RelayClient) -> None:
    try:
        client.close()
    except (OSError, smtplib.SMTPException):  # the connection is already broken: nothing to do
        log.debug("closing the SMTP connection failed", exc_info=True)
