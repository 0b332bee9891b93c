//! `/v1/webhooks` handlers: registration (one per partner; re-registering replaces URL and
//! secret), connectivity check (a signed test notification sent by [`connectivity`], or
//! simulated events from [`simulation`] through the normal pipeline), and the delivery log and
//! replay (beyond the reference). Handlers only: no payloads are built or sent here.

use crate::body::JsonBody;
use crate::connectivity;
use crate::context::{RequestCtx, ResponseContext};
use crate::error::ApiError;
use crate::query::{query_error, Params};
use crate::simulation;
use crate::{AppState, Caller};
use axum::extract::{Path, Query, State};
use axum::Json;
use domain::snapshot::format_timestamp;
use domain::validation::{CheckConnectivity, FieldError, ReplayRequest, WebhookAdd, WebhookUpdate};
use serde::Serialize;
use serde_json::{json, Value};
use store::{
    AttemptInfo, Cursor, DeliveryInfo, DeliveryQuery, DeliveryStatus, ReplayQuery, Scope,
    StoreError, Webhook, WebhookKey,
};
use time::OffsetDateTime;

#[derive(Serialize)]
pub(crate) struct WebhookOut {
    response_context: ResponseContext,
    created_at: String,
    last_modified_time: String,
    webhook_url: String,
    webhook_secret: String,
}

/// GET's answer: the registration as POST returns it, then (beyond the reference, appended so
/// the reference's fields keep their bytes) whether notifications flow (`active`) or wait for
/// a re-registration (`disabled`), why, and since when.
#[derive(Serialize)]
pub(crate) struct WebhookStateOut {
    #[serde(flatten)]
    registration: WebhookOut,
    status: &'static str,
    disabled_reason: Option<String>,
    disabled_at: Option<String>,
}

#[derive(Serialize)]
pub(crate) struct ContextOnly {
    response_context: ResponseContext,
}

pub(crate) fn ms_to_rfc3339(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .map(format_timestamp)
        .unwrap_or_default()
}

fn webhook_out(ctx: &RequestCtx, w: Webhook) -> WebhookOut {
    WebhookOut {
        response_context: ctx.response_context("success"),
        created_at: ms_to_rfc3339(w.created_at),
        last_modified_time: ms_to_rfc3339(w.last_modified_time),
        webhook_url: w.webhook_url,
        webhook_secret: w.secret,
    }
}

/// The scope of a partner named in a path or body: foreign partners look like missing ones.
pub(crate) fn partner_scope(caller: &Caller, partner_id: &str) -> Result<Scope, ApiError> {
    caller
        .owned_scope(partner_id)
        .ok_or(ApiError::NotFound("Partner not found"))
}

fn webhook_not_found(e: StoreError) -> ApiError {
    match e {
        StoreError::NotFound => ApiError::NotFound("Webhook not found"),
        other => other.into(),
    }
}

pub(crate) async fn add(
    State(state): State<AppState>,
    ctx: RequestCtx,
    caller: Caller,
    JsonBody(req): JsonBody<WebhookAdd>,
) -> Result<Json<WebhookOut>, ApiError> {
    let scope = partner_scope(&caller, &req.partner_id)?;
    let secret = domain::signing::generate_secret(rand::random());
    let w = state
        .store
        .put_webhook(&scope, &req.webhook_url, &secret, state.clock.now())
        .await?;
    if let Some(wake) = &state.wake {
        wake.notify();
    }
    Ok(Json(webhook_out(&ctx, w)))
}

pub(crate) async fn get_one(
    State(state): State<AppState>,
    ctx: RequestCtx,
    caller: Caller,
    Path(partner_id): Path<String>,
) -> Result<Json<WebhookStateOut>, ApiError> {
    let scope = partner_scope(&caller, &partner_id)?;
    let w = state
        .store
        .get_webhook(&scope)
        .await?
        .ok_or(ApiError::NotFound("Webhook not found"))?;
    let (enabled, disabled_reason, disabled_at) =
        (w.enabled, w.disabled_reason.clone(), w.disabled_at);
    Ok(Json(WebhookStateOut {
        registration: webhook_out(&ctx, w),
        status: if enabled { "active" } else { "disabled" },
        disabled_reason: disabled_reason.filter(|_| !enabled),
        disabled_at: disabled_at.filter(|_| !enabled).map(ms_to_rfc3339),
    }))
}

/// `PUT /v1/webhooks/{partner_id}` (beyond the reference): a new URL for the partner's webhook,
/// same secret, enabled again like a re-registration. 404 when it has none (never creates one).
pub(crate) async fn update_url(
    State(state): State<AppState>,
    ctx: RequestCtx,
    caller: Caller,
    Path(partner_id): Path<String>,
    JsonBody(req): JsonBody<WebhookUpdate>,
) -> Result<Json<WebhookOut>, ApiError> {
    let scope = partner_scope(&caller, &partner_id)?;
    let w = state
        .store
        .update_webhook_url(&scope, &req.webhook_url, state.clock.now())
        .await
        .map_err(webhook_not_found)?;
    if let Some(wake) = &state.wake {
        wake.notify();
    }
    Ok(Json(webhook_out(&ctx, w)))
}

