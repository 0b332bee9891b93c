//! Webhooks for PostgreSQL: each scope's v1 registration (the `wh_legacy` row) and its v2
//! webhooks. Enabling one moves its parked notifications back to due, disabling or deleting one
//! parks them (a deleted v2 webhook's fail). Every query filters by scope.

use super::idempotency::fence;
use super::{is_unique_violation, pg};
use crate::model::*;
use crate::rules::{
    headers_column, parked_sql, rotation_grace_end, stored_headers, stored_millis,
    stored_payload_format, target_verdict, CLIENT_DISABLED_REASON, WEBHOOK_DELETED_ERROR,
};
use crate::{StoreError, StoreResult};
use deadpool_postgres::{Object, Transaction};
use domain::clock::unix_millis;
use domain::EnrollmentId;
use time::OffsetDateTime;
use tokio_postgres::Row;

/// Parks the webhook's unleased pending notifications when it is missing or disabled
/// ($1 tenant, $2 partner, $3 webhook id).
pub(super) const PARK_IF_DISABLED: &str = concat!(
    "UPDATE notifications n SET next_attempt_at = ",
    parked_sql!(),
    "
     WHERE n.tenant_id = $1 AND n.partner_id = $2 AND n.webhook_id = $3 AND n.status = 0
       AND n.lease_until IS NULL
       AND n.next_attempt_at <> ",
    parked_sql!(),
    "
       AND NOT EXISTS (SELECT 1 FROM webhooks w
                       WHERE w.tenant_id = n.tenant_id AND w.partner_id = n.partner_id
                         AND w.webhook_id = n.webhook_id AND w.enabled)"
);

/// The columns [`webhook_row`] reads, in its order.
pub(super) const WEBHOOK_COLS: &str =
    "webhook_id, name, description, headers, payload_format, previous_secret,
    previous_secret_until, webhook_url, secret, generation, enabled, disabled_reason, created_at,
    last_modified_time, disabled_at";

pub(super) fn webhook_row(r: &Row) -> Webhook {
    Webhook {
        webhook_id: r.get(0),
        name: r.get(1),
        description: r.get(2),
        headers: stored_headers(r.get(3)),
        payload_format: stored_payload_format(r.get(4)),
        previous_secret: r.get(5),
        previous_secret_until: stored_millis(r.get(6)),
        webhook_url: r.get(7),
        secret: r.get(8),
        generation: r.get(9),
        enabled: r.get(10),
        disabled_reason: r.get(11),
        created_at: r.get(12),
        last_modified_time: r.get(13),
        disabled_at: r.get(14),
    }
}

pub(super) async fn get_webhook(c: &mut Object, scope: &Scope) -> StoreResult<Option<Webhook>> {
    find_webhook(c, &WebhookKey::legacy(scope)).await
}

pub(super) async fn find_webhook(c: &mut Object, key: &WebhookKey) -> StoreResult<Option<Webhook>> {
    let s = c
        .prepare_cached(&format!(
            "SELECT {WEBHOOK_COLS} FROM webhooks
             WHERE tenant_id = $1 AND partner_id = $2 AND webhook_id = $3"
        ))
        .await
        .map_err(pg)?;
    let row = c
        .query_opt(
            &s,
            &[&key.scope.tenant.0, &key.scope.partner.0, &key.webhook_id],
        )
        .await
        .map_err(pg)?;
    Ok(row.as_ref().map(webhook_row))
}

