-- Notification bodies move to their own table: the notification row is rewritten at every
-- claim and attempt, and carrying the body (most of its bytes) made each rewrite copy it.
-- Forward-only: never edit once landed.
CREATE TABLE notification_payloads (
    notification_id INTEGER PRIMARY KEY,
    payload         TEXT NOT NULL
);
INSERT INTO notification_payloads (notification_id, payload) SELECT id, payload FROM notifications;
ALTER TABLE notifications DROP COLUMN payload;
