//! Enrollments and their prospect index for PostgreSQL: SQL and row mapping only (which rows an
//! update touches is `rules::prospect_diff`). Every query filters by scope.

use super::idempotency::fence;
use super::webhooks::check_target;
use super::{is_unique_violation, pg};
use crate::model::*;
use crate::rules::{enrollment_page, patched_spec, prospect_diff, unix_seconds};
use crate::{StoreError, StoreResult};
use deadpool_postgres::Object;
use domain::{event_mask, EnrollmentId, EventType, PartnerId, ProspectId, TenantId};
use tokio_postgres::Row;

pub(super) async fn create_enrollment(
    c: &mut Object,
    scope: &Scope,
    new: NewEnrollment,
) -> StoreResult<()> {
    let tx = c.transaction().await.map_err(pg)?;
    fence(&tx).await?;
    check_target(&tx, &WebhookKey::new(scope, &new.webhook_id)).await?;
    let s = tx
        .prepare_cached(
            "INSERT INTO enrollments (enrollment_id, tenant_id, partner_id, enrollment_key,
                event_types, event_mask, prospect_ids, created_at, updated_at, webhook_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $9) RETURNING id",
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
                &unix_seconds(new.now),
                &new.webhook_id,
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

pub(super) async fn update_enrollment(
    c: &mut Object,
    scope: &Scope,
    enrollment_id: &str,
    spec: EnrollmentSpec,
    now: time::OffsetDateTime,
) -> StoreResult<()> {
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
                &unix_seconds(now),
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

pub(super) async fn delete_enrollment(
    c: &mut Object,
    scope: &Scope,
    enrollment_id: &str,
) -> StoreResult<()> {
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

pub(super) async fn list_enrollments(
    c: &mut Object,
    scope: &Scope,
    q: &EnrollmentQuery,
) -> StoreResult<EnrollmentPage> {
    let after = q.cursor.map(|c| c.0).unwrap_or(0);
    // Fetch one extra row to know whether another page follows; NULL means no limit.
    let fetch: Option<i64> = q.limit.map(|l| l as i64 + 1);
    let cols = "e.id, e.enrollment_id, e.enrollment_key, e.event_types, e.prospect_ids,
        e.webhook_id, e.paused";
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

pub(super) async fn covering_enrollments(
    c: &mut Object,
    prospect: &ProspectId,
    event_type: EventType,
) -> StoreResult<Vec<CoveringEnrollment>> {
    let s = c
        .prepare_cached(
            "SELECT e.tenant_id, e.partner_id, e.enrollment_id, e.enrollment_key, e.webhook_id
             FROM enrollment_prospects ep JOIN enrollments e ON e.id = ep.enrollment_ref
             WHERE ep.prospect_id = $1 AND (e.event_mask & $2) <> 0 AND NOT e.paused
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
            webhook_id: r.get(4),
        })
        .collect())
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
            webhook_id: r.get(5),
            paused: r.get(6),
        },
    )
}

/// A v2 PATCH: the fields given replace the stored ones in one transaction (the prospect index
/// by its difference); a `webhook_id` re-points the enrollment and makes it active again.
pub(super) async fn patch_enrollment(
    c: &mut Object,
    scope: &Scope,
    enrollment_id: &str,
    patch: &EnrollmentPatch,
    now: time::OffsetDateTime,
) -> StoreResult<Enrollment> {
    let tx = c.transaction().await.map_err(pg)?;
    fence(&tx).await?;
    let s = tx
        .prepare_cached(
            "SELECT id, enrollment_id, enrollment_key, event_types, prospect_ids, webhook_id, paused
             FROM enrollments WHERE enrollment_id = $1 AND tenant_id = $2 AND partner_id = $3
             FOR UPDATE",
        )
        .await
        .map_err(pg)?;
    let row = tx
        .query_opt(&s, &[&enrollment_id, &scope.tenant.0, &scope.partner.0])
        .await
        .map_err(pg)?
        .ok_or(StoreError::NotFound)?;
    let (id, stored) = enrollment_row(&row);
    if let Some(w) = &patch.webhook_id {
        check_target(&tx, &WebhookKey::new(scope, w)).await?;
    }
    let old_ids = stored.spec.prospect_ids.clone();
    let spec = patched_spec(stored.spec, patch);
    let (webhook_id, paused) = match &patch.webhook_id {
        Some(w) => (w.clone(), false),
        None => (stored.webhook_id, stored.paused),
    };
    let s = tx
        .prepare_cached(
            "UPDATE enrollments SET enrollment_key = $2, event_types = $3, event_mask = $4,
                prospect_ids = $5, updated_at = $6, webhook_id = $7, paused = $8
             WHERE id = $1",
        )
        .await
        .map_err(pg)?;
    tx.execute(
        &s,
        &[
            &id,
            &spec.enrollment_key,
            &encode_event_types(&spec.event_types),
            &(event_mask(&spec.event_types) as i32),
            &encode_prospect_ids(&spec.prospect_ids),
            &unix_seconds(now),
            &webhook_id,
            &paused,
        ],
    )
    .await
    .map_err(pg)?;
    replace_prospects(&tx, id, &old_ids, &spec.prospect_ids).await?;
    tx.commit().await.map_err(pg)?;
    Ok(Enrollment {
        enrollment_id: stored.enrollment_id,
        spec,
        webhook_id,
        paused,
    })
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
