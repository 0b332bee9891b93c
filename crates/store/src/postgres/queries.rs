//! `Store` implemented with SQL for PostgreSQL (keys and enrollments here; events in events.rs,
//! webhooks and delivery in webhooks.rs). Every partner-owned query filters by scope.

use super::idempotency::fence;
use super::{is_unique_violation, pg, PostgresStore};
use crate::model::*;
use crate::rules::{enrollment_page, prospect_diff, unix_now};
use crate::{IdemAnswer, IdemBegin, IdemFence, SnapshotBatch, Store, StoreError, StoreResult};
use async_trait::async_trait;
use domain::{event_mask, EnrollmentId, EventType, PartnerId, ProspectId, TenantId};
use tokio_postgres::Row;

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

    async fn create_key(&self, key: NewApiKey) -> StoreResult<()> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await.map_err(pg)?;
        ensure_partner(&tx, &key.tenant, &key.partner, key.created_at).await?;
        let s = tx
            .prepare_cached(
                "INSERT INTO api_keys (key_hash, prefix, tenant_id, partner_id, is_admin, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .await
            .map_err(pg)?;
        tx.execute(
            &s,
            &[
                &&key.key_hash[..],
                &key.prefix,
                &key.tenant.0,
                &key.partner.0,
                &key.admin,
                &key.created_at,
            ],
        )
        .await
        .map_err(pg)?;
        tx.commit().await.map_err(pg)
    }

    async fn list_keys(&self) -> StoreResult<Vec<ApiKeyInfo>> {
        let c = self.conn().await?;
        let s = c
            .prepare_cached(
                "SELECT prefix, tenant_id, partner_id, is_admin, created_at, revoked_at
                 FROM api_keys ORDER BY id",
            )
            .await
            .map_err(pg)?;
        let rows = c.query(&s, &[]).await.map_err(pg)?;
        Ok(rows
            .iter()
            .map(|r| ApiKeyInfo {
                prefix: r.get(0),
                tenant: TenantId(r.get(1)),
                partner: PartnerId(r.get(2)),
                admin: r.get(3),
                created_at: r.get(4),
                revoked_at: r.get(5),
            })
            .collect())
    }

    async fn revoke_keys(&self, prefix: &str) -> StoreResult<u64> {
        let c = self.conn().await?;
        // Prefix match without LIKE wildcards: compare the leading substring.
        let s = c
            .prepare_cached(
                "UPDATE api_keys SET revoked_at = EXTRACT(EPOCH FROM now())::BIGINT
                 WHERE revoked_at IS NULL AND left(prefix, length($1)) = $1",
            )
            .await
            .map_err(pg)?;
        c.execute(&s, &[&prefix]).await.map_err(pg)
    }

    async fn principal(&self, key_hash: &[u8; 32]) -> StoreResult<Option<Principal>> {
        let c = self.conn().await?;
        let s = c
            .prepare_cached(
                "SELECT k.tenant_id, k.partner_id, k.is_admin,
                    ARRAY(SELECT p.partner_id FROM partners p WHERE p.tenant_id = k.tenant_id
                          ORDER BY p.partner_id)
                 FROM api_keys k WHERE k.key_hash = $1 AND k.revoked_at IS NULL",
            )
            .await
            .map_err(pg)?;
        let row = c.query_opt(&s, &[&&key_hash[..]]).await.map_err(pg)?;
        Ok(row.map(|r| Principal {
            tenant: TenantId(r.get(0)),
            default_partner: PartnerId(r.get(1)),
            admin: r.get(2),
            partners: r
                .get::<_, Vec<String>>(3)
                .into_iter()
                .map(PartnerId)
                .collect(),
        }))
    }

    async fn create_enrollment(&self, scope: &Scope, new: NewEnrollment) -> StoreResult<()> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await.map_err(pg)?;
        fence(&tx).await?;
        let s = tx
            .prepare_cached(
                "INSERT INTO enrollments (enrollment_id, tenant_id, partner_id, enrollment_key,
                    event_types, event_mask, prospect_ids, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) RETURNING id",
            )
            .await
            .map_err(pg)?;
        let id: i64 = tx
            .query_one(
                &s,
                &[
                    &new.enrollment_id.as_str(),
                    &scope.tenant.0,
                    &scope.partner.0,
                    &new.spec.enrollment_key,
                    &encode_event_types(&new.spec.event_types),
                    &(event_mask(&new.spec.event_types) as i32),
                    &encode_prospect_ids(&new.spec.prospect_ids),
                    &new.now,
                ],
            )
            .await
            .map_err(|e| {
                if is_unique_violation(&e) {
                    StoreError::Conflict("enrollment id already exists".into())
                } else {
                    pg(e)
                }
            })?
            .get(0);
        insert_prospects(&tx, id, &new.spec.prospect_ids).await?;
        tx.commit().await.map_err(pg)
    }

    async fn update_enrollment(
        &self,
        scope: &Scope,
        enrollment_id: &str,
        spec: EnrollmentSpec,
    ) -> StoreResult<()> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await.map_err(pg)?;
        fence(&tx).await?;
        // Locks the row and reads the stored prospect list (the current index rows) in the
        // same statement that replaces it.
        let s = tx
            .prepare_cached(
                "UPDATE enrollments e SET enrollment_key = $4, event_types = $5, event_mask = $6,
                    prospect_ids = $7, updated_at = $8
                 FROM (SELECT id, prospect_ids FROM enrollments
                       WHERE enrollment_id = $1 AND tenant_id = $2 AND partner_id = $3
                       FOR UPDATE) old
                 WHERE e.id = old.id
                 RETURNING e.id, old.prospect_ids",
            )
            .await
            .map_err(pg)?;
        let row = tx
            .query_opt(
                &s,
                &[
                    &enrollment_id,
                    &scope.tenant.0,
                    &scope.partner.0,
                    &spec.enrollment_key,
                    &encode_event_types(&spec.event_types),
                    &(event_mask(&spec.event_types) as i32),
                    &encode_prospect_ids(&spec.prospect_ids),
                    &unix_now(),
                ],
            )
            .await
            .map_err(pg)?;
        let Some(row) = row else {
            return Err(StoreError::NotFound);
        };
        let id: i64 = row.get(0);
        let old = decode_prospect_ids(row.get::<_, &str>(1));
        replace_prospects(&tx, id, &old, &spec.prospect_ids).await?;
        tx.commit().await.map_err(pg)
    }

    async fn delete_enrollment(&self, scope: &Scope, enrollment_id: &str) -> StoreResult<()> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await.map_err(pg)?;
        fence(&tx).await?;
        let s = tx
            .prepare_cached(
                "DELETE FROM enrollments
                 WHERE enrollment_id = $1 AND tenant_id = $2 AND partner_id = $3
                 RETURNING id, prospect_ids",
            )
            .await
            .map_err(pg)?;
        let row = tx
            .query_opt(&s, &[&enrollment_id, &scope.tenant.0, &scope.partner.0])
            .await
            .map_err(pg)?;
        let Some(row) = row else {
            return Err(StoreError::NotFound);
        };
        let id: i64 = row.get(0);
        let old = decode_prospect_ids(row.get::<_, &str>(1));
        replace_prospects(&tx, id, &old, &[]).await?;
        tx.commit().await.map_err(pg)
    }

    async fn list_enrollments(
        &self,
        scope: &Scope,
        q: &EnrollmentQuery,
    ) -> StoreResult<EnrollmentPage> {
        let c = self.conn().await?;
        let after = q.cursor.map(|c| c.0).unwrap_or(0);
        // Fetch one extra row to know whether another page follows; NULL means no limit.
        let fetch: Option<i64> = q.limit.map(|l| l as i64 + 1);
        let cols = "e.id, e.enrollment_id, e.enrollment_key, e.event_types, e.prospect_ids";
        let rows = match (&q.prospect_id, &q.enrollment_key) {
            (Some(p), key) => {
                let s = c
                    .prepare_cached(&format!(
                        "SELECT {cols} FROM enrollment_prospects ep
                         JOIN enrollments e ON e.id = ep.enrollment_ref
                         WHERE ep.prospect_id = $1 AND e.tenant_id = $2 AND e.partner_id = $3
                           AND e.id > $4 AND ($5::TEXT IS NULL OR e.enrollment_key = $5)
                         ORDER BY e.id LIMIT $6"
                    ))
                    .await
                    .map_err(pg)?;
                c.query(
                    &s,
                    &[
                        &&p.as_bytes()[..],
                        &scope.tenant.0,
                        &scope.partner.0,
                        &after,
                        key,
                        &fetch,
                    ],
                )
                .await
            }
            (None, Some(key)) => {
                let s = c
                    .prepare_cached(&format!(
                        "SELECT {cols} FROM enrollments e
                         WHERE e.tenant_id = $1 AND e.partner_id = $2 AND e.enrollment_key = $3
                           AND e.id > $4
                         ORDER BY e.id LIMIT $5"
                    ))
                    .await
                    .map_err(pg)?;
                c.query(
                    &s,
                    &[&scope.tenant.0, &scope.partner.0, key, &after, &fetch],
                )
                .await
            }
            (None, None) => {
                let s = c
                    .prepare_cached(&format!(
                        "SELECT {cols} FROM enrollments e
                         WHERE e.tenant_id = $1 AND e.partner_id = $2 AND e.id > $3
                         ORDER BY e.id LIMIT $4"
                    ))
                    .await
                    .map_err(pg)?;
                c.query(&s, &[&scope.tenant.0, &scope.partner.0, &after, &fetch])
                    .await
            }
        }
        .map_err(pg)?;
        let rows = rows.iter().map(enrollment_row).collect();
        Ok(enrollment_page(rows, q.limit))
    }

    async fn covering_enrollments(
        &self,
        prospect: &ProspectId,
        event_type: EventType,
    ) -> StoreResult<Vec<CoveringEnrollment>> {
        let c = self.conn().await?;
        let s = c
            .prepare_cached(
                "SELECT e.tenant_id, e.partner_id, e.enrollment_id, e.enrollment_key
                 FROM enrollment_prospects ep JOIN enrollments e ON e.id = ep.enrollment_ref
                 WHERE ep.prospect_id = $1 AND (e.event_mask & $2) <> 0
                 ORDER BY e.id",
            )
            .await
            .map_err(pg)?;
        let rows = c
            .query(&s, &[&&prospect.as_bytes()[..], &(event_type.bit() as i32)])
            .await
            .map_err(pg)?;
        Ok(rows
            .iter()
            .map(|r| CoveringEnrollment {
                tenant: TenantId(r.get(0)),
                partner: PartnerId(r.get(1)),
                enrollment_id: EnrollmentId(r.get(2)),
                enrollment_key: r.get(3),
            })
            .collect())
    }

    async fn ingest_snapshots(
        &self,
        batch: SnapshotBatch,
        opts: IngestOptions,
    ) -> StoreResult<IngestCounts> {
        self.ingest(batch, opts).await
    }

    async fn query_events(&self, query: &EventQuery) -> StoreResult<Vec<StoredEvent>> {
        self.events(query).await
    }

    async fn scan_anniversaries(&self, opts: IngestOptions) -> StoreResult<ScanReport> {
        self.scan(opts).await
    }

    async fn prune_events(&self, before: time::OffsetDateTime) -> StoreResult<u64> {
        self.prune(before).await
    }

    async fn outbox(&self, scope: Option<&Scope>, limit: u32) -> StoreResult<Vec<OutboxRow>> {
        self.outbox_rows(scope, limit).await
    }

    async fn put_webhook(
        &self,
        scope: &Scope,
        url: &str,
        secret: &str,
        now_ms: i64,
    ) -> StoreResult<Webhook> {
        self.put_webhook_impl(scope, url, secret, now_ms).await
    }

    async fn get_webhook(&self, scope: &Scope) -> StoreResult<Option<Webhook>> {
        self.get_webhook_impl(scope).await
    }

    async fn delete_webhook(&self, scope: &Scope) -> StoreResult<()> {
        self.delete_webhook_impl(scope).await
    }

    async fn claim_due(
        &self,
        now_ms: i64,
        lease_ms: i64,
        limit: u32,
        room: &ClaimRoom,
    ) -> StoreResult<Vec<Claimed>> {
        self.claim_due_impl(now_ms, lease_ms, limit, room).await
    }

    async fn record_attempt(&self, record: AttemptRecord) -> StoreResult<()> {
        self.record_attempt_impl(&record).await
    }

    async fn set_lease(&self, row: i64, expected: i64, until: Option<i64>) -> StoreResult<bool> {
        self.set_lease_impl(row, expected, until).await
    }

    async fn queue_direct(
        &self,
        scope: &Scope,
        items: Vec<DirectNotification>,
        now_ms: i64,
    ) -> StoreResult<u64> {
        self.queue_direct_impl(scope, &items, now_ms).await
    }

    async fn list_deliveries(
        &self,
        scope: &Scope,
        query: &DeliveryQuery,
    ) -> StoreResult<DeliveryPage> {
        self.list_deliveries_impl(scope, query).await
    }

    async fn get_delivery(
        &self,
        scope: &Scope,
        delivery_id: &str,
    ) -> StoreResult<Option<(DeliveryInfo, Vec<AttemptInfo>)>> {
        self.get_delivery_impl(scope, delivery_id).await
    }

    async fn retry_delivery(
        &self,
        scope: &Scope,
        delivery_id: &str,
        now_ms: i64,
    ) -> StoreResult<()> {
        self.retry_delivery_impl(scope, delivery_id, now_ms).await
    }

    async fn replay(&self, scope: &Scope, query: &ReplayQuery, now_ms: i64) -> StoreResult<u64> {
        self.replay_impl(scope, query, now_ms).await
    }

    async fn idempotency_begin(
        &self,
        scope: &Scope,
        key: &str,
        fingerprint: &[u8],
        now_ms: i64,
    ) -> StoreResult<IdemBegin> {
        self.idempotency_begin_impl(scope, key, fingerprint, now_ms)
            .await
    }

    async fn idempotency_finish(
        &self,
        fence: &IdemFence,
        answer: &IdemAnswer,
    ) -> StoreResult<bool> {
        self.idempotency_finish_impl(fence, answer).await
    }

    async fn idempotency_release(&self, fence: &IdemFence) -> StoreResult<()> {
        self.idempotency_release_impl(fence).await
    }

    async fn prune_idempotency_keys(&self, before_ms: i64) -> StoreResult<u64> {
        self.prune_idempotency_impl(before_ms).await
    }
}

