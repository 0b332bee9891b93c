-- Ingestion on PostgreSQL (docs/decisions.md D123, the set-based form of SQLite's D20): a
-- digest of each prospect's stored fields other than observed_at (Snapshot::content_hash), so
-- the lines that repeat a prospect with a newer observed_at — most of a feed — are settled by
-- one UPDATE … FROM unnest per batch, without reading their rows back. Rows stored before this
-- migration have NULL and take the full comparison until their next change. Adding a nullable
-- column without a default rewrites nothing. Forward-only: never edit once landed.
ALTER TABLE prospect_state ADD COLUMN content_hash BIGINT;
