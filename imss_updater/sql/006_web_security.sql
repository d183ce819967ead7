-- The web console's security state (issue 11, section 4), kept in the database so that the
-- CLI (`imss-updater admin set-password`) can end every session and lift the throttle.
--
-- tb_web_account: one row per console account (today only 'admin'). ``generation`` is
-- raised by every password change; a session of an older generation is refused.
CREATE TABLE IF NOT EXISTS tb_web_account (
    account     text     PRIMARY KEY,
    generation  integer  NOT NULL DEFAULT 1
);

-- tb_web_login_throttle: the log-on delay, per account (shared by every source address) or
-- per trusted browser of that account. ``failures`` counts attempts since the last success
-- (an attempt is counted when it starts, so concurrent guesses cannot share a slot);
-- no attempt is evaluated before ``not_before``.
CREATE TABLE IF NOT EXISTS tb_web_login_throttle (
    key         text         PRIMARY KEY,
    account     text         NOT NULL,
    failures    integer      NOT NULL DEFAULT 0,
    not_before  timestamptz  NOT NULL DEFAULT '-infinity'
);
CREATE INDEX IF NOT EXISTS tb_web_login_throttle_account ON tb_web_login_throttle (account);

-- tb_web_session: server-side sessions. ``id`` is the SHA-256 of the token the session
-- cookie carries (a copy of this table gives no usable cookie); log-off deletes the row;
-- ``expires_at`` is fixed at log-on (an absolute lifetime, not a sliding one).
CREATE TABLE IF NOT EXISTS tb_web_session (
    id          text         PRIMARY KEY,
    account     text         NOT NULL,
    generation  integer      NOT NULL,
    created_at  timestamptz  NOT NULL DEFAULT now(),
    expires_at  timestamptz  NOT NULL,
    address     text         NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS tb_web_session_expires_at ON tb_web_session (expires_at);

-- The per-address counting of 004 is no longer used for throttling; the table stays as the
-- log of attempts (who tried from where).
COMMENT ON TABLE tb_web_login_attempt IS 'log of console log-on attempts (audit only)';
