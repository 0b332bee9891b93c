//! Idempotency keys for PostgreSQL: the SQL of `crate::idempotency` (the rule lives there).
//! `begin` locks the key's row (`FOR UPDATE`) while it decides, and [`fence`] updates it inside
//! the request's own write transaction, so a takeover and a fenced write serialize on that row.

use super::pg;
use crate::idempotency::{
    current_fence, decide, new_token, IdemAnswer, IdemBegin, IdemFence, IdemRow, IdemStep,
    IDEMPOTENCY_LEASE_MS,
};
use crate::model::Scope;
use crate::{StoreError, StoreResult};
use deadpool_postgres::{Object, Transaction};

pub(super) async fn begin(
    c: &mut Object,
    scope: &Scope,
    key: &str,
    fingerprint: &[u8],
    now: time::OffsetDateTime,
) -> StoreResult<IdemBegin> {
    let now_ms = domain::clock::unix_millis(now);
    let fence = IdemFence {
        scope: scope.clone(),
        key: key.to_string(),
        token: new_token(),
    };
    let lease_until = now_ms + IDEMPOTENCY_LEASE_MS;
    let tx = c.transaction().await.map_err(pg)?;
    // None: reserved by the insert. A row released (deleted) between the insert's conflict and
    // the read is inserted again.
    let mut step = Err(StoreError::unavailable(
        "an idempotency key kept changing under its reservation",
    ));
    for _ in 0..3 {
        if insert_reservation(&tx, &fence, fingerprint, lease_until, now_ms).await? {
            step = Ok(None);
            break;
        }
        if let Some(row) = locked_row(&tx, &fence).await? {
            step = Ok(Some(decide(Some(row), fingerprint, now_ms)));
            break;
        }
    }
    match step? {
        None => {}
        Some(IdemStep::Answer(a)) => return Ok(a),
        Some(IdemStep::Reserve) => {
            let sql = "UPDATE idempotency_keys SET fingerprint = $5, token = $4,
                    lease_until = $6, created_at = $7, executed = FALSE, status_code = NULL,
                    answer_detail = FALSE, response_body = NULL
                 WHERE tenant_id = $1 AND partner_id = $2 AND idem_key = $3";
            let s = tx.prepare_cached(sql).await.map_err(pg)?;
            let (t, p, k) = (&fence.scope.tenant.0, &fence.scope.partner.0, &fence.key);
            tx.execute(
                &s,
                &[t, p, k, &fence.token, &fingerprint, &lease_until, &now_ms],
            )
            .await
            .map_err(pg)?;
        }
        Some(IdemStep::TakeOver) => {
            let sql = "UPDATE idempotency_keys SET token = $4, lease_until = $5
                 WHERE tenant_id = $1 AND partner_id = $2 AND idem_key = $3";
            let s = tx.prepare_cached(sql).await.map_err(pg)?;
            let (t, p, k) = (&fence.scope.tenant.0, &fence.scope.partner.0, &fence.key);
            tx.execute(&s, &[t, p, k, &fence.token, &lease_until])
                .await
                .map_err(pg)?;
        }
    }
    tx.commit().await.map_err(pg)?;
    Ok(IdemBegin::Execute(fence))
}

