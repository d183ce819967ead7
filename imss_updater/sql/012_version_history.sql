-- The component history view (issue 9): when each version of each component was first
-- offered by its source, as a check saw it. When it was installed comes from the event log.
-- One row per (component, version): it grows with the source's releases, not with checks.
CREATE TABLE IF NOT EXISTS tb_version_seen (
    component      varchar(64)  NOT NULL,
    version        text         NOT NULL,  -- as the source wrote it (tb_component_state.available_version)
    first_seen_at  timestamptz  NOT NULL DEFAULT now(),
    PRIMARY KEY (component, version)
);