/// The scope's webhooks: the legacy row first, then the v2 ones in creation order.
pub(super) async fn list_webhooks(c: &mut Object, scope: &Scope) -> StoreResult<Vec<Webhook>> {
    let s = c
        .prepare_cached(&format!(
            "SELECT {WEBHOOK_COLS} FROM webhooks WHERE tenant_id = $1 AND partner_id = $2
             ORDER BY webhook_id <> $3, created_at, webhook_id"
        ))
        .await
        .map_err(pg)?;
    let rows = c
        .query(&s, &[&scope.tenant.0, &scope.partner.0, &LEGACY_WEBHOOK_ID])
        .await
        .map_err(pg)?;
    Ok(rows.iter().map(webhook_row).collect())
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
            "INSERT INTO webhooks (tenant_id, partner_id, webhook_id, webhook_url, secret,
                created_at, last_modified_time)
             VALUES ($1, $2, $6, $3, $4, $5, $5)
             ON CONFLICT (tenant_id, partner_id, webhook_id) DO UPDATE SET
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
            &[
                &scope.tenant.0,
                &scope.partner.0,
                &url,
                &secret,
                &now_ms,
                &LEGACY_WEBHOOK_ID,
            ],
        )
        .await
        .map_err(pg)?;
    unpark(&tx, &WebhookKey::legacy(scope), now_ms).await?;
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
    let w = update_returning(
        &tx,
        "UPDATE webhooks SET webhook_url = $3, generation = generation + 1, enabled = TRUE,
                disabled_reason = NULL, disabled_at = NULL, failing_since = NULL,
                last_modified_time = $4
             WHERE tenant_id = $1 AND partner_id = $2 AND webhook_id = $5",
        &[
            &scope.tenant.0,
            &scope.partner.0,
            &url,
            &now_ms,
            &LEGACY_WEBHOOK_ID,
        ],
        pg,
    )
    .await?;
    unpark(&tx, &WebhookKey::legacy(scope), now_ms).await?;
    tx.commit().await.map_err(pg)?;
    Ok(w)
}

/// Runs one `UPDATE webhooks SET … WHERE …` statement with `RETURNING` the webhook columns and
/// maps the row: the shape of every write that changes one webhook and answers it. `NotFound`
/// when no row matched; `on_error` maps the statement's own failure (a unique-name conflict
/// for a rename, a plain database error otherwise).
async fn update_returning(
    tx: &Transaction<'_>,
    update: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    on_error: fn(tokio_postgres::Error) -> StoreError,
) -> StoreResult<Webhook> {
    let s = tx
        .prepare_cached(&format!("{update}\n             RETURNING {WEBHOOK_COLS}"))
        .await
        .map_err(pg)?;
    let row = tx
        .query_opt(&s, params)
        .await
        .map_err(on_error)?
        .ok_or(StoreError::NotFound)?;
    Ok(webhook_row(&row))
}

/// Makes the webhook's parked notifications due from now.
async fn unpark(tx: &Transaction<'_>, key: &WebhookKey, now_ms: i64) -> StoreResult<()> {
    let s = tx
        .prepare_cached(concat!(
            "UPDATE notifications SET next_attempt_at = $3
             WHERE tenant_id = $1 AND partner_id = $2 AND webhook_id = $4 AND status = 0
               AND next_attempt_at = ",
            parked_sql!()
        ))
        .await
        .map_err(pg)?;
    tx.execute(
        &s,
        &[
            &key.scope.tenant.0,
            &key.scope.partner.0,
            &now_ms,
            &key.webhook_id,
        ],
    )
    .await
    .map_err(pg)?;
    Ok(())
}

/// Parks the webhook's unleased pending notifications if it is (now) missing or disabled.
pub(super) async fn park_if_disabled(tx: &Transaction<'_>, key: &WebhookKey) -> StoreResult<()> {
    let s = tx.prepare_cached(PARK_IF_DISABLED).await.map_err(pg)?;
    tx.execute(
        &s,
        &[&key.scope.tenant.0, &key.scope.partner.0, &key.webhook_id],
    )
    .await
    .map_err(pg)?;
    Ok(())
}

async fn delete_row(tx: &Transaction<'_>, key: &WebhookKey) -> StoreResult<u64> {
    let s = tx
        .prepare_cached(
            "DELETE FROM webhooks WHERE tenant_id = $1 AND partner_id = $2 AND webhook_id = $3",
        )
        .await
        .map_err(pg)?;
    tx.execute(
        &s,
        &[&key.scope.tenant.0, &key.scope.partner.0, &key.webhook_id],
    )
    .await
    .map_err(pg)
}

