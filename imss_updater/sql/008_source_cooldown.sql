-- Cool-down per update source: a source that answered 429 or 503 with Retry-After is not
-- asked again before "until"; every run before then fails for its components with the
-- reason it gave ("source asks to wait until ...").
CREATE TABLE IF NOT EXISTS tb_source_cooldown (
    base_url text PRIMARY KEY,
    until timestamptz NOT NULL,
    reason text NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now()
);
