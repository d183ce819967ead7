-- Settings, as on the appliance: one row per (section, name). Administrators change them
-- with psql; the updater reads them fresh for every run.
CREATE TABLE IF NOT EXISTS tb_global_setting (
    section  varchar(64)  NOT NULL,
    name     varchar(128) NOT NULL,
    value    text         NOT NULL DEFAULT '',
    inifile  varchar(64)  NOT NULL DEFAULT 'imss.ini',
    PRIMARY KEY (section, name)
);
