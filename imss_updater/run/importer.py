"""``imss-updater import FILE``: apply a separately obtained component package (seed 000).

For an isolated gateway: the administrator brings the zip as published (and its ``.sig``
when there is one) on other media. The package goes through the same steps as a
download, minus the network: identify -> check licence, feature and version -> lock ->
repair an interrupted run -> copy into staging -> verify -> install (crash-safe, one
previous generation kept) -> restart -> record, logged as a manual update.

Identification: ``component_id`` and ``version`` from the options, else from the file
name ``<component id>-<version>.zip`` or ``<component id>_<version>.zip`` (the id is the
longest catalog id the name starts with, so ``virus_pattern_1569700.zip`` works). A
version is written as server.ini writes it (``1569700``, ``21.0.1008``); a pattern's
displayed form (``15.697.00``) is accepted too and stored as its integer.
The signature is the file beside the package with the same base name and ``.sig``.
A raw pattern file as seed 000 obtains it (``lpt$vpn.###``) is taken too: see raw_pattern.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import shutil
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from imss_updater import messages, oserrors
from imss_updater.catalog import Component
from imss_updater.database.db import Database, NewEvent
from imss_updater.i18n import N_, Reason, stored
from imss_updater.run import raw_pattern
from imss_updater.run.installation import install_archive
from imss_updater.run.planner import unusable
from imss_updater.run.restart import restart_and_settle
from imss_updater.run.trust import refuse_unsigned_if_pinned
from imss_updater.run.updater import ComponentFailure, Outcome, RunError, RunReport, Updater
from imss_updater.settings import Settings
from imss_updater.source import signature
from imss_updater.store import layout, lock
from imss_updater.versions import Version, VersionError

log = logging.getLogger(__name__)

KIND = "manual"  # the event kind of an import (SPEC: a manual update)
RUN_KIND = "import"  # how the last run is shown in ``status``
_SEPARATORS = ("-", "_")


class PackageError(ValueError):
    """The package cannot be identified (no such file, unknown component, no version):
    a usage error, nothing was recorded. ``reason``: the text, a Reason when it is in the
    catalog (``str()``: English)."""

    def __init__(self, reason: str | Reason) -> None:
        super().__init__(str(reason))
        self.reason = reason


def identify(
    package: Path,
    catalog: Sequence[Component],
    component_id: str | None,
    version: str | None,
    installed: Mapping[str, Version | None] | None = None,
) -> tuple[Component, Version]:
    """Given the package path, the catalog, the optional ``--component``/``--version`` and
    what is installed (for a raw pattern file's roll), return the component and version to
    install. Raise PackageError if either cannot be determined or the component is not in
    the catalog."""
    by_id = {component.id: component for component in catalog}
    raw = raw_pattern.parse_name(package.name)
    if raw is not None:
        return _identify_raw(package, by_id, raw, component_id, version, installed or {})
    stem = package.name[: -len(".zip")] if package.name.lower().endswith(".zip") else package.stem
    named_id, named_version = _split_name(stem, by_id)
    chosen_id = component_id or named_id
    if chosen_id is None:
        raise PackageError(Reason(N_("cannot tell the component from the file name %(file)s (expected "
                                     "<component id>-<version>.zip); give --component ID"),
                                  {"file": repr(package.name)}))
    component = by_id.get(chosen_id)
    if component is None:
        raise PackageError(Reason(N_("unknown component %(id)s (known: %(known)s)"),
                                  {"id": repr(chosen_id), "known": ", ".join(by_id)}))
    if version is None:
        if named_id is not None and named_id != component.id:
            raise PackageError(Reason(N_("the file name says %(named)s, --component says %(given)s; "
                                         "give --version too"), {"named": named_id, "given": component.id}))
        version = named_version
    if version is None:
        raise PackageError(Reason(N_("cannot tell the version from the file name %(file)s; give --version V"),
                                  {"file": repr(package.name)}))
    return component, parse_version(component, version)


def _identify_raw(
    package: Path,
    by_id: dict[str, Component],
    raw: tuple[str, int],
    component_id: str | None,
    version: str | None,
    installed: Mapping[str, Version | None],
) -> tuple[Component, Version]:
    named_id, number = raw
    if component_id is not None and component_id != named_id:
        raise PackageError(Reason(N_("%(file)s is a raw %(component)s file, --component says %(given)s"),
                                  {"file": package.name, "component": named_id, "given": component_id}))
    component = by_id.get(named_id)
    if component is None:
        raise PackageError(Reason(N_("%(file)s is a raw %(component)s file, which the catalog does not have"),
                                  {"file": package.name, "component": named_id}))
    try:
        if version is None:
            return component, raw_pattern.version_for(number, installed.get(component.id))
        wanted = parse_version(component, version)
        raw_pattern.check_version(number, wanted)
    except raw_pattern.RawPatternError as error:
        raise PackageError(error.reason) from error
    return component, wanted


def _split_name(stem: str, by_id: dict[str, Component]) -> tuple[str | None, str | None]:
    """Split ``virus_pattern-1569700`` into id and version text (longest known id first)."""
    for component_id in sorted(by_id, key=len, reverse=True):
        if stem == component_id:
            return component_id, None
        for separator in _SEPARATORS:
            prefix = component_id + separator
            if stem.startswith(prefix):
                return component_id, stem[len(prefix):]
    return None, None


def parse_version(component: Component, text: str) -> Version:
    """Given a component and a version as typed, return its Version in the form server.ini
    uses for that kind. Raise PackageError if it is not a version."""
    try:
        version = Version.parse(text)
    except VersionError as error:
        raise PackageError(Reason(N_("not a version: %(text)s (digits and dots, e.g. 1569700 or 21.0.1008)"),
                                  {"text": repr(text)})) from error
    if component.is_engine or "." not in version.raw:
        return version
    fields = version.fields
    if len(fields) == 3 and fields[1] < 1000 and fields[2] < 100:
        return Version.pattern(fields[0] * 100000 + fields[1] * 100 + fields[2])
    raise PackageError(Reason(N_("%(name)s versions are pattern numbers (1569700, or 15.697.00), "
                                 "not %(text)s"), {"name": component.name_en, "text": repr(text)}))


def import_package(
    database: Database,
    root: Path,
    package: Path,
    *,
    component_id: str | None,
    version: str | None,
    force: bool = False,
    today: Callable[[], datetime.date] = datetime.date.today,
) -> RunReport:
    """Install the component package ``package`` as a manual update and return the report.

    Refused (a failure event with the reason, nothing installed): an unlicensed or disabled
    component, a package over Update/MaxDownloadMB, a version not newer than the installed
    one (unless ``force``), a missing signature with VerifySignature=yes or for a component
    signed before (SPEC 3.1), a bad signature, a package installed before as another
    component or version, an unsound archive. A failed restart rolls the install back, as for a download.

    Raise PackageError if the package cannot be identified (nothing recorded), RunError if
    another process holds the download lock, SettingsError if the settings are invalid.
    """
    updater = Updater(database, root, today=today)
    catalog, settings = updater.load()
    if not package.is_file():
        raise PackageError(Reason(N_("no such file: %(path)s"), {"path": str(package)}))
    component, wanted = identify(package, catalog, component_id, version, updater.installed_versions(catalog))
    report = RunReport(kind=KIND)
    try:
        with lock.download_lock(root):
            pending = updater.reconcile(catalog, KIND)
            installed = _import_locked(updater, report, settings, component, wanted, package, force)
            # Same restart (and rollback if it fails) as a download run.
            restart_and_settle(
                updater, report, settings, catalog, [component] if installed else [], pending, KIND
            )
    except lock.LockBusy as error:
        log.warning("%s", error)
        raise RunError(str(error)) from error
    database.record_run(RUN_KIND, report.ok, stored(Reason(N_("%(package)s: %(summary)s"), {
        "package": package.name, "summary": report.summary_reason()})))
    return report


def _import_locked(
    updater: Updater,
    report: RunReport,
    settings: Settings,
    component: Component,
    wanted: Version,
    package: Path,
    force: bool,
) -> bool:
    """Check, copy, verify and install under the lock; return True if it was installed."""
    reason = _refusal(updater, settings, component, wanted, package, force)
    if reason is not None:
        _fail(updater, report, component, wanted, reason)
        return False
    with contextlib.ExitStack() as stack:
        # Through the staging directory as opened and checked (another user who can change
        # lib/ cannot swap .staging for a link meanwhile).
        staging = layout.open_staging(stack, updater.root, for_children=True)
        return _copy_verify_install(updater, report, settings, component, wanted, package, staging)


def _copy_verify_install(
    updater: Updater,
    report: RunReport,
    settings: Settings,
    component: Component,
    wanted: Version,
    package: Path,
    staging: Path,
) -> bool:
    token = uuid.uuid4().hex[:12]
    # "download-" names: a crash leaves files that the next run's reconcile removes.
    copy = staging / f"download-{component.id}-{token}.zip"
    signature_copy = staging / f"download-{component.id}-{token}.sig"
    raw = raw_pattern.parse_name(package.name) is not None
    if raw:
        # The signature is over the raw file; the archive installed wraps the copy verified.
        copy = staging / f"download-{component.id}-{token}.raw"
    wrapped = staging / f"download-{component.id}-{token}.zip"
    try:
        # Verify and install the same bytes: a copy cannot change under us (removable media).
        try:
            shutil.copyfile(package, copy)
        except OSError as error:
            _fail(updater, report, component, wanted, Reason(N_("cannot copy %(path)s: %(error)s"),
                                                             {"path": str(package), "error": _cause(error)}))
            return False
        try:
            unsigned = _verify(settings, component, package, copy, signature_copy)
            if unsigned and settings.verify_signature == "auto":
                refuse_unsigned_if_pinned(updater, component)
        except signature.SignatureError as error:
            _fail(updater, report, component, wanted, error.why)
            return False
        except ComponentFailure as failure:
            _fail(updater, report, component, wanted, failure.reason)
            return False
        if raw:
            try:
                raw_pattern.wrap(copy, package.name, wrapped)
            except OSError as error:
                _fail(updater, report, component, wanted, Reason(
                    N_("cannot stage %(file)s: %(error)s"), {"file": package.name, "error": _cause(error)}))
                return False
        try:
            install_archive(updater, component, settings, wrapped, wanted, unsigned=unsigned, kind=KIND,
                            note=f"imported from {package}", package_bytes=copy if raw else None)
        except ComponentFailure as failure:
            _fail(updater, report, component, wanted, failure.reason)
            return False
    finally:
        copy.unlink(missing_ok=True)
        wrapped.unlink(missing_ok=True)
        signature_copy.unlink(missing_ok=True)
    done = messages.downloaded(component, wanted.display)
    report.outcomes.append(Outcome(component.id, wanted.display, True, done.en, message_ja=done.ja))
    return True


def _refusal(
    updater: Updater, settings: Settings, component: Component, wanted: Version, package: Path, force: bool
) -> str | Reason | None:
    """Return why the package must not be installed, or None."""
    why_not = unusable(component, settings, updater.today())
    if why_not is not None:
        return why_not
    size = package.stat().st_size
    if size > settings.max_download_bytes:
        return Reason(
            N_("too large: %(size)s bytes exceeds the limit of %(limit)s MB (Update/MaxDownloadMB)"),
            {"size": size, "limit": settings.max_download_bytes // (1024 * 1024)})
    current = updater.installed_versions([component]).get(component.id)
    if current is not None and not wanted > current and not force:
        if wanted == current:
            return Reason(N_("%(version)s is the installed version; use --force to install it anyway"),
                          {"version": str(wanted)})
        return Reason(N_("%(version)s is older than the installed %(installed)s; use --force to "
                         "install it anyway"), {"version": str(wanted), "installed": str(current)})
    return None


def _cause(error: OSError) -> str | Reason:
    """``error.strerror or error`` as before, in the reader's language when it is known."""
    return oserrors.describe(error) if error.strerror else str(error)


def _verify(
    settings: Settings, component: Component, package: Path, copy: Path, signature_copy: Path
) -> bool:
    """Verify the copy against the ``.sig`` beside the package as VerifySignature asks;
    return True if it is accepted unsigned. Raise SignatureError if it must be rejected."""
    published = signature_beside(package)
    if settings.verify_signature == "no":
        return True
    if not published.is_file():
        if settings.verify_signature == "yes":
            raise signature.SignatureError(Reason(
                N_("no signature beside the package (%(file)s) and Update/VerifySignature=yes"),
                {"file": published.name}))
        log.warning("%s: no signature beside %s; accepted unsigned (VerifySignature=auto)",
                    component.id, package)
        return True
    try:
        shutil.copyfile(published, signature_copy)
    except OSError as error:
        raise signature.SignatureError(Reason(N_("cannot read %(path)s: %(error)s"),
                                              {"path": str(published), "error": _cause(error)})) from error
    trust = Path(settings.signature_ca_file) if settings.signature_ca_file else None
    signature.verify_detached(copy, signature_copy, trust)
    return False


def signature_beside(package: Path) -> Path:
    """Return the path of the package's detached signature: same base name, ``.sig``."""
    name = package.name
    base = name[: -len(".zip")] if name.lower().endswith(".zip") else name
    return package.with_name(base + ".sig")


def _fail(updater: Updater, report: RunReport, component: Component, version: Version,
          reason: str | Reason) -> None:
    text = messages.update_failed(component, version.display, reason)
    updater.database.add_event(NewEvent(KIND, component.id, version.display, "failure", text.en, text.ja,
                                        str(reason)))
    report.outcomes.append(Outcome(component.id, version.display, False, text.en, reason, message_ja=text.ja))
    log.error("%s", text.en)