/// Inserts a fresh reservation; false when the key already has a row.
async fn insert_reservation(
    tx: &Transaction<'_>,
    f: &IdemFence,
    fingerprint: &[u8],
    lease_until: i64,
    now_ms: i64,
) -> StoreResult<bool> {
    let s = tx
        .prepare_cached(
            "INSERT INTO idempotency_keys
                (tenant_id, partner_id, idem_key, fingerprint, token, lease_until, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
        )
        .await
        .map_err(pg)?;
    let (t, p) = (&f.scope.tenant.0, &f.scope.partner.0);
    let n = tx
        .execute(
            &s,
            &[t, p, &f.key, &fingerprint, &f.token, &lease_until, &now_ms],
        )
        .await
        .map_err(pg)?;
    Ok(n == 1)
}

/// The key's row, locked until the transaction ends (None: it was deleted meanwhile).
async fn locked_row(tx: &Transaction<'_>, f: &IdemFence) -> StoreResult<Option<IdemRow>> {
    let s = tx
        .prepare_cached(
            "SELECT fingerprint, created_at, lease_until, executed, status_code, answer_detail,
                response_body
             FROM idempotency_keys WHERE tenant_id = $1 AND partner_id = $2 AND idem_key = $3
             FOR UPDATE",
        )
        .await
        .map_err(pg)?;
    let row = tx
        .query_opt(&s, &[&f.scope.tenant.0, &f.scope.partner.0, &f.key])
        .await
        .map_err(pg)?;
    Ok(row.map(|r| IdemRow {
        fingerprint: r.get(0),
        created_at: r.get(1),
        lease_until: r.get(2),
        executed: r.get(3),
        answer: r.get::<_, Option<i32>>(4).map(|status| IdemAnswer {
            status: status as u16,
            detail: r.get(5),
            body: r.get::<_, Option<Vec<u8>>>(6).unwrap_or_default(),
        }),
    }))
}

pub(super) async fn finish(
    c: &mut Object,
    f: &IdemFence,
    answer: &IdemAnswer,
) -> StoreResult<bool> {
    let s = c
        .prepare_cached(
            "UPDATE idempotency_keys SET status_code = $5, answer_detail = $6,
                response_body = $7, lease_until = 0
             WHERE tenant_id = $1 AND partner_id = $2 AND idem_key = $3 AND token = $4",
        )
        .await
        .map_err(pg)?;
    let n = c
        .execute(
            &s,
            &[
                &f.scope.tenant.0,
                &f.scope.partner.0,
                &f.key,
                &f.token,
                &i32::from(answer.status),
                &answer.detail,
                &answer.body,
            ],
        )
        .await
        .map_err(pg)?;
    Ok(n == 1)
}

pub(super) async fn release(c: &mut Object, f: &IdemFence) -> StoreResult<()> {
    // One statement: forgotten when nothing was written, else settled (lease over).
    let s = c
        .prepare_cached(
            "WITH gone AS (
                DELETE FROM idempotency_keys
                WHERE tenant_id = $1 AND partner_id = $2 AND idem_key = $3 AND token = $4
                  AND NOT executed
                RETURNING 1)
             UPDATE idempotency_keys SET lease_until = 0
             WHERE tenant_id = $1 AND partner_id = $2 AND idem_key = $3 AND token = $4
               AND executed",
        )
        .await
        .map_err(pg)?;
    c.execute(
        &s,
        &[&f.scope.tenant.0, &f.scope.partner.0, &f.key, &f.token],
    )
    .await
    .map_err(pg)?;
    Ok(())
}

pub(super) async fn prune(c: &mut Object, before: time::OffsetDateTime) -> StoreResult<u64> {
    let before_ms = domain::clock::unix_millis(before);
    let s = c
        .prepare_cached("DELETE FROM idempotency_keys WHERE created_at < $1")
        .await
        .map_err(pg)?;
    c.execute(&s, &[&before_ms]).await.map_err(pg)
}
/// Inside a request fenced by an idempotency key: marks its reservation executed in the write
/// transaction `tx` (locking the row until commit), or fails with `Conflict` when the key was
/// taken over. A rollback undoes the mark with the write. Without a fence: nothing.
pub(super) async fn fence(tx: &Transaction<'_>) -> StoreResult<()> {
    let Some(f) = current_fence() else {
        return Ok(());
    };
    let s = tx
        .prepare_cached(
            "UPDATE idempotency_keys SET executed = TRUE
             WHERE tenant_id = $1 AND partner_id = $2 AND idem_key = $3 AND token = $4
               AND status_code IS NULL",
        )
        .await
        .map_err(pg)?;
    let n = tx
        .execute(
            &s,
            &[&f.scope.tenant.0, &f.scope.partner.0, &f.key, &f.token],
        )
        .await
        .map_err(pg)?;
    if n == 0 {
        return Err(StoreError::Conflict(
            "the idempotency key was taken over".into(),
        ));
    }
    Ok(())
}
