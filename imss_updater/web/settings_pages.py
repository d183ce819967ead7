"""Settings: update source, proxy, schedule, notifications, licenses (view).

Each page turns its form into ``tb_global_setting`` rows, checks every changed row with
``settings.validate_value`` and ``notify.config.validate_value`` (in the context of the
page's other changes) and the whole set with both loaders, and writes nothing unless all
pass. The updater and the notifier read the rows fresh for every run, so a change takes
effect without a restart. Secrets are write-only: the form shows only whether one is set;
an empty field keeps it. The notifications page also sends a test message ("send test")
on each configured channel, with the saved settings, and shows each outcome.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Callable, Mapping
from urllib.parse import urlsplit

from flask import Blueprint, abort, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from werkzeug.datastructures import MultiDict

from imss_updater import notify as notifications
from imss_updater.catalog import Component
from imss_updater.i18n import N_, Reason
from imss_updater.notify import config as notify_config
from imss_updater.settings import FREQUENCIES, SECRET_NAMES, SIGNATURE_MODES, WEEKDAYS, SettingsError
from imss_updater.settings_check import problems as settings_problems
from imss_updater.settings_check import validate_value
from imss_updater.settings_values import Problem
from imss_updater.web.context import _, console, language, notify
from imss_updater.web.labels import LABELS, label

log = logging.getLogger(__name__)

AU_HOST_PATH = "imsva91-p.activeupdate.trendmicro.co.jp/activeupdate/japan"
MINUTES = ("00", "15", "30", "45")
PAGES = ("source", "proxy", "schedule", "notifications", "licenses")

Rows = Mapping[tuple[str, str], str]
Changes = dict[tuple[str, str], str]
Form = MultiDict[str, str]

# The notifications page: its form fields are named after the rows they set.
NOTIFY = notify_config.SECTION
NOTIFY_TEXT_FIELDS = (
    "SMTPServer", "SMTPPort", "SMTPSecurity", "SMTPUser", "MailFrom", "MailTo", "SMTPCAFile",
    "SNMPServer", "SNMPVersion", "SNMPv3User", "SNMPNotifyType",
    "Language", "HostName", "RepeatFailureHours", "NotifyRecovery",
)
NOTIFY_SECRETS = ("SMTPPassword", "SNMPCommunity", "SNMPv3AuthPassword", "SNMPv3PrivPassword")
NOTIFY_SWITCHES = ("Mail", "Trap")
NOTIFY_TEMPLATES = ("Subject", "Message")
NOTIFY_DEFAULTS = {"Language": "en", "HostName": "", "SMTPCAFile": "", "SNMPNotifyType": "trap",
                   "RepeatFailureHours": "24", "NotifyRecovery": "yes"}

blueprint = Blueprint("settings", __name__, url_prefix="/settings")


# -- the form of each page <-> rows ------------------------------------------------------------

def _source_values(rows: Rows) -> dict[str, object]:
    server = rows.get(("Update", "UpdateServer"), "")
    tmase = rows.get(("Update", "TMASEServerurl"), "")
    parts = urlsplit(server)
    is_au = f"{parts.netloc}{parts.path}".rstrip("/") == AU_HOST_PATH
    return {
        "source": "au" if is_au else "other",
        "protocol": parts.scheme if is_au and parts.scheme in ("http", "https") else "http",
        "other_url": "" if is_au else server,
        "tmase": "same" if tmase == server else "own",
        "tmase_url": "" if tmase == server else tmase,
        "verify": rows.get(("Update", "VerifySignature"), "auto"),
        "ca_file": rows.get(("Update", "CAFile"), ""),
        "signature_ca_file": rows.get(("Update", "SignatureCAFile"), ""),
        "max_mb": rows.get(("Update", "MaxDownloadMB"), ""),
    }


def _source_changes(form: Form, rows: Rows, catalog: list[Component]) -> tuple[Changes, list[str]]:
    errors: list[str] = []
    if form.get("source") == "au":
        protocol = form.get("protocol", "http")
        if protocol not in ("http", "https"):
            errors.append("Protocol: must be http or https")
        server = f"{protocol}://{AU_HOST_PATH}"
    elif form.get("source") == "other":
        server = form.get("other_url", "").strip()
        if not server:
            errors.append("Update/UpdateServer: enter the URL of the other update source")
    else:
        errors.append("Update source: choose ActiveUpdate or another source")
        server = ""
    tmase = server if form.get("tmase", "same") == "same" else form.get("tmase_url", "").strip()
    changes = {
        ("Update", "UpdateServer"): server.rstrip("/") if server else server,
        ("Update", "TMASEServerurl"): tmase.rstrip("/") if tmase else tmase,
        ("Update", "VerifySignature"): form.get("verify", ""),
        ("Update", "CAFile"): form.get("ca_file", "").strip(),
        ("Update", "SignatureCAFile"): form.get("signature_ca_file", "").strip(),
        ("Update", "MaxDownloadMB"): form.get("max_mb", "").strip(),
    }
    return changes, errors


def _proxy_values(rows: Rows) -> dict[str, object]:
    return {
        "use": rows.get(("Update", "UseProxySetting"), "no") == "yes",
        "host": rows.get(("Proxy", "ProxyHost"), ""),
        "port": rows.get(("Proxy", "ProxyPort"), ""),
        "user": rows.get(("Proxy", "ProxyUser"), ""),
        "password_set": bool(rows.get(("Proxy", "ProxyPassword"), "")),
    }


def _proxy_changes(form: Form, rows: Rows, catalog: list[Component]) -> tuple[Changes, list[str]]:
    changes = {
        ("Update", "UseProxySetting"): "yes" if form.get("use") else "no",
        ("Proxy", "ProxyHost"): form.get("host", "").strip(),
        ("Proxy", "ProxyPort"): form.get("port", "").strip(),
        ("Proxy", "ProxyUser"): form.get("user", ""),
    }
    errors: list[str] = []  # the host's and port's form is checked with the other rows
    password = form.get("password", "")
    if form.get("password_clear"):
        changes[("Proxy", "ProxyPassword")] = ""
    elif password:
        changes[("Proxy", "ProxyPassword")] = password
    return changes, errors


def _schedule_values(rows: Rows) -> dict[str, object]:
    scheduled = {part.strip() for part in rows.get(("Update", "ScheduledComponents"), "").split(",")}
    return {
        "enabled": rows.get(("Update", "ScheduledUpdate"), "yes") == "yes",
        "frequency": rows.get(("Update", "ScheduleFrequency"), "15min"),
        "minute": rows.get(("Update", "ScheduleMinute"), "00"),
        "time": rows.get(("Update", "ScheduleTime"), "03:00"),
        "weekday": rows.get(("Update", "ScheduleWeekday"), "sun"),
        "components": scheduled,
    }


def _schedule_changes(form: Form, rows: Rows, catalog: list[Component]) -> tuple[Changes, list[str]]:
    chosen = set(form.getlist("components"))
    known = [component.id for component in catalog]
    errors = [f"Update/ScheduledComponents: unknown component {value!r}" for value in chosen
              if value not in known]
    changes = {
        ("Update", "ScheduledUpdate"): "yes" if form.get("enabled") else "no",
        ("Update", "ScheduleFrequency"): form.get("frequency", ""),
        ("Update", "ScheduleMinute"): form.get("minute", ""),
        ("Update", "ScheduleTime"): form.get("time", "").strip(),
        ("Update", "ScheduleWeekday"): form.get("weekday", ""),
        ("Update", "ScheduledComponents"): ",".join(cid for cid in known if cid in chosen),
    }
    return changes, errors


def notification_rule_names() -> list[tuple[str, str, str]]:
    """Return (group, outcome, row name prefix) for every event rule, in page order."""
    return [(group, outcome, notify_config.row_prefix(group, outcome))
            for group in notify_config.GROUPS for outcome in notify_config.OUTCOMES]


def _notifications_values(rows: Rows) -> dict[str, object]:
    values: dict[str, object] = {
        name: rows.get((NOTIFY, name), NOTIFY_DEFAULTS.get(name, "")) for name in NOTIFY_TEXT_FIELDS
    }
    for _group, _outcome, prefix in notification_rule_names():
        for suffix in (*NOTIFY_SWITCHES, *NOTIFY_TEMPLATES):
            values[prefix + suffix] = rows.get((NOTIFY, prefix + suffix), "")
    for name in NOTIFY_SECRETS:
        values[name + "_set"] = bool(rows.get((NOTIFY, name), ""))
    return values


def _notifications_changes(form: Form, rows: Rows, catalog: list[Component]) -> tuple[Changes, list[str]]:
    changes: Changes = {}
    for name in NOTIFY_TEXT_FIELDS:
        changes[(NOTIFY, name)] = form.get(name, "").strip()
    for _group, _outcome, prefix in notification_rule_names():
        for suffix in NOTIFY_SWITCHES:
            changes[(NOTIFY, prefix + suffix)] = "yes" if form.get(prefix + suffix) else "no"
        changes[(NOTIFY, prefix + "Subject")] = form.get(prefix + "Subject", "").strip()
        # Browsers send a textarea with CRLF line ends; the templates are stored with LF.
        message = form.get(prefix + "Message", "").replace("\r\n", "\n").replace("\r", "\n")
        changes[(NOTIFY, prefix + "Message")] = message.rstrip()
    for name in NOTIFY_SECRETS:
        # A kept secret is part of the page too, so that e.g. SNMPv3 without passwords is refused.
        if form.get(name + "_clear"):
            changes[(NOTIFY, name)] = ""
        else:
            changes[(NOTIFY, name)] = form.get(name, "") or rows.get((NOTIFY, name), "")
    return changes, []


ValuesOf = Callable[[Rows], dict[str, object]]
ChangesOf = Callable[[Form, Rows, list[Component]], tuple[Changes, list[str]]]
EDITABLE: dict[str, tuple[ValuesOf, ChangesOf]] = {
    "source": (_source_values, _source_changes),
    "proxy": (_proxy_values, _proxy_changes),
    "schedule": (_schedule_values, _schedule_changes),
    "notifications": (_notifications_values, _notifications_changes),
}


def problems_of(changes: Changes, rows: Rows, known: list[str]) -> list[Problem]:
    """Given a page's changes and the current rows, return every problem (empty: valid).

    Each changed row is checked with ``settings.validate_value`` and
    ``notify.config.validate_value`` against the rows as they would be after the whole page
    is saved, then the full set with both loaders for problems the page's rows cause
    together (a proxy switched on without a host, a relay without recipients).
    """
    merged = {**rows, **changes}
    problems: list[Problem] = []
    for (section, name), value in changes.items():
        try:
            validate_value(section, name, value, merged, known)
        except SettingsError as error:
            problems.extend(error.problems)
        try:
            notify_config.validate_value(section, name, value, merged)
        except SettingsError as error:
            problems.extend(problem for problem in error.problems if problem not in problems)
    together: list[Problem] = settings_problems(merged, known)
    if any(section == NOTIFY for section, _name in changes):
        together.extend(notify_config.load(merged, host="localhost")[1])
    problems.extend(problem for problem in together
                    if (problem.section, problem.name) in changes and problem not in problems)
    return problems


# The label of each row's field, as the pages show it (msgids).
FIELD_LABELS = {
    ("Update", "UpdateServer"): N_("URL"),
    ("Update", "TMASEServerurl"): N_("Antispam components (TMASE) source"),
    ("Update", "VerifySignature"): N_("Signature verification"),
    ("Update", "CAFile"): N_("CA certificates for HTTPS (file, empty = system)"),
    ("Update", "SignatureCAFile"): N_("Signature trust anchors (PEM file)"),
    ("Update", "MaxDownloadMB"): N_("Largest component accepted (MB)"),
    ("Update", "UseProxySetting"): N_("Use a proxy server for updates"),
    ("Proxy", "ProxyHost"): N_("Proxy server"),
    ("Proxy", "ProxyPort"): N_("Port"),
    ("Proxy", "ProxyUser"): N_("User name"),
    ("Proxy", "ProxyPassword"): N_("Password"),
    ("Update", "ScheduledUpdate"): N_("Enable scheduled update"),
    ("Update", "ScheduleFrequency"): N_("Update frequency"),
    ("Update", "ScheduleMinute"): N_("Minute (hourly)"),
    ("Update", "ScheduleTime"): N_("Time (daily/weekly)"),
    ("Update", "ScheduleWeekday"): N_("Day (weekly)"),
    ("Update", "ScheduledComponents"): N_("Components to update"),
}


def describe(problem: Problem) -> str:
    """Return ``problem`` in the page's language, named by the field the administrator
    typed (its label, then its row for those who use psql)."""
    row = f"{problem.section}/{problem.name}"
    if problem.cause is not None:
        why = _("not accepted, it would leave %(cause)s", cause=describe(problem.cause))
    elif problem.key is not None:
        why = _(problem.key, **dict(problem.values))
    elif problem.reason is not None:
        why = problem.reason.render(language())
    else:
        why = problem.why
    label = FIELD_LABELS.get((problem.section, problem.name))
    if label is None and problem.section == NOTIFY:
        label = LABELS["notify"].get(problem.name)
    if label is None:
        return _("%(row)s: %(why)s", row=row, why=why)
    return _("%(label)s (%(row)s): %(why)s", label=_(label), row=row, why=why)


def validate(changes: Changes, rows: Rows, known: list[str]) -> list[str]:
    """Given a page's changes and the current rows, return every problem as text (empty:
    valid); see ``problems_of``."""
    return [str(problem) for problem in problems_of(changes, rows, known)]


# -- views ---------------------------------------------------------------------------------------

@blueprint.route("/")
def index() -> ResponseReturnValue:
    return redirect(url_for("settings.page", name="source"))


@blueprint.route("/<name>", methods=["GET"])
def page(name: str) -> ResponseReturnValue:
    if name not in PAGES:
        abort(404)
    with console().pool.connection() as database:
        rows = database.settings_rows()
        catalog = database.catalog()
    return _render(name, rows, catalog, [], 200)


@blueprint.route("/<name>", methods=["POST"])
def save(name: str) -> ResponseReturnValue:
    if name not in EDITABLE:
        abort(404 if name not in PAGES else 405)
    changes_of = EDITABLE[name][1]
    with console().pool.connection() as database:
        rows = database.settings_rows()
        catalog = database.catalog()
        changes, errors = changes_of(request.form, rows, catalog)
        problems = problems_of(changes, rows, [component.id for component in catalog])
        errors += [describe(problem) for problem in problems]
        if errors:
            by_field: dict[str, list[str]] = {}
            for problem in problems:
                by_field.setdefault(problem.name, []).append(problem.why)
            return _render(name, rows, catalog, errors, 400, submitted=_submitted(name, changes),
                           field_errors=by_field)
        changed = {key: value for key, value in changes.items() if rows.get(key) != value}
        for (section, name_), value in changed.items():
            database.set_setting(section, name_, value)
            shown = "***" if (section, name_) in SECRET_NAMES else repr(value)
            log.info("setting %s/%s changed to %s from the console", section, name_, shown)
    notify(N_("Settings saved. They take effect at the next check."), "success")
    return redirect(url_for("settings.page", name=name))


@blueprint.route("/notifications/test", methods=["POST"])
def send_test() -> ResponseReturnValue:
    """Send a test message now on each configured channel (saved settings) and flash the
    outcome of each; a channel whose server row is empty is left out."""
    with console().pool.connection() as database:
        rows = database.settings_rows()
        mail = bool(rows.get((NOTIFY, "SMTPServer"), "").strip())
        trap = bool(rows.get((NOTIFY, "SNMPServer"), "").strip())
        if not mail and not trap:
            notify(N_("No channel is configured: set an SMTP server or a trap receiver and save first."),
                   "error")
            return redirect(url_for("settings.page", name="notifications"))
        results = notifications.send_test(database, mail=mail, trap=trap)
    for result in results:
        channel = Reason(label("channel", result.channel))
        if result.outcome == "sent":
            notify(N_("Test %(channel)s to %(recipient)s: sent."), "success", channel=channel,
                   recipient=result.recipient)
        else:
            notify(N_("Test %(channel)s to %(recipient)s failed: %(error)s"), "error", channel=channel,
                   recipient=result.recipient, error=result.reason or "")
    return redirect(url_for("settings.page", name="notifications"))


def _submitted(name: str, changes: Changes) -> dict[str, object]:
    """The form as submitted, to show it again next to the errors (never a secret)."""
    form = request.form
    if name == "notifications":
        return {row: value for (section, row), value in changes.items()
                if (section, row) not in SECRET_NAMES}
    if name == "source":
        return {key: form.get(key, "") for key in ("source", "protocol", "other_url", "tmase", "tmase_url",
                                                    "verify", "ca_file", "signature_ca_file", "max_mb")}
    if name == "proxy":
        return {"use": bool(form.get("use")), "host": form.get("host", ""), "port": form.get("port", ""),
                "user": form.get("user", "")}
    return {"enabled": bool(form.get("enabled")), "frequency": form.get("frequency", ""),
            "minute": form.get("minute", ""), "time": form.get("time", ""),
            "weekday": form.get("weekday", ""), "components": set(form.getlist("components"))}


def _render(
    name: str, rows: Rows, catalog: list[Component], errors: list[str], code: int,
    submitted: dict[str, object] | None = None, field_errors: Mapping[str, list[str]] | None = None,
) -> ResponseReturnValue:
    values: dict[str, object] = {}
    if name in EDITABLE:
        values = EDITABLE[name][0](rows)
        if submitted:
            values.update(submitted)
    licenses = []
    today = datetime.date.today()
    for license_name in ("Antivirus", "Antispam"):
        text = rows.get(("License", license_name), "").strip()
        try:
            expiry = datetime.date.fromisoformat(text) if text else None
        except ValueError:
            expiry = None
        state = "not_activated" if expiry is None else ("active" if expiry >= today else "expired")
        licenses.append({
            "name": license_name, "expiry": text, "state": state,
            "components": [component for component in catalog if component.license == license_name],
        })
    features = [(feature, rows.get(("Scan", feature), "no") == "yes")
                for feature in ("ATSEEnabled", "SmartScanEnabled")]
    return render_template(
        f"settings_{name}.html", page=name, pages=PAGES, values=values, errors=errors, catalog=catalog,
        frequencies=FREQUENCIES, weekdays=WEEKDAYS, minutes=MINUTES, signature_modes=SIGNATURE_MODES,
        licenses=licenses, features=features, field_errors=field_errors or {},
        rules=notification_rule_names(), smtp_security=notify_config.SECURITY,
        notify_languages=notify_config.LANGUAGES,
    ), code
