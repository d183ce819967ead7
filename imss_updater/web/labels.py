"""Labels chosen at run time (a kind, an outcome, a weekday, a field): family -> value -> msgid.

``label(family, value)`` returns the English msgid to hand to gettext; the msgids are marked
with ``N_`` so ``pybabel extract`` finds them. A value without a label is returned as it is."""

from __future__ import annotations

from collections.abc import Mapping

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
    },
    "kind": {
        "scheduled": N_("Scheduled"),
        "manual": N_("Manual"),
        "rollback": N_("Rollback"),
    },
    "licenses": {
        "license": N_("License"),
        "expiry": N_("Expires"),
        "state": N_("Status"),
        "active": N_("Activated"),
        "expired": N_("Expired"),
        "not_activated": N_("Not activated"),
        "components": N_("Components"),
        "features": N_("Features"),
        "help": N_("Licenses are changed with `imss-updater config set License <name> YYYY-MM-DD`."),
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
    "problem": {
        "field": N_("%(label)s (%(row)s): %(why)s"),
        "row": N_("%(row)s: %(why)s"),
        "causes": N_("not accepted, it would leave %(cause)s"),
        "proxy_host_empty": N_("enter the proxy server's host name or address (the proxy is switched on)"),
        "proxy_host_url": N_("%(value)s is not a host name or address: enter the host only, without scheme "
                             "or path"),
        "proxy_host_port": N_("%(value)s: enter the port in the Port field"),
        "proxy_port": N_("must be a port number from 1 to 65535 (value '%(value)s')"),
        "file_missing": N_("the file %(path)s does not exist"),
        "file_directory": N_("%(path)s is a directory, not a file"),
        "file_unreadable": N_("the file %(path)s cannot be read: %(error)s"),
        "file_not_pem": N_("%(path)s is not a PEM certificate file (no BEGIN CERTIFICATE line)"),
        "signature_ca_empty": N_("enter the trust anchors file: signature verification is set to required"),
    },
    "settings": {
        "title": N_("Settings"),
        "source": N_("Update Source"),
        "proxy": N_("Proxy"),
        "schedule": N_("Scheduled Update"),
        "notifications": N_("Notifications"),
        "licenses": N_("Licenses"),
        "save": N_("Save"),
        "saved": N_("Settings saved. They take effect at the next check."),
        "invalid": N_("The settings were not saved:"),
        "secret_set": N_("(set — leave empty to keep)"),
        "secret_unset": N_("(not set)"),
        "secret_clear": N_("Clear"),
    },
    "source.verify": {
        "yes": N_("required"),
        "auto": N_("when published"),
        "no": N_("off"),
    },
    "weekday": {
        "sun": N_("Sunday"),
        "mon": N_("Monday"),
        "tue": N_("Tuesday"),
        "wed": N_("Wednesday"),
        "thu": N_("Thursday"),
        "fri": N_("Friday"),
        "sat": N_("Saturday"),
    },
    "job": {
        "running": N_("A %(kind)s is running…"),
        "started": N_("Started: %(kind)s."),
        "nothing_selected": N_("Select at least one component."),
        "update_ok": N_("Manual update succeeded."),
        "rollback_ok": N_("Rollback succeeded."),
        "update_failed": N_("Manual update failed."),
        "rollback_failed": N_("Rollback failed."),
        "up_to_date": N_("All components are up to date."),
        "check_ok": N_("Check finished: the update source was reachable."),
        "check_failed": N_("Check failed: %(reason)s"),
        "error": N_("Could not run: %(reason)s"),
        "restart_failed": N_("Service restart failed: %(reason)s"),
        "finished_at": N_("finished %(time)s"),
    },
}


def label(family: str, value: str) -> str:
    """Return the msgid of ``value`` in ``family`` (e.g. ``label("kind", "manual")``)."""
    return LABELS.get(family, {}).get(value, value)
