//! Webhook registrations for PostgreSQL; registering one moves its parked notifications back to
//! due, deleting one parks them.

use super::idempotency::fence;
use super::pg;
use crate::model::*;
use crate::rules::parked_sql;
use crate::{StoreError, StoreResult};
use deadpool_postgres::Object;
use tokio_postgres::Row;

/// Parks the scope's unleased pending notifications when it has no enabled webhook.
pub(super) const PARK_IF_DISABLED: &str = concat!(
    "UPDATE notifications n SET next_attempt_at = ",
    parked_sql!(),
    "
     WHERE n.tenant_id = $1 AND n.partner_id = $2 AND n.status = 0 AND n.lease_until IS NULL
       AND n.next_attempt_at <> ",
    parked_sql!(),
    "
       AND NOT EXISTS (SELECT 1 FROM webhooks w
                       WHERE w.tenant_id = n.tenant_id AND w.partner_id = n.partner_id AND w.enabled)"
);

const WEBHOOK_COLS: &str = "webhook_url, secret, generation, enabled, disabled_reason, created_at,
    last_modified_time, disabled_at";

fn webhook_row(r: &Row) -> Webhook {
    Webhook {
        webhook_url: r.get(0),
        secret: r.get(1),
        generation: r.get(2),
        enabled: r.get(3),
        disabled_reason: r.get(4),
        created_at: r.get(5),
        last_modified_time: r.get(6),
        disabled_at: r.get(7),
    }
}

pub(super) async fn get_webhook(c: &mut Object, scope: &Scope) -> StoreResult<Option<Webhook>> {
    let s = c
        .prepare_cached(&format!(
            "SELECT {WEBHOOK_COLS} FROM webhooks WHERE tenant_id = $1 AND partner_id = $2"
        ))
        .await
        .map_err(pg)?;
    let row = c
        .query_opt(&s, &[&scope.tenant.0, &scope.partner.0])
        .await
        .map_err(pg)?;
    Ok(row.as_ref().map(webhook_row))
}

pub(super) async fn put_webhook(
    c: &mut Object,
    scope: &Scope,
    url: &str,
    secret: &str,
    now_ms: i64,
) -> StoreResult<Webhook> {
    let tx = c.transaction().await.map_err(pg)?;
    fence(&tx).await?;
    let s = tx
        .prepare_cached(&format!(
            "INSERT INTO webhooks (tenant_id, partner_id, webhook_url, secret, created_at,
                last_modified_time)
             VALUES ($1, $2, $3, $4, $5, $5)
             ON CONFLICT (tenant_id, partner_id) DO UPDATE SET
                webhook_url = excluded.webhook_url, secret = excluded.secret,
                generation = webhooks.generation + 1, enabled = TRUE, disabled_reason = NULL,
                disabled_at = NULL, failing_since = NULL, last_modified_time = excluded.last_modified_time
             RETURNING {WEBHOOK_COLS}"
        ))
        .await
        .map_err(pg)?;
    let row = tx
        .query_one(
            &s,
            &[&scope.tenant.0, &scope.partner.0, &url, &secret, &now_ms],
        )
        .await
        .map_err(pg)?;
    unpark(&tx, scope, now_ms).await?;
    tx.commit().await.map_err(pg)?;
    Ok(webhook_row(&row))
}

/// A new URL for the scope's webhook: same secret, enabled again like a re-registration;
/// `NotFound` when it has none (never creates one).
pub(super) async fn update_webhook_url(
    c: &mut Object,
    scope: &Scope,
    url: &str,
    now_ms: i64,
) -> StoreResult<Webhook> {
    let tx = c.transaction().await.map_err(pg)?;
    fence(&tx).await?;
    let s = tx
        .prepare_cached(&format!(
            "UPDATE webhooks SET webhook_url = $3, generation = generation + 1, enabled = TRUE,
                disabled_reason = NULL, disabled_at = NULL, failing_since = NULL,
                last_modified_time = $4
             WHERE tenant_id = $1 AND partner_id = $2
             RETURNING {WEBHOOK_COLS}"
        ))
        .await
        .map_err(pg)?;
    let row = tx
        .query_opt(&s, &[&scope.tenant.0, &scope.partner.0, &url, &now_ms])
        .await
        .map_err(pg)?
        .ok_or(StoreError::NotFound)?;
    unpark(&tx, scope, now_ms).await?;
    tx.commit().await.map_err(pg)?;
    Ok(webhook_row(&row))
}

/// Makes the scope's parked notifications (no webhook, or disabled) due from now.
async fn unpark(
    tx: &deadpool_postgres::Transaction<'_>,
    scope: &Scope,
    now_ms: i64,
) -> StoreResult<()> {
    let s = tx
        .prepare_cached(concat!(
            "UPDATE notifications SET next_attempt_at = $3
             WHERE tenant_id = $1 AND partner_id = $2 AND status = 0
               AND next_attempt_at = ",
            parked_sql!()
        ))
        .await
        .map_err(pg)?;
    tx.execute(&s, &[&scope.tenant.0, &scope.partner.0, &now_ms])
        .await
        .map_err(pg)?;
    Ok(())
}

pub(super) async fn delete_webhook(c: &mut Object, scope: &Scope) -> StoreResult<()> {
    let tx = c.transaction().await.map_err(pg)?;
    fence(&tx).await?;
    let s = tx
        .prepare_cached("DELETE FROM webhooks WHERE tenant_id = $1 AND partner_id = $2")
        .await
        .map_err(pg)?;
    let n = tx
        .execute(&s, &[&scope.tenant.0, &scope.partner.0])
        .await
        .map_err(pg)?;
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    let s = tx.prepare_cached(PARK_IF_DISABLED).await.map_err(pg)?;
    tx.execute(&s, &[&scope.tenant.0, &scope.partner.0])
        .await
        .map_err(pg)?;
    tx.commit().await.map_err(pg)
}
