//! The outbox for SQLite: notifications queued, claimed (leased), attempts recorded, the
//! delivery log, retries and replays. What an attempt does next is `rules::AttemptEffect`.

use super::webhooks::{
    due_at, park, webhook_enabled, webhook_row, WEBHOOK_COLS, WEBHOOK_COL_COUNT,
};
use super::{enrollments, internal};
use crate::model::*;
use crate::rules::{
    delivery_page, live_previous_secret, payload_json, shown_next_attempt, AttemptEffect, Health,
    FAILING_REASON,
};
use crate::{StoreError, StoreResult};
use domain::clock::unix_millis;
use domain::detect::DetectedEvent;
use domain::{PartnerId, TenantId};
use rusqlite::{params, Connection, OptionalExtension};
use time::OffsetDateTime;

/// Queues one notification per enrollment covering the event's prospect and type, with the
/// enrollment's key as of now. Returns how many were queued.
pub(super) fn queue_for_event(
    c: &Connection,
    ev: &DetectedEvent,
    now: OffsetDateTime,
) -> StoreResult<u64> {
    let covering = enrollments::covering_enrollments(c, &ev.prospect_id, ev.event_type)?;
    if covering.is_empty() {
        return Ok(0);
    }
    let mut ins = c
        .prepare_cached(
            "INSERT OR IGNORE INTO notifications (delivery_id, event_id, event_name, event_time,
                tenant_id, partner_id, enrollment_id, enrollment_key, next_attempt_at, created_at,
                webhook_id)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        )
        .map_err(internal)?;
    let now_ms = (now.unix_timestamp_nanos() / 1_000_000) as i64;
    let mut queued = 0;
    for to in covering {
        let payload = notification_payload(ev, &to);
        let scope = Scope {
            tenant: to.tenant.clone(),
            partner: to.partner.clone(),
        };
        // Without its webhook enabled the notification waits parked (out of the claim range).
        let due = due_at(c, &WebhookKey::new(&scope, &to.webhook_id), now_ms)?;
        let inserted = ins
            .execute(params![
                delivery_id_for(&ev.event_id, &to.enrollment_id.0),
                ev.event_id,
                ev.event_type.as_str(),
                ev.event_time.unix_timestamp(),
                to.tenant.0,
                to.partner.0,
                to.enrollment_id.0,
                to.enrollment_key,
                due,
                now.unix_timestamp(),
                to.webhook_id
            ])
            .map_err(internal)?;
        if inserted == 1 {
            insert_payload(c, c.last_insert_rowid(), &payload.to_string())?;
            queued += 1;
        }
    }
    Ok(queued)
}

pub(super) fn outbox(
    c: &Connection,
    scope: Option<&Scope>,
    limit: u32,
) -> StoreResult<Vec<OutboxRow>> {
    let (sql, scoped) = match scope {
        Some(_) => (
            "SELECT delivery_id, event_id, event_name, tenant_id, partner_id, enrollment_id,
                    enrollment_key, p.payload, status, attempts, webhook_id
             FROM notifications n JOIN notification_payloads p ON p.notification_id = n.id
             WHERE tenant_id = ?1 AND partner_id = ?2 ORDER BY id LIMIT ?3",
            true,
        ),
        None => (
            "SELECT delivery_id, event_id, event_name, tenant_id, partner_id, enrollment_id,
                    enrollment_key, p.payload, status, attempts, webhook_id
             FROM notifications n JOIN notification_payloads p ON p.notification_id = n.id
             WHERE ?1 IS NULL AND ?2 IS NULL ORDER BY id LIMIT ?3",
            false,
        ),
    };
    let (t, p) = match (scope, scoped) {
        (Some(s), true) => (Some(s.tenant.0.clone()), Some(s.partner.0.clone())),
        _ => (None, None),
    };
    let mut s = c.prepare_cached(sql).map_err(internal)?;
    let rows = s
        .query_map(params![t, p, limit], |r| {
            let payload: String = r.get(7)?;
            Ok(OutboxRow {
                delivery_id: r.get(0)?,
                event_id: r.get(1)?,
                event_name: r.get(2)?,
                tenant: TenantId(r.get(3)?),
                partner: PartnerId(r.get(4)?),
                enrollment_id: r.get(5)?,
                enrollment_key: r.get(6)?,
                webhook_id: r.get(10)?,
                payload: payload_json(&payload),
                status: DeliveryStatus::from_code(r.get(8)?),
                attempts: r.get(9)?,
            })
        })
        .map_err(internal)?;
    rows.collect::<Result<_, _>>().map_err(internal)
}

