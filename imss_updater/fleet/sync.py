"""The leader's download: the source's current release into the mirror, verified, once.

The index is read as every run reads it (``check.fetch_index``: conditional GET, the index
signature checked as Update/VerifyIndexSignature asks, the verified body kept in the
database), and the mirror takes exactly those bytes. Each package the index offers for a
catalog component is downloaded into the release being written, its ``.sig`` beside it,
and verified as Update/VerifySignature asks; a package already in the current or previous
release, or kept from an attempt that failed (same path, same size), is carried over
without a download.

A release is published only when it is complete: every package the index names for a
component the fleet updates (scheduled, licensed and enabled: the settings are shared, so
that is every node's set) is in it, verified. If one cannot be mirrored (a timeout, an
HTTP error, a dead proxy, a refused signature, a full disk), the current release stays
current (the members keep a consistent set), what was verified is kept for the next try
(``Mirror.hold``), and ``SyncResult.failed`` names each component with the reason; the
leader records them (fleet/behind.py) and its next scheduled run tries again. A component
the index no longer names has nothing to transfer: it is not a failure. A package of a
component nobody updates that fails is left out without holding the release back. The
release is published only if this node still leads at that moment.

The mirror mirrors Update/UpdateServer. Components whose role is TMASEServerurl are
mirrored too when that is the same source; when it is another one they are not mirrored
(a member would fetch them from the origin).
"""

from __future__ import annotations

import logging
import posixpath
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote

from imss_updater.catalog import Component
from imss_updater.fleet.mirror import INDEX_SIGNATURE, Mirror, MirrorPathError, Release, release_id
from imss_updater.run.check import INDEX_NAME, base_url, fetch_index
from imss_updater.run.context import RunContext
from imss_updater.run.index_trust import MAX_INDEX_SIGNATURE_BYTES
from imss_updater.run.planner import unusable
from imss_updater.run.verify import MAX_SIGNATURE_BYTES
from imss_updater.settings import Settings
from imss_updater.source import serverini, signature
from imss_updater.source.http import FetchError, HttpClient
from imss_updater.versions import Version

log = logging.getLogger(__name__)


class SyncFailed(Exception):
    """The release could not be mirrored at all; the message is the one-line reason."""


class LostLead(SyncFailed):
    """This node stopped leading before it could publish: not a failure of the origin."""


@dataclass(frozen=True)
class PackageFailure:
    """A package that could not be mirrored: its component, the version the index offers,
    and the one-line cause (naming the URL)."""

    component: str
    version: Version | None
    reason: str


@dataclass
class SyncResult:
    release: str
    published: bool  # a new release became current now
    downloaded: list[str] = field(default_factory=list)  # relative paths fetched from the origin
    carried: list[str] = field(default_factory=list)  # taken from the release before
    failed: dict[str, PackageFailure] = field(default_factory=dict)  # held the release back
    left_out: dict[str, PackageFailure] = field(default_factory=dict)  # components nobody updates


