-- Notifications: an outbox of messages to deliver (one row per message and channel: a mail to
-- all recipients, or a trap to one receiver) and the log of every delivery attempt.
-- Rows are written after the update run; delivery happens later and never touches the run.

CREATE TABLE IF NOT EXISTS tb_notification (
    id               bigserial    PRIMARY KEY,
    created_at       timestamptz  NOT NULL DEFAULT now(),
    event            varchar(16)  NOT NULL CHECK (event IN ('update', 'stale', 'test')),
    event_group      varchar(16)  CHECK (event_group IN ('pattern', 'engine', 'spam')),
    outcome          varchar(16)  NOT NULL
                     CHECK (outcome IN ('success', 'failure', 'stale', 'fresh', 'test')),
    channel          varchar(8)   NOT NULL CHECK (channel IN ('mail', 'trap')),
    recipient        text         NOT NULL,  -- comma-separated mail addresses, or host:port
    subject          text         NOT NULL,
    body             text         NOT NULL,
    payload          jsonb        NOT NULL,  -- the event as data (trap variables)
    state            varchar(16)  NOT NULL DEFAULT 'pending'
                     CHECK (state IN ('pending', 'sent', 'failed')),
    attempts         integer      NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz  NOT NULL DEFAULT now(),
    last_error       text,
    done_at          timestamptz
);
CREATE INDEX IF NOT EXISTS tb_notification_due ON tb_notification (next_attempt_at)
    WHERE state = 'pending';

CREATE TABLE IF NOT EXISTS tb_notification_attempt (
    id               bigserial    PRIMARY KEY,
    time             timestamptz  NOT NULL DEFAULT now(),
    notification_id  bigint       REFERENCES tb_notification (id) ON DELETE SET NULL,
    channel          varchar(8)   NOT NULL CHECK (channel IN ('mail', 'trap')),
    event            text         NOT NULL,  -- e.g. 'update pattern failure', 'test'
    recipient        text         NOT NULL,
    outcome          varchar(16)  NOT NULL CHECK (outcome IN ('sent', 'retry', 'failed')),
    error            text
);
CREATE INDEX IF NOT EXISTS tb_notification_attempt_time
    ON tb_notification_attempt (time DESC, id DESC);
