-- Read paths of the console's stats endpoints (docs/decisions.md D100), both tenant-scoped:
-- a webhook's notifications attempted since a time (attempts over the last 24 h join
-- delivery_attempts from these rows), and a webhook's notifications queued per day and event
-- name (event_name is in the key so the count is an index-only scan).
-- Forward-only: never edit once landed.
CREATE INDEX notifications_scope_attempted ON notifications (tenant_id, partner_id, last_attempt_at)
    WHERE last_attempt_at IS NOT NULL;
CREATE INDEX notifications_scope_created ON notifications (tenant_id, partner_id, created_at, event_name);
