-- Tenants, partners, API keys and enrollments (mirrors migrations/sqlite/0001).
-- Forward-only: never edit once landed. Identifiers use the "C" collation: byte order, the same
-- as SQLite's, whatever the database's locale.
CREATE TABLE tenants (
    tenant_id  TEXT COLLATE "C" PRIMARY KEY,
    created_at BIGINT NOT NULL
);

CREATE TABLE partners (
    tenant_id  TEXT COLLATE "C" NOT NULL REFERENCES tenants (tenant_id),
    partner_id TEXT COLLATE "C" NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, partner_id)
);

-- Keys are stored only as SHA-256 hashes; `prefix` (the first characters) is kept to list/revoke.
CREATE TABLE api_keys (
    id         BIGSERIAL PRIMARY KEY,
    key_hash   BYTEA NOT NULL UNIQUE,
    prefix     TEXT COLLATE "C" NOT NULL,
    tenant_id  TEXT COLLATE "C" NOT NULL,
    partner_id TEXT COLLATE "C" NOT NULL,
    is_admin   BOOLEAN NOT NULL DEFAULT FALSE,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT,
    FOREIGN KEY (tenant_id, partner_id) REFERENCES partners (tenant_id, partner_id)
);
CREATE INDEX api_keys_prefix ON api_keys (prefix);

-- `id` gives creation order (GET lists oldest first, cursors are ids). event_types and
-- prospect_ids are kept in client order for GET; event_mask and enrollment_prospects serve
-- the fan-out lookup.
CREATE TABLE enrollments (
    id             BIGSERIAL PRIMARY KEY,
    enrollment_id  TEXT COLLATE "C" NOT NULL UNIQUE,
    tenant_id      TEXT COLLATE "C" NOT NULL,
    partner_id     TEXT COLLATE "C" NOT NULL,
    enrollment_key TEXT COLLATE "C" NOT NULL,
    event_types    TEXT NOT NULL,
    event_mask     INTEGER NOT NULL,
    prospect_ids   TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
);
CREATE INDEX enrollments_scope ON enrollments (tenant_id, partner_id, id);
CREATE INDEX enrollments_scope_key ON enrollments (tenant_id, partner_id, enrollment_key, id);

-- "Which enrollments cover prospect P?" is one range scan of this primary key. The rows of
-- one enrollment are found from enrollments.prospect_ids (no second index to maintain on the
-- PATCH path); the store deletes them with their enrollment in the same transaction.
CREATE TABLE enrollment_prospects (
    prospect_id    BYTEA NOT NULL,
    enrollment_ref BIGINT NOT NULL,
    PRIMARY KEY (prospect_id, enrollment_ref)
);
