//! Read-only summaries of a key's webhooks (beyond the reference; the console is their first
//! client): `GET /v1/webhooks` lists the webhooks of every partner the key owns,
//! `GET /v1/webhooks/{partner_id}/stats` a webhook's delivery health over a recent window, and
//! `GET /v1/webhooks/{partner_id}/daily` its notifications per UTC day and event type (the
//! partner's v1 webhook); `GET /v2/webhooks/{webhook_id}/stats` and `…/daily` the same for any
//! webhook of the key's scope.
//! Windows are bounded by `domain::defaults`, so each answer costs one bounded index scan.

use crate::context::{RequestCtx, ResponseContext, V2ResponseContext};
use crate::error::ApiError;
use crate::query::Params;
use crate::webhooks::{ms_to_rfc3339, partner_scope};
use crate::{AppState, Caller};
use axum::extract::{Path, Query, State};
use axum::Json;
use domain::defaults;
use domain::snapshot::format_timestamp;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;
use store::{DailyCount, Scope, WebhookKey};
use time::{Date, OffsetDateTime, Time};

#[derive(Serialize)]
pub(crate) struct WebhookItem {
    partner_id: String,
    webhook_url: String,
    status: &'static str,
    disabled_reason: Option<String>,
    disabled_at: Option<String>,
    created_at: String,
    last_modified_time: String,
}

#[derive(Serialize)]
pub(crate) struct WebhookListOut {
    response_context: ResponseContext,
    /// Every partner the key may act for, registered or not.
    partners: Vec<String>,
    /// The registered webhooks among them (secrets are not listed: GET one to read it).
    webhooks: Vec<WebhookItem>,
}

pub(crate) async fn list(
    State(state): State<AppState>,
    ctx: RequestCtx,
    caller: Caller,
) -> Result<Json<WebhookListOut>, ApiError> {
    let partners: Vec<String> = caller
        .principal
        .partners
        .iter()
        .map(|p| p.0.clone())
        .collect();
    let mut webhooks = Vec::new();
    for partner in &partners {
        let scope = partner_scope(&caller, partner)?;
        if let Some(w) = state.store.get_webhook(&scope).await? {
            webhooks.push(WebhookItem {
                partner_id: partner.clone(),
                webhook_url: w.webhook_url,
                status: if w.enabled { "active" } else { "disabled" },
                disabled_reason: w.disabled_reason.filter(|_| !w.enabled),
                disabled_at: w.disabled_at.filter(|_| !w.enabled).map(ms_to_rfc3339),
                created_at: ms_to_rfc3339(w.created_at),
                last_modified_time: ms_to_rfc3339(w.last_modified_time),
            });
        }
    }
    let status = if webhooks.is_empty() {
        "miss"
    } else {
        "success"
    };
    Ok(Json(WebhookListOut {
        response_context: ctx.response_context(status),
        partners,
        webhooks,
    }))
}

/// A webhook's delivery health: the numbers both versions answer.
#[derive(Serialize)]
pub(crate) struct StatsBody {
    window_start: String,
    window_hours: u32,
    attempts: u64,
    succeeded: u64,
    failed: u64,
    /// `succeeded / attempts`; null without attempts.
    success_rate: Option<f64>,
    latency_p50_ms: Option<u64>,
    latency_p99_ms: Option<u64>,
    pending: u64,
    oldest_pending_at: Option<String>,
    oldest_pending_age_seconds: Option<i64>,
}

#[derive(Serialize)]
pub(crate) struct StatsOut {
    response_context: ResponseContext,
    partner_id: String,
    #[serde(flatten)]
    stats: StatsBody,
}

#[derive(Serialize)]
pub(crate) struct V2StatsOut {
    response_context: V2ResponseContext,
    webhook_id: String,
    #[serde(flatten)]
    stats: StatsBody,
}

