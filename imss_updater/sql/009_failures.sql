-- No silent failure: since when scheduled runs have found the download lock held by another
-- process without a break (a first busy lock skips quietly; one busy for longer than a
-- schedule interval is a recorded, notified failure).
ALTER TABLE tb_update_status ADD COLUMN IF NOT EXISTS lock_busy_since timestamptz;