pub(super) async fn delete_webhook(c: &mut Object, scope: &Scope) -> StoreResult<()> {
    let tx = c.transaction().await.map_err(pg)?;
    fence(&tx).await?;
    let key = WebhookKey::legacy(scope);
    if delete_row(&tx, &key).await? == 0 {
        return Err(StoreError::NotFound);
    }
    park_if_disabled(&tx, &key).await?;
    tx.commit().await.map_err(pg)
}

/// Serialises the scope's webhook writes (creation counts and names are checked, then
/// written): a transaction-scoped advisory lock on the scope.
async fn lock_scope(tx: &Transaction<'_>, scope: &Scope) -> StoreResult<()> {
    let s = tx
        .prepare_cached("SELECT pg_advisory_xact_lock(hashtextextended($1 || chr(31) || $2, 14))")
        .await
        .map_err(pg)?;
    tx.execute(&s, &[&scope.tenant.0, &scope.partner.0])
        .await
        .map_err(pg)?;
    Ok(())
}

/// A new v2 webhook: refused beyond [`MAX_WEBHOOKS`] or with a name the scope already uses.
pub(super) async fn create_webhook(
    c: &mut Object,
    scope: &Scope,
    new: &NewWebhook,
    now: OffsetDateTime,
) -> StoreResult<Webhook> {
    let tx = c.transaction().await.map_err(pg)?;
    fence(&tx).await?;
    lock_scope(&tx, scope).await?;
    let s = tx
        .prepare_cached(
            "SELECT COUNT(*) FILTER (WHERE webhook_id <> $3), COUNT(*) FILTER (WHERE name = $4) > 0
             FROM webhooks WHERE tenant_id = $1 AND partner_id = $2",
        )
        .await
        .map_err(pg)?;
    let row = tx
        .query_one(
            &s,
            &[
                &scope.tenant.0,
                &scope.partner.0,
                &LEGACY_WEBHOOK_ID,
                &new.name,
            ],
        )
        .await
        .map_err(pg)?;
    if row.get::<_, i64>(0) as usize >= MAX_WEBHOOKS {
        return Err(StoreError::Conflict(WEBHOOK_CAP_REACHED.into()));
    }
    if row.get::<_, bool>(1) {
        return Err(StoreError::Conflict(WEBHOOK_NAME_TAKEN.into()));
    }
    let s = tx
        .prepare_cached(&format!(
            "INSERT INTO webhooks (tenant_id, partner_id, webhook_id, name, description, headers,
                payload_format, webhook_url, secret, created_at, last_modified_time)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)
             RETURNING {WEBHOOK_COLS}"
        ))
        .await
        .map_err(pg)?;
    let row = tx
        .query_one(
            &s,
            &[
                &scope.tenant.0,
                &scope.partner.0,
                &new.webhook_id,
                &new.name,
                &new.description,
                &headers_column(&new.headers),
                &new.payload_format.as_str(),
                &new.webhook_url,
                &new.secret,
                &unix_millis(now),
            ],
        )
        .await
        .map_err(name_conflict)?;
    tx.commit().await.map_err(pg)?;
    Ok(webhook_row(&row))
}

/// A unique violation on a webhook write is its name (the ids are random and checked).
fn name_conflict(e: tokio_postgres::Error) -> StoreError {
    if is_unique_violation(&e) {
        StoreError::Conflict(WEBHOOK_NAME_TAKEN.into())
    } else {
        pg(e)
    }
}

/// Refuses a change to the legacy row; `NotFound` for a webhook the scope lacks.
fn not_legacy(key: &WebhookKey) -> StoreResult<()> {
    if key.webhook_id == LEGACY_WEBHOOK_ID {
        return Err(StoreError::Conflict(WEBHOOK_READ_ONLY.into()));
    }
    Ok(())
}

