//! Persistence for prospect-events behind one backend-neutral trait, [`Store`].
//! Backends live in their own modules (`sqlite` now, `postgres` next); nothing backend-specific
//! (connections, SQL dialect, rusqlite types) crosses this crate's public surface.
//! Every method touching partner-owned data takes a [`Scope`] and filters by it in the query.

mod batch;
pub mod idempotency;
mod model;
pub mod postgres;
mod rules;
pub mod sqlite;
#[cfg(test)]
mod upgrade_tests;

pub use batch::SnapshotBatch;
pub use idempotency::{IdemAnswer, IdemBegin, IdemFence};
pub use model::*;

use async_trait::async_trait;
use domain::{EventType, ProspectId};
use std::sync::Arc;
use time::OffsetDateTime;

pub type StoreResult<T> = Result<T, StoreError>;

/// What went wrong, by kind: the variant says what a caller may do (answer 404 or 409, retry
/// later, or report a bug); a [`Failure`] keeps the message for logs and the driver error it
/// came from (the error's `source`).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The object does not exist in the caller's scope (or at all).
    #[error("not found")]
    NotFound,
    /// A uniqueness or state conflict.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The database cannot be reached or is overloaded; the request may be retried (and when
    /// [`Failure::retries_transaction`], re-running the whole transaction at once may succeed).
    #[error("database unavailable: {0}")]
    Unavailable(#[source] Failure),
    /// Anything else. The text is for logs, never for response bodies.
    #[error("database error: {0}")]
    Internal(#[source] Failure),
}

impl StoreError {
    pub fn unavailable(message: impl Into<String>) -> Self {
        StoreError::Unavailable(Failure::new(message))
    }

    pub fn internal(message: impl Into<String>) -> Self {
        StoreError::Internal(Failure::new(message))
    }

    /// Whether re-running the failed transaction right away may succeed (a serialization
    /// failure or a deadlock, as the database reported it by code).
    pub fn retries_transaction(&self) -> bool {
        matches!(self, StoreError::Unavailable(f) if f.retries_transaction())
    }
}

/// The cause of an `Unavailable` or `Internal` store error.
#[derive(Debug)]
pub struct Failure {
    message: String,
    retry_transaction: bool,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl Failure {
    pub fn new(message: impl Into<String>) -> Self {
        Failure {
            message: message.into(),
            retry_transaction: false,
            source: None,
        }
    }

    /// A failure whose cause is `source` (kept for the error chain; `message` is what logs
    /// show first).
    pub fn caused_by(
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Failure {
            source: Some(Box::new(source)),
            ..Failure::new(message)
        }
    }

    /// Marks the failure as one after which the whole transaction may simply run again.
    pub fn retry_transaction(mut self) -> Self {
        self.retry_transaction = true;
        self
    }

    pub fn retries_transaction(&self) -> bool {
        self.retry_transaction
    }

    pub fn message(&self) -> &str {
        &self.message
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// A time outside the supported range reaching the store is a bug upstream (parsers refuse
/// such values): the write fails before anything is stored, never with a wrapped value.
impl From<domain::instant::OutOfRange> for StoreError {
    fn from(e: domain::instant::OutOfRange) -> Self {
        StoreError::internal(format!("refusing to store a time: {e}"))
    }
}

/// See [`Store::bulk_ingest`].
#[async_trait]
pub trait BulkIngest: Send {
    /// Applies one batch (atomically, in order after the previous ones).
    async fn apply(
        &mut self,
        batch: SnapshotBatch,
        opts: IngestOptions,
    ) -> StoreResult<IngestCounts>;
    /// Commits what is still uncommitted. Dropping a session without finishing rolls back.
    async fn finish(self: Box<Self>) -> StoreResult<()>;
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Short backend name for logs and metrics ("sqlite", "postgres").
    fn backend(&self) -> &'static str;

    /// Cheap liveness probe of the database.
    async fn ping(&self) -> StoreResult<()>;

    // --- API keys, tenants, partners -----------------------------------------------------
    /// Stores a new key (only its hash), creating the tenant and partner when missing.
    async fn create_key(&self, key: NewApiKey) -> StoreResult<()>;
    async fn list_keys(&self) -> StoreResult<Vec<ApiKeyInfo>>;
    /// Revokes (as of `now`) every active key whose prefix starts with `prefix`; returns how
    /// many.
    async fn revoke_keys(&self, prefix: &str, now: OffsetDateTime) -> StoreResult<u64>;
    /// Resolves an active key hash to its principal (tenant, default partner, owned partners).
    async fn principal(&self, key_hash: &[u8; 32]) -> StoreResult<Option<Principal>>;

    // --- Enrollments ---------------------------------------------------------------------
    async fn create_enrollment(&self, scope: &Scope, new: NewEnrollment) -> StoreResult<()>;
    /// Replaces key, event types and prospect ids atomically, stamping the enrollment as
    /// updated at `now`. `NotFound` outside the scope.
    async fn update_enrollment(
        &self,
        scope: &Scope,
        enrollment_id: &str,
        spec: EnrollmentSpec,
        now: OffsetDateTime,
    ) -> StoreResult<()>;
    /// A v2 PATCH (see [`EnrollmentPatch`]), atomically; returns the enrollment as stored.
    /// `NotFound` outside the scope or for a `webhook_id` the scope lacks; `Conflict`
    /// ([`WEBHOOK_NOT_ACTIVE`]) for a disabled one.
    async fn patch_enrollment(
        &self,
        scope: &Scope,
        enrollment_id: &str,
        patch: EnrollmentPatch,
        now: OffsetDateTime,
    ) -> StoreResult<Enrollment>;
    async fn delete_enrollment(&self, scope: &Scope, enrollment_id: &str) -> StoreResult<()>;
    async fn list_enrollments(
        &self,
        scope: &Scope,
        query: &EnrollmentQuery,
    ) -> StoreResult<EnrollmentPage>;
    /// The enrollments (of any tenant/partner) that cover `prospect` for `event_type`:
    /// the fan-out lookup, one index range scan.
    async fn covering_enrollments(
        &self,
        prospect: &ProspectId,
        event_type: EventType,
    ) -> StoreResult<Vec<CoveringEnrollment>>;

    // --- Snapshots, events, outbox -------------------------------------------------------
    /// Applies snapshots in order, atomically: state changes, detected events and their
    /// notifications (one per covering enrollment) commit together or not at all.
    async fn ingest_snapshots(
        &self,
        batch: SnapshotBatch,
        opts: IngestOptions,
    ) -> StoreResult<IngestCounts>;
    /// A bulk-load session for a process that has the database to itself for a while (the
    /// CLI's `ingest`): batches are applied as by `ingest_snapshots`, in order, but committed
    /// together about every `commit_every` snapshots, so each page of prospect state is
    /// written once per commit instead of once per batch. A failure or a crash loses at most
    /// the uncommitted batches (re-ingesting is idempotent). `None` when the backend has no
    /// such mode; callers then ingest batch by batch.
    async fn bulk_ingest(&self, commit_every: usize) -> StoreResult<Option<Box<dyn BulkIngest>>> {
        let _ = commit_every;
        Ok(None)
    }
    /// Events of the given prospects and types in the window, newest first.
    async fn query_events(&self, query: &EventQuery) -> StoreResult<Vec<StoredEvent>>;
    /// Fires the anniversaries due since the last scan up to `opts.now` + lead days (at most
    /// once each, none beyond the retention) and remembers how far it got, so none is lost
    /// while the service is down.
    async fn scan_anniversaries(&self, opts: IngestOptions) -> StoreResult<ScanReport>;
    /// Deletes events whose event_time is before `before`; returns how many.
    async fn prune_events(&self, before: time::OffsetDateTime) -> StoreResult<u64>;
    /// Outbox rows of one scope (or of everyone), oldest first.
    async fn outbox(&self, scope: Option<&Scope>, limit: u32) -> StoreResult<Vec<OutboxRow>>;

    // --- Webhooks --------------------------------------------------------------------------
    /// Registers (or replaces, with a new secret) the partner's webhook and enables it.
    async fn put_webhook(
        &self,
        scope: &Scope,
        url: &str,
        secret: &str,
        now: time::OffsetDateTime,
    ) -> StoreResult<Webhook>;
    /// Points the partner's webhook at `url`, keeping its secret, and enables it like a
    /// re-registration does (new generation, parked notifications flow). `NotFound` when the
    /// partner has no webhook: it never creates one.
    async fn update_webhook_url(
        &self,
        scope: &Scope,
        url: &str,
        now: time::OffsetDateTime,
    ) -> StoreResult<Webhook>;
    async fn get_webhook(&self, scope: &Scope) -> StoreResult<Option<Webhook>>;
    /// `NotFound` when the partner has no webhook. Pending notifications stay pending.
    async fn delete_webhook(&self, scope: &Scope) -> StoreResult<()>;
    /// The webhook's attempts since `since` (count, successes, latency p50/p99) and its pending
    /// backlog now (v1: the legacy webhook's; its notifications wait without a registration).
    /// One indexed query over the webhook's notifications attempted since `since`; callers
    /// bound the window (`domain::defaults::STATS_WINDOW_MAX`).
    async fn webhook_stats(
        &self,
        webhook: &WebhookKey,
        since: time::OffsetDateTime,
    ) -> StoreResult<WebhookStats>;
    /// Notifications queued for the webhook in `[from, to)` counted per UTC day and event name,
    /// ordered by day then name; days without any are absent. One indexed range scan; callers
    /// bound the window (`domain::defaults::DAILY_WINDOW_MAX_DAYS`).
    async fn daily_notifications(
        &self,
        webhook: &WebhookKey,
        from: time::OffsetDateTime,
        to: time::OffsetDateTime,
    ) -> StoreResult<Vec<DailyCount>>;

    // --- v2 webhooks (the legacy row is the partner's v1 webhook, read-only here) -----------
    /// Creates a v2 webhook; `Conflict` ([`WEBHOOK_CAP_REACHED`], [`WEBHOOK_NAME_TAKEN`])
    /// beyond [`MAX_WEBHOOKS`] or for a name the scope already uses.
    async fn create_webhook(
        &self,
        scope: &Scope,
        new: NewWebhook,
        now: time::OffsetDateTime,
    ) -> StoreResult<Webhook>;
    /// The scope's webhooks: the legacy row (if registered) first, then by creation.
    async fn list_webhooks(&self, scope: &Scope) -> StoreResult<Vec<Webhook>>;
    async fn find_webhook(&self, key: &WebhookKey) -> StoreResult<Option<Webhook>>;
    /// Applies a v2 PATCH; `NotFound`, `Conflict` ([`WEBHOOK_READ_ONLY`] for the legacy row,
    /// [`WEBHOOK_NAME_TAKEN`]). Enabling makes its waiting notifications due; disabling parks
    /// them.
    async fn change_webhook(
        &self,
        key: &WebhookKey,
        change: WebhookChange,
        now: time::OffsetDateTime,
    ) -> StoreResult<Webhook>;
    /// Deletes a v2 webhook unless active enrollments use it and not `force`; deleting pauses
    /// them and fails the webhook's pending notifications.
    async fn remove_webhook(
        &self,
        key: &WebhookKey,
        force: bool,
        now: time::OffsetDateTime,
    ) -> StoreResult<WebhookRemoval>;
    /// Replaces the secret at once; the old one signs `webhook-signature` until `now + grace`.
    async fn rotate_webhook_secret(
        &self,
        key: &WebhookKey,
        secret: &str,
        grace: std::time::Duration,
        now: time::OffsetDateTime,
    ) -> StoreResult<Webhook>;

    // --- Delivery --------------------------------------------------------------------------
    /// Leases up to `limit` notifications due at `now` of enabled webhooks until `now + lease`
    /// (in whole milliseconds), oldest due first, and no more per webhook than `room` allows
    /// (webhooks with enough work in flight get nothing). Cost: one index range scan per
    /// enabled webhook with room.
    async fn claim_due(
        &self,
        now: OffsetDateTime,
        lease: std::time::Duration,
        limit: u32,
        room: &ClaimRoom,
    ) -> StoreResult<Vec<Claimed>>;
    /// Records an attempt and moves the notification (and its webhook's health) on. When the
    /// lease is no longer ours the attempt is still recorded (and counted) but the state is
    /// left alone.
    async fn record_attempt(&self, record: AttemptRecord) -> StoreResult<()> {
        self.record_attempts(vec![record]).await
    }
    /// Records attempts as [`Store::record_attempt`] does each, in order, in one transaction
    /// (all or none; the delivery worker batches the attempts that finish together). On
    /// PostgreSQL a batch costs a few set statements whatever its size.
    async fn record_attempts(&self, records: Vec<AttemptRecord>) -> StoreResult<()>;
    /// Moves a claim's lease from `expected` to `until` (None releases the claim). False when
    /// the lease is no longer ours (it expired and another worker claimed the notification).
    async fn set_lease(
        &self,
        row: i64,
        expected: OffsetDateTime,
        until: Option<OffsetDateTime>,
    ) -> StoreResult<bool> {
        let change = LeaseChange {
            row,
            expected,
            until,
        };
        let answers = self.change_leases(vec![change]).await?;
        Ok(answers.first().copied().unwrap_or(false))
    }
    /// Applies lease changes as [`Store::set_lease`] does each, in order, together (one
    /// transaction; on PostgreSQL one statement per batch whose rows are distinct). Answers,
    /// for each change in order, whether the lease was still its own (false: the row is left
    /// untouched — its lease expired and it was claimed again, or it was settled).
    async fn change_leases(&self, changes: Vec<LeaseChange>) -> StoreResult<Vec<bool>>;
    /// Queues notifications that do not come from stored events (simulations) for a webhook.
    async fn queue_direct(
        &self,
        webhook: &WebhookKey,
        items: Vec<DirectNotification>,
        now: time::OffsetDateTime,
    ) -> StoreResult<u64>;
    /// The delivery log of one webhook (v1: the legacy one).
    async fn list_deliveries(
        &self,
        webhook: &WebhookKey,
        query: &DeliveryQuery,
    ) -> StoreResult<DeliveryPage>;
    async fn get_delivery(
        &self,
        webhook: &WebhookKey,
        delivery_id: &str,
    ) -> StoreResult<Option<(DeliveryInfo, Vec<AttemptInfo>)>>;
    /// Re-queues one delivery now with a fresh retry cycle. `NotFound` outside the webhook.
    async fn retry_delivery(
        &self,
        webhook: &WebhookKey,
        delivery_id: &str,
        now: time::OffsetDateTime,
    ) -> StoreResult<()>;
    /// Re-queues every notification of the webhook whose event falls in the window.
    async fn replay(
        &self,
        webhook: &WebhookKey,
        query: &ReplayQuery,
        now: time::OffsetDateTime,
    ) -> StoreResult<u64>;

    // --- Idempotency keys (see `idempotency`) -----------------------------------------------
    /// Reserves `key` of `scope` for a request with `fingerprint` (then its writes are to run
    /// inside [`idempotency::fenced`]), or says what to answer instead.
    async fn idempotency_begin(
        &self,
        scope: &Scope,
        key: &str,
        fingerprint: &[u8],
        now: OffsetDateTime,
    ) -> StoreResult<IdemBegin>;
    /// Stores the answer of a held reservation; false when the key was taken over meanwhile.
    async fn idempotency_finish(&self, fence: &IdemFence, answer: &IdemAnswer)
        -> StoreResult<bool>;
    /// Gives a held reservation up without an answer: forgotten when the request wrote nothing,
    /// else kept as executed-without-answer (never executed again).
    async fn idempotency_release(&self, fence: &IdemFence) -> StoreResult<()>;
    /// Deletes idempotency keys created before `before`; returns how many.
    async fn prune_idempotency_keys(&self, before: OffsetDateTime) -> StoreResult<u64>;
}

pub type DynStore = Arc<dyn Store>;

/// Opens the store named by a database URL (`sqlite://path`, `sqlite::memory:`), running
/// migrations first.
pub async fn open(url: &str) -> StoreResult<DynStore> {
    open_with_extra_connections(url, 0).await
}

/// [`open`], with `extra` connections in a PostgreSQL pool beyond its default size (for the
/// delivery worker beside the API); a `pool_size` in the URL still decides.
pub async fn open_with_extra_connections(url: &str, extra: usize) -> StoreResult<DynStore> {
    if let Some(path) = url.strip_prefix("sqlite://") {
        let store = sqlite::SqliteStore::open(path, sqlite::SqliteOptions::default()).await?;
        Ok(Arc::new(store))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let mut opts = postgres::PostgresOptions::default();
        opts.max_connections += extra;
        let store = postgres::PostgresStore::open(url, opts).await?;
        Ok(Arc::new(store))
    } else {
        Err(StoreError::internal(format!(
            "unsupported database URL scheme (expected sqlite:// or postgres://): {}",
            redact_url(url)
        )))
    }
}

/// Removes a password from a URL so it can be logged.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &creds[..c], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn redacts_passwords() {
        assert_eq!(
            super::redact_url("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(super::redact_url("sqlite://./x.db"), "sqlite://./x.db");
    }
}
