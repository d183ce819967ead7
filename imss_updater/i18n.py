"""Every text a person reads, through one gettext catalog (``translations/<lang>/LC_MESSAGES``).

The English text is the msgid; ``translations/ja/LC_MESSAGES/messages.po`` holds the Japanese.
This module works outside Flask too (CLI, daemon, notifications): ``gettext(language, msgid,
**values)`` returns the text in ``language`` with ``%(name)s`` placeholders filled in. The
console uses Flask-Babel over the same catalog (web/app.py).

- ``N_(msgid)`` marks a text for ``pybabel extract`` without translating it (tables of labels).
- ``Reason`` is a text decided now and rendered later in each language (failure reasons,
  flashed messages): a msgid with its parameters, parameters that are Reasons themselves are
  rendered in the same language.
- The wheel ships the compiled ``.mo``; in a checkout (only the ``.po`` is in git) the ``.mo``
  is compiled from the ``.po`` on first use whenever it is missing or older (``ensure_compiled``).
"""

from __future__ import annotations

import datetime
import functools
import gettext as stdlib_gettext
import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

LANGUAGES = ("en", "ja")
DEFAULT_LANGUAGE = "en"
DOMAIN = "messages"
TRANSLATIONS = Path(__file__).parent / "translations"

Value = str | int | float | None


def N_(msgid: str) -> str:
    """Mark ``msgid`` for extraction; it is translated later, where it is shown."""
    return msgid


def ensure_compiled(directory: Path = TRANSLATIONS) -> None:
    """Compile each ``.po`` under ``directory`` into its ``.mo`` when the ``.mo`` is missing or
    older (a checkout or an editable install; a wheel ships the ``.mo`` without the ``.po``)."""
    for po in directory.glob(f"*/LC_MESSAGES/{DOMAIN}.po"):
        mo = po.with_suffix(".mo")
        if mo.exists() and mo.stat().st_mtime >= po.stat().st_mtime:
            continue
        try:
            compile_catalog(po, mo)
        except OSError:  # a read-only install: use the .mo it has (or English)
            continue


def compile_catalog(po: Path, mo: Path) -> None:
    """Write ``po`` compiled to ``mo`` (atomically: parallel test workers may race here)."""
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    with po.open("rb") as source:
        catalog = read_po(source)
    handle, temporary = tempfile.mkstemp(dir=mo.parent, prefix=".messages-")
    try:
        with os.fdopen(handle, "wb") as target:
            write_mo(target, catalog)
        os.chmod(temporary, 0o644)
        os.replace(temporary, mo)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


@functools.cache
def translations(language: str) -> stdlib_gettext.NullTranslations:
    """Return the catalog of ``language`` (English, the msgids themselves, for any other)."""
    if language == DEFAULT_LANGUAGE or language not in LANGUAGES:
        return stdlib_gettext.NullTranslations()
    ensure_compiled()
    return stdlib_gettext.translation(DOMAIN, str(TRANSLATIONS), [language], fallback=True)


def gettext(language: str, msgid: str, **values: object) -> str:
    """Return ``msgid`` in ``language`` with ``values`` filled in (``%(name)s``)."""
    text = translations(language).gettext(msgid)
    return text % values if values else text


def ngettext(language: str, singular: str, plural: str, count: int, **values: object) -> str:
    """Return the form of ``singular``/``plural`` for ``count`` in ``language``; ``%(num)d``
    is ``count``."""
    text = translations(language).ngettext(singular, plural, count)
    return text % {"num": count, **values}


def normalize(language: str | None) -> str:
    """Return "ja" or "en" for a language tag or a locale such as ``ja_JP.UTF-8``."""
    if not language:
        return DEFAULT_LANGUAGE
    code = language.replace("-", "_").split("_")[0].split(".")[0].lower()
    return code if code in LANGUAGES else DEFAULT_LANGUAGE


