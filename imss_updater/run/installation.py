"""Install: put a verified archive in place as the component's new generation and record
it (state and success event in one transaction, restart still owed)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from imss_updater import messages
from imss_updater.catalog import Component
from imss_updater.database.db import InstalledPackage, NewEvent
from imss_updater.run import trust
from imss_updater.run.context import RunContext
from imss_updater.run.report import ComponentFailure
from imss_updater.settings import Settings
from imss_updater.store import install
from imss_updater.versions import Version

log = logging.getLogger(__name__)

UNPACKED_FACTOR = 4  # an archive may unpack to at most this many times MaxDownloadMB


def install_archive(
    context: RunContext,
    component: Component,
    settings: Settings,
    archive: Path,
    version: Version,
    *,
    unsigned: bool,
    kind: str,
    note: str | None = None,
    package_bytes: Path | None = None,
) -> None:
    """Install a verified archive as the component's new generation and record it (state
    and success event in one transaction, restart still owed), with its SHA-256 in the
    replay memory and, when signed, the component's signature pin. Must run under the lock.
    Raise ComponentFailure with the reason if the install is refused (a package already
    installed as another component or version) or fails. ``package_bytes``: the file the
    replay memory hashes when it is not the archive itself (a raw pattern file wrapped)."""
    package = trust.admit(context, component, package_bytes or archive, version, unsigned=unsigned)
    state = _install(context, component, settings, archive, version, None)
    _record(context, component, version, state, package, kind=kind, note=note)


def install_streamed(
    context: RunContext,
    component: Component,
    settings: Settings,
    archive: Path,
    version: Version,
    *,
    kind: str,
    fill: Callable[[Path], InstalledPackage],
) -> None:
    """Install as ``install_archive``, the new generation made by ``fill(staging)``: it
    downloads into ``archive``, streams into the staging directory, and returns the admitted
    package only once it verified (see run.fetch). Must run under the lock. Raise
    ComponentFailure with the reason if ``fill`` refuses the package or the install fails."""
    admitted: list[InstalledPackage] = []
    state = _install(context, component, settings, archive, version,
                     lambda staging: admitted.append(fill(staging)))
    _record(context, component, version, state, admitted[0], kind=kind, note=None)


def _install(
    context: RunContext, component: Component, settings: Settings, archive: Path, version: Version,
    fill: Callable[[Path], None] | None,
) -> install.InstalledState:
    try:
        return context.store(component).install(
            archive, version.raw, max_unpacked_bytes=settings.max_download_bytes * UNPACKED_FACTOR,
            fill=fill,
        )
    except install.InstallError as error:
        raise ComponentFailure(error.why) from error


def _record(
    context: RunContext, component: Component, version: Version, state: install.InstalledState,
    package: InstalledPackage, *, kind: str, note: str | None,
) -> None:
    text = messages.downloaded(component, version.display)
    context.database.record_installed(
        component.id,
        state.current_version,
        state.previous_version,
        success=True,
        unsigned=not package.signed,
        restart_pending=True,
        event=NewEvent(kind, component.id, version.display, "success", text.en, text.ja, note),
        package=package,
    )
    log.info("%s%s", text.en, f" ({note})" if note else "")
