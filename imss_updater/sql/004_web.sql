-- The web console: log-on attempts, for rate limiting (one row per attempt, per address).
-- The administrator's password hash is the tb_global_setting row Admin/PasswordHash.
CREATE TABLE IF NOT EXISTS tb_web_login_attempt (
    id       bigserial    PRIMARY KEY,
    time     timestamptz  NOT NULL DEFAULT now(),
    address  text         NOT NULL,
    ok       boolean      NOT NULL
);
CREATE INDEX IF NOT EXISTS tb_web_login_attempt_address_time
    ON tb_web_login_attempt (address, time DESC);