/// A v2 PATCH: the fields given replace the stored ones (a new generation, so attempts still
/// under way for the old settings do not count against the new); enabling makes the webhook's
/// waiting notifications due, disabling parks them.
pub(super) async fn change_webhook(
    c: &mut Object,
    key: &WebhookKey,
    ch: &WebhookChange,
    now: OffsetDateTime,
) -> StoreResult<Webhook> {
    not_legacy(key)?;
    let tx = c.transaction().await.map_err(pg)?;
    fence(&tx).await?;
    let now_ms = unix_millis(now);
    let w = update_returning(
        &tx,
        "UPDATE webhooks SET name = COALESCE($4, name), description = COALESCE($5, description),
                headers = COALESCE($6, headers), payload_format = COALESCE($7, payload_format),
                webhook_url = COALESCE($8, webhook_url), generation = generation + 1,
                enabled = COALESCE($9, enabled),
                disabled_reason = CASE WHEN $9::BOOLEAN IS NULL THEN disabled_reason
                    WHEN $9 THEN NULL ELSE COALESCE(disabled_reason, $11) END,
                disabled_at = CASE WHEN $9::BOOLEAN IS NULL THEN disabled_at
                    WHEN $9 THEN NULL ELSE COALESCE(disabled_at, $10) END,
                failing_since = CASE WHEN $9 THEN NULL ELSE failing_since END,
                last_modified_time = $10
             WHERE tenant_id = $1 AND partner_id = $2 AND webhook_id = $3",
        &[
            &key.scope.tenant.0,
            &key.scope.partner.0,
            &key.webhook_id,
            &ch.name,
            &ch.description,
            &ch.headers.as_deref().map(headers_column),
            &ch.payload_format.map(|f| f.as_str()),
            &ch.webhook_url,
            &ch.enabled,
            &now_ms,
            &CLIENT_DISABLED_REASON,
        ],
        name_conflict,
    )
    .await?;
    if w.enabled {
        unpark(&tx, key, now_ms).await?;
    } else {
        park_if_disabled(&tx, key).await?;
    }
    tx.commit().await.map_err(pg)?;
    Ok(w)
}

/// Deletes a v2 webhook unless active enrollments use it and `force` is false. Deleting
/// pauses the enrollments that used it and fails its pending notifications.
pub(super) async fn remove_webhook(
    c: &mut Object,
    key: &WebhookKey,
    force: bool,
    now: OffsetDateTime,
) -> StoreResult<WebhookRemoval> {
    not_legacy(key)?;
    let tx = c.transaction().await.map_err(pg)?;
    fence(&tx).await?;
    let (t, p, w) = (&key.scope.tenant.0, &key.scope.partner.0, &key.webhook_id);
    let s = tx
        .prepare_cached(
            "SELECT 1 FROM webhooks WHERE tenant_id = $1 AND partner_id = $2 AND webhook_id = $3
             FOR UPDATE",
        )
        .await
        .map_err(pg)?;
    if tx.query_opt(&s, &[t, p, w]).await.map_err(pg)?.is_none() {
        return Err(StoreError::NotFound);
    }
    let s = tx
        .prepare_cached(
            "SELECT enrollment_id FROM enrollments
             WHERE tenant_id = $1 AND partner_id = $2 AND webhook_id = $3 AND NOT paused
             ORDER BY id FOR UPDATE",
        )
        .await
        .map_err(pg)?;
    let active: Vec<EnrollmentId> = tx
        .query(&s, &[t, p, w])
        .await
        .map_err(pg)?
        .iter()
        .map(|r| EnrollmentId(r.get(0)))
        .collect();
    if !active.is_empty() && !force {
        return Ok(WebhookRemoval::Blocked(active));
    }
    let s = tx
        .prepare_cached(
            "UPDATE enrollments SET paused = TRUE, updated_at = $4
             WHERE tenant_id = $1 AND partner_id = $2 AND webhook_id = $3 AND NOT paused",
        )
        .await
        .map_err(pg)?;
    tx.execute(&s, &[t, p, w, &now.unix_timestamp()])
        .await
        .map_err(pg)?;
    let s = tx
        .prepare_cached(
            "UPDATE notifications SET status = 2, lease_until = NULL, last_error = $4
             WHERE tenant_id = $1 AND partner_id = $2 AND webhook_id = $3 AND status = 0",
        )
        .await
        .map_err(pg)?;
    tx.execute(&s, &[t, p, w, &WEBHOOK_DELETED_ERROR])
        .await
        .map_err(pg)?;
    delete_row(&tx, key).await?;
    tx.commit().await.map_err(pg)?;
    Ok(WebhookRemoval::Removed(active))
}

