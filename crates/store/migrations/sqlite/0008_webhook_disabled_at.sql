-- When a webhook was disabled (a 410 Gone or continuous failure), shown by GET with the reason.
-- Webhooks disabled before this migration keep a NULL time (it was not recorded).
-- Forward-only: never edit once landed.
ALTER TABLE webhooks ADD COLUMN disabled_at INTEGER; -- unix milliseconds
