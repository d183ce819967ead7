"""Checks of the settings as a whole, beyond what ``settings.load`` sees in the rows.

``load`` is pure: it types the rows. What it cannot see is whether the files the rows name
are there (``CAFile``, ``SignatureCAFile`` must be readable PEM files), and what one change
does to the other rows (``UseProxySetting=yes`` while ``ProxyHost`` is empty). Both the
update run (before it starts) and every writer of settings (``config set``, the settings
pages) use these checks, so a setting that would stop the updates is refused when it is
typed, and one that became unusable later (a deleted file) fails the run with its reason.
"""

from __future__ import annotations

from collections.abc import Iterable

from imss_updater.i18n import N_
from imss_updater.settings import SIGNATURE_MODES, Rows, Settings, SettingsError, load
from imss_updater.settings_values import (
    Problem,
    parse_choice,
    parse_optional_path,
    proxy_host_problem,
    proxy_port_problem,
)

MAX_PEM_BYTES = 16 << 20
PEM_MARKER = b"-----BEGIN CERTIFICATE-----"
FILE_ROWS = {"CAFile": "CA certificates for HTTPS", "SignatureCAFile": "signature trust anchors"}


def pem_problem(section: str, name: str, path: str) -> Problem | None:
    """Return why the PEM certificate file at ``path`` cannot be used, or None.

    The reason names the file and says what is wrong with it: missing, not a file,
    unreadable, or without a certificate.
    """
    def problem(why: str, key: str) -> Problem:
        return Problem(section, name, f"{path}: {why}", key, (("path", path),))

    try:
        with open(path, "rb") as handle:
            content = handle.read(MAX_PEM_BYTES)
    except FileNotFoundError:
        return problem("the file does not exist", N_("the file %(path)s does not exist"))
    except IsADirectoryError:
        return problem("is a directory, not a file", N_("%(path)s is a directory, not a file"))
    except OSError as error:
        return Problem(section, name, f"{path}: cannot be read: {error.strerror or error}",
                       N_("the file %(path)s cannot be read: %(error)s"),
                       (("path", path), ("error", str(error.strerror or error))))
    if PEM_MARKER not in content:
        return problem("is not a PEM certificate file (no BEGIN CERTIFICATE line)", N_("%(path)s is not a "
                                                                                       "PEM certificate "
                                                                                       "file (no BEGIN "
                                                                                       "CERTIFICATE line)"))
    return None


def file_problems(ca_file: str | None, signature_ca_file: str | None, verify_signature: str) -> list[Problem]:
    """Return the problems of the files the update run will read: the HTTPS CA file when
    set, the signature trust anchors when signatures are verified."""
    problems = []
    if ca_file:
        found = pem_problem("Update", "CAFile", ca_file)
        if found is not None:
            problems.append(found)
    if verify_signature != "no":
        if signature_ca_file:
            found = pem_problem("Update", "SignatureCAFile", signature_ca_file)
            if found is not None:
                problems.append(found)
        elif verify_signature == "yes":
            problems.append(Problem(
                "Update", "SignatureCAFile",
                "empty while Update/VerifySignature=yes: no trust anchors to verify signatures with",
                N_("enter the trust anchors file: signature verification is set to required"),
            ))
    return problems


def unusable(settings: Settings) -> list[Problem]:
    """Given loaded settings, return why the update run cannot use them (empty: usable)."""
    return file_problems(settings.ca_file, settings.signature_ca_file, settings.verify_signature)


def problems(rows: Rows, known_components: Iterable[str]) -> list[Problem]:
    """Given the rows, return every problem: the loader's and the files' (empty: valid)."""
    found: list[Problem] = []
    try:
        load(rows, known_components)
    except SettingsError as error:
        found.extend(error.problems)
    paths: dict[str, str | None] = {}
    for name in FILE_ROWS:
        try:
            paths[name] = parse_optional_path(rows.get(("Update", name), "").strip())
        except ValueError:
            paths[name] = None  # the loader reported it
    try:
        verify = parse_choice(SIGNATURE_MODES)(rows.get(("Update", "VerifySignature"), "auto").strip())
    except ValueError:
        verify = "auto"
    found.extend(file_problems(paths["CAFile"], paths["SignatureCAFile"], verify))
    return found


def field_problems(section: str, name: str, value: str) -> list[Problem]:
    """Return what is wrong with ``value`` for row ``section/name`` on its own, whether or
    not the other rows make it used now (a proxy host that is a URL, a missing CA file)."""
    text = value.strip()
    if section == "Proxy" and name == "ProxyHost" and text:
        found = proxy_host_problem(text)
        return [found] if found else []
    if section == "Proxy" and name == "ProxyPort" and text:
        found = proxy_port_problem(text)
        return [found] if found else []
    if section == "Update" and name in FILE_ROWS and text.startswith("/"):
        found = pem_problem(section, name, text)
        return [found] if found else []
    return []


def validate_value(section: str, name: str, value: str, rows: Rows, known_components: Iterable[str]) -> None:
    """Raise SettingsError if setting ``section/name`` to ``value`` would break the settings.

    The settings are checked as a whole: a problem of this row, and any problem this change
    would create in another row (``UseProxySetting=yes`` with no ``ProxyHost``), are reported
    under the row the administrator typed. Problems that were there before are not this
    change's and do not block it. Rows the loader does not use (e.g. notification
    templates) are accepted as they are.
    """
    known = tuple(known_components)
    changed = {**rows, (section, name): value}
    before = problems(rows, known)
    after = problems(changed, known)
    own = field_problems(section, name, value)
    own += [p for p in after if (p.section, p.name) == (section, name) and p not in own]
    for problem in after:
        if (problem.section, problem.name) == (section, name) or problem in before:
            continue
        own.append(Problem(
            section, name, f"not accepted: it would leave {problem}", "causes",
            (("field", f"{problem.section}/{problem.name}"),), cause=problem,
        ))
    if own:
        raise SettingsError(own)
