-- A digest of each prospect's stored fields other than observed_at (Snapshot::content_hash), so
-- a snapshot that repeats the prospect with a newer observed_at — most of a feed — is applied
-- by one conditional UPDATE without reading the row back. Rows from before this migration have
-- NULL and take the full comparison until their next change. Forward-only: never edit once
-- landed.
ALTER TABLE prospect_state ADD COLUMN content_hash INTEGER;
