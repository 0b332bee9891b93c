-- Idempotency keys (docs/decisions.md D41): one row per (tenant, partner, key). A request
-- reserves its key (token + lease), its writes set `executed` in their own transaction, and its
-- answer is stored after. Rows older than 24 h are ignored and pruned by the scanner.
-- Forward-only: never edit once landed.
CREATE TABLE idempotency_keys (
    tenant_id     TEXT NOT NULL,
    partner_id    TEXT NOT NULL,
    idem_key      TEXT NOT NULL,
    fingerprint   BYTEA NOT NULL,              -- SHA-256 of method, path and body
    token         BIGINT NOT NULL,             -- fences the reservation holder's writes
    lease_until   BIGINT NOT NULL,             -- unix milliseconds; 0 once settled
    executed      BOOLEAN NOT NULL DEFAULT FALSE, -- the request's write committed
    status_code   INTEGER,                     -- the stored answer (NULL: none yet)
    answer_detail BOOLEAN NOT NULL DEFAULT FALSE, -- response_body is an error detail
    response_body BYTEA,
    created_at    BIGINT NOT NULL,             -- unix milliseconds
    PRIMARY KEY (tenant_id, partner_id, idem_key)
);
CREATE INDEX idempotency_keys_by_age ON idempotency_keys (created_at);
