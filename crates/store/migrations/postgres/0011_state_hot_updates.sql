-- Ingestion on PostgreSQL (docs/decisions.md D119). A feed re-observes every prospect round
-- after round, so nearly every ingested line rewrites its prospect's state row. With full pages
-- the new row version lands on another page: a non-HOT update that also writes an entry into
-- both indexes (3 index descents and ~5 WAL records a line). New pages are now filled to 50 %,
-- so each row's next version fits beside it and every state update is HOT (pruning frees the
-- old versions on the next visit); the table stays at half the size of the bloated one. Rows
-- already stored move to roomy pages as they are updated (or at once with VACUUM FULL).
-- Forward-only: never edit once landed.
ALTER TABLE prospect_state SET (fillfactor = 50);
