-- Several gateways on one database (SPEC 7): what is installed, the events, the run status
-- and heartbeat, and the version history are per node; settings and the trust memories stay
-- shared. A node is named by the bootstrap value IMSS_NODE (default: the host name).
--
-- Every connection of the updater sets the session value imss.node to its node (Connection),
-- and the node columns default to it. So this migration gives the rows an existing database
-- already has to the node that runs it (`db init`, or the daemon's start), and a row inserted
-- by hand through the updater's connection lands on that node. A connection without
-- imss.node (plain psql) must name the node: the default is then NULL, which NOT NULL refuses.
DO $$
BEGIN
    IF coalesce(current_setting('imss.node', true), '') = '' THEN
        RAISE EXCEPTION 'migration 013 needs the session value imss.node (run it with imss-updater db init)';
    END IF;
END
$$;

ALTER TABLE tb_component_state
    ADD COLUMN IF NOT EXISTS node text NOT NULL DEFAULT current_setting('imss.node', true);
ALTER TABLE tb_component_state DROP CONSTRAINT IF EXISTS tb_component_state_pkey;
ALTER TABLE tb_component_state ADD PRIMARY KEY (node, id);

ALTER TABLE tb_update_status
    ADD COLUMN IF NOT EXISTS node text NOT NULL DEFAULT current_setting('imss.node', true);
ALTER TABLE tb_update_status DROP COLUMN IF EXISTS id;  -- the single-row key (id = 1)
ALTER TABLE tb_update_status ADD PRIMARY KEY (node);

ALTER TABLE tb_update_event
    ADD COLUMN IF NOT EXISTS node text NOT NULL DEFAULT current_setting('imss.node', true);
CREATE INDEX IF NOT EXISTS tb_update_event_node_time ON tb_update_event (node, time DESC, id DESC);

ALTER TABLE tb_version_seen
    ADD COLUMN IF NOT EXISTS node text NOT NULL DEFAULT current_setting('imss.node', true);
ALTER TABLE tb_version_seen DROP CONSTRAINT IF EXISTS tb_version_seen_pkey;
ALTER TABLE tb_version_seen ADD PRIMARY KEY (node, component, version);

-- Flood control of failure notifications is per node too: the same failure on two gateways
-- is two outages.
ALTER TABLE tb_notify_failure
    ADD COLUMN IF NOT EXISTS node text NOT NULL DEFAULT current_setting('imss.node', true);
ALTER TABLE tb_notify_failure DROP CONSTRAINT IF EXISTS tb_notify_failure_pkey;
ALTER TABLE tb_notify_failure ADD PRIMARY KEY (node, event_group, component);

-- Every gateway sharing the database: registered by `db init` and the daemon's start, its
-- heartbeat and last check written by its daemon; role and source_mode by the fleet code.
CREATE TABLE IF NOT EXISTS tb_fleet_node (
    node            text         PRIMARY KEY,
    mirror_address  text,                    -- IMSS_MIRROR (host:port), NULL: serves none
    role            text         NOT NULL DEFAULT 'member',      -- 'leader' or 'member'
    heartbeat       timestamptz,
    last_check      timestamptz,
    source_mode     text         NOT NULL DEFAULT 'origin'
                    CHECK (source_mode IN ('origin', 'mirror', 'fallback')),
    registered_at   timestamptz  NOT NULL DEFAULT now()
);
INSERT INTO tb_fleet_node (node, heartbeat, last_check)
    SELECT node, daemon_heartbeat, last_check_at FROM tb_update_status
    ON CONFLICT (node) DO NOTHING;
