"""The embedded database's password file (libpq's .pgpass format), private to root.

The file is only ever trusted if it is a plain file of ours that nobody else can open: a
password file that another user could have written (a state directory they made before the
updater ran) or read is never used, so no one else chooses or learns the password. It is
written as a new file, created exclusively without following links, and renamed into place.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from imss_updater.store import ownership


def read_password(path: Path, role: str) -> tuple[str | None, str]:
    """Return the password of ``role`` recorded in the password file ``path``, or None and
    why not ("is missing", "is not used (is owned by uid 65534 (nobody))", ...). Raise
    OSError if it cannot be read."""
    try:
        content = _read(path)
    except ownership.UntrustedPathError as error:
        return None, f"is not used ({error.reason.removeprefix(str(path) + ' ')})"
    if content is None:
        return None, "is missing"
    password = _password_in(content.decode("utf-8", errors="replace"), role)
    return password, f"has no password for role {role}"


def write(path: Path, hosts: Iterable[str], port: int, role: str, password: str) -> None:
    """Make ``path`` a password file (mode 0600) with one line per host for ``role``; do
    nothing if it already says exactly that. Raise OSError if the disk refuses."""
    lines = "".join(
        f"{_field(host)}:{int(port)}:*:{role}:{_field(password)}\n" for host in hosts
    ).encode("utf-8")
    try:
        if _read(path) == lines:
            return
    except ownership.UntrustedPathError:
        pass  # replaced below
    ownership.write_replacing(path.parent, path.name, lines, mode=0o600)


def _read(path: Path) -> bytes | None:
    return ownership.read_plain(path.parent, path.name, owner=os.geteuid(), private=True)


def _field(text: str) -> str:
    return text.replace("\\", "\\\\").replace(":", "\\:")


def _split_line(line: str) -> list[str]:
    fields: list[str] = []
    current: list[str] = []
    characters = iter(line)
    for character in characters:
        if character == "\\":
            current.append(next(characters, ""))
        elif character == ":":
            fields.append("".join(current))
            current = []
        else:
            current.append(character)
    fields.append("".join(current))
    return fields


def _password_in(text: str, role: str) -> str | None:
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        fields = _split_line(line)
        if len(fields) == 5 and fields[3] == role and fields[4]:
            return fields[4]
    return None