pub(crate) async fn delete(
    State(state): State<AppState>,
    ctx: RequestCtx,
    caller: Caller,
    Path(partner_id): Path<String>,
) -> Result<Json<ContextOnly>, ApiError> {
    let scope = partner_scope(&caller, &partner_id)?;
    state
        .store
        .delete_webhook(&scope)
        .await
        .map_err(webhook_not_found)?;
    Ok(Json(ContextOnly {
        response_context: ctx.response_context("success"),
    }))
}

#[derive(Serialize)]
pub(crate) struct ConnectivityOut {
    response_context: ResponseContext,
    #[serde(skip_serializing_if = "Option::is_none")]
    webhook_response: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    queued_events: Option<u64>,
}

pub(crate) async fn check_connectivity(
    State(state): State<AppState>,
    ctx: RequestCtx,
    caller: Caller,
    JsonBody(req): JsonBody<CheckConnectivity>,
) -> Result<Json<ConnectivityOut>, ApiError> {
    let scope = partner_scope(&caller, &req.partner_id)?;
    let w = state
        .store
        .get_webhook(&scope)
        .await?
        .ok_or(ApiError::NotFound("Webhook not found"))?;
    if let Some(sim) = req.simulation {
        let key = WebhookKey::legacy(&scope);
        let items = simulation::notifications(&key, &sim, state.clock.now());
        let n = state
            .store
            .queue_direct(&key, items, state.clock.now())
            .await?;
        if let Some(wake) = &state.wake {
            wake.notify();
        }
        return Ok(Json(ConnectivityOut {
            response_context: ctx.response_context("success"),
            webhook_response: None,
            error: None,
            queued_events: Some(n),
        }));
    }
    let sent = connectivity::check(&state.sender, &scope, &w, state.clock.now()).await?;
    Ok(Json(ConnectivityOut {
        response_context: ctx.response_context(if sent.ok { "success" } else { "failure" }),
        webhook_response: sent.webhook_response,
        error: sent.error,
        queued_events: None,
    }))
}

// --- Delivery log and replay -----------------------------------------------------------------

#[derive(Serialize)]
pub(crate) struct DeliveryOut {
    delivery_id: String,
    event_id: String,
    event_name: String,
    enrollment_id: Option<String>,
    status: &'static str,
    attempts: u32,
    last_attempt_at: Option<String>,
    next_attempt_at: Option<String>,
    last_status_code: Option<u16>,
    last_error: Option<String>,
}

impl From<DeliveryInfo> for DeliveryOut {
    fn from(d: DeliveryInfo) -> Self {
        Self {
            delivery_id: d.delivery_id,
            event_id: d.event_id,
            event_name: d.event_name,
            enrollment_id: d.enrollment_id,
            status: d.status.as_str(),
            attempts: d.attempts,
            last_attempt_at: d.last_attempt_at.map(ms_to_rfc3339),
            next_attempt_at: d.next_attempt_at.map(ms_to_rfc3339),
            last_status_code: d.last_status_code,
            last_error: d.last_error,
        }
    }
}

#[derive(Serialize)]
pub(crate) struct AttemptOut {
    attempted_at: String,
    status_code: Option<u16>,
    error: Option<String>,
    latency_ms: u64,
    response_body: Option<String>,
}

impl From<AttemptInfo> for AttemptOut {
    fn from(a: AttemptInfo) -> Self {
        Self {
            attempted_at: ms_to_rfc3339(a.attempted_at),
            status_code: a.status_code,
            error: a.error,
            latency_ms: a.latency_ms,
            response_body: a.response_body,
        }
    }
}

#[derive(Serialize)]
pub(crate) struct DeliveriesOut {
    response_context: ResponseContext,
    deliveries: Vec<DeliveryOut>,
    next_cursor: Option<String>,
}

const DEFAULT_PAGE: u32 = 100;
const MAX_PAGE: u32 = 1000;

fn parse_delivery_query(params: &[(String, String)]) -> Result<DeliveryQuery, Vec<FieldError>> {
    let params = Params(params);
    let mut errors = Vec::new();
    let mut q = DeliveryQuery {
        limit: DEFAULT_PAGE,
        event_name: params.last("event_name").cloned(),
        ..Default::default()
    };
    if let Some(s) = params.last("status") {
        match DeliveryStatus::parse(s) {
            Some(st) => q.status = Some(st),
            None => errors.push(query_error(
                "enum",
                "status",
                "Input should be 'pending', 'delivered' or 'failed'".into(),
                s,
                Some(json!({"expected": "'pending', 'delivered' or 'failed'"})),
            )),
        }
    }
    if let Some(l) = params.limit(MAX_PAGE, &mut errors) {
        q.limit = l;
    }
    q.cursor = params.cursor(&mut errors);
    if errors.is_empty() {
        Ok(q)
    } else {
        Err(errors)
    }
}

