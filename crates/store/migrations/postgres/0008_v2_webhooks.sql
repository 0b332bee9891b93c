-- v2 webhooks as resources (docs/decisions.md D75-D77): a scope keeps its v1 webhook as the row
-- 'wh_legacy' plus up to 10 v2 webhooks with their own id, name, headers, payload format and a
-- previous secret kept for the rotation grace. Enrollments and notifications name the webhook
-- they go to (existing ones: the legacy row); claims scan each webhook's due rows.
-- Forward-only: never edit once landed.
ALTER TABLE webhooks ADD COLUMN webhook_id TEXT COLLATE "C" NOT NULL DEFAULT 'wh_legacy';
ALTER TABLE webhooks ADD COLUMN name TEXT;
ALTER TABLE webhooks ADD COLUMN description TEXT;
ALTER TABLE webhooks ADD COLUMN headers TEXT NOT NULL DEFAULT '[]';
ALTER TABLE webhooks ADD COLUMN payload_format TEXT NOT NULL DEFAULT 'json';
ALTER TABLE webhooks ADD COLUMN previous_secret TEXT;
ALTER TABLE webhooks ADD COLUMN previous_secret_until BIGINT; -- unix milliseconds
ALTER TABLE webhooks DROP CONSTRAINT webhooks_pkey;
ALTER TABLE webhooks ADD PRIMARY KEY (tenant_id, partner_id, webhook_id);
CREATE UNIQUE INDEX webhooks_name ON webhooks (tenant_id, partner_id, name) WHERE name IS NOT NULL;

ALTER TABLE enrollments ADD COLUMN webhook_id TEXT COLLATE "C" NOT NULL DEFAULT 'wh_legacy';
ALTER TABLE enrollments ADD COLUMN paused BOOLEAN NOT NULL DEFAULT FALSE;
CREATE INDEX enrollments_webhook ON enrollments (tenant_id, partner_id, webhook_id);

ALTER TABLE notifications ADD COLUMN webhook_id TEXT COLLATE "C" NOT NULL DEFAULT 'wh_legacy';
DROP INDEX notifications_due_scope;
CREATE INDEX notifications_due_webhook ON notifications (tenant_id, partner_id, webhook_id, next_attempt_at)
    WHERE status = 0;
CREATE INDEX notifications_webhook ON notifications (tenant_id, partner_id, webhook_id, id);
