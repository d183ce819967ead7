"""Import a component file from the console: the CLI's ``import`` (seed 000) as a form.

GET ``/import`` shows the form with a fresh upload ticket (see ``uploads``); POST
``/import/<ticket>`` takes the package (a zip or a raw ``lpt$vpn.###``) and its optional
``.sig``, puts them side by side under their own names in a directory of their own under
``<state>/uploads``, and starts the same importer as ``imss-updater import`` as a console
job: the result is the status page's dialog, the run is logged as a manual update.
"""

from __future__ import annotations

import logging
import os
import re
import uuid
from pathlib import Path

from flask import Blueprint, abort, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from werkzeug.datastructures import FileStorage

from imss_updater.i18n import N_, Reason
from imss_updater.run.importer import signature_beside
from imss_updater.store import lock
from imss_updater.web import uploads
from imss_updater.web.context import console, notify
from imss_updater.web.jobs import ImportRequest, JobBusy
from imss_updater.web.labels import label

log = logging.getLogger(__name__)

blueprint = Blueprint("imports", __name__)

# What a package's name may be: the importer reads the component and version from it.
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._$+-]{0,119}$")


@blueprint.route("/import")
def page() -> ResponseReturnValue:
    context = console()
    with context.pool.connection() as database:
        catalog = database.catalog()
    return render_template(
        "import.html",
        ticket=context.uploads.issue(),
        catalog=catalog,
        available=context.config.state is not None,
        limit_mb=uploads.UPLOAD_MAX_BYTES // (1024 * 1024) - 1,
    )


@blueprint.route("/import/<ticket>", methods=["POST"])
def upload(ticket: str) -> ResponseReturnValue:
    context = console()
    if not context.uploads.take(ticket):
        notify(N_("The import form has expired; open it again."), "error")
        return redirect(url_for("imports.page"))
    if context.config.state is None:
        notify(N_("Imports need the updater's state directory, which this console was not given."),
               "error")
        return redirect(url_for("imports.page"))
    package = request.files.get("package")
    if package is None or not package.filename:
        notify(N_("Choose the component file to import."), "error")
        return redirect(url_for("imports.page"))
    name = _base_name(package.filename)
    if name is None or name.lower().endswith(".sig"):
        notify(N_("Not a file name the importer accepts: %(name)s"), "error", name=package.filename[:120])
        return redirect(url_for("imports.page"))
    with context.pool.connection() as database:
        known = {component.id for component in database.catalog()}
    component_id = request.form.get("component") or None
    if component_id is not None and component_id not in known:
        abort(400, description=f"unknown component: {component_id}")
    directory = uploads.upload_directory(context.config.state) / uuid.uuid4().hex
    directory.mkdir(mode=0o700)
    placed = _place(package, directory / name)
    signature = request.files.get("signature")
    if signature is not None and signature.filename:
        _place(signature, signature_beside(placed))
    job = ImportRequest(placed, directory, component_id, (request.form.get("version") or "").strip() or None,
                        request.form.get("force") == "yes")
    if lock.lock_holder(context.config.root) is not None:
        _discard(directory)
        notify(N_("Another process is downloading files."), "error")
        return redirect(url_for("status.page"))
    try:
        context.runner.start("import", [], upload=job)
    except JobBusy:
        _discard(directory)
        notify(N_("Another process is downloading files."), "error")
        return redirect(url_for("status.page"))
    log.info("console import of %s started", name)
    notify(N_("Started: %(kind)s."), "info", kind=Reason(label("job.kind", "import")))
    return redirect(url_for("status.page"))


@blueprint.teardown_app_request
def _remove_unused_parts(_error: BaseException | None) -> None:
    uploads.remove_parts(request)


def _base_name(filename: str) -> str | None:
    """The file's own name as the browser sent it (a path's last part), if it is safe."""
    name = filename.replace("\\", "/").rsplit("/", 1)[-1]
    return name if _SAFE_NAME.match(name) else None


def _place(part: FileStorage, target: Path) -> Path:
    """Move an uploaded part to ``target`` (a rename when it was written into the upload
    directory, as ConsoleRequest does; else written out)."""
    stream = part.stream
    written = getattr(stream, "name", None)
    if isinstance(written, str) and Path(written).parent == target.parent.parent:
        stream.close()
        os.replace(written, target)
    else:
        part.save(target)
    return target


def _discard(directory: Path) -> None:
    for path in directory.iterdir():
        path.unlink()
    directory.rmdir()
