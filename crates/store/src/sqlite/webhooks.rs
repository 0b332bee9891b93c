//! Webhook registrations for SQLite; registering one moves its parked notifications back to
//! due, deleting one parks them.

use super::internal;
use crate::model::*;
use crate::{StoreError, StoreResult};
use rusqlite::{params, Connection, OptionalExtension};

pub(super) fn webhook_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Webhook> {
    Ok(Webhook {
        webhook_url: r.get(0)?,
        secret: r.get(1)?,
        generation: r.get(2)?,
        enabled: r.get(3)?,
        disabled_reason: r.get(4)?,
        created_at: r.get(5)?,
        last_modified_time: r.get(6)?,
        disabled_at: r.get(7)?,
    })
}

pub(super) const WEBHOOK_COLS: &str =
    "webhook_url, secret, generation, enabled, disabled_reason, created_at,
    last_modified_time, disabled_at";

pub(super) fn get_webhook(c: &Connection, scope: &Scope) -> StoreResult<Option<Webhook>> {
    c.prepare_cached(&format!(
        "SELECT {WEBHOOK_COLS} FROM webhooks WHERE tenant_id = ?1 AND partner_id = ?2"
    ))
    .and_then(|mut s| {
        s.query_row(params![scope.tenant.0, scope.partner.0], webhook_row)
            .optional()
    })
    .map_err(internal)
}

pub(super) fn put_webhook(
    c: &Connection,
    scope: &Scope,
    url: &str,
    secret: &str,
    now_ms: i64,
) -> StoreResult<Webhook> {
    c.prepare_cached(&format!(
        "INSERT INTO webhooks (tenant_id, partner_id, webhook_url, secret, created_at, last_modified_time)
         VALUES (?1, ?2, ?3, ?4, ?5, ?5)
         ON CONFLICT (tenant_id, partner_id) DO UPDATE SET webhook_url = excluded.webhook_url,
            secret = excluded.secret, generation = webhooks.generation + 1, enabled = 1,
            disabled_reason = NULL, disabled_at = NULL, failing_since = NULL, last_modified_time = excluded.last_modified_time
         RETURNING {WEBHOOK_COLS}"
    ))
    .and_then(|mut s| {
        s.query_row(
            params![scope.tenant.0, scope.partner.0, url, secret, now_ms],
            webhook_row,
        )
    })
    .map_err(internal)
    .and_then(|w| unpark(c, scope, now_ms).map(|()| w))
}

pub(super) fn update_webhook_url(
    c: &Connection,
    scope: &Scope,
    url: &str,
    now_ms: i64,
) -> StoreResult<Webhook> {
    let w = c
        .prepare_cached(&format!(
            "UPDATE webhooks SET webhook_url = ?3, generation = generation + 1, enabled = 1,
                disabled_reason = NULL, disabled_at = NULL, failing_since = NULL, last_modified_time = ?4
             WHERE tenant_id = ?1 AND partner_id = ?2
             RETURNING {WEBHOOK_COLS}"
        ))
        .and_then(|mut s| {
            s.query_row(
                params![scope.tenant.0, scope.partner.0, url, now_ms],
                webhook_row,
            )
            .optional()
        })
        .map_err(internal)?
        .ok_or(StoreError::NotFound)?;
    unpark(c, scope, now_ms).map(|()| w)
}

pub(super) fn delete_webhook(c: &Connection, scope: &Scope) -> StoreResult<()> {
    let n = c
        .prepare_cached("DELETE FROM webhooks WHERE tenant_id = ?1 AND partner_id = ?2")
        .and_then(|mut s| s.execute(params![scope.tenant.0, scope.partner.0]))
        .map_err(internal)?;
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    park(c, scope)
}

/// Whether the scope has an enabled webhook (notifications are parked otherwise).
pub(super) fn webhook_enabled(c: &Connection, scope: &Scope) -> StoreResult<bool> {
    c.prepare_cached("SELECT enabled FROM webhooks WHERE tenant_id = ?1 AND partner_id = ?2")
        .and_then(|mut s| {
            s.query_row(params![scope.tenant.0, scope.partner.0], |r| {
                r.get::<_, bool>(0)
            })
            .optional()
        })
        .map(|e| e.unwrap_or(false))
        .map_err(internal)
}

/// Parks the scope's pending notifications that nobody holds a lease on.
pub(super) fn park(c: &Connection, scope: &Scope) -> StoreResult<()> {
    c.prepare_cached(
        "UPDATE notifications SET next_attempt_at = ?3
         WHERE tenant_id = ?1 AND partner_id = ?2 AND status = 0 AND lease_until IS NULL
           AND next_attempt_at != ?3",
    )
    .and_then(|mut s| s.execute(params![scope.tenant.0, scope.partner.0, PARKED]))
    .map_err(internal)?;
    Ok(())
}

/// Makes the scope's parked notifications due now.
fn unpark(c: &Connection, scope: &Scope, now_ms: i64) -> StoreResult<()> {
    c.prepare_cached(
        "UPDATE notifications SET next_attempt_at = ?3
         WHERE tenant_id = ?1 AND partner_id = ?2 AND status = 0 AND next_attempt_at = ?4",
    )
    .and_then(|mut s| s.execute(params![scope.tenant.0, scope.partner.0, now_ms, PARKED]))
    .map_err(internal)?;
    Ok(())
}

/// When a (re-)queued notification of `scope` becomes due: now, or parked without a webhook.
pub(super) fn due_at(c: &Connection, scope: &Scope, now_ms: i64) -> StoreResult<i64> {
    Ok(if webhook_enabled(c, scope)? {
        now_ms
    } else {
        PARKED
    })
}
