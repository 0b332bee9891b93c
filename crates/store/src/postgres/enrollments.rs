//! Enrollments and their prospect index for PostgreSQL: SQL and row mapping only. Every write is
//! one statement (data-modifying CTEs: one round trip, atomic on its own), touching only the
//! index rows that change, as `rules::prospect_diff` says (here computed in the statement).
//! Every query filters by scope.

use super::idempotency::fence;
use super::webhooks::check_target;
use super::{is_unique_violation, pg};
use crate::idempotency::current_fence;
use crate::model::*;
use crate::rules::{enrollment_page, patched_spec, prospect_diff, target_verdict, unix_seconds};
use crate::{StoreError, StoreResult};
use deadpool_postgres::Object;
use domain::{event_mask, EnrollmentId, EventType, PartnerId, ProspectId, TenantId};
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

/// The enrollment `$1` of the scope `$2`, `$3`, found by its unique id. The scope is compared
/// with `IS NOT DISTINCT FROM` (the same test for these NOT NULL columns) so that only the unique
/// index on `enrollment_id` can serve the lookup: with plain equalities, a table without column
/// statistics yet (a new database, until autovacuum's first ANALYZE) gives the scope indexes the
/// same cost, the planner takes one of them, and every write scans the tenant's enrollments
/// (~370 buffers a PATCH at 2,000 enrollments instead of 3: D117).
macro_rules! by_id_in_scope {
    () => {
        "enrollment_id = $1 AND (tenant_id, partner_id) IS NOT DISTINCT FROM ($2, $3)"
    };
}

/// The enrollment a write names, locked, and its `fresh` twin: the same row only when this
/// statement's snapshot already saw the version it locked. When another write to the row
/// committed while this one waited for the lock, the index rows that write made are invisible
/// to this statement, so it writes nothing (`fresh` is empty) and is run again.
macro_rules! locked_enrollment {
    () => {
        concat!(
            "old AS (
            SELECT id, prospect_ids, xmin::TEXT AS v FROM enrollments
            WHERE ",
            by_id_in_scope!(),
            "
            FOR UPDATE),
         fresh AS (
            SELECT old.id, old.prospect_ids FROM old
            JOIN enrollments seen ON seen.id = old.id AND seen.xmin::TEXT = old.v)"
        )
    };
}

