//! Every operator-tunable default, defined once. The CLI builds its lowest configuration layer
//! and its `--help` texts from these, the libraries' `Default`s use them, and a CLI test checks
//! README's flags table against them. Values only: no parsing, no I/O.

use std::time::Duration;

const MINUTE: u64 = 60;
const HOUR: u64 = 60 * MINUTE;
const DAY: u64 = 24 * HOUR;

/// `--database-url`: a SQLite file next to the working directory.
pub const DATABASE_URL: &str = "sqlite://./data/prospect-events.db";
/// `--listen`: the API's address.
pub const LISTEN: &str = "127.0.0.1:8080";
/// `--rate-limit`: requests per minute per API key (0 = off).
pub const RATE_LIMIT_PER_MINUTE: u32 = 200;
/// `--max-body-bytes`: largest JSON request body (1 MiB).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// `--max-line-bytes`: longest snapshot line accepted by ingestion (1 MiB).
pub const MAX_LINE_BYTES: usize = 1024 * 1024;
/// `--http-header-timeout`: a request head must arrive within this time.
pub const HTTP_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// `--http-idle-timeout`: an idle keep-alive connection is closed after this pause.
pub const HTTP_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// `--max-connections`: connections served at once.
pub const MAX_CONNECTIONS: usize = 1024;
/// `--retry-schedule`: delays after failed delivery attempts (then `failed`).
pub const RETRY_SCHEDULE: [Duration; 7] = [
    Duration::from_secs(5),
    Duration::from_secs(5 * MINUTE),
    Duration::from_secs(30 * MINUTE),
    Duration::from_secs(2 * HOUR),
    Duration::from_secs(5 * HOUR),
    Duration::from_secs(10 * HOUR),
    Duration::from_secs(10 * HOUR),
];
/// Jitter applied to every retry delay (±20 %); not a flag.
pub const RETRY_JITTER: f64 = 0.2;
/// `--delivery-timeout`: one delivery attempt.
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(15);
/// `--delivery-lease`: how long a claimed notification is reserved for one worker.
pub const DELIVERY_LEASE: Duration = Duration::from_secs(120);
/// `--delivery-concurrency`: delivery attempts in flight at once in one process, all webhooks
/// together (the outbound HTTP client keeps as many idle connections per host).
pub const DELIVERY_CONCURRENCY: usize = 256;
/// `--delivery-per-webhook`: delivery attempts in flight at once to one webhook, so a slow
/// receiver holds at most this many of the `--delivery-concurrency` slots.
pub const DELIVERY_PER_WEBHOOK: usize = 32;
/// `--disable-after`: a webhook failing continuously this long is disabled.
pub const DISABLE_AFTER: Duration = Duration::from_secs(5 * DAY);
/// `--anniversary-lead-days`: days ahead an anniversary is announced.
pub const ANNIVERSARY_LEAD_DAYS: u32 = 7;
/// `--scan-interval`: period of the anniversary scanner.
pub const SCAN_INTERVAL: Duration = Duration::from_secs(DAY);
/// `--secret-rotation-grace`: after a v2 `rotate_secret`, how long the replaced secret still
/// signs `webhook-signature` (beside the new one), so Standard Webhooks receivers rotate
/// without losing a message. `X-Signature` switches at once.
pub const SECRET_ROTATION_GRACE: Duration = Duration::from_secs(DAY);
/// v2 webhooks one tenant may keep (the reference's documented cap; the v1 webhook, listed as
/// `legacy`, is not counted); a limit, not a flag.
pub const MAX_WEBHOOKS_PER_TENANT: usize = 10;
/// `--event-retention`: events older than this are neither created nor kept.
pub const EVENT_RETENTION: Duration = Duration::from_secs(400 * DAY);
/// Custom headers one v2 webhook may carry (`headers`, "Name: value" lines); a limit, not a
/// flag. More is a 422 `too_long`, as pydantic reports an over-long list.
pub const WEBHOOK_MAX_HEADERS: usize = 20;
/// Longest custom header line of a v2 webhook, in bytes of UTF-8 (most servers refuse lines
/// over 4–8 KiB); a limit, not a flag.
pub const WEBHOOK_HEADER_MAX_BYTES: usize = 4096;

// --- Storage tuning (not flags; the PostgreSQL pool size is the URL's `pool_size`) -----------
/// PostgreSQL: most connections one process opens (URL parameter `pool_size`).
pub const POSTGRES_POOL_SIZE: usize = 16;
/// PostgreSQL: longest wait for a pooled connection, and for opening a new one.
pub const POSTGRES_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);
/// PostgreSQL: transactions one ingestion batch is applied in at once, each on its own
/// connection, split by prospect (URL parameter `ingest_lanes`; at most `pool_size`). Two keep
/// two server cores busy with one ingestion (D93).
pub const POSTGRES_INGEST_LANES: usize = 2;
/// SQLite: read connections kept open beside the one writer.
pub const SQLITE_READERS: usize = 4;
/// SQLite: most queued write jobs committed together in one transaction.
pub const SQLITE_MAX_GROUP: usize = 512;
/// SQLite: pending write jobs before callers wait.
pub const SQLITE_WRITE_QUEUE: usize = 8192;

/// Window of `GET /v1/webhooks/{partner_id}/stats` when `window_hours` is absent; not a flag.
pub const STATS_WINDOW: Duration = Duration::from_secs(DAY);
/// Longest `window_hours` that endpoint accepts (bounds the attempts it reads); not a flag.
pub const STATS_WINDOW_MAX: Duration = Duration::from_secs(7 * DAY);
/// Days of `GET /v1/webhooks/{partner_id}/daily` when `days` is absent; not a flag.
pub const DAILY_WINDOW_DAYS: u32 = 30;
/// Most `days` that endpoint accepts (bounds the notifications it counts); not a flag.
pub const DAILY_WINDOW_MAX_DAYS: u32 = 90;
