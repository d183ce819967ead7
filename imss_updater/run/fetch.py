"""Fetch: download one component's package into staging, checking its signature, hashing it
and unpacking it as the bytes arrive (run.pipeline); install it only once all of it
verified."""

from __future__ import annotations

import contextlib
import logging
import tempfile
import uuid
from pathlib import Path

from imss_updater import i18n
from imss_updater.catalog import Component
from imss_updater.database.db import InstalledPackage
from imss_updater.i18n import N_, Reason
from imss_updater.run import trust
from imss_updater.run.check import remember_cooldown
from imss_updater.run.context import RunContext
from imss_updater.run.installation import UNPACKED_FACTOR, install_streamed
from imss_updater.run.pipeline import Pipeline
from imss_updater.run.planner import Offer
from imss_updater.run.report import ComponentFailure
from imss_updater.run.verify import fetch_signature, trust_file
from imss_updater.settings import Settings
from imss_updater.source import serverini, signature
from imss_updater.source.http import FetchError, HttpClient
from imss_updater.store import layout
from imss_updater.store.generations import remove_tree

log = logging.getLogger(__name__)


def fetch_verify_install(
    context: RunContext, component: Component, offer: Offer, settings: Settings, client: HttpClient, kind: str
) -> None:
    entry = offer.entry
    if entry is None or offer.base_url is None:
        raise ComponentFailure(Reason(N_("nothing offered")))
    if entry.size > settings.max_download_bytes:
        raise ComponentFailure(Reason(
            N_("too large: %(size)s bytes exceeds the limit of %(limit)s MB (Update/MaxDownloadMB)"),
            {"size": entry.size, "limit": settings.max_download_bytes // (1024 * 1024)},
        ))
    try:
        url = serverini.payload_url(offer.base_url, entry.path)
        signature_url = serverini.payload_url(offer.base_url, serverini.signature_path(entry.path))
    except serverini.PathEscapeError as error:
        raise ComponentFailure(str(error)) from error
    with contextlib.ExitStack() as stack:
        # Written through the staging directory as opened and checked: another user who can
        # change lib/ cannot swap .staging for a link meanwhile.
        staging = layout.open_staging(stack, context.root, for_children=True)
        _download_verify_install(context, component, offer, settings, client, kind, staging,
                                 url, signature_url)


def _download_verify_install(
    context: RunContext, component: Component, offer: Offer, settings: Settings, client: HttpClient,
    kind: str, staging: Path, url: str, signature_url: str,
) -> None:
    entry = offer.entry
    assert entry is not None and offer.base_url is not None  # checked by the caller
    token = uuid.uuid4().hex[:12]
    archive = staging / f"download-{component.id}-{token}.zip"
    signature_file = staging / f"download-{component.id}-{token}.sig"
    try:
        unsigned = fetch_signature(context, component, settings, client, signature_file,
                                   signature_url)
        install_streamed(
            context, component, settings, archive, entry.version, kind=kind,
            fill=lambda generation: _stream(context, component, offer, settings, client, url,
                                            archive, None if unsigned else signature_file,
                                            generation),
        )
    finally:
        archive.unlink(missing_ok=True)
        signature_file.unlink(missing_ok=True)


def _stream(
    context: RunContext, component: Component, offer: Offer, settings: Settings, client: HttpClient,
    url: str, archive: Path, signature_file: Path | None, generation: Path,
) -> InstalledPackage:
    """Download into ``archive`` while the pipeline hashes, verifies and unpacks the bytes
    into ``generation`` (the new generation's empty staging directory); return the admitted
    package once all of it verified and is unpacked there. Raise ComponentFailure (or
    InstallError, ArchiveError) otherwise; the provisional files are removed either way."""
    entry = offer.entry
    assert entry is not None and offer.base_url is not None  # checked by the caller
    limit = settings.max_download_bytes * UNPACKED_FACTOR
    work = Path(tempfile.mkdtemp(prefix=f"{component.id}.stream-", dir=generation.parent))
    pipeline = Pipeline(signature_file, trust_file(settings), work, limit)
    try:
        log.info("downloading %s %s from %s", component.id, entry.version.display, url)
        context.progress(component.id, "downloading", 0, entry.size)
        try:
            client.download(
                url, archive, expected_size=entry.size, max_bytes=settings.max_download_bytes,
                progress=lambda done, total: context.progress(component.id, "downloading", done, total),
                tee=pipeline,
            )
        except FetchError as error:
            remember_cooldown(context, offer.base_url, error)
            # Name the staging directory as the administrator knows it, not by its descriptor.
            shown = str(context.root / "lib" / layout.STAGING)
            raise ComponentFailure(i18n.replaced(error.why, str(archive.parent), shown)) from error
        context.progress(component.id, "verifying", 0, 0)
        digest = pipeline.finish()
        package = trust.admit(context, component, archive, entry.version,
                              unsigned=signature_file is None, digest=digest)
        context.progress(component.id, "installing", 0, 0)
        streamed = pipeline.unpacker.finish(archive, generation)
        log.debug("%s: %s", component.id, "unpacked as it downloaded" if streamed
                  else f"unpacked after the download ({pipeline.unpacker.stopped})")
        return package
    except signature.SignatureError as error:
        raise ComponentFailure(error.why) from error
    finally:
        pipeline.abort()
        remove_tree(work)
