"""Labels chosen at run time (a kind, an outcome, a weekday, a field): family -> value -> msgid.

``label(family, value)`` returns the English msgid to hand to gettext; the msgids are marked
with ``N_`` so ``pybabel extract`` finds them. A value without a label is returned as it is."""

from __future__ import annotations

from collections.abc import Mapping

from imss_updater.daemon.schedule import WEEKDAY_NAMES
from imss_updater.fleet_view import ROLE_LABELS, SOURCE_LABELS
from imss_updater.i18n import N_

LABELS: Mapping[str, Mapping[str, str]] = {
    "lang": {"en": "English", "ja": "日本語"},  # each language in its own words
    "yes_no": {"yes": N_("Yes"), "no": N_("No")},
    # the product licences (License/<name> rows), named as on the appliance's licence page
    "license": {"Antivirus": N_("Antivirus"), "Antispam": N_("Antispam")},
    "channel": {
        "mail": N_("Mail"),
        "trap": N_("SNMP trap"),
    },
    "delivery": {
        "sent": N_("Sent"),
        "retry": N_("Failed, will retry"),
        "failed": N_("Failed"),
    },
    "delivery.event": {
        "test": N_("Test message"),
        "update.success": N_("%(group)s: update succeeded"),
        "update.failure": N_("%(group)s: update failed"),
        "stale.stale": N_("%(group)s: not updated for too long"),
        "stale.fresh": N_("%(group)s: updated again"),
    },
    "feature": {
        "ATSEEnabled": N_("Advanced Threat Scan Engine"),
        "SmartScanEnabled": N_("Smart scan"),
    },
    "frequency": {
        "15min": N_("Every 15 minutes"),
        "hourly": N_("Hourly"),
        "daily": N_("Daily"),
        "weekly": N_("Weekly"),
    },
    "job.kind": {
        "update": N_("manual update"),
        "rollback": N_("rollback"),
        "check": N_("check"),
        "import": N_("import"),
    },
    # the result dialog of a finished job, in the seed's words (004: 「手動アップデートに成功しました」)
    # the Fleet page (SPEC 7): a node's role and where it takes its updates from
    "fleet.role": ROLE_LABELS,
    "fleet.source": SOURCE_LABELS,
    # a diagnosis step's result (the Diagnose page)
    "result": {"PASS": N_("PASS"), "FAIL": N_("FAIL"), "SKIP": N_("SKIP")},
    "job.ok": {
        "update": N_("Manual update succeeded."),
        "rollback": N_("Rollback succeeded."),
        "import": N_("Import succeeded."),
    },
    "job.failed": {
        "update": N_("Manual update failed."),
        "rollback": N_("Rollback failed."),
        "import": N_("Import failed."),
    },
    "kind": {
        "scheduled": N_("Scheduled"),
        "manual": N_("Manual"),
        "rollback": N_("Rollback"),
    },
    "licenses": {
        "active": N_("Activated"),
        "expired": N_("Expired"),
        "not_activated": N_("Not activated"),
    },
    "notify": {
        "mail": N_("Mail"),
        "mail_help": N_("Mail goes through this relay; leave the server empty to send no mail. The server "
                        "certificate is always verified; log-in only when a user name is set."),
        "SMTPServer": N_("SMTP server"),
        "SMTPPort": N_("Port"),
        "SMTPSecurity": N_("Security"),
        "SMTPCAFile": N_("CA certificates for the relay (PEM file, empty = system)"),
        "SMTPUser": N_("User name"),
        "SMTPPassword": N_("Password"),
        "MailFrom": N_("Sender address"),
        "MailTo": N_("Recipients (comma-separated)"),
        "trap": N_("SNMP trap"),
        "trap_help": N_("Traps go to each receiver (host[:port], port 162 by default); leave it empty to "
                        "send none."),
        "SNMPServer": N_("Trap receivers (comma-separated)"),
        "SNMPVersion": N_("SNMP version"),
        "SNMPNotifyType": N_("Notification type"),
        "SNMPCommunity": N_("Community (v2c)"),
        "SNMPv3User": N_("User (v3)"),
        "SNMPv3AuthPassword": N_("Authentication password (v3, 8 characters or more)"),
        "SNMPv3PrivPassword": N_("Privacy password (v3, 8 characters or more)"),
        "general": N_("Messages"),
        "Language": N_("Language of messages"),
        "RepeatFailureHours": N_("Send the same failure again after (hours; 0 = every run)"),
        "NotifyRecovery": N_("Send a message when a notified failure is over"),
        "HostName": N_("Host name shown in messages (empty = this host's name)"),
        "events": N_("Events"),
        "events_help": N_("For each scheduled-update event group and result: whether to send a mail and a "
                          "trap, and the subject and message (empty = the built-in text). Nothing is sent "
                          "when every component was already up to date."),
        "event": N_("Event"),
        "send": N_("Send"),
        "templates": N_("Subject and message"),
        "by_mail": N_("Mail"),
        "by_trap": N_("SNMP trap"),
        "subject": N_("Subject"),
        "message": N_("Message"),
        "tokens": N_("Tokens:"),
        "test": N_("Send test"),
        "test_help": N_("Sends a test message now on each configured channel, with the saved settings (save "
                        "your changes first)."),
        "send_test": N_("Send Test Message"),
    },
    "notify.group": {
        "pattern": N_("Pattern files"),
        "engine": N_("Scan engines"),
        "spam": N_("Antispam components"),
    },
    "notify.security": {
        "none": N_("None"),
        "starttls": N_("STARTTLS"),
        "ssl": N_("SSL/TLS (SMTPS)"),
    },
    "notify.version": {
        "2c": N_("v2c (community)"),
        "3": N_("v3 (SHA / AES-128)"),
    },
    "notify.type": {
        "trap": N_("Trap"),
        "inform": N_("Inform (acknowledged)"),
    },
    "outcome": {
        "success": N_("Success"),
        "failure": N_("Failure"),
    },
    "overview.license": {
        "active": N_("%(name)s: valid until %(date)s (%(days)s days left)"),
        "expiring": N_("%(name)s: expires on %(date)s, in %(days)s days: renew it"),
        "expired": N_("%(name)s: expired on %(date)s"),
        "inactive": N_("%(name)s: not activated"),
    },
    "phase": {
        "queued": N_("waiting"),
        "downloading": N_("downloading %(percent)s%%"),
        "verifying": N_("verifying"),
        "installing": N_("installing"),
        "restarting": N_("restarting services"),
        "done": N_("done"),
        "failed": N_("failed"),
    },
    "settings": {
        "source": N_("Update Source"),
        "proxy": N_("Proxy"),
        "schedule": N_("Scheduled Update"),
        "notifications": N_("Notifications"),
        "licenses": N_("Licenses"),
    },
    "source.verify": {
        "yes": N_("required"),
        "auto": N_("when published"),
        "no": N_("off"),
    },
    "weekday": WEEKDAY_NAMES,
}


def label(family: str, value: str) -> str:
    """Return the msgid of ``value`` in ``family`` (e.g. ``label("kind", "manual")``)."""
    return LABELS.get(family, {}).get(value, value)
