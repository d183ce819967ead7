"""Component versions: parse, order and display.

Two spellings reach us from an update source (SPEC section 3):

- a pattern version is an integer written without dots (``1569700``) and is displayed
  as ``<roll>.<3-digit number>.<2-digit build>`` (``15.697.00``);
- an engine version is dotted (``21.0.1008``).

Either way versions order numerically, field by field, never as strings, so that the
roll-over ``2.999 -> 3.001`` and ``9 -> 10`` order correctly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_DOTTED = re.compile(r"^\d{1,12}(\.\d{1,12})*$")

ABSENT_DISPLAY = "0.0"
"""What the status shows for a component the source does not carry (SPEC section 1)."""


class VersionError(ValueError):
    """A version string that is neither a pattern integer nor a dotted engine version."""


@dataclass(frozen=True, order=True)
class Version:
    """A comparable component version.

    ``fields`` carries the numeric order; ``raw`` is the text as the source wrote it
    (used in file names and the database); ``display`` is what people see.
    """

    fields: tuple[int, ...]
    raw: str = field(compare=False)
    display: str = field(compare=False)

    @classmethod
    def parse(cls, text: str) -> Version:
        """Given a version as written in server.ini or the database, return a Version.

        Raise VersionError if it is empty or contains anything but digits and dots.
        A text without dots is a pattern version; with dots, an engine version. A displayed
        pattern version (``15.697.00``) orders exactly like its integer form.
        """
        text = text.strip()
        if not _DOTTED.match(text):
            raise VersionError(f"not a version: {text!r}")
        if "." not in text:
            return cls.pattern(int(text))
        parts = tuple(int(part) for part in text.split("."))
        return cls(fields=parts, raw=text, display=text)

    @classmethod
    def pattern(cls, number: int) -> Version:
        """Given a pattern version integer (1569700), return its Version (15.697.00)."""
        if number < 0:
            raise VersionError(f"negative pattern version: {number}")
        roll, rest = divmod(number, 100000)
        serial, build = divmod(rest, 100)
        display = f"{roll}.{serial:03d}.{build:02d}"
        return cls(fields=(roll, serial, build), raw=str(number), display=display)

    def __str__(self) -> str:
        return self.display


def is_newer(available: Version | None, current: Version | None) -> bool:
    """Return True when ``available`` is known and strictly newer than ``current``.

    An unknown available version (source unreachable) is never newer; anything known
    is newer than nothing installed.
    """
    if available is None:
        return False
    if current is None:
        return True
    return available > current
