//! A webhook's delivery stats and daily notification counts for PostgreSQL (the console's read
//! paths): one query each, scoped to one webhook of a tenant, over the indexes of migration
//! 0009.

use super::pg;
use crate::model::*;
use crate::rules::{self, daily_count, StatsRow, DAY_SECS};
use crate::StoreResult;
use deadpool_postgres::Object;

/// Times: `since_ms` unix ms (attempt times); `created_at` is unix seconds.
/// Attempts join from the webhook's notifications attempted since the window start (index
/// `notifications_webhook_attempted`); `percentile_disc` is the nearest-rank percentile, as on
/// SQLite; the backlog reads the pending partial index `notifications_due_webhook`.
const STATS: &str = "
    WITH recent AS (
        SELECT a.status_code, a.latency_ms
        FROM notifications n JOIN delivery_attempts a ON a.notification_id = n.id
        WHERE n.tenant_id = $1 AND n.partner_id = $2 AND n.webhook_id = $4
          AND n.last_attempt_at >= $3 AND a.attempted_at >= $3
    ),
    backlog AS (
        SELECT COUNT(*) AS pending, MIN(created_at) AS oldest FROM notifications
        WHERE tenant_id = $1 AND partner_id = $2 AND webhook_id = $4 AND status = 0
    )
    SELECT COUNT(*),
           COUNT(*) FILTER (WHERE status_code BETWEEN 200 AND 299),
           percentile_disc(0.5) WITHIN GROUP (ORDER BY latency_ms),
           percentile_disc(0.99) WITHIN GROUP (ORDER BY latency_ms),
           (SELECT pending FROM backlog), (SELECT oldest FROM backlog)
    FROM recent";

pub(super) async fn webhook_stats(
    c: &mut Object,
    webhook: &WebhookKey,
    since_ms: i64,
) -> StoreResult<WebhookStats> {
    let scope = &webhook.scope;
    let s = c.prepare_cached(STATS).await.map_err(pg)?;
    let r = c
        .query_one(
            &s,
            &[
                &scope.tenant.0,
                &scope.partner.0,
                &since_ms,
                &webhook.webhook_id,
            ],
        )
        .await
        .map_err(pg)?;
    Ok(rules::webhook_stats(StatsRow {
        attempts: r.get(0),
        succeeded: r.get(1),
        p50_ms: r.get(2),
        p99_ms: r.get(3),
        pending: r.get(4),
        oldest_pending_secs: r.get(5),
    }))
}

/// One range scan of `notifications_webhook_created` (index-only: event_name is in the key).
pub(super) async fn daily_notifications(
    c: &mut Object,
    webhook: &WebhookKey,
    from_secs: i64,
    to_secs: i64,
) -> StoreResult<Vec<DailyCount>> {
    let scope = &webhook.scope;
    let s = c
        .prepare_cached(
            "SELECT created_at / $5 AS day, event_name, COUNT(*) FROM notifications
             WHERE tenant_id = $1 AND partner_id = $2 AND webhook_id = $6
               AND created_at >= $3 AND created_at < $4
             GROUP BY day, event_name ORDER BY day, event_name",
        )
        .await
        .map_err(pg)?;
    let rows = c
        .query(
            &s,
            &[
                &scope.tenant.0,
                &scope.partner.0,
                &from_secs,
                &to_secs,
                &DAY_SECS,
                &webhook.webhook_id,
            ],
        )
        .await
        .map_err(pg)?;
    Ok(rows
        .iter()
        .map(|r| daily_count(r.get(0), r.get(1), r.get(2)))
        .collect())
}
