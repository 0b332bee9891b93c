-- Claims take each webhook's due notifications in order, up to the room that webhook has left;
-- this index makes that one range scan per webhook, so a webhook with a large backlog and no
-- room costs nothing to skip. Forward-only: never edit once landed.
CREATE INDEX notifications_due_scope ON notifications (tenant_id, partner_id, next_attempt_at)
    WHERE status = 0;
