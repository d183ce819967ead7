"""Package trust (SPEC 3.1): what a valid ``.sig`` cannot prove on its own.

A signature proves who made the bytes, not which component or version they are. Two
memories close that gap: the signature pin (a component once installed from a signed
package refuses unsigned ones under VerifySignature=auto) and the replay memory (the
SHA-256 of every package installed, with its component and version: the same bytes are
never accepted as another component or another version). Both the download run and
``import`` go through these checks.
"""

from __future__ import annotations

import datetime
import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path

from imss_updater.catalog import Component
from imss_updater.database import trust as trust_db
from imss_updater.database.db import Database, InstalledPackage
from imss_updater.i18n import N_, Reason, format_moment, gettext
from imss_updater.run.context import RunContext
from imss_updater.run.report import ComponentFailure, display, parse_or_none
from imss_updater.versions import Version

log = logging.getLogger(__name__)

SIGNED_BEFORE = N_("this component was signed before; refusing an unsigned package")
_CHUNK = 1 << 20


def refuse_unsigned_if_pinned(context: RunContext, component: Component) -> None:
    """Raise ComponentFailure if ``component`` was installed from a validly signed package
    before (its unsigned package must not replace it until ``trust reset``)."""
    if trust_db.signature_pinned(context.database, component.id):
        log.error("%s: %s (clear with `imss-updater trust reset %s`)", component.id, SIGNED_BEFORE,
                  component.id)
        raise ComponentFailure(Reason(SIGNED_BEFORE))


def package_digest(archive: Path) -> str:
    """Return the SHA-256 (hex) of the file, read in chunks (never whole into memory)."""
    with archive.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def admit(
    context: RunContext, component: Component, archive: Path, version: Version, *, unsigned: bool,
    digest: str | None = None,
) -> InstalledPackage:
    """Given a verified package about to be installed as ``component`` ``version`` (and its
    SHA-256 when already computed as it downloaded), return what to record with the install.
    Raise ComponentFailure if these bytes were installed before as another component or
    another version (a relabelled or swapped package)."""
    digest = digest or package_digest(archive)
    seen = trust_db.package_seen(context.database, digest)
    if seen is not None and (seen.component != component.id or parse_or_none(seen.version) != version):
        reason = Reason(N_("package already seen as %(component)s %(version)s"),
                        {"component": seen.component, "version": display(seen.version)})
        log.error("%s: %s (SHA-256 %s, announced as %s)", component.id, reason, digest,
                  version.display)
        raise ComponentFailure(reason)
    return InstalledPackage(sha256=digest, version=version.raw, signed=not unsigned)


def reset(database: Database, component_ids: Sequence[str]) -> list[str]:
    """Forget that these components were signed (``imss-updater trust reset ID``, or the
    status page): their unsigned packages are accepted again under VerifySignature=auto.
    Return the ids that had a pin. Raise ValueError naming any id not in the catalog (its
    argument a Reason: ``str()`` English)."""
    known = {component.id for component in database.catalog()}
    unknown = [component_id for component_id in component_ids if component_id not in known]
    if unknown:
        raise ValueError(Reason(N_("unknown component(s): %(ids)s"), {"ids": ", ".join(unknown)}))
    cleared = trust_db.clear_signature_pins(database, component_ids)
    for component_id in cleared:
        log.warning("trust reset: %s was signed before; unsigned packages are accepted again "
                    "(VerifySignature=auto)", component_id)
    return cleared


def reset_text(component_ids: Sequence[str], cleared: Sequence[str], language: str = "en") -> str:
    """One line per component ``trust reset`` was asked about, in ``language``."""
    return "\n".join(
        gettext(language, N_("%(id)s: unsigned packages accepted again (VerifySignature=auto)")
                if component_id in cleared else N_("%(id)s: was not signed before"), id=component_id)
        for component_id in component_ids
    )


def reset_index_text(base_url: str, found: bool, language: str = "en") -> str:
    return gettext(language, N_("%(url)s: index signature no longer required (VerifyIndexSignature=auto)")
                   if found else N_("%(url)s: had not signed its index"), url=base_url)


def show(database: Database) -> dict[str, list[dict[str, str | None]]]:
    """``trust show --json``: the signed components and the sources that sign their index."""
    return {
        "components": [
            {"id": pin.component, "version": pin.version, "since": pin.pinned_at.isoformat()}
            for pin in trust_db.signature_pins(database).values()
        ],
        "sources": [
            {"base_url": pin.base_url, "since": pin.pinned_at.isoformat(),
             "verified": pin.verified_at.isoformat()}
            for pin in trust_db.index_pins(database)
        ],
    }


def show_text(payload: dict[str, list[dict[str, str | None]]], language: str = "en") -> str:
    """``trust show`` for people: the times in the gateway's local time with their zone."""
    def when(iso: str | None) -> str:
        return format_moment(datetime.datetime.fromisoformat(iso), language) if iso else "-"

    lines = [gettext(language, N_("signed component: %(id)s %(version)s (since %(since)s)"),
                     id=item["id"], version=display(item["version"]), since=when(item["since"]))
             for item in payload["components"]]
    lines += [gettext(language, N_("signed index: %(url)s (since %(since)s, last %(verified)s)"),
                      url=item["base_url"], since=when(item["since"]), verified=when(item["verified"]))
              for item in payload["sources"]]
    return "\n".join(lines) if lines else gettext(language, N_("nothing signed yet"))
