-- The fleet's leader (SPEC 7): one row, who holds the advisory lock now and since when.
-- ``term`` grows by one on every takeover, so a leader that lost the lock and has not
-- noticed yet can tell (and be told) that it is no longer the one: it re-reads the term
-- on its lock connection before it announces a release, and announces nothing when the
-- term moved on.
CREATE TABLE IF NOT EXISTS tb_fleet_leader (
    id boolean PRIMARY KEY DEFAULT true CHECK (id),
    node text NOT NULL,
    term bigint NOT NULL,
    since timestamptz NOT NULL DEFAULT now(),
    mirror_address text,
    release text,              -- the release it announced last (its server.ini's digest)
    announced timestamptz
);
