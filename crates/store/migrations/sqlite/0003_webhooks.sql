-- Webhooks (one per partner), delivery attempts, and per-cycle attempt counting.
-- Forward-only: never edit once landed.

-- The secret must be shown again by GET, so it is stored as issued (32 CSPRNG bytes).
-- generation increases on each registration, so an attempt against an older registration
-- never disables the new one. failing_since marks the start of continuous failure.
CREATE TABLE webhooks (
    tenant_id          TEXT NOT NULL,
    partner_id         TEXT NOT NULL,
    webhook_url        TEXT NOT NULL,
    secret             TEXT NOT NULL,
    generation         INTEGER NOT NULL DEFAULT 1,
    enabled            INTEGER NOT NULL DEFAULT 1,
    disabled_reason    TEXT,
    failing_since      INTEGER,          -- unix milliseconds
    created_at         INTEGER NOT NULL, -- unix milliseconds
    last_modified_time INTEGER NOT NULL, -- unix milliseconds
    PRIMARY KEY (tenant_id, partner_id)
) WITHOUT ROWID;

-- Attempts within the current retry cycle (reset by a manual retry or a replay); `attempts`
-- keeps the lifetime count.
ALTER TABLE notifications ADD COLUMN cycle_attempts INTEGER NOT NULL DEFAULT 0;

CREATE TABLE delivery_attempts (
    id              INTEGER PRIMARY KEY,
    notification_id INTEGER NOT NULL REFERENCES notifications (id),
    attempted_at    INTEGER NOT NULL,    -- unix milliseconds
    status_code     INTEGER,
    error           TEXT,
    latency_ms      INTEGER NOT NULL,
    response_body   TEXT
);
CREATE INDEX delivery_attempts_by_notification ON delivery_attempts (notification_id, id);
