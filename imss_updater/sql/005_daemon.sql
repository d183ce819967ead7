-- The daemon: settings changes are announced on channel imss_settings (LISTEN/NOTIFY), so a
-- change made with psql, the CLI or the web page re-plans the schedule within seconds.
CREATE OR REPLACE FUNCTION imss_settings_changed() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('imss_settings', OLD.section || '/' || OLD.name);
        RETURN OLD;
    END IF;
    PERFORM pg_notify('imss_settings', NEW.section || '/' || NEW.name);
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

DROP TRIGGER IF EXISTS tb_global_setting_notify ON tb_global_setting;
CREATE TRIGGER tb_global_setting_notify
    AFTER INSERT OR UPDATE OR DELETE ON tb_global_setting
    FOR EACH ROW EXECUTE FUNCTION imss_settings_changed();

ALTER TABLE tb_update_status ADD COLUMN IF NOT EXISTS last_scheduled_at timestamptz;
ALTER TABLE tb_update_status ADD COLUMN IF NOT EXISTS next_run_at timestamptz;
ALTER TABLE tb_update_status ADD COLUMN IF NOT EXISTS settings_problem text;
ALTER TABLE tb_update_status ADD COLUMN IF NOT EXISTS daemon_pid integer;
ALTER TABLE tb_update_status ADD COLUMN IF NOT EXISTS daemon_heartbeat timestamptz;
ALTER TABLE tb_component_state ADD COLUMN IF NOT EXISTS stale boolean NOT NULL DEFAULT false;
