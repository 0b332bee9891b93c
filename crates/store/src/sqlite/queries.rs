//! `Store` implemented with SQL for SQLite. Every partner-owned query filters by scope.

use super::{idempotency, internal, webhooks, SqliteStore};
use crate::model::*;
use crate::rules::{enrollment_page, prospect_diff, unix_now};
use crate::{IdemAnswer, IdemBegin, IdemFence, SnapshotBatch, Store, StoreError, StoreResult};
use async_trait::async_trait;
use domain::{event_mask, EnrollmentId, EventType, PartnerId, ProspectId, TenantId};
use rusqlite::{params, Connection, OptionalExtension};

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
        self.write(move |c| {
            ensure_partner(c, &key.tenant, &key.partner, key.created_at)?;
            c.prepare_cached(
                "INSERT INTO api_keys (key_hash, prefix, tenant_id, partner_id, is_admin, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    &key.key_hash[..],
                    key.prefix,
                    key.tenant.0,
                    key.partner.0,
                    key.admin,
                    key.created_at
                ])
            })
            .map_err(internal)?;
            Ok(())
        })
        .await
    }

    async fn list_keys(&self) -> StoreResult<Vec<ApiKeyInfo>> {
        self.read(|c| {
            let mut s = c
                .prepare_cached(
                    "SELECT prefix, tenant_id, partner_id, is_admin, created_at, revoked_at
                     FROM api_keys ORDER BY id",
                )
                .map_err(internal)?;
            let rows = s
                .query_map([], |r| {
                    Ok(ApiKeyInfo {
                        prefix: r.get(0)?,
                        tenant: TenantId(r.get(1)?),
                        partner: PartnerId(r.get(2)?),
                        admin: r.get(3)?,
                        created_at: r.get(4)?,
                        revoked_at: r.get(5)?,
                    })
                })
                .map_err(internal)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(internal)
        })
        .await
    }

    async fn revoke_keys(&self, prefix: &str) -> StoreResult<u64> {
        let prefix = prefix.to_string();
        self.write(move |c| {
            // Prefix match without LIKE wildcards: compare the leading substring.
            let n = c
                .prepare_cached(
                    "UPDATE api_keys SET revoked_at = unixepoch()
                     WHERE revoked_at IS NULL AND substr(prefix, 1, length(?1)) = ?1",
                )
                .and_then(|mut s| s.execute(params![prefix]))
                .map_err(internal)?;
            Ok(n as u64)
        })
        .await
    }

    async fn principal(&self, key_hash: &[u8; 32]) -> StoreResult<Option<Principal>> {
        let hash = *key_hash;
        self.read(move |c| {
            let row = c
                .prepare_cached(
                    "SELECT tenant_id, partner_id, is_admin FROM api_keys
                     WHERE key_hash = ?1 AND revoked_at IS NULL",
                )
                .and_then(|mut s| {
                    s.query_row(params![&hash[..]], |r| {
                        Ok((
                            r.get::<_, String>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, bool>(2)?,
                        ))
                    })
                    .optional()
                })
                .map_err(internal)?;
            let Some((tenant, partner, admin)) = row else {
                return Ok(None);
            };
            let mut s = c
                .prepare_cached("SELECT partner_id FROM partners WHERE tenant_id = ?1")
                .map_err(internal)?;
            let partners = s
                .query_map(params![tenant], |r| r.get::<_, String>(0).map(PartnerId))
                .map_err(internal)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(internal)?;
            Ok(Some(Principal {
                tenant: TenantId(tenant),
                default_partner: PartnerId(partner),
                admin,
                partners,
            }))
        })
        .await
    }

    async fn create_enrollment(&self, scope: &Scope, new: NewEnrollment) -> StoreResult<()> {
        let scope = scope.clone();
        self.write(move |c| {
            let id: i64 = c
                .prepare_cached(
                    "INSERT INTO enrollments (enrollment_id, tenant_id, partner_id, enrollment_key,
                        event_types, event_mask, prospect_ids, created_at, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8) RETURNING id",
                )
                .and_then(|mut s| {
                    s.query_row(
                        params![
                            new.enrollment_id.as_str(),
                            scope.tenant.0,
                            scope.partner.0,
                            new.spec.enrollment_key,
                            encode_event_types(&new.spec.event_types),
                            event_mask(&new.spec.event_types),
                            encode_prospect_ids(&new.spec.prospect_ids),
                            new.now
                        ],
                        |r| r.get(0),
                    )
                })
                .map_err(|e| match e {
                    rusqlite::Error::SqliteFailure(f, _)
                        if f.code == rusqlite::ErrorCode::ConstraintViolation =>
                    {
                        StoreError::Conflict("enrollment id already exists".into())
                    }
                    other => internal(other),
                })?;
            insert_prospects(c, id, &new.spec.prospect_ids)
        })
        .await
    }

    async fn update_enrollment(
        &self,
        scope: &Scope,
        enrollment_id: &str,
        spec: EnrollmentSpec,
    ) -> StoreResult<()> {
        let scope = scope.clone();
        let enrollment_id = enrollment_id.to_string();
        self.write(move |c| {
            let now = unix_now();
            // Clean-failure contract of the writer: NotFound is decided before any write.
            let row: Option<(i64, String)> = c
                .prepare_cached(
                    "SELECT id, prospect_ids FROM enrollments
                     WHERE enrollment_id = ?1 AND tenant_id = ?2 AND partner_id = ?3",
                )
                .and_then(|mut s| {
                    s.query_row(
                        params![enrollment_id, scope.tenant.0, scope.partner.0],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .optional()
                })
                .map_err(internal)?;
            let Some((id, old_ids)) = row else {
                return Err(StoreError::NotFound);
            };
            c.prepare_cached(
                "UPDATE enrollments SET enrollment_key = ?2, event_types = ?3, event_mask = ?4,
                    prospect_ids = ?5, updated_at = ?6
                 WHERE id = ?1",
            )
            .and_then(|mut s| {
                s.execute(params![
                    id,
                    spec.enrollment_key,
                    encode_event_types(&spec.event_types),
                    event_mask(&spec.event_types),
                    encode_prospect_ids(&spec.prospect_ids),
                    now
                ])
            })
            .map_err(internal)?;
            replace_prospects(c, id, &decode_prospect_ids(&old_ids), &spec.prospect_ids)
        })
        .await
    }

    async fn delete_enrollment(&self, scope: &Scope, enrollment_id: &str) -> StoreResult<()> {
        let scope = scope.clone();
        let enrollment_id = enrollment_id.to_string();
        self.write(move |c| {
            let row: Option<(i64, String)> = c
                .prepare_cached(
                    "DELETE FROM enrollments
                     WHERE enrollment_id = ?1 AND tenant_id = ?2 AND partner_id = ?3
                     RETURNING id, prospect_ids",
                )
                .and_then(|mut s| {
                    s.query_row(
                        params![enrollment_id, scope.tenant.0, scope.partner.0],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .optional()
                })
                .map_err(internal)?;
            let Some((id, old_ids)) = row else {
                return Err(StoreError::NotFound);
            };
            replace_prospects(c, id, &decode_prospect_ids(&old_ids), &[])
        })
        .await
    }

    async fn list_enrollments(
        &self,
        scope: &Scope,
        query: &EnrollmentQuery,
    ) -> StoreResult<EnrollmentPage> {
        let scope = scope.clone();
        let query = query.clone();
        self.read(move |c| list_enrollments(c, &scope, &query))
            .await
    }

    async fn covering_enrollments(
        &self,
        prospect: &ProspectId,
        event_type: EventType,
    ) -> StoreResult<Vec<CoveringEnrollment>> {
        let prospect = *prospect;
        self.read(move |c| covering(c, &prospect, event_type)).await
    }

    async fn ingest_snapshots(
        &self,
        batch: SnapshotBatch,
        opts: IngestOptions,
    ) -> StoreResult<IngestCounts> {
        // Checked here, so that a refused batch fails alone, not the writer's whole group.
        batch.check_storable()?;
        self.write(move |c| super::events::ingest(c, batch, opts))
            .await
    }

    async fn bulk_ingest(
        &self,
        commit_every: usize,
    ) -> StoreResult<Option<Box<dyn crate::BulkIngest>>> {
        let (path, presence) = (self.path().to_path_buf(), self.presence());
        let bulk = tokio::task::spawn_blocking(move || {
            super::bulk::SqliteBulk::open(&path, commit_every, presence)
        })
        .await
        .map_err(|e| StoreError::Internal(format!("open task: {e}")))??;
        Ok(Some(Box::new(bulk)))
    }

    async fn query_events(&self, query: &EventQuery) -> StoreResult<Vec<StoredEvent>> {
        let query = query.clone();
        self.read(move |c| super::events::query_events(c, &query))
            .await
    }

    async fn scan_anniversaries(&self, opts: IngestOptions) -> StoreResult<ScanReport> {
        self.scan(opts).await
    }

    async fn prune_events(&self, before: time::OffsetDateTime) -> StoreResult<u64> {
        self.prune(before).await
    }

    async fn outbox(&self, scope: Option<&Scope>, limit: u32) -> StoreResult<Vec<OutboxRow>> {
        let scope = scope.cloned();
        self.read(move |c| super::events::outbox(c, scope.as_ref(), limit))
            .await
    }

    async fn put_webhook(
        &self,
        scope: &Scope,
        url: &str,
        secret: &str,
        now_ms: i64,
    ) -> StoreResult<Webhook> {
        let (scope, url, secret) = (scope.clone(), url.to_string(), secret.to_string());
        self.write(move |c| webhooks::put_webhook(c, &scope, &url, &secret, now_ms))
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

    async fn claim_due(
        &self,
        now_ms: i64,
        lease_ms: i64,
        limit: u32,
        room: &ClaimRoom,
    ) -> StoreResult<Vec<Claimed>> {
        let room = room.clone();
        self.write(move |c| webhooks::claim_due(c, now_ms, lease_ms, limit, &room))
            .await
    }

    async fn record_attempt(&self, record: AttemptRecord) -> StoreResult<()> {
        self.write(move |c| webhooks::record_attempt(c, &record))
            .await
    }

    async fn set_lease(&self, row: i64, expected: i64, until: Option<i64>) -> StoreResult<bool> {
        self.write(move |c| webhooks::set_lease(c, row, expected, until))
            .await
    }

    async fn queue_direct(
        &self,
        scope: &Scope,
        items: Vec<DirectNotification>,
        now_ms: i64,
    ) -> StoreResult<u64> {
        let scope = scope.clone();
        self.write(move |c| webhooks::queue_direct(c, &scope, &items, now_ms))
            .await
    }

    async fn list_deliveries(
        &self,
        scope: &Scope,
        query: &DeliveryQuery,
    ) -> StoreResult<DeliveryPage> {
        let (scope, query) = (scope.clone(), query.clone());
        self.read(move |c| webhooks::list_deliveries(c, &scope, &query))
            .await
    }

    async fn get_delivery(
        &self,
        scope: &Scope,
        delivery_id: &str,
    ) -> StoreResult<Option<(DeliveryInfo, Vec<AttemptInfo>)>> {
        let (scope, id) = (scope.clone(), delivery_id.to_string());
        self.read(move |c| webhooks::get_delivery(c, &scope, &id))
            .await
    }

    async fn retry_delivery(
        &self,
        scope: &Scope,
        delivery_id: &str,
        now_ms: i64,
    ) -> StoreResult<()> {
        let (scope, id) = (scope.clone(), delivery_id.to_string());
        self.write(move |c| webhooks::retry_delivery(c, &scope, &id, now_ms))
            .await
    }

    async fn replay(&self, scope: &Scope, query: &ReplayQuery, now_ms: i64) -> StoreResult<u64> {
        let (scope, query) = (scope.clone(), query.clone());
        self.write(move |c| webhooks::replay(c, &scope, &query, now_ms))
            .await
    }

    async fn idempotency_begin(
        &self,
        scope: &Scope,
        key: &str,
        fingerprint: &[u8],
        now_ms: i64,
    ) -> StoreResult<IdemBegin> {
        let (scope, key, fp) = (scope.clone(), key.to_string(), fingerprint.to_vec());
        self.write(move |c| idempotency::begin(c, &scope, &key, &fp, now_ms))
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

    async fn prune_idempotency_keys(&self, before_ms: i64) -> StoreResult<u64> {
        self.write(move |c| idempotency::prune(c, before_ms)).await
    }
}

fn ensure_partner(
    c: &Connection,
    tenant: &TenantId,
    partner: &PartnerId,
    now: i64,
) -> StoreResult<()> {
    c.prepare_cached("INSERT OR IGNORE INTO tenants (tenant_id, created_at) VALUES (?1, ?2)")
        .and_then(|mut s| s.execute(params![tenant.0, now]))
        .map_err(internal)?;
    c.prepare_cached(
        "INSERT OR IGNORE INTO partners (tenant_id, partner_id, created_at) VALUES (?1, ?2, ?3)",
    )
    .and_then(|mut s| s.execute(params![tenant.0, partner.0, now]))
    .map_err(internal)?;
    Ok(())
}

fn insert_prospects(c: &Connection, id: i64, ids: &[ProspectId]) -> StoreResult<()> {
    let mut s = c
        .prepare_cached(
            "INSERT OR IGNORE INTO enrollment_prospects (prospect_id, enrollment_ref) VALUES (?1, ?2)",
        )
        .map_err(internal)?;
    for p in ids {
        s.execute(params![&p.as_bytes()[..], id])
            .map_err(internal)?;
    }
    Ok(())
}

/// Replaces the prospect rows of one enrollment (`current` as stored in its row), touching
/// only the difference.
fn replace_prospects(
    c: &Connection,
    id: i64,
    current: &[ProspectId],
    wanted: &[ProspectId],
) -> StoreResult<()> {
    let (gone, added) = prospect_diff(current, wanted);
    let mut del = c
        .prepare_cached(
            "DELETE FROM enrollment_prospects WHERE prospect_id = ?1 AND enrollment_ref = ?2",
        )
        .map_err(internal)?;
    for p in &gone {
        del.execute(params![&p.as_bytes()[..], id])
            .map_err(internal)?;
    }
    let mut ins = c
        .prepare_cached(
            "INSERT OR IGNORE INTO enrollment_prospects (prospect_id, enrollment_ref) VALUES (?1, ?2)",
        )
        .map_err(internal)?;
    for p in &added {
        ins.execute(params![&p.as_bytes()[..], id])
            .map_err(internal)?;
    }
    Ok(())
}

fn list_enrollments(
    c: &Connection,
    scope: &Scope,
    q: &EnrollmentQuery,
) -> StoreResult<EnrollmentPage> {
    let after = q.cursor.map(|c| c.0).unwrap_or(0);
    // Fetch one extra row to know whether another page follows.
    let fetch: i64 = q.limit.map(|l| l as i64 + 1).unwrap_or(-1);
    let map = |r: &rusqlite::Row<'_>| -> rusqlite::Result<(i64, Enrollment)> {
        Ok((
            r.get(0)?,
            Enrollment {
                enrollment_id: EnrollmentId(r.get(1)?),
                spec: EnrollmentSpec {
                    enrollment_key: r.get(2)?,
                    event_types: decode_event_types(&r.get::<_, String>(3)?),
                    prospect_ids: decode_prospect_ids(&r.get::<_, String>(4)?),
                },
            },
        ))
    };
    let cols = "e.id, e.enrollment_id, e.enrollment_key, e.event_types, e.prospect_ids";
    let rows: Vec<(i64, Enrollment)> = match (&q.prospect_id, &q.enrollment_key) {
        (Some(p), key) => {
            let sql = format!(
                "SELECT {cols} FROM enrollment_prospects ep JOIN enrollments e ON e.id = ep.enrollment_ref
                 WHERE ep.prospect_id = ?1 AND e.tenant_id = ?2 AND e.partner_id = ?3 AND e.id > ?4
                   AND (?5 IS NULL OR e.enrollment_key = ?5)
                 ORDER BY e.id LIMIT ?6"
            );
            let mut s = c.prepare_cached(&sql).map_err(internal)?;
            let rows = s
                .query_map(
                    params![
                        &p.as_bytes()[..],
                        scope.tenant.0,
                        scope.partner.0,
                        after,
                        key,
                        fetch
                    ],
                    map,
                )
                .map_err(internal)?;
            rows.collect::<Result<_, _>>().map_err(internal)?
        }
        (None, Some(key)) => {
            let sql = format!(
                "SELECT {cols} FROM enrollments e
                 WHERE e.tenant_id = ?1 AND e.partner_id = ?2 AND e.enrollment_key = ?3 AND e.id > ?4
                 ORDER BY e.id LIMIT ?5"
            );
            let mut s = c.prepare_cached(&sql).map_err(internal)?;
            let rows = s
                .query_map(
                    params![scope.tenant.0, scope.partner.0, key, after, fetch],
                    map,
                )
                .map_err(internal)?;
            rows.collect::<Result<_, _>>().map_err(internal)?
        }
        (None, None) => {
            let sql = format!(
                "SELECT {cols} FROM enrollments e
                 WHERE e.tenant_id = ?1 AND e.partner_id = ?2 AND e.id > ?3
                 ORDER BY e.id LIMIT ?4"
            );
            let mut s = c.prepare_cached(&sql).map_err(internal)?;
            let rows = s
                .query_map(params![scope.tenant.0, scope.partner.0, after, fetch], map)
                .map_err(internal)?;
            rows.collect::<Result<_, _>>().map_err(internal)?
        }
    };
    Ok(enrollment_page(rows, q.limit))
}

pub(super) fn covering(
    c: &Connection,
    p: &ProspectId,
    et: EventType,
) -> StoreResult<Vec<CoveringEnrollment>> {
    let mut s = c
        .prepare_cached(
            "SELECT e.tenant_id, e.partner_id, e.enrollment_id, e.enrollment_key
             FROM enrollment_prospects ep JOIN enrollments e ON e.id = ep.enrollment_ref
             WHERE ep.prospect_id = ?1 AND (e.event_mask & ?2) != 0
             ORDER BY e.id",
        )
        .map_err(internal)?;
    let rows = s
        .query_map(params![&p.as_bytes()[..], et.bit()], |r| {
            Ok(CoveringEnrollment {
                tenant: TenantId(r.get(0)?),
                partner: PartnerId(r.get(1)?),
                enrollment_id: EnrollmentId(r.get(2)?),
                enrollment_key: r.get(3)?,
            })
        })
        .map_err(internal)?;
    rows.collect::<Result<_, _>>().map_err(internal)
}