/// A new secret at once; the replaced one keeps signing `webhook-signature` until `now +
/// grace`.
pub(super) async fn rotate_webhook_secret(
    c: &mut Object,
    key: &WebhookKey,
    secret: &str,
    grace: std::time::Duration,
    now: OffsetDateTime,
) -> StoreResult<Webhook> {
    not_legacy(key)?;
    let tx = c.transaction().await.map_err(pg)?;
    fence(&tx).await?;
    let w = update_returning(
        &tx,
        "UPDATE webhooks SET previous_secret = secret, previous_secret_until = $5,
                secret = $4, last_modified_time = $6
             WHERE tenant_id = $1 AND partner_id = $2 AND webhook_id = $3",
        &[
            &key.scope.tenant.0,
            &key.scope.partner.0,
            &key.webhook_id,
            &secret,
            &rotation_grace_end(now, grace),
            &unix_millis(now),
        ],
        pg,
    )
    .await?;
    tx.commit().await.map_err(pg)?;
    Ok(w)
}

/// Locks the webhooks notifications are about to be queued or re-queued for (`FOR SHARE`, in
/// key order, each once), in the queuing transaction and before the statement that reads their
/// `enabled` to park or not. An enable or disable then either waits for the queuing to commit
/// and parks or unparks what it queued, or commits first and the queuing statement (a later
/// statement, so a later snapshot) sees it: a notification is never left parked for an
/// enabled webhook, nor due for a disabled one. `(tenant, partner, webhook id)` each.
pub(super) async fn lock_for_queuing(
    tx: &Transaction<'_>,
    keys: &[(&str, &str, &str)],
) -> StoreResult<()> {
    let mut keys = keys.to_vec();
    keys.sort_unstable();
    keys.dedup();
    let s = tx
        .prepare_cached(
            "SELECT 1 FROM webhooks w
             JOIN unnest($1::TEXT[], $2::TEXT[], $3::TEXT[]) AS x(t, p, id)
               ON w.tenant_id = x.t AND w.partner_id = x.p AND w.webhook_id = x.id
             ORDER BY w.tenant_id, w.partner_id, w.webhook_id
             FOR SHARE OF w",
        )
        .await
        .map_err(pg)?;
    let tenants: Vec<&str> = keys.iter().map(|k| k.0).collect();
    let partners: Vec<&str> = keys.iter().map(|k| k.1).collect();
    let ids: Vec<&str> = keys.iter().map(|k| k.2).collect();
    tx.query(&s, &[&tenants, &partners, &ids])
        .await
        .map_err(pg)?;
    Ok(())
}

/// [`lock_for_queuing`] for one webhook.
pub(super) async fn lock_one_for_queuing(
    tx: &Transaction<'_>,
    key: &WebhookKey,
) -> StoreResult<()> {
    let k = (
        key.scope.tenant.0.as_str(),
        key.scope.partner.0.as_str(),
        key.webhook_id.as_str(),
    );
    lock_for_queuing(tx, &[k]).await
}

/// Refuses to route an enrollment to a webhook that [`target_verdict`] refuses. Locks the
/// webhook row until the caller's transaction ends, so a concurrent delete sees the enrollment;
/// callers take this lock before any enrollment row's (the order `remove_webhook` locks in).
pub(super) async fn check_target(tx: &Transaction<'_>, key: &WebhookKey) -> StoreResult<()> {
    if key.webhook_id == LEGACY_WEBHOOK_ID {
        return Ok(());
    }
    let s = tx
        .prepare_cached(
            "SELECT enabled FROM webhooks WHERE tenant_id = $1 AND partner_id = $2
               AND webhook_id = $3 FOR SHARE",
        )
        .await
        .map_err(pg)?;
    let row = tx
        .query_opt(
            &s,
            &[&key.scope.tenant.0, &key.scope.partner.0, &key.webhook_id],
        )
        .await
        .map_err(pg)?;
    target_verdict(&key.webhook_id, row.map(|r| r.get::<_, bool>(0)))
}