pub(super) fn claim_due(
    c: &Connection,
    now: OffsetDateTime,
    lease: std::time::Duration,
    limit: u32,
    room: &ClaimRoom,
) -> StoreResult<Vec<Claimed>> {
    let lease_until = domain::clock::millis_after(now, lease);
    let now_ms = unix_millis(now);
    let hooks = enabled_webhooks(c)?;
    let due = oldest_due(c, &hooks, now_ms, limit, room)?;
    let mut out = lease_rows(c, &hooks, due, lease_until, now_ms)?;
    out.sort_by_key(|c| c.row);
    Ok(out)
}

/// An enabled webhook: tenant, partner and the webhook (its row goes into the claims).
type EnabledWebhook = (String, String, Webhook);

/// The enabled webhooks, read once per claim.
fn enabled_webhooks(c: &Connection) -> StoreResult<Vec<EnabledWebhook>> {
    c.prepare_cached(&format!(
        "SELECT {WEBHOOK_COLS}, tenant_id, partner_id FROM webhooks WHERE enabled = 1"
    ))
    .and_then(|mut s| {
        s.query_map([], |r| {
            Ok((
                r.get(WEBHOOK_COL_COUNT)?,
                r.get(WEBHOOK_COL_COUNT + 1)?,
                webhook_row(r)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()
    })
    .map_err(internal)
}

/// Each webhook's oldest due rows, as many as it has room for (a webhook without room is not
/// even looked at, however large its backlog), then the oldest `limit` across webhooks: as
/// (next_attempt_at, row id, index in `hooks`).
fn oldest_due(
    c: &Connection,
    hooks: &[EnabledWebhook],
    now_ms: i64,
    limit: u32,
    room: &ClaimRoom,
) -> StoreResult<Vec<(i64, i64, usize)>> {
    let mut due_of = c
        .prepare_cached(
            "SELECT id, next_attempt_at FROM notifications INDEXED BY notifications_due_webhook
             WHERE tenant_id = ?1 AND partner_id = ?2 AND webhook_id = ?5 AND status = 0
               AND next_attempt_at <= ?3
               AND (lease_until IS NULL OR lease_until < ?3)
             ORDER BY next_attempt_at
             LIMIT ?4",
        )
        .map_err(internal)?;
    let listed: std::collections::HashMap<(&str, &str, &str), u32> = room
        .scopes
        .iter()
        .map(|(k, n)| {
            let s = &k.scope;
            (
                (
                    s.tenant.0.as_str(),
                    s.partner.0.as_str(),
                    k.webhook_id.as_str(),
                ),
                *n,
            )
        })
        .collect();
    let mut due: Vec<(i64, i64, usize)> = Vec::new();
    for (i, (tenant, partner, w)) in hooks.iter().enumerate() {
        let n = listed
            .get(&(tenant.as_str(), partner.as_str(), w.webhook_id.as_str()))
            .copied()
            .unwrap_or(room.per_scope)
            .min(limit);
        if n == 0 {
            continue;
        }
        let rows = due_of
            .query_map(params![tenant, partner, now_ms, n, w.webhook_id], |r| {
                Ok((r.get::<_, i64>(1)?, r.get::<_, i64>(0)?, i))
            })
            .map_err(internal)?;
        for row in rows {
            due.push(row.map_err(internal)?);
        }
    }
    // Oldest due first across webhooks.
    due.sort_unstable();
    due.truncate(limit as usize);
    Ok(due)
}

/// Leases each of `due` until `lease_until` and reads what its delivery needs.
fn lease_rows(
    c: &Connection,
    hooks: &[EnabledWebhook],
    due: Vec<(i64, i64, usize)>,
    lease_until: OffsetDateTime,
    now_ms: i64,
) -> StoreResult<Vec<Claimed>> {
    let lease_ms = unix_millis(lease_until);
    let mut lease = c
        .prepare_cached(
            "UPDATE notifications SET lease_until = ?1 WHERE id = ?2
             RETURNING delivery_id, event_id, cycle_attempts",
        )
        .map_err(internal)?;
    let mut payload_of = c
        .prepare_cached("SELECT payload FROM notification_payloads WHERE notification_id = ?1")
        .map_err(internal)?;
    let mut out = Vec::with_capacity(due.len());
    for (_, row, i) in due {
        let (tenant, partner, w) = &hooks[i];
        let scope = Scope {
            tenant: TenantId(tenant.clone()),
            partner: PartnerId(partner.clone()),
        };
        let (delivery_id, event_id, cycle_attempts): (String, String, u32) = lease
            .query_row(params![lease_ms, row], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .map_err(internal)?;
        let payload: String = payload_of
            .query_row(params![row], |r| r.get(0))
            .map_err(internal)?;
        out.push(Claimed {
            row,
            delivery_id,
            event_id,
            payload,
            cycle_attempts,
            lease_until,
            webhook_id: w.webhook_id.clone(),
            webhook_url: w.webhook_url.clone(),
            secret: w.secret.clone(),
            previous_secret: live_previous_secret(
                w.previous_secret.clone(),
                w.previous_secret_until,
                now_ms,
            ),
            headers: w.headers.clone(),
            payload_format: w.payload_format,
            generation: w.generation,
            scope,
        });
    }
    Ok(out)
}

pub(super) fn record_attempt(c: &Connection, r: &AttemptRecord) -> StoreResult<()> {
    insert_attempt(c, r)?;
    let effect = AttemptEffect::of(r.outcome, r.attempted_at);
    settle_notification(c, r, &effect)?;
    update_health(c, r, effect.health)?;
    let key = WebhookKey::new(&r.scope, &r.webhook_id);
    if effect.park_if_disabled && !webhook_enabled(c, &key)? {
        park(c, &key)?;
    }
    Ok(())
}

/// Logs the attempt in `delivery_attempts`.
fn insert_attempt(c: &Connection, r: &AttemptRecord) -> StoreResult<()> {
    c.prepare_cached(
        "INSERT INTO delivery_attempts (notification_id, attempted_at, status_code, error, latency_ms, response_body)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )
    .and_then(|mut s| {
        s.execute(params![
            r.row,
            r.attempted_at,
            r.status_code,
            r.error,
            r.latency_ms as i64,
            r.response_body
        ])
    })
    .map_err(internal)?;
    Ok(())
}

/// Counts the attempt on the notification and, if the attempt still holds its lease, moves
/// the notification to the state the attempt's effect says.
fn settle_notification(
    c: &Connection,
    r: &AttemptRecord,
    effect: &AttemptEffect,
) -> StoreResult<()> {
    // Every attempt counts; only the lease holder moves the notification's state (the right
    // sides all see the row as it was, so each CASE tests the lease before this update).
    c.prepare_cached(
        "UPDATE notifications SET attempts = attempts + 1,
            last_attempt_at = ?3, last_status_code = ?4, last_error = ?5,
            status = CASE WHEN lease_until = ?2 THEN ?6 ELSE status END,
            cycle_attempts = CASE WHEN lease_until = ?2 THEN cycle_attempts + 1
                ELSE cycle_attempts END,
            next_attempt_at = CASE WHEN lease_until = ?2 THEN COALESCE(?7, next_attempt_at)
                ELSE next_attempt_at END,
            lease_until = CASE WHEN lease_until = ?2 THEN NULL ELSE lease_until END
         WHERE id = ?1",
    )
    .and_then(|mut s| {
        s.execute(params![
            r.row,
            unix_millis(r.lease_until),
            r.attempted_at,
            r.status_code,
            r.error,
            effect.status.code(),
            effect.next_attempt_at
        ])
    })
    .map_err(internal)?;
    Ok(())
}

/// Moves the health of the webhook generation the attempt went to: recovered, failing (and
/// disabled once it has failed for `disable_after_ms`) or disabled at once.
fn update_health(c: &Connection, r: &AttemptRecord, health: Health) -> StoreResult<()> {
    let (t, p, g, w) = (
        &r.scope.tenant.0,
        &r.scope.partner.0,
        r.generation,
        &r.webhook_id,
    );
    match health {
        Health::Recovered => {
            c.prepare_cached(
                "UPDATE webhooks SET failing_since = NULL
                 WHERE tenant_id = ?1 AND partner_id = ?2 AND generation = ?3 AND failing_since IS NOT NULL
                   AND webhook_id = ?4",
            )
            .and_then(|mut s| s.execute(params![t, p, g, w]))
            .map_err(internal)?;
        }
        Health::Disable(reason) => {
            c.prepare_cached(
                "UPDATE webhooks SET enabled = 0, disabled_reason = ?5,
                    disabled_at = CASE WHEN enabled THEN ?4 ELSE disabled_at END
                 WHERE tenant_id = ?1 AND partner_id = ?2 AND generation = ?3 AND webhook_id = ?6",
            )
            .and_then(|mut s| s.execute(params![t, p, g, r.attempted_at, reason, w]))
            .map_err(internal)?;
        }
        Health::Failing => {
            c.prepare_cached(
                "UPDATE webhooks SET failing_since = COALESCE(failing_since, ?4),
                    enabled = CASE WHEN COALESCE(failing_since, ?4) <= ?4 - ?5 THEN 0 ELSE enabled END,
                    disabled_reason = CASE WHEN COALESCE(failing_since, ?4) <= ?4 - ?5
                        THEN ?6 ELSE disabled_reason END,
                    disabled_at = CASE WHEN enabled AND COALESCE(failing_since, ?4) <= ?4 - ?5
                        THEN ?4 ELSE disabled_at END
                 WHERE tenant_id = ?1 AND partner_id = ?2 AND generation = ?3 AND webhook_id = ?7",
            )
            .and_then(|mut s| {
                s.execute(params![
                    t,
                    p,
                    g,
                    r.attempted_at,
                    r.disable_after_ms,
                    FAILING_REASON,
                    w
                ])
            })
            .map_err(internal)?;
        }
    }
    Ok(())
}

/// One change of [`crate::Store::change_leases`]: whether the lease was still its own.
pub(super) fn change_lease(c: &Connection, change: &LeaseChange) -> StoreResult<bool> {
    let n = c
        .prepare_cached(
            "UPDATE notifications SET lease_until = ?3
             WHERE id = ?1 AND lease_until = ?2 AND status = 0",
        )
        .and_then(|mut s| {
            s.execute(params![
                change.row,
                unix_millis(change.expected),
                change.until.map(unix_millis)
            ])
        })
        .map_err(internal)?;
    Ok(n == 1)
}

pub(super) fn queue_direct(
    c: &Connection,
    key: &WebhookKey,
    items: &[DirectNotification],
    now: OffsetDateTime,
) -> StoreResult<u64> {
    let mut s = c
        .prepare_cached(
            "INSERT OR IGNORE INTO notifications (delivery_id, event_id, event_name, event_time,
                tenant_id, partner_id, enrollment_id, enrollment_key, next_attempt_at, created_at,
                webhook_id)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, NULL, ?7, ?8, ?9, ?10)",
        )
        .map_err(internal)?;
    let scope = &key.scope;
    let due = due_at(c, key, domain::clock::unix_millis(now))?;
    let mut n = 0;
    for it in items {
        let inserted = s
            .execute(params![
                it.delivery_id,
                it.event_id,
                it.event_name,
                it.event_time,
                scope.tenant.0,
                scope.partner.0,
                it.enrollment_key,
                due,
                now.unix_timestamp(),
                key.webhook_id
            ])
            .map_err(internal)?;
        if inserted == 1 {
            insert_payload(c, c.last_insert_rowid(), &it.payload.to_string())?;
            n += 1;
        }
    }
    Ok(n)
}

/// Stores the body of a notification just inserted (kept apart from the hot row).
pub(super) fn insert_payload(c: &Connection, notification: i64, payload: &str) -> StoreResult<()> {
    c.prepare_cached(
        "INSERT INTO notification_payloads (notification_id, payload) VALUES (?1, ?2)",
    )
    .and_then(|mut s| s.execute(params![notification, payload]))
    .map_err(internal)?;
    Ok(())
}

const DELIVERY_COLS: &str =
    "id, delivery_id, event_id, event_name, enrollment_id, status, attempts,
    last_attempt_at, next_attempt_at, last_status_code, last_error, lease_until";

fn delivery_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(i64, DeliveryInfo)> {
    let status = DeliveryStatus::from_code(r.get(5)?);
    Ok((
        r.get(0)?,
        DeliveryInfo {
            delivery_id: r.get(1)?,
            event_id: r.get(2)?,
            event_name: r.get(3)?,
            enrollment_id: r.get(4)?,
            status,
            attempts: r.get(6)?,
            last_attempt_at: r.get(7)?,
            next_attempt_at: shown_next_attempt(status, r.get(8)?, r.get(11)?),
            last_status_code: r.get(9)?,
            last_error: r.get(10)?,
        },
    ))
}

pub(super) fn list_deliveries(
    c: &Connection,
    key: &WebhookKey,
    q: &DeliveryQuery,
) -> StoreResult<DeliveryPage> {
    let scope = &key.scope;
    let after = q.cursor.map(|c| c.0).unwrap_or(0);
    let mut s = c
        .prepare_cached(&format!(
            "SELECT {DELIVERY_COLS} FROM notifications
             WHERE tenant_id = ?1 AND partner_id = ?2 AND webhook_id = ?7 AND id > ?3
               AND (?4 IS NULL OR status = ?4) AND (?5 IS NULL OR event_name = ?5)
             ORDER BY id LIMIT ?6"
        ))
        .map_err(internal)?;
    let rows = s
        .query_map(
            params![
                scope.tenant.0,
                scope.partner.0,
                after,
                q.status.map(|s| s.code()),
                q.event_name,
                q.limit as i64 + 1,
                key.webhook_id
            ],
            delivery_row,
        )
        .map_err(internal)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(internal)?;
    Ok(delivery_page(rows, q.limit))
}

pub(super) fn get_delivery(
    c: &Connection,
    key: &WebhookKey,
    delivery_id: &str,
) -> StoreResult<Option<(DeliveryInfo, Vec<AttemptInfo>)>> {
    let scope = &key.scope;
    let row = c
        .prepare_cached(&format!(
            "SELECT {DELIVERY_COLS} FROM notifications
             WHERE delivery_id = ?1 AND tenant_id = ?2 AND partner_id = ?3 AND webhook_id = ?4"
        ))
        .and_then(|mut s| {
            s.query_row(
                params![delivery_id, scope.tenant.0, scope.partner.0, key.webhook_id],
                delivery_row,
            )
            .optional()
        })
        .map_err(internal)?;
    let Some((id, info)) = row else {
        return Ok(None);
    };
    let mut s = c
        .prepare_cached(
            "SELECT attempted_at, status_code, error, latency_ms, response_body
             FROM delivery_attempts WHERE notification_id = ?1 ORDER BY id",
        )
        .map_err(internal)?;
    let attempts = s
        .query_map(params![id], |r| {
            Ok(AttemptInfo {
                attempted_at: r.get(0)?,
                status_code: r.get(1)?,
                error: r.get(2)?,
                latency_ms: r.get::<_, i64>(3)? as u64,
                response_body: r.get(4)?,
            })
        })
        .map_err(internal)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(internal)?;
    Ok(Some((info, attempts)))
}

pub(super) fn retry_delivery(
    c: &Connection,
    key: &WebhookKey,
    delivery_id: &str,
    now: OffsetDateTime,
) -> StoreResult<()> {
    let scope = &key.scope;
    let due = due_at(c, key, domain::clock::unix_millis(now))?;
    let n = c
        .prepare_cached(
            "UPDATE notifications SET status = 0, cycle_attempts = 0, next_attempt_at = ?4,
                lease_until = NULL
             WHERE delivery_id = ?1 AND tenant_id = ?2 AND partner_id = ?3 AND webhook_id = ?5",
        )
        .and_then(|mut s| {
            s.execute(params![
                delivery_id,
                scope.tenant.0,
                scope.partner.0,
                due,
                key.webhook_id
            ])
        })
        .map_err(internal)?;
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

pub(super) fn replay(
    c: &Connection,
    key: &WebhookKey,
    q: &ReplayQuery,
    now: OffsetDateTime,
) -> StoreResult<u64> {
    let scope = &key.scope;
    let names = q
        .event_names
        .as_ref()
        .map(|n| serde_json::Value::from(n.clone()).to_string());
    let due = due_at(c, key, domain::clock::unix_millis(now))?;
    let n = c
        .prepare_cached(
            "UPDATE notifications SET status = 0, cycle_attempts = 0, next_attempt_at = ?6,
                lease_until = NULL
             WHERE tenant_id = ?1 AND partner_id = ?2 AND webhook_id = ?7 AND event_time >= ?3
               AND (?4 IS NULL OR event_time <= ?4)
               AND (?5 IS NULL OR event_name IN (SELECT value FROM json_each(?5)))",
        )
        .and_then(|mut s| {
            s.execute(params![
                scope.tenant.0,
                scope.partner.0,
                q.from,
                q.to,
                names,
                due,
                key.webhook_id
            ])
        })
        .map_err(internal)?;
    Ok(n as u64)
}
