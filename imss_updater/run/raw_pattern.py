"""A raw pattern file as seed 000 obtains it: ``lpt$vpn.###`` (the virus pattern).

The support article has the administrator copy a separately obtained ``lpt$vpn.###`` by
hand; here ``import`` takes it as it takes a zip package. The name says the component
(``lpt$vpn`` is the virus pattern) and the 3-digit pattern number ``###``, the middle field
of ``<roll>.<3-digit number>.<2-digit build>`` (SPEC 3): ``lpt$vpn.697`` is ``x.697.00``.
The roll is not in the name: it is the one that puts the number nearest the installed
version (numbers roll over 999 -> 001, so after 15.998.00 ``lpt$vpn.001`` is 16.001.00,
and ``lpt$vpn.690`` is 15.690.00, older); the build is ``00``, the global pattern that
ActiveUpdate serves. With nothing installed, or for another build, ``--version`` says it
(its number must be the one in the name).

The file is installed as the component's only file, under its own name, by wrapping it in
a zip built the same way every time (so the replay memory of SPEC 3.1 sees the same bytes
as the same package), after its signature (``lpt$vpn.###.sig`` beside it) was verified
over the raw bytes.
"""

from __future__ import annotations

import re
import shutil
import stat
import zipfile
from pathlib import Path

from imss_updater.i18n import N_, Reason
from imss_updater.versions import Version

# The raw pattern files a seed names, by their stem; the catalog id each one is.
RAW_PATTERNS = {"lpt$vpn": "virus_pattern"}
_RAW_NAME = re.compile(r"^(?P<stem>[a-z$]+)\.(?P<number>\d{3})$", re.IGNORECASE)
GLOBAL_BUILD = 0  # SPEC 1: the gateway uses the global pattern (…00), not Japan's (…80)
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # the earliest a zip can say: the same bytes every time


class RawPatternError(ValueError):
    """The pattern's version cannot be told from its name and what is installed; ``reason``
    renders in each language (``str()``: English)."""

    def __init__(self, reason: Reason) -> None:
        super().__init__(str(reason))
        self.reason = reason


def parse_name(name: str) -> tuple[str, int] | None:
    """Given a file name, return (component id, pattern number) if it is a raw pattern file
    (``lpt$vpn.697`` -> ``("virus_pattern", 697)``, any case), else None."""
    found = _RAW_NAME.match(name)
    if found is None:
        return None
    component_id = RAW_PATTERNS.get(found.group("stem").lower())
    if component_id is None:
        return None
    return component_id, int(found.group("number"))


def version_for(number: int, installed: Version | None) -> Version:
    """Given the pattern number of a raw file and the installed version, return the version
    it is: the roll that puts it nearest the installed one (a tie goes to the newer), build
    00. Raise RawPatternError when nothing is installed (the roll cannot be told)."""
    if installed is None or len(installed.fields) != 3:
        raise RawPatternError(Reason(
            N_("the file name gives the pattern number %(number)s but not its roll, and no virus "
               "pattern is installed to tell it from; give --version (e.g. %(example)s)"),
            {"number": f"{number:03d}", "example": f"15.{number:03d}.00"}))
    roll, serial = installed.fields[0], installed.fields[1]
    here = roll * 1000 + serial
    rolls = [candidate for candidate in (roll - 1, roll, roll + 1) if candidate >= 0]
    chosen = min(rolls, key=lambda candidate: (abs(candidate * 1000 + number - here), -candidate))
    return Version.pattern(chosen * 100000 + number * 100 + GLOBAL_BUILD)


def check_version(number: int, version: Version) -> None:
    """Raise RawPatternError unless ``version`` (from --version) has the name's number."""
    if len(version.fields) != 3 or version.fields[1] != number:
        raise RawPatternError(Reason(
            N_("the file name says pattern number %(number)s, --version says %(version)s"),
            {"number": f"{number:03d}", "version": version.display}))


def wrap(raw: Path, name: str, archive: Path) -> None:
    """Write ``archive``: a zip whose only member is ``raw``'s bytes named ``name``, stored,
    with fixed time and mode, so the same raw file always gives the same archive bytes.
    Raise OSError if it cannot be read or written."""
    member = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
    member.compress_type = zipfile.ZIP_STORED
    member.external_attr = (stat.S_IFREG | 0o644) << 16
    member.create_system = 3  # Unix, so the mode above is read as one
    with zipfile.ZipFile(archive, "w") as output, raw.open("rb") as source, \
            output.open(member, "w", force_zip64=True) as target:
        shutil.copyfileobj(source, target, 1024 * 1024)
