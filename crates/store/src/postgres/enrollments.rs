//! Enrollments and their prospect index for PostgreSQL: SQL and row mapping only. Every write is
//! one statement (data-modifying CTEs: one round trip, atomic on its own), touching only the
//! index rows that change, as `rules::prospect_diff` says (here computed in the statement).
//! Every query filters by scope.

use super::idempotency::fence;
use super::{is_unique_violation, pg};
use crate::idempotency::current_fence;
use crate::model::*;
use crate::rules::{enrollment_page, unix_now};
use crate::{StoreError, StoreResult};
use deadpool_postgres::Object;
use domain::{event_mask, EnrollmentId, EventType, PartnerId, ProspectId, TenantId};
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

/// The enrollment a write names, locked, and its `fresh` twin: the same row only when this
/// statement's snapshot already saw the version it locked. When another write to the row
/// committed while this one waited for the lock, the index rows that write made are invisible
/// to this statement, so it writes nothing (`fresh` is empty) and is run again.
macro_rules! locked_enrollment {
    () => {
        "old AS (
            SELECT id, prospect_ids, xmin::TEXT AS v FROM enrollments
            WHERE enrollment_id = $1 AND tenant_id = $2 AND partner_id = $3
            FOR UPDATE),
         fresh AS (
            SELECT old.id, old.prospect_ids FROM old
            JOIN enrollments seen ON seen.id = old.id AND seen.xmin::TEXT = old.v)"
    };
}

