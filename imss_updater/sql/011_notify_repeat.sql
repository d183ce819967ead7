-- Flood control of failure notifications (SPEC 4: Notification/RepeatFailureHours and
-- NotifyRecovery): the failure last notified per event group and component, kept until the
-- component succeeds again. One row per (group, component), so it never grows with runs.
CREATE TABLE IF NOT EXISTS tb_notify_failure (
    event_group        varchar(16)  NOT NULL CHECK (event_group IN ('pattern', 'engine', 'spam')),
    component          varchar(64)  NOT NULL,
    reason             text         NOT NULL,  -- as last notified
    first_notified_at  timestamptz  NOT NULL,  -- when this outage was first notified
    last_notified_at   timestamptz  NOT NULL,  -- when this reason was last sent
    PRIMARY KEY (event_group, component)
);

-- The "recovered" message after a notified failure.
ALTER TABLE tb_notification DROP CONSTRAINT IF EXISTS tb_notification_outcome_check;
ALTER TABLE tb_notification ADD CONSTRAINT tb_notification_outcome_check
    CHECK (outcome IN ('success', 'failure', 'stale', 'fresh', 'test', 'recovered'));

-- Retention (Log/RetentionDays) deletes by age; the attempt and event logs already have an
-- index on time.
CREATE INDEX IF NOT EXISTS tb_notification_created ON tb_notification (created_at);
