-- v2 webhooks as resources (docs/decisions.md D75-D77): a scope keeps its v1 webhook as the row
-- 'wh_legacy' plus up to 10 v2 webhooks with their own id, name, headers, payload format and a
-- previous secret kept for the rotation grace. Enrollments and notifications name the webhook
-- they go to (existing ones: the legacy row); claims scan each webhook's due rows.
-- Forward-only: never edit once landed.
CREATE TABLE webhooks_v2 (
    tenant_id             TEXT NOT NULL,
    partner_id            TEXT NOT NULL,
    webhook_id            TEXT NOT NULL,             -- 'wh_legacy': the partner's v1 webhook
    name                  TEXT,                      -- NULL for the legacy row
    description           TEXT,
    headers               TEXT NOT NULL DEFAULT '[]', -- JSON array of "Name: value" lines
    payload_format        TEXT NOT NULL DEFAULT 'json',
    webhook_url           TEXT NOT NULL,
    secret                TEXT NOT NULL,
    previous_secret       TEXT,                      -- signs webhook-signature until ...
    previous_secret_until INTEGER,                   -- ... this time (unix milliseconds)
    generation            INTEGER NOT NULL DEFAULT 1,
    enabled               INTEGER NOT NULL DEFAULT 1,
    disabled_reason       TEXT,
    failing_since         INTEGER,                   -- unix milliseconds
    created_at            INTEGER NOT NULL,          -- unix milliseconds
    last_modified_time    INTEGER NOT NULL,          -- unix milliseconds
    disabled_at           INTEGER,                   -- unix milliseconds
    PRIMARY KEY (tenant_id, partner_id, webhook_id)
) WITHOUT ROWID;
INSERT INTO webhooks_v2 (tenant_id, partner_id, webhook_id, webhook_url, secret, generation,
        enabled, disabled_reason, failing_since, created_at, last_modified_time, disabled_at)
    SELECT tenant_id, partner_id, 'wh_legacy', webhook_url, secret, generation, enabled,
        disabled_reason, failing_since, created_at, last_modified_time, disabled_at
    FROM webhooks;
DROP TABLE webhooks;
ALTER TABLE webhooks_v2 RENAME TO webhooks;
CREATE UNIQUE INDEX webhooks_name ON webhooks (tenant_id, partner_id, name) WHERE name IS NOT NULL;

ALTER TABLE enrollments ADD COLUMN webhook_id TEXT NOT NULL DEFAULT 'wh_legacy';
ALTER TABLE enrollments ADD COLUMN paused INTEGER NOT NULL DEFAULT 0;
CREATE INDEX enrollments_webhook ON enrollments (tenant_id, partner_id, webhook_id);

ALTER TABLE notifications ADD COLUMN webhook_id TEXT NOT NULL DEFAULT 'wh_legacy';
DROP INDEX notifications_due_scope;
CREATE INDEX notifications_due_webhook ON notifications (tenant_id, partner_id, webhook_id, next_attempt_at)
    WHERE status = 0;
CREATE INDEX notifications_webhook ON notifications (tenant_id, partner_id, webhook_id, id);