/// `was`: the `fresh` enrollment's stored prospects as an array (the stored list is 40 hex digits
/// an id), and `gone`: the deletion of the index rows of those not among `$kept` (a parameter:
/// an array of ids), by primary key (an array, so the plan is an index scan, never a join over
/// the table).
macro_rules! gone_prospects {
    ($kept:literal) => {
        concat!(
            "was AS (
            SELECT ARRAY(
                SELECT decode(substr(f.prospect_ids, k * 40 + 1, 40), 'hex')
                FROM fresh f, generate_series(0, length(f.prospect_ids) / 40 - 1) AS k) AS ids),
         gone AS (
            DELETE FROM enrollment_prospects ep
            WHERE ep.enrollment_ref = (SELECT id FROM fresh)
              AND ep.prospect_id = ANY((SELECT ids FROM was)::BYTEA[])
              AND ep.prospect_id <> ALL(",
            $kept,
            "::BYTEA[]))"
        )
    };
}

/// Runs one write statement: alone (autocommit: one round trip, the statement is atomic), or,
/// when the request holds an idempotency key, in a transaction that marks the key executed.
async fn write_statement(
    c: &mut Object,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
    conflict: &str,
) -> StoreResult<Vec<Row>> {
    let map = |e: tokio_postgres::Error| {
        if is_unique_violation(&e) {
            StoreError::Conflict(conflict.into())
        } else {
            pg(e)
        }
    };
    if current_fence().is_none() {
        let s = c.prepare_cached(sql).await.map_err(pg)?;
        return c.query(&s, params).await.map_err(map);
    }
    let tx = c.transaction().await.map_err(pg)?;
    fence(&tx).await?;
    let s = tx.prepare_cached(sql).await.map_err(pg)?;
    let rows = tx.query(&s, params).await.map_err(map)?;
    tx.commit().await.map_err(pg)?;
    Ok(rows)
}

/// What a write to an existing enrollment reports: rows in `old` and rows written.
fn found_written(rows: &[Row]) -> (i64, i64) {
    rows.first().map_or((0, 0), |r| (r.get(0), r.get(1)))
}

/// Runs a write to one existing enrollment (`$1`–`$3` name it; the statement returns
/// [`found_written`]). One round trip, unless it met a concurrent write to the same enrollment
/// or the request holds an idempotency key: then in a transaction that locks the row first
/// (and marks the key executed only when the enrollment exists). `NotFound` outside the scope.
async fn write_existing(
    c: &mut Object,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> StoreResult<()> {
    if current_fence().is_none() {
        let s = c.prepare_cached(sql).await.map_err(pg)?;
        match found_written(&c.query(&s, params).await.map_err(pg)?) {
            (0, _) => return Err(StoreError::NotFound),
            (_, 0) => {} // another write got there first: lock, then write
            _ => return Ok(()),
        }
    }
    let tx = c.transaction().await.map_err(pg)?;
    let lock = tx
        .prepare_cached(
            "SELECT 1 FROM enrollments
             WHERE enrollment_id = $1 AND tenant_id = $2 AND partner_id = $3 FOR UPDATE",
        )
        .await
        .map_err(pg)?;
    if tx
        .query_opt(&lock, &params[..3])
        .await
        .map_err(pg)?
        .is_none()
    {
        return Err(StoreError::NotFound);
    }
    fence(&tx).await?;
    let s = tx.prepare_cached(sql).await.map_err(pg)?;
    if found_written(&tx.query(&s, params).await.map_err(pg)?).1 == 0 {
        return Err(StoreError::internal(
            "an enrollment write found its locked row changed",
        ));
    }
    tx.commit().await.map_err(pg)
}

/// One statement: the row and its index rows.
pub(super) async fn create_enrollment(
    c: &mut Object,
    scope: &Scope,
    new: NewEnrollment,
) -> StoreResult<()> {
    const SQL: &str = "WITH e AS (
            INSERT INTO enrollments (enrollment_id, tenant_id, partner_id, enrollment_key,
                event_types, event_mask, prospect_ids, created_at, updated_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) RETURNING id),
         added AS (
            INSERT INTO enrollment_prospects (prospect_id, enrollment_ref)
            SELECT p, e.id FROM e, unnest($9::BYTEA[]) AS p
            ON CONFLICT DO NOTHING)
         SELECT id FROM e";
    write_statement(
        c,
        SQL,
        &[
            &new.enrollment_id.as_str(),
            &scope.tenant.0,
            &scope.partner.0,
            &new.spec.enrollment_key,
            &encode_event_types(&new.spec.event_types),
            &(event_mask(&new.spec.event_types) as i32),
            &encode_prospect_ids(&new.spec.prospect_ids),
            &new.now,
            &id_bytes(&new.spec.prospect_ids),
        ],
        "enrollment id already exists",
    )
    .await?;
    Ok(())
}

/// One statement: the row replaced, index rows of dropped prospects deleted, new ones added
/// (unchanged ones are not touched, not even probed).
pub(super) async fn update_enrollment(
    c: &mut Object,
    scope: &Scope,
    enrollment_id: &str,
    spec: EnrollmentSpec,
) -> StoreResult<()> {
    const SQL: &str = concat!(
        "WITH ",
        locked_enrollment!(),
        ",
         upd AS (
            UPDATE enrollments e SET enrollment_key = $4, event_types = $5, event_mask = $6,
                prospect_ids = $7, updated_at = $8
            FROM fresh WHERE e.id = fresh.id RETURNING e.id),
         ",
        gone_prospects!("$9"),
        ",
         added AS (
            INSERT INTO enrollment_prospects (prospect_id, enrollment_ref)
            SELECT p, fresh.id FROM fresh, unnest($9::BYTEA[]) AS p
            WHERE p <> ALL((SELECT ids FROM was)::BYTEA[])
            ON CONFLICT DO NOTHING)
         SELECT (SELECT count(*) FROM old), (SELECT count(*) FROM upd)"
    );
    write_existing(
        c,
        SQL,
        &[
            &enrollment_id,
            &scope.tenant.0,
            &scope.partner.0,
            &spec.enrollment_key,
            &encode_event_types(&spec.event_types),
            &(event_mask(&spec.event_types) as i32),
            &encode_prospect_ids(&spec.prospect_ids),
            &unix_now(),
            &id_bytes(&spec.prospect_ids),
        ],
    )
    .await
}

/// One statement: the row and all its index rows.
pub(super) async fn delete_enrollment(
    c: &mut Object,
    scope: &Scope,
    enrollment_id: &str,
) -> StoreResult<()> {
    const SQL: &str = concat!(
        "WITH ",
        locked_enrollment!(),
        ",
         del AS (DELETE FROM enrollments e USING fresh WHERE e.id = fresh.id RETURNING e.id),
         ",
        gone_prospects!("$4"),
        "
         SELECT (SELECT count(*) FROM old), (SELECT count(*) FROM del)"
    );
    // No prospect is kept.
    let kept: Vec<&[u8]> = Vec::new();
    write_existing(
        c,
        SQL,
        &[&enrollment_id, &scope.tenant.0, &scope.partner.0, &kept],
    )
    .await
}

pub(super) async fn list_enrollments(
    c: &mut Object,
    scope: &Scope,
    q: &EnrollmentQuery,
) -> StoreResult<EnrollmentPage> {
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

pub(super) async fn covering_enrollments(
    c: &mut Object,
    prospect: &ProspectId,
    event_type: EventType,
) -> StoreResult<Vec<CoveringEnrollment>> {
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

fn id_bytes(ids: &[ProspectId]) -> Vec<&[u8]> {
    ids.iter().map(|p| &p.as_bytes()[..]).collect()
}
