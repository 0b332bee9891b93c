//! Webhooks for SQLite: each scope's v1 registration (the `wh_legacy` row) and its v2 webhooks.
//! Enabling one moves its parked notifications back to due, disabling or deleting one parks
//! them (a deleted v2 webhook's fail). Every query filters by scope.

use super::internal;
use crate::model::*;
use crate::rules::{
    headers_column, rotation_grace_end, stored_headers, stored_millis, stored_payload_format,
    target_verdict, CLIENT_DISABLED_REASON, WEBHOOK_DELETED_ERROR,
};
use crate::{StoreError, StoreResult};
use domain::clock::unix_millis;
use domain::EnrollmentId;
use rusqlite::{params, Connection, OptionalExtension};
use time::OffsetDateTime;

pub(super) fn webhook_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Webhook> {
    Ok(Webhook {
        webhook_id: r.get(0)?,
        name: r.get(1)?,
        description: r.get(2)?,
        headers: stored_headers(&r.get::<_, String>(3)?),
        payload_format: stored_payload_format(&r.get::<_, String>(4)?),
        previous_secret: r.get(5)?,
        previous_secret_until: stored_millis(r.get(6)?),
        webhook_url: r.get(7)?,
        secret: r.get(8)?,
        generation: r.get(9)?,
        enabled: r.get(10)?,
        disabled_reason: r.get(11)?,
        created_at: r.get(12)?,
        last_modified_time: r.get(13)?,
        disabled_at: r.get(14)?,
    })
}

/// The columns [`webhook_row`] reads, in its order; `previous_secret_until` (raw) is index 6.
pub(super) const WEBHOOK_COLS: &str =
    "webhook_id, name, description, headers, payload_format, previous_secret,
    previous_secret_until, webhook_url, secret, generation, enabled, disabled_reason, created_at,
    last_modified_time, disabled_at";
/// Columns after [`WEBHOOK_COLS`] in claims.
pub(super) const WEBHOOK_COL_COUNT: usize = 15;

pub(super) fn get_webhook(c: &Connection, scope: &Scope) -> StoreResult<Option<Webhook>> {
    find_webhook(c, &WebhookKey::legacy(scope))
}

pub(super) fn find_webhook(c: &Connection, key: &WebhookKey) -> StoreResult<Option<Webhook>> {
    c.prepare_cached(&format!(
        "SELECT {WEBHOOK_COLS} FROM webhooks
         WHERE tenant_id = ?1 AND partner_id = ?2 AND webhook_id = ?3"
    ))
    .and_then(|mut s| {
        s.query_row(
            params![key.scope.tenant.0, key.scope.partner.0, key.webhook_id],
            webhook_row,
        )
        .optional()
    })
    .map_err(internal)
}

/// The scope's webhooks: the legacy row first, then the v2 ones in creation order.
pub(super) fn list_webhooks(c: &Connection, scope: &Scope) -> StoreResult<Vec<Webhook>> {
    c.prepare_cached(&format!(
        "SELECT {WEBHOOK_COLS} FROM webhooks WHERE tenant_id = ?1 AND partner_id = ?2
         ORDER BY webhook_id <> ?3, created_at, webhook_id"
    ))
    .and_then(|mut s| {
        s.query_map(
            params![scope.tenant.0, scope.partner.0, LEGACY_WEBHOOK_ID],
            webhook_row,
        )?
        .collect::<Result<Vec<_>, _>>()
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
        "INSERT INTO webhooks (tenant_id, partner_id, webhook_id, webhook_url, secret, created_at, last_modified_time)
         VALUES (?1, ?2, ?6, ?3, ?4, ?5, ?5)
         ON CONFLICT (tenant_id, partner_id, webhook_id) DO UPDATE SET webhook_url = excluded.webhook_url,
            secret = excluded.secret, generation = webhooks.generation + 1, enabled = 1,
            disabled_reason = NULL, disabled_at = NULL, failing_since = NULL, last_modified_time = excluded.last_modified_time
         RETURNING {WEBHOOK_COLS}"
    ))
    .and_then(|mut s| {
        s.query_row(
            params![
                scope.tenant.0,
                scope.partner.0,
                url,
                secret,
                now_ms,
                LEGACY_WEBHOOK_ID
            ],
            webhook_row,
        )
    })
    .map_err(internal)
    .and_then(|w| unpark(c, &WebhookKey::legacy(scope), now_ms).map(|()| w))
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
             WHERE tenant_id = ?1 AND partner_id = ?2 AND webhook_id = ?5
             RETURNING {WEBHOOK_COLS}"
        ))
        .and_then(|mut s| {
            s.query_row(
                params![
                    scope.tenant.0,
                    scope.partner.0,
                    url,
                    now_ms,
                    LEGACY_WEBHOOK_ID
                ],
                webhook_row,
            )
            .optional()
        })
        .map_err(internal)?
        .ok_or(StoreError::NotFound)?;
    unpark(c, &WebhookKey::legacy(scope), now_ms).map(|()| w)
}

