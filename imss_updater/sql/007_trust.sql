-- What a signature must prove (SPEC 3.1).
-- Index pins: a source (its base URL) that has served a valid server.ini.sig must keep
-- serving one (Update/VerifyIndexSignature=auto); `imss-updater trust reset-index URL` clears it.
CREATE TABLE IF NOT EXISTS tb_index_pin (
    base_url     text         PRIMARY KEY,
    pinned_at    timestamptz  NOT NULL DEFAULT now(),
    verified_at  timestamptz  NOT NULL DEFAULT now()
);

-- Signed once, signed always: a component installed from a validly signed package refuses
-- unsigned packages (VerifySignature=auto) until `imss-updater trust reset ID`.
CREATE TABLE IF NOT EXISTS tb_signature_pin (
    component  varchar(64)  PRIMARY KEY REFERENCES tb_component (id) ON DELETE CASCADE,
    version    text         NOT NULL,
    pinned_at  timestamptz  NOT NULL DEFAULT now()
);

-- Replay memory: the SHA-256 of every package installed, with its component and version; the
-- same bytes are never accepted as another component or another version. Kept after a
-- component leaves the catalog: it is history.
CREATE TABLE IF NOT EXISTS tb_package_seen (
    sha256        char(64)     PRIMARY KEY,
    component     varchar(64)  NOT NULL,
    version       text         NOT NULL,
    signed        boolean      NOT NULL,
    installed_at  timestamptz  NOT NULL DEFAULT now()
);

-- The conditional-GET cache keeps the index signature that verified the cached body (NULL: none
-- published, or not looked for: signature_checked says which), so a 304 keeps its state.
ALTER TABLE tb_source_cache ADD COLUMN IF NOT EXISTS signature bytea;
ALTER TABLE tb_source_cache ADD COLUMN IF NOT EXISTS signature_checked boolean NOT NULL DEFAULT false;

-- Whether the available version came from an index whose signature verified.
ALTER TABLE tb_component_state ADD COLUMN IF NOT EXISTS available_authenticated boolean
    NOT NULL DEFAULT false;
