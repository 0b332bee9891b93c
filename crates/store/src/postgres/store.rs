//! `Store` for PostgreSQL: the delegation table. Each method takes a pooled connection and calls
//! the function of the same name in the module of its concern (the same names as SQLite's).

use super::{
    enrollments, idempotency, ingest, keys, outbox, pg, scan, stats, webhooks, PostgresStore,
};
use crate::model::*;
use crate::{IdemAnswer, IdemBegin, IdemFence, SnapshotBatch, Store, StoreResult};
use async_trait::async_trait;
use domain::{EventType, ProspectId};
use time::OffsetDateTime;

#[async_trait]
impl Store for PostgresStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn ping(&self) -> StoreResult<()> {
        let c = self.conn().await?;
        c.simple_query("SELECT 1").await.map_err(pg)?;
        Ok(())
    }

    // --- API keys, tenants, partners -----------------------------------------------------
    async fn create_key(&self, key: NewApiKey) -> StoreResult<()> {
        keys::create_key(&mut self.conn().await?, key).await
    }

    async fn list_keys(&self) -> StoreResult<Vec<ApiKeyInfo>> {
        keys::list_keys(&mut self.conn().await?).await
    }

    async fn revoke_keys(&self, prefix: &str, now: OffsetDateTime) -> StoreResult<u64> {
        keys::revoke_keys(&mut self.conn().await?, prefix, now).await
    }

    async fn principal(&self, key_hash: &[u8; 32]) -> StoreResult<Option<Principal>> {
        keys::principal(&mut self.conn().await?, key_hash).await
    }

    // --- Enrollments ---------------------------------------------------------------------
    async fn create_enrollment(&self, scope: &Scope, new: NewEnrollment) -> StoreResult<()> {
        enrollments::create_enrollment(&mut self.conn().await?, scope, new).await
    }

    async fn update_enrollment(
        &self,
        scope: &Scope,
        enrollment_id: &str,
        spec: EnrollmentSpec,
        now: OffsetDateTime,
    ) -> StoreResult<()> {
        let mut c = self.conn().await?;
        enrollments::update_enrollment(&mut c, scope, enrollment_id, spec, now).await
    }

    async fn patch_enrollment(
        &self,
        scope: &Scope,
        enrollment_id: &str,
        patch: EnrollmentPatch,
        now: OffsetDateTime,
    ) -> StoreResult<Enrollment> {
        let mut c = self.conn().await?;
        enrollments::patch_enrollment(&mut c, scope, enrollment_id, &patch, now).await
    }

    async fn delete_enrollment(&self, scope: &Scope, enrollment_id: &str) -> StoreResult<()> {
        enrollments::delete_enrollment(&mut self.conn().await?, scope, enrollment_id).await
    }

    async fn list_enrollments(
        &self,
        scope: &Scope,
        query: &EnrollmentQuery,
    ) -> StoreResult<EnrollmentPage> {
        enrollments::list_enrollments(&mut self.conn().await?, scope, query).await
    }

    async fn covering_enrollments(
        &self,
        prospect: &ProspectId,
        event_type: EventType,
    ) -> StoreResult<Vec<CoveringEnrollment>> {
        enrollments::covering_enrollments(&mut self.conn().await?, prospect, event_type).await
    }

    // --- Snapshots, events, outbox -------------------------------------------------------
    async fn ingest_snapshots(
        &self,
        batch: SnapshotBatch,
        opts: IngestOptions,
    ) -> StoreResult<IngestCounts> {
        ingest::ingest_snapshots(self, batch, opts).await
    }

    async fn query_events(&self, query: &EventQuery) -> StoreResult<Vec<StoredEvent>> {
        ingest::query_events(&mut self.conn().await?, query).await
    }

    async fn scan_anniversaries(&self, opts: IngestOptions) -> StoreResult<ScanReport> {
        scan::scan_anniversaries(self, opts).await
    }

    async fn prune_events(&self, before: time::OffsetDateTime) -> StoreResult<u64> {
        ingest::prune_events(&mut self.conn().await?, before).await
    }

    async fn outbox(&self, scope: Option<&Scope>, limit: u32) -> StoreResult<Vec<OutboxRow>> {
        outbox::outbox(&mut self.conn().await?, scope, limit).await
    }

    // --- Webhooks --------------------------------------------------------------------------
    async fn put_webhook(
        &self,
        scope: &Scope,
        url: &str,
        secret: &str,
        now: OffsetDateTime,
    ) -> StoreResult<Webhook> {
        let now_ms = domain::clock::unix_millis(now);
        webhooks::put_webhook(&mut self.conn().await?, scope, url, secret, now_ms).await
    }

    async fn update_webhook_url(
        &self,
        scope: &Scope,
        url: &str,
        now: OffsetDateTime,
    ) -> StoreResult<Webhook> {
        let now_ms = domain::clock::unix_millis(now);
        webhooks::update_webhook_url(&mut self.conn().await?, scope, url, now_ms).await
    }

    async fn get_webhook(&self, scope: &Scope) -> StoreResult<Option<Webhook>> {
        webhooks::get_webhook(&mut self.conn().await?, scope).await
    }

    async fn delete_webhook(&self, scope: &Scope) -> StoreResult<()> {
        webhooks::delete_webhook(&mut self.conn().await?, scope).await
    }

    async fn webhook_stats(
        &self,
        webhook: &WebhookKey,
        since: time::OffsetDateTime,
    ) -> StoreResult<WebhookStats> {
        let since = domain::clock::unix_millis(since);
        stats::webhook_stats(&mut self.conn().await?, webhook, since).await
    }

    async fn daily_notifications(
        &self,
        webhook: &WebhookKey,
        from: time::OffsetDateTime,
        to: time::OffsetDateTime,
    ) -> StoreResult<Vec<DailyCount>> {
        let (from, to) = (from.unix_timestamp(), to.unix_timestamp());
        stats::daily_notifications(&mut self.conn().await?, webhook, from, to).await
    }

    // --- v2 webhooks -----------------------------------------------------------------------
    async fn create_webhook(
        &self,
        scope: &Scope,
        new: NewWebhook,
        now: OffsetDateTime,
    ) -> StoreResult<Webhook> {
        webhooks::create_webhook(&mut self.conn().await?, scope, &new, now).await
    }

    async fn list_webhooks(&self, scope: &Scope) -> StoreResult<Vec<Webhook>> {
        webhooks::list_webhooks(&mut self.conn().await?, scope).await
    }

    async fn find_webhook(&self, key: &WebhookKey) -> StoreResult<Option<Webhook>> {
        webhooks::find_webhook(&mut self.conn().await?, key).await
    }

    async fn change_webhook(
        &self,
        key: &WebhookKey,
        change: WebhookChange,
        now: OffsetDateTime,
    ) -> StoreResult<Webhook> {
        webhooks::change_webhook(&mut self.conn().await?, key, &change, now).await
    }

    async fn remove_webhook(
        &self,
        key: &WebhookKey,
        force: bool,
        now: OffsetDateTime,
    ) -> StoreResult<WebhookRemoval> {
        webhooks::remove_webhook(&mut self.conn().await?, key, force, now).await
    }

    async fn rotate_webhook_secret(
        &self,
        key: &WebhookKey,
        secret: &str,
        grace: std::time::Duration,
        now: OffsetDateTime,
    ) -> StoreResult<Webhook> {
        webhooks::rotate_webhook_secret(&mut self.conn().await?, key, secret, grace, now).await
    }

    // --- Delivery --------------------------------------------------------------------------
    async fn claim_due(
        &self,
        now: OffsetDateTime,
        lease: std::time::Duration,
        limit: u32,
        room: &ClaimRoom,
    ) -> StoreResult<Vec<Claimed>> {
        outbox::claim_due(&mut self.conn().await?, now, lease, limit, room).await
    }

    async fn record_attempts(&self, records: Vec<AttemptRecord>) -> StoreResult<()> {
        if records.is_empty() {
            return Ok(());
        }
        let records = crate::rules::storable_records(records);
        outbox::record_attempts(&mut self.conn().await?, &records).await
    }

    async fn change_leases(&self, changes: Vec<LeaseChange>) -> StoreResult<Vec<bool>> {
        if changes.is_empty() {
            return Ok(Vec::new());
        }
        outbox::change_leases(&mut self.conn().await?, &changes).await
    }

    async fn queue_direct(
        &self,
        webhook: &WebhookKey,
        items: Vec<DirectNotification>,
        now: OffsetDateTime,
    ) -> StoreResult<u64> {
        outbox::queue_direct(&mut self.conn().await?, webhook, &items, now).await
    }

    async fn list_deliveries(
        &self,
        webhook: &WebhookKey,
        query: &DeliveryQuery,
    ) -> StoreResult<DeliveryPage> {
        outbox::list_deliveries(&mut self.conn().await?, webhook, query).await
    }

    async fn get_delivery(
        &self,
        webhook: &WebhookKey,
        delivery_id: &str,
    ) -> StoreResult<Option<(DeliveryInfo, Vec<AttemptInfo>)>> {
        outbox::get_delivery(&mut self.conn().await?, webhook, delivery_id).await
    }

    async fn retry_delivery(
        &self,
        webhook: &WebhookKey,
        delivery_id: &str,
        now: OffsetDateTime,
    ) -> StoreResult<()> {
        outbox::retry_delivery(&mut self.conn().await?, webhook, delivery_id, now).await
    }

    async fn replay(
        &self,
        webhook: &WebhookKey,
        query: &ReplayQuery,
        now: OffsetDateTime,
    ) -> StoreResult<u64> {
        outbox::replay(&mut self.conn().await?, webhook, query, now).await
    }

    // --- Idempotency keys ------------------------------------------------------------------
    async fn idempotency_begin(
        &self,
        scope: &Scope,
        key: &str,
        fingerprint: &[u8],
        now: OffsetDateTime,
    ) -> StoreResult<IdemBegin> {
        let mut c = self.conn().await?;
        idempotency::begin(&mut c, scope, key, fingerprint, now).await
    }

    async fn idempotency_finish(
        &self,
        fence: &IdemFence,
        answer: &IdemAnswer,
    ) -> StoreResult<bool> {
        idempotency::finish(&mut self.conn().await?, fence, answer).await
    }

    async fn idempotency_release(&self, fence: &IdemFence) -> StoreResult<()> {
        idempotency::release(&mut self.conn().await?, fence).await
    }

    async fn prune_idempotency_keys(&self, before: OffsetDateTime) -> StoreResult<u64> {
        idempotency::prune(&mut self.conn().await?, before).await
    }
}
