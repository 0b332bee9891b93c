-- Delivery on PostgreSQL (docs/decisions.md D98). Every update of a notification that changes
-- an indexed column writes a new entry into each of its indexes; claims and lease changes now
-- write only lease_until (no index), so with room left on the page for the new row version
-- they are HOT updates. Claims take a page's rows together, so each row needs its own room:
-- new pages are filled to 50 % (80 % made only a quarter of the claims HOT). Two indexes no
-- query needs any more: notifications_due (claims scan notifications_due_webhook since 0008)
-- and notifications_scope (the scope's outbox listing reads notifications_webhook).
-- Forward-only: never edit once landed.
ALTER TABLE notifications SET (fillfactor = 50);
DROP INDEX notifications_due;
DROP INDEX notifications_scope;
