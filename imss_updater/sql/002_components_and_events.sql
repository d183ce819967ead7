-- The component catalog (correctable data), each component's installed and available state,
-- the update event log, the conditional-request cache of server.ini, and the last check.

CREATE TABLE IF NOT EXISTS tb_component (
    id                 varchar(64)  PRIMARY KEY,
    name_en            text         NOT NULL,
    name_ja            text         NOT NULL,
    kind               varchar(16)  NOT NULL CHECK (kind IN ('engine', 'pattern')),
    source             varchar(16)  NOT NULL CHECK (source IN ('update', 'tmase')),
    au_key             text         NOT NULL,
    license            varchar(32)  NOT NULL,
    feature            varchar(64),
    event_group        varchar(16)  NOT NULL CHECK (event_group IN ('pattern', 'engine', 'spam')),
    live_path          text         NOT NULL,
    sort_order         integer      NOT NULL DEFAULT 0,
    on_control_manager boolean      NOT NULL DEFAULT true
);

CREATE TABLE IF NOT EXISTS tb_component_state (
    id                 varchar(64)  PRIMARY KEY REFERENCES tb_component (id) ON DELETE CASCADE,
    current_version    text,
    previous_version   text,
    installed_at       timestamptz,
    last_success_at    timestamptz,
    unsigned           boolean      NOT NULL DEFAULT false,
    restart_pending    boolean      NOT NULL DEFAULT false,
    available_version  text,
    available_status   varchar(16)  NOT NULL DEFAULT 'unknown'
                       CHECK (available_status IN ('known', 'absent', 'unknown')),
    available_reason   text,
    checked_at         timestamptz
);

CREATE TABLE IF NOT EXISTS tb_update_event (
    id          bigserial    PRIMARY KEY,
    time        timestamptz  NOT NULL DEFAULT now(),
    kind        varchar(16)  NOT NULL CHECK (kind IN ('scheduled', 'manual', 'rollback')),
    component   varchar(64)  NOT NULL,
    version     text,
    outcome     varchar(16)  NOT NULL CHECK (outcome IN ('success', 'failure')),
    message     text         NOT NULL,
    message_ja  text         NOT NULL,
    reason      text
);
CREATE INDEX IF NOT EXISTS tb_update_event_time ON tb_update_event (time DESC, id DESC);

CREATE TABLE IF NOT EXISTS tb_source_cache (
    url            text         PRIMARY KEY,
    etag           text,
    last_modified  text,
    body           bytea        NOT NULL,
    fetched_at     timestamptz  NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS tb_update_status (
    id               integer      PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    last_check_at    timestamptz,
    last_check_ok    boolean,
    last_check_text  text,
    last_run_at      timestamptz,
    last_run_kind    varchar(16),
    last_run_ok      boolean,
    last_run_text    text,
    scan_service     text,
    policy_service   text
);
INSERT INTO tb_update_status (id) VALUES (1) ON CONFLICT DO NOTHING;
