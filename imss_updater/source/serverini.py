"""Parse an ActiveUpdate ``server.ini`` (SPEC section 3) into plain data.

The parser is lenient about what it does not use and strict about what it does:
unknown sections and keys (``P.4.MergeCount``, ``P.<id>.Merge.<n>``) and extra fields
are ignored; an entry the updater may need that is malformed is kept as a problem with
its reason, so that only that component is rejected; a text that is not a server.ini
at all raises ServerIniError.
"""

from __future__ import annotations

import configparser
import posixpath
import re
from dataclasses import dataclass, field
from urllib.parse import quote, unquote, urlsplit

from imss_updater.versions import Version, VersionError

_PATTERN_KEY = re.compile(r"^P\.\d+$")
_ENGINE_KEY = re.compile(r"^E\.\d+$")
_ENGINE_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


class ServerIniError(ValueError):
    """The text is not a usable server.ini; the reason is the message."""


class PathEscapeError(ValueError):
    """A payload path that leaves the update source's base URL."""


@dataclass(frozen=True)
class Entry:
    """One downloadable component as published: path relative to the base, version, size."""

    path: str
    version: Version
    size: int


@dataclass
class SourceIndex:
    """What one update source offers.

    ``patterns`` is keyed by ``P.<id>``, ``engines`` by engine NAME. ``problems`` maps
    a key (``P.<id>`` or an engine NAME) to why its entry could not be used.
    ``ignored_lines`` counts lines the INI reader could not parse at all.
    ``authenticated`` is set by the run once the index signature verified (SPEC 3.1).
    """

    patterns: dict[str, Entry] = field(default_factory=dict)
    engines: dict[str, Entry] = field(default_factory=dict)
    problems: dict[str, str] = field(default_factory=dict)
    ignored_lines: int = 0
    authenticated: bool = False

    def lookup(self, au_key: str, is_engine: bool) -> Entry | None:
        """Return the entry for a catalog AU key, or None when the source lacks it."""
        return (self.engines if is_engine else self.patterns).get(au_key)

    def problem(self, au_key: str) -> str | None:
        return self.problems.get(au_key)


def parse(text: str) -> SourceIndex:
    """Given the text of a server.ini, return its SourceIndex.

    Raise ServerIniError if the text has no section header or carries neither a
    ``[PATTERN]`` nor an ``[ENGINE]`` section (an HTML error page, an empty or cut file).
    """
    reader = configparser.ConfigParser(
        strict=False,
        interpolation=None,
        delimiters=("=",),
        comment_prefixes=(";", "#"),
        inline_comment_prefixes=None,
        empty_lines_in_values=False,
    )
    reader.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    index = SourceIndex()
    try:
        reader.read_string(text.lstrip("\ufeff"))
    except configparser.MissingSectionHeaderError as error:
        raise ServerIniError("not a server.ini: no section header") from error
    except configparser.ParsingError as error:
        # The reader keeps everything it could parse; lines it could not are not ours.
        index.ignored_lines = len(error.errors)
    sections = {name.upper(): name for name in reader.sections()}
    if "PATTERN" not in sections and "ENGINE" not in sections:
        raise ServerIniError("not a server.ini: neither [PATTERN] nor [ENGINE] section")
    if "PATTERN" in sections:
        for key, value in reader.items(sections["PATTERN"]):
            if _PATTERN_KEY.match(key):
                _add_pattern(index, key, value)
    if "ENGINE" in sections:
        for key, value in reader.items(sections["ENGINE"]):
            if _ENGINE_KEY.match(key):
                _add_engine(index, key, value)
    return index


def _fields(value: str) -> list[str]:
    return [part.strip() for part in value.split(",")]


def _size(text: str) -> int:
    if not text.isdigit():
        raise ValueError(f"size is not a number: {text!r}")
    return int(text)


def _add_pattern(index: SourceIndex, key: str, value: str) -> None:
    parts = _fields(value)
    if len(parts) < 3:
        index.problems[key] = f"malformed server.ini entry {key}: expected path,version,size"
        return
    path, version_text, size_text = parts[:3]
    try:
        if not version_text.isdigit():
            raise VersionError(f"pattern version is not an integer: {version_text!r}")
        entry = Entry(path=path, version=Version.parse(version_text), size=_size(size_text))
        _check_path(path)
    except ValueError as error:
        index.problems[key] = f"malformed server.ini entry {key}: {error}"
        return
    index.patterns.setdefault(key, entry)


def _add_engine(index: SourceIndex, key: str, value: str) -> None:
    parts = _fields(value)
    name = parts[0] if parts else ""
    if not _ENGINE_NAME.match(name):
        index.problems[key] = f"malformed server.ini entry {key}: no engine name"
        return
    if len(parts) < 4:
        index.problems[name] = f"malformed server.ini entry {key} ({name}): expected name,path,version,size"
        return
    path, version_text, size_text = parts[1:4]
    try:
        entry = Entry(path=path, version=Version.parse(version_text), size=_size(size_text))
        _check_path(path)
    except ValueError as error:
        index.problems[name] = f"malformed server.ini entry {key} ({name}): {error}"
        return
    index.engines.setdefault(name, entry)


def _check_path(path: str) -> None:
    if not path:
        raise ValueError("empty path")


def payload_url(base_url: str, relative_path: str) -> str:
    """Given a source base URL and an entry path, return the payload's absolute URL.

    Raise PathEscapeError if the path is absolute, names a scheme or another host, or
    climbs out of the base with ``..`` (also when percent-encoded or with backslashes).
    """
    decoded = unquote(relative_path)
    if "\\" in decoded or "\x00" in decoded:
        raise PathEscapeError(f"payload path escapes the update source: {relative_path!r}")
    parts = urlsplit(decoded)
    if parts.scheme or parts.netloc or decoded.startswith("/"):
        raise PathEscapeError(f"payload path escapes the update source: {relative_path!r}")
    normalized = posixpath.normpath(decoded)
    if normalized.startswith("..") or normalized in (".", "") or any(
        segment == ".." for segment in decoded.split("/")
    ):
        raise PathEscapeError(f"payload path escapes the update source: {relative_path!r}")
    return base_url.rstrip("/") + "/" + quote(normalized)


def signature_path(relative_path: str) -> str:
    """Return the path of the detached signature beside a payload: ``x/y.zip`` -> ``x/y.sig``."""
    stem, _dot, _extension = relative_path.rpartition(".")
    return (stem if stem else relative_path) + ".sig"
