-- The leader's mirror behind the origin (SPEC 7): a sync that could not complete the
-- origin's release publishes nothing (the members keep the current one); the leader
-- records since when its mirror is behind and why (the causes, naming the URLs), shown by
-- `status`, `fleet status` and the Fleet page. Both are NULL while the mirror holds the
-- origin's release; they are cleared by the first sync that publishes it (or finds it
-- current).
ALTER TABLE tb_fleet_node ADD COLUMN IF NOT EXISTS mirror_behind_since timestamptz;
ALTER TABLE tb_fleet_node ADD COLUMN IF NOT EXISTS mirror_behind_reason text;
