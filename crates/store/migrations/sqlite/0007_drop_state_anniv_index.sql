-- The anniversary scanner now walks prospect_state in key order and filters on anniv_md, instead
-- of using this index: keeping the index cost every first snapshot and every state change a
-- random insert/delete in it (18 % of bulk ingestion time), to spare a job that runs daily a
-- sequential scan. PostgreSQL keeps its index. Forward-only: never edit once landed.
DROP INDEX prospect_state_anniv;