def sync_mirror(context: RunContext, catalog: Sequence[Component], settings: Settings,
                client: HttpClient, mirror: Mirror, still_leading: Callable[[], bool]) -> SyncResult:
    """Mirror the source's current release (see the module text); return what it did.
    Raise SyncFailed if the index cannot be used or this node stopped leading."""
    base = settings.update_server.rstrip("/")
    index = fetch_index(context, base, client, settings)
    if isinstance(index, str):
        raise SyncFailed(f"update source {base}: {index}")
    cached = context.database.cached_index(f"{base}/{INDEX_NAME}")
    if cached is None:
        raise SyncFailed("the index just read is not in the database")
    body = cached.body
    identifier = release_id(body)
    if mirror.current() == identifier:
        log.debug("mirror: release %s is current already", identifier)
        return SyncResult(identifier, published=False)
    index_signature = cached.signature
    if index_signature is None:  # not needed here, but a member may want it: keep it too
        try:
            index_signature = client.fetch_optional(f"{base}/{INDEX_SIGNATURE}",
                                                    max_bytes=MAX_INDEX_SIGNATURE_BYTES)
        except FetchError as error:
            log.info("mirror: no index signature kept: %s", error.reason)
    required = {component.id for component in catalog
                if component.id in settings.scheduled_components
                and unusable(component, settings, context.today()) is None}
    release = mirror.begin(body)
    try:
        result = SyncResult(identifier, published=False)
        seen: set[str] = set()
        refused_paths: dict[str, str] = {}  # relative path -> why (a package two components share)
        for component in catalog:
            if base_url(component, settings).rstrip("/") != base:
                continue
            entry = index.lookup(component.au_key, component.is_engine)
            if entry is None:
                continue  # the origin offers nothing for it (or no longer): nothing to transfer
            try:
                relative = mirror_path(entry.path)
                if relative in refused_paths:
                    raise _PackageRefused(refused_paths[relative])
                if relative not in seen:
                    seen.add(relative)
                    try:
                        _mirror_package(context, component, settings, client, base, release, relative,
                                        entry.size, result)
                    except _PackageRefused as refused:
                        refused_paths[relative] = str(refused)
                        raise
            except _PackageRefused as refused:
                failure = PackageFailure(component.id, entry.version, str(refused))
                context.progress(component.id, "failed", 0, 0)
                if component.id in required:
                    log.error("mirror: %s %s not mirrored: %s", component.id, entry.version.display,
                              refused)
                    result.failed[component.id] = failure
                else:
                    log.warning("mirror: %s %s left out (not updated by the fleet): %s", component.id,
                                entry.version.display, refused)
                    result.left_out[component.id] = failure
        if result.failed:
            mirror.hold(release)  # not published; what was verified is kept for the next try
            log.error("mirror: release %s not published (%d package(s) missing); release %s stays "
                      "current", identifier, len(result.failed), mirror.current() or "(none)")
            return result
        if not still_leading():
            raise LostLead("no longer the leader: release not published")
        mirror.publish(release, body, index_signature)
    except BaseException:
        release.discard()
        raise
    result.published = True
    return result


def mirror_path(path: str) -> str:
    """The relative path a member asks for (``payload_url``'s normalized form)."""
    try:
        serverini.payload_url("http://mirror", path)
    except serverini.PathEscapeError as error:
        raise _PackageRefused(str(error)) from error
    return posixpath.normpath(unquote(path))


class _PackageRefused(Exception):
    pass


def _mirror_package(context: RunContext, component: Component, settings: Settings, client: HttpClient,
                    base: str, release: Release, relative: str, size: int, result: SyncResult) -> None:
    if size > settings.max_download_bytes:
        raise _PackageRefused(f"too large: {size} bytes (Update/MaxDownloadMB)")
    signature_relative = serverini.signature_path(relative)
    try:
        if release.reuse(relative, size):
            release.reuse_signature(signature_relative)
            result.carried.append(relative)
            return
        target = release.path_for(relative)
    except MirrorPathError as error:
        raise _PackageRefused(str(error)) from error
    url = serverini.payload_url(base, relative)
    log.info("mirror: downloading %s from %s", relative, url)
    context.progress(component.id, "downloading", 0, size)
    try:
        client.download(url, target, expected_size=size, max_bytes=settings.max_download_bytes,
                        progress=lambda done, total: context.progress(component.id, "downloading",
                                                                      done, total))
        published = client.fetch_optional(serverini.payload_url(base, signature_relative),
                                          max_bytes=MAX_SIGNATURE_BYTES)
    except FetchError as error:
        target.unlink(missing_ok=True)
        raise _PackageRefused(error.reason) from error
    signature_file = release.path_for(signature_relative)
    if published is not None:
        signature_file.write_bytes(published)
    try:
        _verify(settings, target, signature_file if published is not None else None)
    except _PackageRefused as refused:
        target.unlink(missing_ok=True)
        signature_file.unlink(missing_ok=True)
        raise _PackageRefused(f"{url}: {refused}") from refused
    result.downloaded.append(relative)
    context.progress(component.id, "done", 0, 0)


def _verify(settings: Settings, archive: Path, signature_file: Path | None) -> None:
    """Refuse what the members would refuse from the origin (they check again anyway)."""
    if settings.verify_signature == "no":
        return
    if signature_file is None:
        if settings.verify_signature == "yes":
            raise _PackageRefused("no signature published and Update/VerifySignature=yes")
        return
    trust = Path(settings.signature_ca_file) if settings.signature_ca_file else None
    try:
        signature.verify_detached(archive, signature_file, trust)
    except signature.SignatureError as error:
        raise _PackageRefused(error.reason) from error
