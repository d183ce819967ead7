"""One settings value: the parsers a row's text goes through, and the problems they report.

Each parser takes the stripped text of one row and returns its typed value, or raises
Invalid with the reason (a msgid the console translates). ``settings.load`` runs each row
it uses through one of these and collects the problems; ``settings_check`` and
``notify.config`` check their rows with the same parsers.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from imss_updater.i18n import N_, Reason
from imss_updater.process import split_command


@dataclass(frozen=True)
class Problem:
    """One bad row: ``why`` is the English reason; ``key`` and ``values`` name the same
    reason as a msgid the console translates (``values`` fill its ``%(name)s``), when it has
    one; ``cause`` is the problem in another row that this row's value would create."""

    section: str
    name: str
    why: str
    key: str | None = None
    values: tuple[tuple[str, str], ...] = ()
    cause: Problem | None = None
    reason: Reason | None = field(default=None, compare=False)  # ``why`` in any language

    def __str__(self) -> str:
        return f"{self.section}/{self.name}: {self.why}"


class Invalid(ValueError):
    """A row's value is not valid: ``reason`` says why in any language (str: English)."""

    def __init__(self, msgid: str, **params: str | int) -> None:
        self.reason = Reason(msgid, params)
        super().__init__(str(self.reason))



def parse_bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("yes", "true", "1", "on"):
        return True
    if lowered in ("no", "false", "0", "off"):
        return False
    raise Invalid(N_("must be yes or no"))


def parse_url(text: str) -> str:
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Invalid(N_("must be an http:// or https:// URL with a host"))
    try:
        parts.port  # noqa: B018  # raises ValueError for a bad port
    except ValueError as error:
        raise Invalid(N_("bad port in URL: %(error)s"), error=str(error)) from error
    return text.rstrip("/")


def parse_choice(choices: Iterable[str]) -> Callable[[str], str]:
    allowed = tuple(choices)

    def convert(text: str) -> str:
        if text.lower() not in allowed:
            raise Invalid(N_("must be one of %(choices)s"), choices=", ".join(allowed))
        return text.lower()

    return convert


def parse_int(low: int, high: int) -> Callable[[str], int]:
    def convert(text: str) -> int:
        if not text.isdigit():
            raise Invalid(N_("must be a whole number"))
        number = int(text)
        if not low <= number <= high:
            raise Invalid(N_("must be between %(low)s and %(high)s"), low=low, high=high)
        return number

    return convert


def parse_seconds(text: str) -> float:
    try:
        number = float(text)
    except ValueError:
        raise Invalid(N_("must be a number of seconds")) from None
    if not 0 < number <= 3600:
        raise Invalid(N_("must be more than 0 and at most 3600 seconds"))
    return number


def parse_minute(text: str) -> int:
    if text not in ("00", "0", "15", "30", "45"):
        raise Invalid(N_("must be 00, 15, 30 or 45"))
    return int(text)


def parse_time(text: str) -> datetime.time:
    try:
        hours, minutes = text.split(":")
        return datetime.time(int(hours), int(minutes))
    except ValueError:
        raise Invalid(N_("must be HH:MM (24-hour)")) from None


def parse_date_or_empty(text: str) -> datetime.date | None:
    if not text:
        return None
    try:
        return datetime.date.fromisoformat(text)
    except ValueError:
        raise Invalid(N_("must be YYYY-MM-DD, or empty for not activated")) from None


def parse_optional_path(text: str) -> str | None:
    if not text:
        return None
    if not text.startswith("/"):
        raise Invalid(N_("must be an absolute path, or empty"))
    return text


def parse_command(text: str) -> tuple[str, ...]:
    try:
        argv = split_command(text)
    except ValueError as error:
        raise Invalid(N_("not a command line: %(error)s"), error=str(error)) from None
    if not argv[0].startswith("/"):
        raise Invalid(N_("the program must be given by its absolute path"))
    return tuple(argv)



def parse_optional_command(text: str) -> tuple[str, ...]:
    """An empty value means "no such command"; otherwise as parse_command."""
    return parse_command(text) if text.strip() else ()


def parse_days_or_never(text: str) -> int | None:
    if text.lower() == "never":
        return None
    if not text.isdigit() or not 1 <= int(text) <= 3650:
        raise Invalid(N_("must be a number of days from 1 to 3650, or never"))
    return int(text)


def parse_components(known: Iterable[str]) -> Callable[[str], tuple[str, ...]]:
    known_ids = tuple(known)

    def convert(text: str) -> tuple[str, ...]:
        ids = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
        unknown = [component_id for component_id in ids if component_id not in known_ids]
        if unknown:
            raise Invalid(N_("unknown component(s): %(ids)s"), ids=", ".join(unknown))
        return ids

    return convert


def parse_host_list(text: str) -> tuple[str, ...]:
    """Comma-separated host names (no scheme, port or path), lower-cased."""
    hosts = tuple(part.strip().lower() for part in text.split(",") if part.strip())
    for host in hosts:
        if any(character in host for character in "/:@ "):
            raise Invalid(N_("%(host)s is not a host name (give names only, no scheme or port)"),
                          host=repr(host))
    return hosts


def proxy_host_problem(host: str) -> Problem | None:
    """Return why ``host`` cannot be the proxy (empty, a URL, a host:port), or None."""
    if not host:
        return Problem("Proxy", "ProxyHost", "empty while UseProxySetting=yes", N_("enter the proxy "
                                                                                   "server's host name or "
                                                                                   "address (the proxy is "
                                                                                   "switched on)"))
    if "://" in host or "/" in host or "@" in host or any(character.isspace() for character in host):
        return Problem("Proxy", "ProxyHost",
                       f"{host!r} is not a host name or address (give the host only, no scheme or path)",
                       N_("%(value)s is not a host name or address: enter the host only, without scheme or "
                          "path"), (("value", host),))
    if ":" in host.strip("[]") and host.count(":") == 1:
        return Problem("Proxy", "ProxyHost",
                       f"{host!r} is not a host name or address (give the port in Proxy/ProxyPort)",
                       N_("%(value)s: enter the port in the Port field"), (("value", host),))
    return None


def proxy_port_problem(text: str) -> Problem | None:
    """Return why ``text`` is not a proxy port (1-65535), or None."""
    if text.isdigit() and 1 <= int(text) <= 65535:
        return None
    return Problem("Proxy", "ProxyPort", f"must be a port number from 1 to 65535 (value {text!r})",
                   N_("must be a port number from 1 to 65535 (value '%(value)s')"), (("value", text),))
