-- Snapshots' current state per prospect, detected events, and the notification outbox
-- (mirrors migrations/sqlite/0002). Forward-only: never edit once landed.

-- The newest snapshot of each prospect (its current state). anniv_md = month*100+day of the
-- job start, so the anniversary scanner finds candidates by index.
CREATE TABLE prospect_state (
    prospect_id    BYTEA PRIMARY KEY,
    observed_at    BIGINT NOT NULL,   -- unix nanoseconds, UTC
    full_name      TEXT,
    linkedin_url   TEXT,
    company_id     TEXT,
    company_name   TEXT,
    job_title      TEXT,
    job_start_date TEXT,              -- YYYY-MM-DD
    anniv_md       INTEGER,
    updated_at     BIGINT NOT NULL
);
CREATE INDEX prospect_state_anniv ON prospect_state (anniv_md) WHERE anniv_md IS NOT NULL;

-- Events of every ingested prospect, enrolled or not. event_id is deterministic, so
-- re-ingestion inserts nothing new. data is kept as text: its key order is part of the API.
CREATE TABLE events (
    id          BIGSERIAL PRIMARY KEY,
    event_id    TEXT COLLATE "C" NOT NULL UNIQUE,
    prospect_id BYTEA NOT NULL,
    event_type  INTEGER NOT NULL,    -- EventType bit
    event_time  BIGINT NOT NULL,     -- unix seconds
    data        TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX events_by_prospect ON events (prospect_id, event_type, event_time);
CREATE INDEX events_by_time ON events (event_time);

-- The outbox: one row per (event, covering enrollment), written in the transaction that stores
-- the event. payload is the exact JSON body to POST (enrollment key as of queueing time).
CREATE TABLE notifications (
    id               BIGSERIAL PRIMARY KEY,
    delivery_id      TEXT COLLATE "C" NOT NULL UNIQUE,
    event_id         TEXT COLLATE "C" NOT NULL,
    event_name       TEXT COLLATE "C" NOT NULL,
    event_time       BIGINT NOT NULL,    -- unix seconds
    tenant_id        TEXT COLLATE "C" NOT NULL,
    partner_id       TEXT COLLATE "C" NOT NULL,
    enrollment_id    TEXT COLLATE "C",   -- NULL for simulated notifications
    enrollment_key   TEXT NOT NULL,
    payload          TEXT NOT NULL,
    status           INTEGER NOT NULL DEFAULT 0,  -- 0 pending, 1 delivered, 2 failed
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  BIGINT NOT NULL,    -- unix milliseconds
    lease_until      BIGINT,             -- unix milliseconds; claimed while in the future
    first_failure_at BIGINT,
    last_attempt_at  BIGINT,
    last_status_code INTEGER,
    last_error       TEXT,
    created_at       BIGINT NOT NULL
);
CREATE UNIQUE INDEX notifications_event_enrollment ON notifications (event_id, enrollment_id);
CREATE INDEX notifications_due ON notifications (next_attempt_at) WHERE status = 0;
CREATE INDEX notifications_scope ON notifications (tenant_id, partner_id, id);

-- Progress of periodic jobs (the anniversary scanner's covered window).
CREATE TABLE job_state (
    name       TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
