-- Tenants, partners, API keys and enrollments. Forward-only: never edit once landed.
CREATE TABLE tenants (
    tenant_id  TEXT PRIMARY KEY,
    created_at INTEGER NOT NULL
);

CREATE TABLE partners (
    tenant_id  TEXT NOT NULL REFERENCES tenants (tenant_id),
    partner_id TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, partner_id)
) WITHOUT ROWID;

-- Keys are stored only as SHA-256 hashes; `prefix` (the first characters) is kept to list/revoke.
CREATE TABLE api_keys (
    id         INTEGER PRIMARY KEY,
    key_hash   BLOB NOT NULL UNIQUE,
    prefix     TEXT NOT NULL,
    tenant_id  TEXT NOT NULL,
    partner_id TEXT NOT NULL,
    is_admin   INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER,
    FOREIGN KEY (tenant_id, partner_id) REFERENCES partners (tenant_id, partner_id)
);
CREATE INDEX api_keys_prefix ON api_keys (prefix);

-- `id` gives creation order (GET lists oldest first, cursors are ids). event_types and
-- prospect_ids are kept in client order for GET; event_mask and enrollment_prospects serve
-- the fan-out lookup.
CREATE TABLE enrollments (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    enrollment_id  TEXT NOT NULL UNIQUE,
    tenant_id      TEXT NOT NULL,
    partner_id     TEXT NOT NULL,
    enrollment_key TEXT NOT NULL,
    event_types    TEXT NOT NULL,
    event_mask     INTEGER NOT NULL,
    prospect_ids   TEXT NOT NULL,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
);
CREATE INDEX enrollments_scope ON enrollments (tenant_id, partner_id, id);
CREATE INDEX enrollments_scope_key ON enrollments (tenant_id, partner_id, enrollment_key, id);

-- "Which enrollments cover prospect P?" is one range scan of this primary key. The rows of
-- one enrollment are found from enrollments.prospect_ids (no second index to maintain on the
-- PATCH path); the store deletes them with their enrollment in the same transaction.
CREATE TABLE enrollment_prospects (
    prospect_id    BLOB NOT NULL,
    enrollment_ref INTEGER NOT NULL,
    PRIMARY KEY (prospect_id, enrollment_ref)
) WITHOUT ROWID;