pub(super) fn delete_webhook(c: &Connection, scope: &Scope) -> StoreResult<()> {
    let key = WebhookKey::legacy(scope);
    if delete_row(c, &key)? == 0 {
        return Err(StoreError::NotFound);
    }
    park(c, &key)
}

fn delete_row(c: &Connection, key: &WebhookKey) -> StoreResult<usize> {
    c.prepare_cached(
        "DELETE FROM webhooks WHERE tenant_id = ?1 AND partner_id = ?2 AND webhook_id = ?3",
    )
    .and_then(|mut s| {
        s.execute(params![
            key.scope.tenant.0,
            key.scope.partner.0,
            key.webhook_id
        ])
    })
    .map_err(internal)
}

/// A new v2 webhook: refused (before writing) beyond [`MAX_WEBHOOKS`] or with a name the scope
/// already uses.
pub(super) fn create_webhook(
    c: &Connection,
    scope: &Scope,
    new: &NewWebhook,
    now: OffsetDateTime,
) -> StoreResult<Webhook> {
    let (count, name_taken): (i64, bool) = c
        .prepare_cached(
            "SELECT COUNT(*) FILTER (WHERE webhook_id <> ?3), COUNT(*) FILTER (WHERE name = ?4) > 0
             FROM webhooks WHERE tenant_id = ?1 AND partner_id = ?2",
        )
        .and_then(|mut s| {
            s.query_row(
                params![scope.tenant.0, scope.partner.0, LEGACY_WEBHOOK_ID, new.name],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
        })
        .map_err(internal)?;
    if count as usize >= MAX_WEBHOOKS {
        return Err(StoreError::Conflict(WEBHOOK_CAP_REACHED.into()));
    }
    if name_taken {
        return Err(StoreError::Conflict(WEBHOOK_NAME_TAKEN.into()));
    }
    c.prepare_cached(&format!(
        "INSERT INTO webhooks (tenant_id, partner_id, webhook_id, name, description, headers,
            payload_format, webhook_url, secret, created_at, last_modified_time)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10)
         RETURNING {WEBHOOK_COLS}"
    ))
    .and_then(|mut s| {
        s.query_row(
            params![
                scope.tenant.0,
                scope.partner.0,
                new.webhook_id,
                new.name,
                new.description,
                headers_column(&new.headers),
                new.payload_format.as_str(),
                new.webhook_url,
                new.secret,
                unix_millis(now)
            ],
            webhook_row,
        )
    })
    .map_err(internal)
}

/// Refuses (before writing) a change to the legacy row or to a webhook the scope lacks.
fn editable(c: &Connection, key: &WebhookKey) -> StoreResult<Webhook> {
    if key.webhook_id == LEGACY_WEBHOOK_ID {
        return Err(StoreError::Conflict(WEBHOOK_READ_ONLY.into()));
    }
    find_webhook(c, key)?.ok_or(StoreError::NotFound)
}

