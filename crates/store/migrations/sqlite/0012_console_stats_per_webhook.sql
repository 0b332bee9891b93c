-- The console's stats are per webhook (docs/decisions.md D115): the read paths of 0010, keyed
-- by webhook as well. Forward-only: never edit once landed.
DROP INDEX notifications_scope_attempted;
DROP INDEX notifications_scope_created;
CREATE INDEX notifications_webhook_attempted ON notifications (tenant_id, partner_id, webhook_id, last_attempt_at)
    WHERE last_attempt_at IS NOT NULL;
CREATE INDEX notifications_webhook_created ON notifications (tenant_id, partner_id, webhook_id, created_at, event_name);
