//! `Store` for SQLite: the delegation table. Each method runs the function of the same name in
//! the module of its concern (the same names as PostgreSQL's) on the writer (`write`) or on a
//! reader connection (`read`).

use super::SqliteStore;
use super::{
    bulk, enrollments, idempotency, ingest, internal, keys, outbox, scan, stats, webhooks,
};
use crate::model::*;
use crate::{IdemAnswer, IdemBegin, IdemFence, SnapshotBatch, Store, StoreError, StoreResult};
use async_trait::async_trait;
use domain::{EventType, ProspectId};
use time::OffsetDateTime;

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn ping(&self) -> StoreResult<()> {
        self.read(|c| c.query_row("SELECT 1", [], |_| Ok(())).map_err(internal))
            .await
    }

    async fn create_key(&self, key: NewApiKey) -> StoreResult<()> {
        self.write(move |c| keys::create_key(c, key)).await
    }

    async fn list_keys(&self) -> StoreResult<Vec<ApiKeyInfo>> {
        self.read(keys::list_keys).await
    }

    async fn revoke_keys(&self, prefix: &str, now: OffsetDateTime) -> StoreResult<u64> {
        let prefix = prefix.to_string();
        self.write(move |c| keys::revoke_keys(c, &prefix, now))
            .await
    }

    async fn principal(&self, key_hash: &[u8; 32]) -> StoreResult<Option<Principal>> {
        let hash = *key_hash;
        self.read(move |c| keys::principal(c, &hash)).await
    }

    async fn create_enrollment(&self, scope: &Scope, new: NewEnrollment) -> StoreResult<()> {
        let scope = scope.clone();
        self.write(move |c| enrollments::create_enrollment(c, &scope, new))
            .await
    }

    async fn update_enrollment(
        &self,
        scope: &Scope,
        enrollment_id: &str,
        spec: EnrollmentSpec,
        now: OffsetDateTime,
    ) -> StoreResult<()> {
        let (scope, id) = (scope.clone(), enrollment_id.to_string());
        self.write(move |c| enrollments::update_enrollment(c, &scope, &id, spec, now))
            .await
    }

    async fn patch_enrollment(
        &self,
        scope: &Scope,
        enrollment_id: &str,
        patch: EnrollmentPatch,
        now: OffsetDateTime,
    ) -> StoreResult<Enrollment> {
        let (scope, id) = (scope.clone(), enrollment_id.to_string());
        self.write(move |c| enrollments::patch_enrollment(c, &scope, &id, &patch, now))
            .await
    }

    async fn delete_enrollment(&self, scope: &Scope, enrollment_id: &str) -> StoreResult<()> {
        let (scope, id) = (scope.clone(), enrollment_id.to_string());
        self.write(move |c| enrollments::delete_enrollment(c, &scope, &id))
            .await
    }

    async fn list_enrollments(
        &self,
        scope: &Scope,
        query: &EnrollmentQuery,
    ) -> StoreResult<EnrollmentPage> {
        let scope = scope.clone();
        let query = query.clone();
        self.read(move |c| enrollments::list_enrollments(c, &scope, &query))
            .await
    }

    async fn covering_enrollments(
        &self,
        prospect: &ProspectId,
        event_type: EventType,
    ) -> StoreResult<Vec<CoveringEnrollment>> {
        let prospect = *prospect;
        self.read(move |c| enrollments::covering_enrollments(c, &prospect, event_type))
            .await
    }

    async fn ingest_snapshots(
        &self,
        batch: SnapshotBatch,
        opts: IngestOptions,
    ) -> StoreResult<IngestCounts> {
        // Checked here, so that a refused batch fails alone, not the writer's whole group.
        batch.check_storable()?;
        self.write(move |c| ingest::ingest_snapshots(c, batch, opts))
            .await
    }

    async fn bulk_ingest(
        &self,
        commit_every: usize,
    ) -> StoreResult<Option<Box<dyn crate::BulkIngest>>> {
        let (path, presence) = (self.path().to_path_buf(), self.presence());
        let bulk = tokio::task::spawn_blocking(move || {
            bulk::SqliteBulk::open(&path, commit_every, presence)
        })
        .await
        .map_err(|e| StoreError::internal(format!("open task: {e}")))??;
        Ok(Some(Box::new(bulk)))
    }

    async fn query_events(&self, query: &EventQuery) -> StoreResult<Vec<StoredEvent>> {
        let query = query.clone();
        self.read(move |c| ingest::query_events(c, &query)).await
    }

    async fn scan_anniversaries(&self, opts: IngestOptions) -> StoreResult<ScanReport> {
        scan::scan_anniversaries(self, opts).await
    }

    async fn prune_events(&self, before: time::OffsetDateTime) -> StoreResult<u64> {
        ingest::prune_events(self, before).await
    }

    async fn outbox(&self, scope: Option<&Scope>, limit: u32) -> StoreResult<Vec<OutboxRow>> {
        let scope = scope.cloned();
        self.read(move |c| outbox::outbox(c, scope.as_ref(), limit))
            .await
    }

    async fn put_webhook(
        &self,
        scope: &Scope,
        url: &str,
        secret: &str,
        now: OffsetDateTime,
    ) -> StoreResult<Webhook> {
        let now_ms = domain::clock::unix_millis(now);
        let (scope, url, secret) = (scope.clone(), url.to_string(), secret.to_string());
        self.write(move |c| webhooks::put_webhook(c, &scope, &url, &secret, now_ms))
            .await
    }

    async fn update_webhook_url(
        &self,
        scope: &Scope,
        url: &str,
        now: OffsetDateTime,
    ) -> StoreResult<Webhook> {
        let now_ms = domain::clock::unix_millis(now);
        let (scope, url) = (scope.clone(), url.to_string());
        self.write(move |c| webhooks::update_webhook_url(c, &scope, &url, now_ms))
            .await
    }

    async fn get_webhook(&self, scope: &Scope) -> StoreResult<Option<Webhook>> {
        let scope = scope.clone();
        self.read(move |c| webhooks::get_webhook(c, &scope)).await
    }

    async fn delete_webhook(&self, scope: &Scope) -> StoreResult<()> {
        let scope = scope.clone();
        self.write(move |c| webhooks::delete_webhook(c, &scope))
            .await
    }

    async fn webhook_stats(
        &self,
        webhook: &WebhookKey,
        since: time::OffsetDateTime,
    ) -> StoreResult<WebhookStats> {
        let webhook = webhook.clone();
        let since = domain::clock::unix_millis(since);
        self.read(move |c| stats::webhook_stats(c, &webhook, since))
            .await
    }

    async fn daily_notifications(
        &self,
        webhook: &WebhookKey,
        from: time::OffsetDateTime,
        to: time::OffsetDateTime,
    ) -> StoreResult<Vec<DailyCount>> {
        let webhook = webhook.clone();
        let (from, to) = (from.unix_timestamp(), to.unix_timestamp());
        self.read(move |c| stats::daily_notifications(c, &webhook, from, to))
            .await
    }

    async fn create_webhook(
        &self,
        scope: &Scope,
        new: NewWebhook,
        now: OffsetDateTime,
    ) -> StoreResult<Webhook> {
        let scope = scope.clone();
        self.write(move |c| webhooks::create_webhook(c, &scope, &new, now))
            .await
    }

    async fn list_webhooks(&self, scope: &Scope) -> StoreResult<Vec<Webhook>> {
        let scope = scope.clone();
        self.read(move |c| webhooks::list_webhooks(c, &scope)).await
    }

    async fn find_webhook(&self, key: &WebhookKey) -> StoreResult<Option<Webhook>> {
        let key = key.clone();
        self.read(move |c| webhooks::find_webhook(c, &key)).await
    }

    async fn change_webhook(
        &self,
        key: &WebhookKey,
        change: WebhookChange,
        now: OffsetDateTime,
    ) -> StoreResult<Webhook> {
        let key = key.clone();
        self.write(move |c| webhooks::change_webhook(c, &key, &change, now))
            .await
    }

    async fn remove_webhook(
        &self,
        key: &WebhookKey,
        force: bool,
        now: OffsetDateTime,
    ) -> StoreResult<WebhookRemoval> {
        let key = key.clone();
        self.write(move |c| webhooks::remove_webhook(c, &key, force, now))
            .await
    }

    async fn rotate_webhook_secret(
        &self,
        key: &WebhookKey,
        secret: &str,
        grace: std::time::Duration,
        now: OffsetDateTime,
    ) -> StoreResult<Webhook> {
        let (key, secret) = (key.clone(), secret.to_string());
        self.write(move |c| webhooks::rotate_webhook_secret(c, &key, &secret, grace, now))
            .await
    }

    async fn claim_due(
        &self,
        now: OffsetDateTime,
        lease: std::time::Duration,
        limit: u32,
        room: &ClaimRoom,
    ) -> StoreResult<Vec<Claimed>> {
        let room = room.clone();
        self.write(move |c| outbox::claim_due(c, now, lease, limit, &room))
            .await
    }

    async fn record_attempts(&self, records: Vec<AttemptRecord>) -> StoreResult<()> {
        let records = crate::rules::storable_records(records);
        self.write(move |c| {
            records
                .iter()
                .try_for_each(|r| outbox::record_attempt(c, r))
        })
        .await
    }

    async fn change_leases(&self, changes: Vec<LeaseChange>) -> StoreResult<Vec<bool>> {
        if changes.is_empty() {
            return Ok(Vec::new());
        }
        self.write(move |c| changes.iter().map(|l| outbox::change_lease(c, l)).collect())
            .await
    }

    async fn queue_direct(
        &self,
        webhook: &WebhookKey,
        items: Vec<DirectNotification>,
        now: OffsetDateTime,
    ) -> StoreResult<u64> {
        let key = webhook.clone();
        self.write(move |c| outbox::queue_direct(c, &key, &items, now))
            .await
    }

    async fn list_deliveries(
        &self,
        webhook: &WebhookKey,
        query: &DeliveryQuery,
    ) -> StoreResult<DeliveryPage> {
        let (key, query) = (webhook.clone(), query.clone());
        self.read(move |c| outbox::list_deliveries(c, &key, &query))
            .await
    }

    async fn get_delivery(
        &self,
        webhook: &WebhookKey,
        delivery_id: &str,
    ) -> StoreResult<Option<(DeliveryInfo, Vec<AttemptInfo>)>> {
        let (key, id) = (webhook.clone(), delivery_id.to_string());
        self.read(move |c| outbox::get_delivery(c, &key, &id)).await
    }

    async fn retry_delivery(
        &self,
        webhook: &WebhookKey,
        delivery_id: &str,
        now: OffsetDateTime,
    ) -> StoreResult<()> {
        let (key, id) = (webhook.clone(), delivery_id.to_string());
        self.write(move |c| outbox::retry_delivery(c, &key, &id, now))
            .await
    }

    async fn replay(
        &self,
        webhook: &WebhookKey,
        query: &ReplayQuery,
        now: OffsetDateTime,
    ) -> StoreResult<u64> {
        let (key, query) = (webhook.clone(), query.clone());
        self.write(move |c| outbox::replay(c, &key, &query, now))
            .await
    }

    async fn idempotency_begin(
        &self,
        scope: &Scope,
        key: &str,
        fingerprint: &[u8],
        now: OffsetDateTime,
    ) -> StoreResult<IdemBegin> {
        let (scope, key, fp) = (scope.clone(), key.to_string(), fingerprint.to_vec());
        self.write(move |c| idempotency::begin(c, &scope, &key, &fp, now))
            .await
    }

    async fn idempotency_finish(
        &self,
        fence: &IdemFence,
        answer: &IdemAnswer,
    ) -> StoreResult<bool> {
        let (fence, answer) = (fence.clone(), answer.clone());
        self.write(move |c| idempotency::finish(c, &fence, &answer))
            .await
    }

    async fn idempotency_release(&self, fence: &IdemFence) -> StoreResult<()> {
        let fence = fence.clone();
        self.write(move |c| idempotency::release(c, &fence)).await
    }

    async fn prune_idempotency_keys(&self, before: OffsetDateTime) -> StoreResult<u64> {
        self.write(move |c| idempotency::prune(c, before)).await
    }
}
