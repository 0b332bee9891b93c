//! A webhook's delivery stats and daily notification counts for SQLite (the console's read
//! paths): one query each, scoped to one webhook of a tenant, over the indexes of migration
//! 0012.

use super::internal;
use crate::model::*;
use crate::rules::{self, daily_count, StatsRow, DAY_SECS};
use crate::StoreResult;
use rusqlite::{params, Connection};

/// Times: `since_ms` unix ms (attempt times); `created_at` is unix seconds.
/// Attempts join from the webhook's notifications attempted since the window start (index
/// `notifications_webhook_attempted`); the percentiles are nearest-rank over those attempts; the
/// backlog reads the pending partial index `notifications_due_webhook` (named: without
/// statistics the planner would pick the scope's full index).
const STATS: &str = "
    WITH recent AS (
        SELECT a.status_code, a.latency_ms
        FROM notifications n JOIN delivery_attempts a ON a.notification_id = n.id
        WHERE n.tenant_id = ?1 AND n.partner_id = ?2 AND n.webhook_id = ?4
          AND n.last_attempt_at >= ?3 AND a.attempted_at >= ?3
    ),
    ranked AS (
        SELECT latency_ms, ROW_NUMBER() OVER (ORDER BY latency_ms) AS rn,
               COUNT(*) OVER () AS total
        FROM recent
    ),
    backlog AS (
        SELECT COUNT(*) AS pending, MIN(created_at) AS oldest
        FROM notifications INDEXED BY notifications_due_webhook
        WHERE tenant_id = ?1 AND partner_id = ?2 AND webhook_id = ?4 AND status = 0
    )
    SELECT (SELECT COUNT(*) FROM recent),
           (SELECT COUNT(*) FROM recent WHERE status_code BETWEEN 200 AND 299),
           (SELECT MIN(latency_ms) FROM ranked WHERE rn * 100 >= total * 50),
           (SELECT MIN(latency_ms) FROM ranked WHERE rn * 100 >= total * 99),
           backlog.pending, backlog.oldest
    FROM backlog";

pub(super) fn webhook_stats(
    c: &Connection,
    webhook: &WebhookKey,
    since_ms: i64,
) -> StoreResult<WebhookStats> {
    let scope = &webhook.scope;
    c.prepare_cached(STATS)
        .and_then(|mut s| {
            let p = params![
                scope.tenant.0,
                scope.partner.0,
                since_ms,
                webhook.webhook_id
            ];
            s.query_row(p, |r| {
                Ok(StatsRow {
                    attempts: r.get(0)?,
                    succeeded: r.get(1)?,
                    p50_ms: r.get(2)?,
                    p99_ms: r.get(3)?,
                    pending: r.get(4)?,
                    oldest_pending_secs: r.get(5)?,
                })
            })
        })
        .map(rules::webhook_stats)
        .map_err(internal)
}

/// One range scan of `notifications_webhook_created` (index-only: event_name is in the key).
pub(super) fn daily_notifications(
    c: &Connection,
    webhook: &WebhookKey,
    from_secs: i64,
    to_secs: i64,
) -> StoreResult<Vec<DailyCount>> {
    let scope = &webhook.scope;
    let mut s = c
        .prepare_cached(
            "SELECT created_at / ?5 AS day, event_name, COUNT(*) FROM notifications
             WHERE tenant_id = ?1 AND partner_id = ?2 AND webhook_id = ?6
               AND created_at >= ?3 AND created_at < ?4
             GROUP BY day, event_name ORDER BY day, event_name",
        )
        .map_err(internal)?;
    let rows = s
        .query_map(
            params![
                scope.tenant.0,
                scope.partner.0,
                from_secs,
                to_secs,
                DAY_SECS,
                webhook.webhook_id
            ],
            |r| Ok(daily_count(r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .map_err(internal)?;
    rows.collect::<Result<_, _>>().map_err(internal)
}