fn enrollment_row(r: &Row) -> (i64, Enrollment) {
    (
        r.get(0),
        Enrollment {
            enrollment_id: EnrollmentId(r.get(1)),
            spec: EnrollmentSpec {
                enrollment_key: r.get(2),
                event_types: decode_event_types(r.get::<_, &str>(3)),
                prospect_ids: decode_prospect_ids(r.get::<_, &str>(4)),
            },
        },
    )
}

async fn ensure_partner(
    tx: &deadpool_postgres::Transaction<'_>,
    tenant: &TenantId,
    partner: &PartnerId,
    now: i64,
) -> StoreResult<()> {
    let s = tx
        .prepare_cached(
            "INSERT INTO tenants (tenant_id, created_at) VALUES ($1, $2)
             ON CONFLICT DO NOTHING",
        )
        .await
        .map_err(pg)?;
    tx.execute(&s, &[&tenant.0, &now]).await.map_err(pg)?;
    let s = tx
        .prepare_cached(
            "INSERT INTO partners (tenant_id, partner_id, created_at) VALUES ($1, $2, $3)
             ON CONFLICT DO NOTHING",
        )
        .await
        .map_err(pg)?;
    tx.execute(&s, &[&tenant.0, &partner.0, &now])
        .await
        .map_err(pg)?;
    Ok(())
}

