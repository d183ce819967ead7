-- "A node that goes down or comes back is one notification, sent by the leader" (issue 10
-- section 5). ``reported_down`` is what the leader last reported of the node: it is changed
-- in the same transaction as the notification's outbox rows (fleet/watch.py), so a new
-- leader after a failover neither repeats a report nor loses one.
ALTER TABLE tb_fleet_node ADD COLUMN IF NOT EXISTS reported_down boolean NOT NULL DEFAULT false;

-- The node notifications in the outbox: event 'node', outcome 'down' or 'up', no group.
ALTER TABLE tb_notification DROP CONSTRAINT IF EXISTS tb_notification_event_check;
ALTER TABLE tb_notification ADD CONSTRAINT tb_notification_event_check
    CHECK (event IN ('update', 'stale', 'test', 'node'));
ALTER TABLE tb_notification DROP CONSTRAINT IF EXISTS tb_notification_outcome_check;
ALTER TABLE tb_notification ADD CONSTRAINT tb_notification_outcome_check
    CHECK (outcome IN ('success', 'failure', 'stale', 'fresh', 'test', 'recovered', 'down', 'up'));
