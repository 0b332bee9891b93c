-- Webhooks (one per partner), delivery attempts, and per-cycle attempt counting
-- (mirrors migrations/sqlite/0003). Forward-only: never edit once landed.

-- The secret must be shown again by GET, so it is stored as issued (32 CSPRNG bytes).
-- generation increases on each registration, so an attempt against an older registration
-- never disables the new one. failing_since marks the start of continuous failure.
CREATE TABLE webhooks (
    tenant_id          TEXT COLLATE "C" NOT NULL,
    partner_id         TEXT COLLATE "C" NOT NULL,
    webhook_url        TEXT NOT NULL,
    secret             TEXT NOT NULL,
    generation         BIGINT NOT NULL DEFAULT 1,
    enabled            BOOLEAN NOT NULL DEFAULT TRUE,
    disabled_reason    TEXT,
    failing_since      BIGINT,           -- unix milliseconds
    created_at         BIGINT NOT NULL,  -- unix milliseconds
    last_modified_time BIGINT NOT NULL,  -- unix milliseconds
    PRIMARY KEY (tenant_id, partner_id)
);

-- Attempts within the current retry cycle (reset by a manual retry or a replay); `attempts`
-- keeps the lifetime count.
ALTER TABLE notifications ADD COLUMN cycle_attempts INTEGER NOT NULL DEFAULT 0;

CREATE TABLE delivery_attempts (
    id              BIGSERIAL PRIMARY KEY,
    notification_id BIGINT NOT NULL REFERENCES notifications (id),
    attempted_at    BIGINT NOT NULL,     -- unix milliseconds
    status_code     INTEGER,
    error           TEXT,
    latency_ms      BIGINT NOT NULL,
    response_body   TEXT
);
CREATE INDEX delivery_attempts_by_notification ON delivery_attempts (notification_id, id);
