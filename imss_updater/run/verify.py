"""Verify: fetch a package's detached signature as Update/VerifySignature asks, before the
package itself, so that the download pipeline (run.pipeline) checks it as the bytes arrive."""

from __future__ import annotations

import logging
from pathlib import Path

from imss_updater.catalog import Component
from imss_updater.i18n import N_, Reason
from imss_updater.run.context import RunContext
from imss_updater.run.report import ComponentFailure
from imss_updater.run.trust import refuse_unsigned_if_pinned
from imss_updater.settings import Settings
from imss_updater.source.http import FetchError, HttpClient

log = logging.getLogger(__name__)

MAX_SIGNATURE_BYTES = 1 << 20


def fetch_signature(
    context: RunContext,
    component: Component,
    settings: Settings,
    client: HttpClient,
    signature_file: Path,
    signature_url: str,
) -> bool:
    """Write the package's published signature to ``signature_file`` as VerifySignature
    asks; return True if the package is to be installed unsigned.

    Raise ComponentFailure if the signature is missing where it is required: with
    VerifySignature=yes, or for a component installed from a signed package before."""
    if settings.verify_signature == "no":
        return True
    try:
        published = client.fetch_optional(signature_url, max_bytes=MAX_SIGNATURE_BYTES)
    except FetchError as error:
        raise ComponentFailure(Reason(N_("cannot fetch the signature: %(reason)s"),
                                      {"reason": error.why})) from error
    if published is None:
        if settings.verify_signature == "yes":
            raise ComponentFailure(Reason(
                N_("no signature published (%(url)s) and Update/VerifySignature=yes"), {"url": signature_url}
            ))
        refuse_unsigned_if_pinned(context, component)
        log.warning("%s: no signature published; accepted unsigned (VerifySignature=auto)",
                    component.id)
        return True
    signature_file.write_bytes(published)
    return False


def trust_file(settings: Settings) -> Path | None:
    return Path(settings.signature_ca_file) if settings.signature_ca_file else None