/// A v2 PATCH: the fields given replace the stored ones (a new generation, so attempts still
/// under way for the old settings do not count against the new); enabling makes the webhook's
/// waiting notifications due, disabling parks them.
pub(super) fn change_webhook(
    c: &Connection,
    key: &WebhookKey,
    ch: &WebhookChange,
    now: OffsetDateTime,
) -> StoreResult<Webhook> {
    let current = editable(c, key)?;
    if let Some(name) = ch
        .name
        .as_ref()
        .filter(|n| current.name.as_ref() != Some(*n))
    {
        if name_used(c, &key.scope, name)? {
            return Err(StoreError::Conflict(WEBHOOK_NAME_TAKEN.into()));
        }
    }
    let now_ms = unix_millis(now);
    let w = c
        .prepare_cached(&format!(
            "UPDATE webhooks SET name = COALESCE(?4, name), description = COALESCE(?5, description),
                headers = COALESCE(?6, headers), payload_format = COALESCE(?7, payload_format),
                webhook_url = COALESCE(?8, webhook_url), generation = generation + 1,
                enabled = COALESCE(?9, enabled),
                disabled_reason = CASE WHEN ?9 IS NULL THEN disabled_reason WHEN ?9 THEN NULL
                    ELSE COALESCE(disabled_reason, ?11) END,
                disabled_at = CASE WHEN ?9 IS NULL THEN disabled_at WHEN ?9 THEN NULL
                    ELSE COALESCE(disabled_at, ?10) END,
                failing_since = CASE WHEN ?9 THEN NULL ELSE failing_since END,
                last_modified_time = ?10
             WHERE tenant_id = ?1 AND partner_id = ?2 AND webhook_id = ?3
             RETURNING {WEBHOOK_COLS}"
        ))
        .and_then(|mut s| {
            s.query_row(
                params![
                    key.scope.tenant.0,
                    key.scope.partner.0,
                    key.webhook_id,
                    ch.name,
                    ch.description,
                    ch.headers.as_deref().map(headers_column),
                    ch.payload_format.map(|f| f.as_str()),
                    ch.webhook_url,
                    ch.enabled,
                    now_ms,
                    CLIENT_DISABLED_REASON
                ],
                webhook_row,
            )
        })
        .map_err(internal)?;
    if w.enabled {
        unpark(c, key, now_ms)?;
    } else {
        park(c, key)?;
    }
    Ok(w)
}

fn name_used(c: &Connection, scope: &Scope, name: &str) -> StoreResult<bool> {
    c.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM webhooks WHERE tenant_id = ?1 AND partner_id = ?2 AND name = ?3)",
    )
    .and_then(|mut s| s.query_row(params![scope.tenant.0, scope.partner.0, name], |r| r.get(0)))
    .map_err(internal)
}

/// Deletes a v2 webhook unless active enrollments use it and `force` is false (then nothing is
/// written). Deleting pauses the enrollments that used it and fails its pending notifications.
pub(super) fn remove_webhook(
    c: &Connection,
    key: &WebhookKey,
    force: bool,
    now: OffsetDateTime,
) -> StoreResult<WebhookRemoval> {
    editable(c, key)?;
    let active = active_enrollments(c, key)?;
    if !active.is_empty() && !force {
        return Ok(WebhookRemoval::Blocked(active));
    }
    let (t, p, w) = (&key.scope.tenant.0, &key.scope.partner.0, &key.webhook_id);
    c.prepare_cached(
        "UPDATE enrollments SET paused = 1, updated_at = ?4
         WHERE tenant_id = ?1 AND partner_id = ?2 AND webhook_id = ?3 AND paused = 0",
    )
    .and_then(|mut s| s.execute(params![t, p, w, now.unix_timestamp()]))
    .map_err(internal)?;
    c.prepare_cached(
        "UPDATE notifications SET status = 2, lease_until = NULL, last_error = ?4
         WHERE tenant_id = ?1 AND partner_id = ?2 AND webhook_id = ?3 AND status = 0",
    )
    .and_then(|mut s| s.execute(params![t, p, w, WEBHOOK_DELETED_ERROR]))
    .map_err(internal)?;
    delete_row(c, key)?;
    Ok(WebhookRemoval::Removed(active))
}

/// The active enrollments routed to a webhook, oldest first.
fn active_enrollments(c: &Connection, key: &WebhookKey) -> StoreResult<Vec<EnrollmentId>> {
    c.prepare_cached(
        "SELECT enrollment_id FROM enrollments
         WHERE tenant_id = ?1 AND partner_id = ?2 AND webhook_id = ?3 AND paused = 0 ORDER BY id",
    )
    .and_then(|mut s| {
        s.query_map(
            params![key.scope.tenant.0, key.scope.partner.0, key.webhook_id],
            |r| Ok(EnrollmentId(r.get(0)?)),
        )?
        .collect::<Result<Vec<_>, _>>()
    })
    .map_err(internal)
}