/// `was`: the `fresh` enrollment's stored prospects as an array (the stored list is 40 hex digits
/// an id, decoded at once and cut as bytes: cutting the text cost a scan from its start per id,
/// character positions being multibyte-aware), and `gone`: the deletion of the index rows of
/// those not among `$kept` (a parameter: an array of ids), by primary key (an array, so the plan
/// is an index scan, never a join over the table).
macro_rules! gone_prospects {
    ($kept:literal) => {
        concat!(
            "was AS (
            SELECT ARRAY(
                SELECT substring(r.raw FROM k * 20 + 1 FOR 20)
                FROM (SELECT decode(f.prospect_ids, 'hex') AS raw FROM fresh f) AS r,
                     generate_series(0, length(r.raw) / 20 - 1) AS k) AS ids),
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
        .prepare_cached(concat!(
            "SELECT 1 FROM enrollments WHERE ",
            by_id_in_scope!(),
            " FOR UPDATE"
        ))
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

/// Locks the webhook an enrollment write routes to and reads its `enabled` (`$2`, `$3`: the
/// scope; `$webhook`: the webhook id). It is the statement's first CTE, so the webhook row is
/// locked before any enrollment row, the order `remove_webhook` locks in (a force delete and an
/// enrollment write never wait on each other crosswise); the lock holds until the write
/// commits, so a concurrent delete sees the enrollment.
macro_rules! target_webhook {
    ($webhook:literal) => {
        concat!(
            "target AS (
            SELECT enabled FROM webhooks WHERE tenant_id = $2 AND partner_id = $3
              AND webhook_id = ",
            $webhook,
            " FOR SHARE)"
        )
    };
}

/// One statement: the webhook checked and locked (`target_verdict`), the row and its index rows.
///
/// Index rows are inserted without `ON CONFLICT`: the writes of one enrollment are serialized
/// by its row lock (a new one has a fresh id) and only ids not indexed yet are inserted, each
/// once (`DISTINCT`), so no conflict can arise; a speculative insertion would cost an index
/// probe and a confirmation record more per id (216 buffers and 60 WAL records for 20 ids
/// instead of 80 and 40: D118).
pub(super) async fn create_enrollment(
    c: &mut Object,
    scope: &Scope,
    new: NewEnrollment,
) -> StoreResult<()> {
    const SQL: &str = concat!(
        "WITH ",
        target_webhook!("$10"),
        ",
         e AS (
            INSERT INTO enrollments (enrollment_id, tenant_id, partner_id, enrollment_key,
                event_types, event_mask, prospect_ids, created_at, updated_at, webhook_id)
            SELECT $1, $2, $3, $4, $5, $6, $7, $8, $8, $10
            WHERE $10 = $11 OR EXISTS (SELECT 1 FROM target WHERE enabled)
            RETURNING id),
         added AS (
            INSERT INTO enrollment_prospects (prospect_id, enrollment_ref)
            SELECT DISTINCT p, e.id FROM e, unnest($9::BYTEA[]) AS p)
         SELECT (SELECT count(*) FROM e), (SELECT bool_or(enabled) FROM target)"
    );
    let rows = write_statement(
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
            &unix_seconds(new.now),
            &id_bytes(&new.spec.prospect_ids),
            &new.webhook_id,
            &LEGACY_WEBHOOK_ID,
        ],
        "enrollment id already exists",
    )
    .await?;
    match rows.first().map(|r| (r.get::<_, i64>(0), r.get(1))) {
        Some((1, _)) => Ok(()),
        Some((_, state)) => target_verdict(&new.webhook_id, state).and(Err(StoreError::internal(
            "an enrollment insert wrote nothing for an active webhook",
        ))),
        None => Err(StoreError::internal("an enrollment insert returned no row")),
    }
}

/// One statement: the row replaced, index rows of dropped prospects deleted, new ones added
/// (unchanged ones are not touched, not even probed).
pub(super) async fn update_enrollment(
    c: &mut Object,
    scope: &Scope,
    enrollment_id: &str,
    spec: EnrollmentSpec,
    now: time::OffsetDateTime,
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
            SELECT DISTINCT p, fresh.id FROM fresh, unnest($9::BYTEA[]) AS p
            WHERE p <> ALL((SELECT ids FROM was)::BYTEA[]))
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
            &unix_seconds(now),
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
    // The webhook first, then the enrollment: the order `remove_webhook` locks in.
    if let Some(w) = &patch.webhook_id {
        check_target(&tx, &WebhookKey::new(scope, w)).await?;
    }
    let s = tx
        .prepare_cached(concat!(
            "SELECT id, enrollment_id, enrollment_key, event_types, prospect_ids, webhook_id, paused
             FROM enrollments WHERE ",
            by_id_in_scope!(),
            " FOR UPDATE"
        ))
        .await
        .map_err(pg)?;
    let row = tx
        .query_opt(&s, &[&enrollment_id, &scope.tenant.0, &scope.partner.0])
        .await
        .map_err(pg)?
        .ok_or(StoreError::NotFound)?;
    let (id, stored) = enrollment_row(&row);
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

/// Adds index rows for `ids` (a v2 PATCH's additions).
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
             SELECT DISTINCT p, $2::BIGINT FROM unnest($1::BYTEA[]) AS p",
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

fn id_bytes(ids: &[ProspectId]) -> Vec<&[u8]> {
    ids.iter().map(|p| &p.as_bytes()[..]).collect()
}

#[cfg(test)]
mod tests {
    use crate::model::*;
    use crate::postgres::{drop_test_schema, plan_of, test_store, PostgresOptions};
    use crate::Store;
    use domain::{EnrollmentId, EventType, PartnerId, ProspectId, TenantId};
    use std::sync::Arc;

    /// A table without column statistics (a new database until autovacuum's first ANALYZE):
    /// the lookup of one enrollment by its id still goes through the unique index, not through
    /// a scope index that would scan the tenant's enrollments. Runs with
    /// `PROSPECT_EVENTS_TEST_POSTGRES_URL` set.
    #[tokio::test]
    async fn the_lookup_by_id_needs_no_statistics() {
        let Ok(url) = std::env::var("PROSPECT_EVENTS_TEST_POSTGRES_URL") else {
            return;
        };
        let (store, schema) = test_store(&url, "lookup_plan", PostgresOptions::default()).await;
        let c = store.conn().await.unwrap();
        c.batch_execute(
            "ALTER TABLE enrollments SET (autovacuum_enabled = false);
             INSERT INTO enrollments (enrollment_id, tenant_id, partner_id, enrollment_key,
                 event_types, event_mask, prospect_ids, created_at, updated_at)
             SELECT 'en_' || g, 't1', 'pa', 'k', 'prospect_changed_role', 1, '', 1, 1
             FROM generate_series(1, 2000) AS g",
        )
        .await
        .unwrap();
        let plan = plan_of(
            &c,
            concat!(
                "EXPLAIN SELECT 1 FROM enrollments WHERE ",
                by_id_in_scope!(),
                " FOR UPDATE"
            ),
            &[&"en_5", &"t1", &"pa"],
        )
        .await;
        assert!(
            plan.contains("Index Scan using enrollments_enrollment_id_key"),
            "{plan}"
        );
        drop(c);
        drop(store);
        drop_test_schema(&url, &schema).await.unwrap();
    }

    /// A v2 PATCH naming a webhook locks the webhook before the enrollment, the order a force
    /// delete locks in: while a delete holds the webhook, the PATCH waits without holding the
    /// enrollment, so the delete's next step (locking the webhook's enrollments) goes through
    /// instead of deadlocking. Runs with `PROSPECT_EVENTS_TEST_POSTGRES_URL` set.
    #[tokio::test]
    async fn patch_and_force_delete_lock_in_one_order() {
        let Ok(url) = std::env::var("PROSPECT_EVENTS_TEST_POSTGRES_URL") else {
            return;
        };
        let (store, schema) = test_store(&url, "patch_lock", PostgresOptions::default()).await;
        let store = Arc::new(store);
        let scope = Scope {
            tenant: TenantId("t1".into()),
            partner: PartnerId("pa".into()),
        };
        let now = time::OffsetDateTime::now_utc();
        let new = NewWebhook {
            webhook_id: "wh_lock".into(),
            name: "lock".into(),
            description: None,
            headers: vec![],
            payload_format: PayloadFormat::Json,
            webhook_url: "https://example.com/lock".into(),
            secret: "s".into(),
        };
        store.create_webhook(&scope, new, now).await.unwrap();
        let spec = EnrollmentSpec {
            enrollment_key: "k".into(),
            event_types: vec![EventType::ChangedRole],
            prospect_ids: vec![
                ProspectId::parse("20ae6cbf564ee683e66685e429844a5ff8ffc30f").unwrap(),
            ],
        };
        let enrollment = NewEnrollment {
            enrollment_id: EnrollmentId("en_lock".into()),
            spec,
            webhook_id: "wh_lock".into(),
            now,
        };
        store.create_enrollment(&scope, enrollment).await.unwrap();

        // The delete's first step: the webhook row, locked.
        let mut c = store.conn().await.unwrap();
        let tx = c.transaction().await.unwrap();
        tx.batch_execute("SET LOCAL lock_timeout = '5s'")
            .await
            .unwrap();
        tx.query(
            "SELECT 1 FROM webhooks WHERE tenant_id = 't1' AND partner_id = 'pa'
               AND webhook_id = 'wh_lock' FOR UPDATE",
            &[],
        )
        .await
        .unwrap();
        let patching = {
            let (store, scope) = (store.clone(), scope.clone());
            let patch = EnrollmentPatch {
                webhook_id: Some("wh_lock".into()),
                ..Default::default()
            };
            tokio::spawn(async move {
                store
                    .patch_enrollment(&scope, "en_lock", patch, time::OffsetDateTime::now_utc())
                    .await
            })
        };
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        // Its second: the webhook's enrollments, locked — not held by the waiting PATCH.
        let locked = tx
            .query(
                "SELECT enrollment_id FROM enrollments WHERE tenant_id = 't1' AND partner_id = 'pa'
                   AND webhook_id = 'wh_lock' FOR UPDATE",
                &[],
            )
            .await;
        assert!(locked.is_ok(), "{locked:?}");
        tx.commit().await.unwrap();
        patching.await.unwrap().unwrap();
        drop(c);
        drop(store);
        drop_test_schema(&url, &schema).await.unwrap();
    }
}