fn id_bytes(ids: &[ProspectId]) -> Vec<&[u8]> {
    ids.iter().map(|p| &p.as_bytes()[..]).collect()
}

async fn insert_prospects(
    tx: &deadpool_postgres::Transaction<'_>,
    id: i64,
    ids: &[ProspectId],
) -> StoreResult<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let s = tx
        .prepare_cached(
            "INSERT INTO enrollment_prospects (prospect_id, enrollment_ref)
             SELECT p, $2 FROM unnest($1::BYTEA[]) AS p
             ON CONFLICT DO NOTHING",
        )
        .await
        .map_err(pg)?;
    tx.execute(&s, &[&id_bytes(ids), &id]).await.map_err(pg)?;
    Ok(())
}

/// Replaces the prospect rows of one enrollment (`current` as stored in its row), touching
/// only the difference.
async fn replace_prospects(
    tx: &deadpool_postgres::Transaction<'_>,
    id: i64,
    current: &[ProspectId],
    wanted: &[ProspectId],
) -> StoreResult<()> {
    let (gone, added) = prospect_diff(current, wanted);
    if !gone.is_empty() {
        let gone = id_bytes(&gone);
        let s = tx
            .prepare_cached(
                "DELETE FROM enrollment_prospects
                 WHERE prospect_id = ANY($2::BYTEA[]) AND enrollment_ref = $1",
            )
            .await
            .map_err(pg)?;
        tx.execute(&s, &[&id, &gone]).await.map_err(pg)?;
    }
    insert_prospects(tx, id, &added).await
}
