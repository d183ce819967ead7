-- A fleet member's update source (SPEC 7): the leader's mirror, or the origin while the
-- mirror has been unreachable for Fleet/FallbackMinutes. One row per node, written by the
-- member's own runs. ``mirror_unreachable_since`` is when the mirror (or any leader with a
-- mirror) was first found missing in the current outage; NULL while it answers. The mode is
-- also copied to tb_fleet_node.source_mode where that table exists.
CREATE TABLE IF NOT EXISTS tb_fleet_member (
    node                      text         PRIMARY KEY,
    source_mode               text         NOT NULL DEFAULT 'origin'
                              CHECK (source_mode IN ('origin', 'mirror', 'fallback')),
    mirror_url                text,
    mirror_unreachable_since  timestamptz,
    changed_at                timestamptz  NOT NULL DEFAULT now()
);
