"""The console account's state in PostgreSQL: password, generation, log-on delay, sessions.

Everything the CLI must be able to undo lives here, in the database (migration 006), not
in the process: ``admin set-password`` stores a new hash, raises the account's generation
(every older session is refused), deletes the sessions and lifts every log-on delay, in
one transaction.

The log-on delay is per account and shared by every source address (rotating addresses
or ``X-Forwarded-For`` gains nothing), and it never locks out: after ``FREE_FAILURES``
failures each further attempt waits ``2**k`` seconds, capped at ``MAX_DELAY_SECONDS``.
An attempt is counted when it starts, under a row lock, so guesses sent in parallel cannot
share one slot. A browser that has logged on before carries a signed device cookie and is
throttled on its own key, so an attacker's failures do not delay the administrator's
usual browser (OWASP "device cookies").
"""

from __future__ import annotations

import datetime
import hashlib
import logging
import secrets
from dataclasses import dataclass

from imss_updater.database.db import Database

log = logging.getLogger(__name__)

ACCOUNT = "admin"
PASSWORD_SECTION = ("Admin", "PasswordHash")
FREE_FAILURES = 5  # attempts before the first delay
MAX_DELAY_SECONDS = 900  # the delay stops growing here: at most 4 guesses an hour
SESSION_LIFETIME = datetime.timedelta(hours=8)  # absolute, counted from log-on


def delay_after(failures: int) -> int:
    """Given the number of failed attempts since the last success, return the seconds the
    next attempt must wait: 0 for the first FREE_FAILURES, then 2, 4, 8, ... up to
    MAX_DELAY_SECONDS."""
    if failures < FREE_FAILURES:
        return 0
    return int(min(2 ** (failures - FREE_FAILURES + 1), MAX_DELAY_SECONDS))


def device_key(device: str) -> str:
    """The throttle key of one trusted browser of the account."""
    return f"{ACCOUNT}/device/{device}"


def generation(database: Database) -> int:
    """Return the account's current generation (1 before any password change)."""
    with database.transaction() as cursor:
        cursor.execute("SELECT generation FROM tb_web_account WHERE account = %s", (ACCOUNT,))
        row = cursor.fetchone()
        return int(row[0]) if row else 1


def reset(database: Database, password_hash: str) -> None:
    """Store ``password_hash``, raise the generation, end every session and lift every
    log-on delay of the account, atomically."""
    with database.transaction() as cursor:
        cursor.execute(
            "INSERT INTO tb_global_setting (section, name, value) VALUES (%s, %s, %s)"
            " ON CONFLICT (section, name) DO UPDATE SET value = EXCLUDED.value",
            (*PASSWORD_SECTION, password_hash),
        )
        cursor.execute(
            "INSERT INTO tb_web_account (account, generation) VALUES (%s, 2)"
            " ON CONFLICT (account) DO UPDATE SET generation = tb_web_account.generation + 1",
            (ACCOUNT,),
        )
        cursor.execute("DELETE FROM tb_web_session WHERE account = %s", (ACCOUNT,))
        cursor.execute("DELETE FROM tb_web_login_throttle WHERE account = %s", (ACCOUNT,))


# -- the log-on delay ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Claim:
    """The outcome of asking to try a password: ``wait`` > 0 means refused for that many
    seconds (nothing counted); otherwise the attempt is counted as number ``failures``."""

    wait: int
    failures: int


def claim_attempt(database: Database, key: str) -> Claim:
    """Ask to evaluate one log-on attempt under throttle ``key``.

    When the key's delay has passed, count the attempt as a failure (``attempt_succeeded``
    takes it back) and set the delay the next attempt must wait; otherwise count nothing.
    """
    with database.transaction() as cursor:
        cursor.execute(
            "INSERT INTO tb_web_login_throttle (key, account) VALUES (%s, %s) ON CONFLICT DO NOTHING",
            (key, ACCOUNT),
        )
        cursor.execute(
            "SELECT failures, CASE WHEN not_before > clock_timestamp()"
            " THEN ceil(extract(epoch FROM not_before - clock_timestamp())) ELSE 0 END"
            " FROM tb_web_login_throttle WHERE key = %s FOR UPDATE",
            (key,),
        )
        row = cursor.fetchone()
        failures, wait = (int(row[0]), int(row[1])) if row else (0, 0)
        if wait > 0:
            return Claim(wait=wait, failures=failures)
        failures += 1
        cursor.execute(
            "UPDATE tb_web_login_throttle SET failures = %s,"
            " not_before = clock_timestamp() + %s * interval '1 second' WHERE key = %s",
            (failures, delay_after(failures), key),
        )
        return Claim(wait=0, failures=failures)


def attempt_succeeded(database: Database, key: str) -> None:
    """The claimed attempt under ``key`` had the right password: no delay any more."""
    with database.transaction() as cursor:
        cursor.execute(
            "UPDATE tb_web_login_throttle SET failures = 0, not_before = '-infinity' WHERE key = %s",
            (key,),
        )


# -- sessions -----------------------------------------------------------------------------------

def _session_id(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def open_session(database: Database, address: str) -> str:
    """Record a new session of the account, valid for SESSION_LIFETIME from now; return the
    token for the cookie. Expired and superseded sessions are deleted on the way."""
    token = secrets.token_urlsafe(32)
    with database.transaction() as cursor:
        cursor.execute(
            "INSERT INTO tb_web_account (account) VALUES (%s) ON CONFLICT DO NOTHING", (ACCOUNT,)
        )
        cursor.execute(
            "DELETE FROM tb_web_session WHERE expires_at <= now() OR generation <>"
            " (SELECT generation FROM tb_web_account WHERE account = tb_web_session.account)"
        )
        cursor.execute(
            "INSERT INTO tb_web_session (id, account, generation, expires_at, address)"
            " SELECT %s, account, generation, now() + %s, %s FROM tb_web_account WHERE account = %s",
            (_session_id(token), SESSION_LIFETIME, address, ACCOUNT),
        )
    return token


def session_valid(database: Database, token: str) -> bool:
    """Return True when ``token`` names a recorded session that has not expired, of the
    account's current generation, while a password is set."""
    with database.transaction() as cursor:
        cursor.execute(
            "SELECT 1 FROM tb_web_session AS s JOIN tb_web_account AS a ON a.account = s.account"
            " WHERE s.id = %s AND s.generation = a.generation AND s.expires_at > now()"
            " AND EXISTS (SELECT 1 FROM tb_global_setting WHERE section = %s AND name = %s AND value <> '')",
            (_session_id(token), *PASSWORD_SECTION),
        )
        return cursor.fetchone() is not None


def end_session(database: Database, token: str) -> None:
    """Delete the session ``token`` names (a copy of its cookie is refused from now on)."""
    with database.transaction() as cursor:
        cursor.execute("DELETE FROM tb_web_session WHERE id = %s", (_session_id(token),))