def environment_language(environ: Mapping[str, str] | None = None) -> str:
    """Return the language the POSIX locale variables ask for (LC_ALL, LC_MESSAGES, LANG)."""
    environ = os.environ if environ is None else environ
    for name in ("LC_ALL", "LC_MESSAGES", "LANG"):
        if environ.get(name):
            return normalize(environ[name])
    return DEFAULT_LANGUAGE


def format_moment(moment: datetime.datetime, language: str) -> str:
    """Return ``moment`` in the gateway's local time, formatted for ``language``, with its zone
    (e.g. ``2026/11/22 3:00:12 JST`` or ``Nov 22, 2026, 3:00:12 AM JST``)."""
    local = moment.astimezone()
    zone = local.strftime("%Z") or local.strftime("%z")
    pattern = "yyyy/MM/dd H:mm:ss" if language == "ja" else "yyyy-MM-dd HH:mm:ss"
    from babel.dates import format_datetime  # here: English reasons need no Babel (store.lock)

    return f"{format_datetime(local, pattern, locale=language)} {zone}"


@dataclass(frozen=True)
class Reason:
    """A text decided now, rendered later in any language: a msgid and its parameters.

    ``str(reason)`` is the English text (logs, exceptions, the English event column);
    ``reason.render("ja")`` the Japanese one. A parameter that is a Reason is rendered in the
    same language; others are inserted as they are (paths, versions, server messages).
    """

    msgid: str
    params: Mapping[str, Value | Reason] = field(default_factory=dict)

    def render(self, language: str) -> str:
        values = {name: value.render(language) if isinstance(value, Reason) else value
                  for name, value in self.params.items()}
        return gettext(language, self.msgid, **values)

    def __str__(self) -> str:
        return self.render(DEFAULT_LANGUAGE)

    def to_json(self) -> dict[str, object]:
        return {"msgid": self.msgid, "params": {
            name: value.to_json() if isinstance(value, Reason) else value
            for name, value in self.params.items()}}

    def replaced(self, old: str, new: str) -> Reason:
        """Return this reason with ``old`` replaced by ``new`` in every text parameter (a path
        named as the administrator knows it), nested reasons included."""
        return Reason(self.msgid, {
            name: value.replaced(old, new) if isinstance(value, Reason)
            else value.replace(old, new) if isinstance(value, str) else value
            for name, value in self.params.items()})

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> Reason:
        params = data.get("params", {})
        assert isinstance(params, dict)
        return cls(str(data["msgid"]), {
            str(name): cls.from_json(value) if isinstance(value, dict) else value
            for name, value in params.items()})


def render(text: str | Reason, language: str) -> str:
    """Return ``text`` in ``language``: a Reason rendered, a plain string (a server's own
    message, a path) as it is."""
    return text.render(language) if isinstance(text, Reason) else text


def stored(text: str | Reason) -> str:
    """Return ``text`` as a database column keeps it: a Reason as its JSON (rendered in each
    language when shown, see ``stored_text``), a plain string as it is."""
    return json.dumps(text.to_json(), ensure_ascii=False) if isinstance(text, Reason) else text


def stored_text(text: str | None, language: str) -> str:
    """Given a column written by ``stored`` (or an older plain text), return it in ``language``."""
    if not text:
        return ""
    if text.startswith('{"msgid"'):
        try:
            return Reason.from_json(json.loads(text)).render(language)
        except (ValueError, KeyError, TypeError, AssertionError):
            return text
    return text


def restored(text: str) -> str | Reason:
    """Given a column written by ``stored``, return what was stored: the Reason again (to be
    rendered or nested in another reason), or the plain text as it is."""
    if text.startswith('{"msgid"'):
        try:
            return Reason.from_json(json.loads(text))
        except (ValueError, KeyError, TypeError, AssertionError):
            return text
    return text


def replaced(text: str | Reason, old: str, new: str) -> str | Reason:
    """``text`` with ``old`` replaced by ``new`` (in a Reason: in its text parameters)."""
    return text.replaced(old, new) if isinstance(text, Reason) else text.replace(old, new)