/// A new secret at once; the replaced one keeps signing `webhook-signature` until `now +
/// grace`.
pub(super) fn rotate_webhook_secret(
    c: &Connection,
    key: &WebhookKey,
    secret: &str,
    grace: std::time::Duration,
    now: OffsetDateTime,
) -> StoreResult<Webhook> {
    editable(c, key)?;
    c.prepare_cached(&format!(
        "UPDATE webhooks SET previous_secret = secret, previous_secret_until = ?5, secret = ?4,
            last_modified_time = ?6
         WHERE tenant_id = ?1 AND partner_id = ?2 AND webhook_id = ?3
         RETURNING {WEBHOOK_COLS}"
    ))
    .and_then(|mut s| {
        s.query_row(
            params![
                key.scope.tenant.0,
                key.scope.partner.0,
                key.webhook_id,
                secret,
                rotation_grace_end(now, grace),
                unix_millis(now)
            ],
            webhook_row,
        )
    })
    .map_err(internal)
}

/// Whether notifications for `key` may be sent (they are parked otherwise).
pub(super) fn webhook_enabled(c: &Connection, key: &WebhookKey) -> StoreResult<bool> {
    Ok(webhook_state(c, key)?.unwrap_or(false))
}

/// `Some(enabled)` when the scope has the webhook, None when not.
pub(super) fn webhook_state(c: &Connection, key: &WebhookKey) -> StoreResult<Option<bool>> {
    c.prepare_cached(
        "SELECT enabled FROM webhooks WHERE tenant_id = ?1 AND partner_id = ?2 AND webhook_id = ?3",
    )
    .and_then(|mut s| {
        s.query_row(
            params![key.scope.tenant.0, key.scope.partner.0, key.webhook_id],
            |r| r.get::<_, bool>(0),
        )
        .optional()
    })
    .map_err(internal)
}

/// Refuses (before writing) to route an enrollment to a v2 webhook the scope lacks
/// (`NotFound`) or that is disabled; the legacy webhook is always a valid target (its
/// notifications wait for a registration, as in v1).
pub(super) fn check_target(c: &Connection, key: &WebhookKey) -> StoreResult<()> {
    if key.webhook_id == LEGACY_WEBHOOK_ID {
        return Ok(());
    }
    target_verdict(&key.webhook_id, webhook_state(c, key)?)
}

/// Parks the webhook's pending notifications that nobody holds a lease on.
pub(super) fn park(c: &Connection, key: &WebhookKey) -> StoreResult<()> {
    c.prepare_cached(
        "UPDATE notifications SET next_attempt_at = ?3
         WHERE tenant_id = ?1 AND partner_id = ?2 AND webhook_id = ?4 AND status = 0
           AND lease_until IS NULL AND next_attempt_at != ?3",
    )
    .and_then(|mut s| {
        s.execute(params![
            key.scope.tenant.0,
            key.scope.partner.0,
            PARKED,
            key.webhook_id
        ])
    })
    .map_err(internal)?;
    Ok(())
}

/// Makes the webhook's parked notifications due now.
fn unpark(c: &Connection, key: &WebhookKey, now_ms: i64) -> StoreResult<()> {
    c.prepare_cached(
        "UPDATE notifications SET next_attempt_at = ?3
         WHERE tenant_id = ?1 AND partner_id = ?2 AND webhook_id = ?5 AND status = 0
           AND next_attempt_at = ?4",
    )
    .and_then(|mut s| {
        s.execute(params![
            key.scope.tenant.0,
            key.scope.partner.0,
            now_ms,
            PARKED,
            key.webhook_id
        ])
    })
    .map_err(internal)?;
    Ok(())
}

/// When a (re-)queued notification for `key` becomes due: now, or parked while the webhook is
/// missing or disabled.
pub(super) fn due_at(c: &Connection, key: &WebhookKey, now_ms: i64) -> StoreResult<i64> {
    Ok(if webhook_enabled(c, key)? {
        now_ms
    } else {
        PARKED
    })
}