/// `GET /v1/webhooks/{partner_id}/stats`: the partner's v1 (legacy) webhook.
pub(crate) async fn stats(
    State(state): State<AppState>,
    ctx: RequestCtx,
    caller: Caller,
    Path(partner_id): Path<String>,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Json<StatsOut>, ApiError> {
    let scope = partner_scope(&caller, &partner_id)?;
    let stats = stats_of(&state, &WebhookKey::legacy(&scope), &params).await?;
    Ok(Json(StatsOut {
        response_context: ctx.response_context("success"),
        partner_id,
        stats,
    }))
}

/// `GET /v2/webhooks/{webhook_id}/stats` (an extension): one webhook of the key's scope.
pub(crate) async fn stats_v2(
    State(state): State<AppState>,
    ctx: RequestCtx,
    caller: Caller,
    Path(webhook_id): Path<String>,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Json<V2StatsOut>, ApiError> {
    let key = existing_v2(&state, &caller, &webhook_id).await?;
    let stats = stats_of(&state, &key, &params).await?;
    Ok(Json(V2StatsOut {
        response_context: ctx.v2_response_context("success"),
        webhook_id,
        stats,
    }))
}

/// A webhook of the caller's scope by its v2 id (404 when the scope has none such).
async fn existing_v2(
    state: &AppState,
    caller: &Caller,
    webhook_id: &str,
) -> Result<WebhookKey, ApiError> {
    let key = WebhookKey::new(&caller.scope, webhook_id);
    match state.store.find_webhook(&key).await? {
        Some(_) => Ok(key),
        None => Err(ApiError::NotFound("Webhook not found")),
    }
}

/// The stats of `webhook` over `window_hours` (default and bound: `domain::defaults`).
async fn stats_of(
    state: &AppState,
    webhook: &WebhookKey,
    params: &[(String, String)],
) -> Result<StatsBody, ApiError> {
    let mut errors = Vec::new();
    let max_hours = (defaults::STATS_WINDOW_MAX.as_secs() / 3600) as u32;
    let hours = Params(params)
        .int_in("window_hours", 1, max_hours, &mut errors)
        .unwrap_or((defaults::STATS_WINDOW.as_secs() / 3600) as u32);
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let now = state.clock.now();
    let since = now - Duration::from_secs(u64::from(hours) * 3600);
    let st = state.store.webhook_stats(webhook, since).await?;
    let millis = |d: Option<Duration>| d.map(|d| d.as_millis() as u64);
    Ok(StatsBody {
        window_start: format_timestamp(since),
        window_hours: hours,
        attempts: st.attempts,
        succeeded: st.succeeded,
        failed: st.attempts - st.succeeded.min(st.attempts),
        success_rate: (st.attempts > 0).then(|| st.succeeded as f64 / st.attempts as f64),
        latency_p50_ms: millis(st.latency_p50),
        latency_p99_ms: millis(st.latency_p99),
        pending: st.pending,
        oldest_pending_at: st.oldest_pending_at.map(format_timestamp),
        oldest_pending_age_seconds: st
            .oldest_pending_at
            .map(|t| (now - t).whole_seconds().max(0)),
    })
}

#[derive(Serialize)]
pub(crate) struct DayOut {
    date: String,
    total: u64,
    /// Notifications per event name that day (only names that occurred).
    counts: BTreeMap<String, u64>,
}

#[derive(Serialize)]
pub(crate) struct DailyOut {
    response_context: ResponseContext,
    partner_id: String,
    /// One entry per UTC day, oldest first, the last being today; days without any have total 0.
    days: Vec<DayOut>,
}

#[derive(Serialize)]
pub(crate) struct V2DailyOut {
    response_context: V2ResponseContext,
    webhook_id: String,
    days: Vec<DayOut>,
}

/// `GET /v1/webhooks/{partner_id}/daily`: the partner's v1 (legacy) webhook.
pub(crate) async fn daily(
    State(state): State<AppState>,
    ctx: RequestCtx,
    caller: Caller,
    Path(partner_id): Path<String>,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Json<DailyOut>, ApiError> {
    let scope: Scope = partner_scope(&caller, &partner_id)?;
    let days = days_of(&state, &WebhookKey::legacy(&scope), &params).await?;
    Ok(Json(DailyOut {
        response_context: ctx.response_context("success"),
        partner_id,
        days,
    }))
}

/// `GET /v2/webhooks/{webhook_id}/daily` (an extension): one webhook of the key's scope.
pub(crate) async fn daily_v2(
    State(state): State<AppState>,
    ctx: RequestCtx,
    caller: Caller,
    Path(webhook_id): Path<String>,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Json<V2DailyOut>, ApiError> {
    let key = existing_v2(&state, &caller, &webhook_id).await?;
    let days = days_of(&state, &key, &params).await?;
    Ok(Json(V2DailyOut {
        response_context: ctx.v2_response_context("success"),
        webhook_id,
        days,
    }))
}

/// The daily counts of `webhook` over `days` UTC days ending today (default and bound:
/// `domain::defaults`).
async fn days_of(
    state: &AppState,
    webhook: &WebhookKey,
    params: &[(String, String)],
) -> Result<Vec<DayOut>, ApiError> {
    let mut errors = Vec::new();
    let days = Params(params)
        .int_in("days", 1, defaults::DAILY_WINDOW_MAX_DAYS, &mut errors)
        .unwrap_or(defaults::DAILY_WINDOW_DAYS);
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let today = state.clock.now().date();
    let first = today - time::Duration::days(i64::from(days) - 1);
    let (from, to) = (midnight(first), midnight(today) + time::Duration::DAY);
    let counts = state.store.daily_notifications(webhook, from, to).await?;
    Ok(dense_days(first, days, &counts))
}

fn midnight(d: Date) -> OffsetDateTime {
    d.with_time(Time::MIDNIGHT).assume_utc()
}

/// `days` consecutive days from `first`, each with its counts (zero when absent).
fn dense_days(first: Date, days: u32, counts: &[DailyCount]) -> Vec<DayOut> {
    (0..i64::from(days))
        .map(|i| {
            let day = first + time::Duration::days(i);
            let counts: BTreeMap<String, u64> = counts
                .iter()
                .filter(|c| c.day == day)
                .map(|c| (c.event_name.clone(), c.count))
                .collect();
            DayOut {
                date: day.to_string(),
                total: counts.values().sum(),
                counts,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn dense_days_fill_gaps_with_zero_in_order() {
        let c = |day, name: &str, count| DailyCount {
            day,
            event_name: name.into(),
            count,
        };
        let got = dense_days(
            date!(2024 - 02 - 28),
            3,
            &[
                c(date!(2024 - 02 - 28), "b", 2),
                c(date!(2024 - 02 - 28), "a", 1),
                c(date!(2024 - 03 - 01), "a", 5),
            ],
        );
        let dates: Vec<_> = got.iter().map(|d| d.date.as_str()).collect();
        assert_eq!(dates, ["2024-02-28", "2024-02-29", "2024-03-01"]);
        let totals: Vec<_> = got.iter().map(|d| d.total).collect();
        assert_eq!(totals, [3, 0, 5]);
        assert_eq!(got[0].counts.keys().collect::<Vec<_>>(), ["a", "b"]);
    }
}