pub(crate) async fn list_deliveries(
    State(state): State<AppState>,
    ctx: RequestCtx,
    caller: Caller,
    Path(partner_id): Path<String>,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Json<DeliveriesOut>, ApiError> {
    let scope = partner_scope(&caller, &partner_id)?;
    let key = WebhookKey::legacy(&scope);
    let (status, deliveries, next_cursor) = deliveries_page(&state, &key, &params).await?;
    Ok(Json(DeliveriesOut {
        response_context: ctx.response_context(status),
        deliveries,
        next_cursor,
    }))
}

/// One page of a webhook's delivery log (v1's and each v2 webhook's): its `request_status`,
/// the deliveries and the next cursor.
pub(crate) async fn deliveries_page(
    state: &AppState,
    key: &WebhookKey,
    params: &[(String, String)],
) -> Result<(&'static str, Vec<DeliveryOut>, Option<String>), ApiError> {
    let q = parse_delivery_query(params).map_err(ApiError::Validation)?;
    let page = state.store.list_deliveries(key, &q).await?;
    let status = if page.deliveries.is_empty() {
        "miss"
    } else {
        "success"
    };
    Ok((
        status,
        page.deliveries.into_iter().map(Into::into).collect(),
        page.next_cursor.map(Cursor::encode),
    ))
}

/// One delivery of a webhook with its attempts (404 outside the webhook).
pub(crate) async fn delivery_detail(
    state: &AppState,
    key: &WebhookKey,
    delivery_id: &str,
) -> Result<(DeliveryOut, Vec<AttemptOut>), ApiError> {
    let (d, attempts) = state
        .store
        .get_delivery(key, delivery_id)
        .await?
        .ok_or(ApiError::NotFound("Delivery not found"))?;
    Ok((d.into(), attempts.into_iter().map(Into::into).collect()))
}

#[derive(Serialize)]
pub(crate) struct DeliveryDetailOut {
    response_context: ResponseContext,
    delivery: DeliveryOut,
    attempt_list: Vec<AttemptOut>,
}

pub(crate) async fn get_delivery(
    State(state): State<AppState>,
    ctx: RequestCtx,
    caller: Caller,
    Path((partner_id, delivery_id)): Path<(String, String)>,
) -> Result<Json<DeliveryDetailOut>, ApiError> {
    let scope = partner_scope(&caller, &partner_id)?;
    let key = WebhookKey::legacy(&scope);
    let (delivery, attempt_list) = delivery_detail(&state, &key, &delivery_id).await?;
    Ok(Json(DeliveryDetailOut {
        response_context: ctx.response_context("success"),
        delivery,
        attempt_list,
    }))
}

#[derive(Serialize)]
pub(crate) struct RetryOut {
    response_context: ResponseContext,
    delivery_id: String,
    status: &'static str,
}

pub(crate) async fn retry_delivery(
    State(state): State<AppState>,
    ctx: RequestCtx,
    caller: Caller,
    Path((partner_id, delivery_id)): Path<(String, String)>,
) -> Result<Json<RetryOut>, ApiError> {
    let scope = partner_scope(&caller, &partner_id)?;
    state
        .store
        .retry_delivery(&WebhookKey::legacy(&scope), &delivery_id, state.clock.now())
        .await
        .map_err(|e| match e {
            StoreError::NotFound => ApiError::NotFound("Delivery not found"),
            other => other.into(),
        })?;
    if let Some(wake) = &state.wake {
        wake.notify();
    }
    Ok(Json(RetryOut {
        response_context: ctx.response_context("success"),
        delivery_id,
        status: "pending",
    }))
}

#[derive(Serialize)]
pub(crate) struct ReplayOut {
    response_context: ResponseContext,
    requeued: u64,
}

pub(crate) async fn replay(
    State(state): State<AppState>,
    ctx: RequestCtx,
    caller: Caller,
    Path(partner_id): Path<String>,
    JsonBody(req): JsonBody<ReplayRequest>,
) -> Result<Json<ReplayOut>, ApiError> {
    let scope = partner_scope(&caller, &partner_id)?;
    let q = replay_query(req);
    let n = state
        .store
        .replay(&WebhookKey::legacy(&scope), &q, state.clock.now())
        .await?;
    if let Some(wake) = &state.wake {
        wake.notify();
    }
    Ok(Json(ReplayOut {
        response_context: ctx.response_context(if n == 0 { "miss" } else { "success" }),
        requeued: n,
    }))
}

/// The store's replay window for a replay request (v1's and each v2 webhook's).
pub(crate) fn replay_query(req: ReplayRequest) -> ReplayQuery {
    ReplayQuery {
        from: domain::instant::window_start(req.timestamp_from).unix_timestamp(),
        to: req.timestamp_to.map(|t| t.unix_timestamp()),
        event_names: req
            .event_types
            .map(|ts| ts.iter().map(|t| t.as_str().to_string()).collect()),
    }
}
