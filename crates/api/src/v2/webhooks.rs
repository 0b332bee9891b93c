//! `/v2/webhooks`: a scope's webhooks as resources (reference 0.3.29, tag `V2Webhooks`) —
//! list, create (201), get, PATCH, DELETE (409 while active enrollments use it, unless
//! `?force=true`), rotate_secret and check_connectivity — plus, beyond the reference, each
//! webhook's delivery log, retry and replay, mirroring v1's. The partner's v1 webhook is listed
//! as `legacy: true` and is read-only here. Handlers only; the rules are the store's.

use crate::body::JsonBody;
use crate::connectivity;
use crate::context::{RequestCtx, V2ResponseContext};
use crate::error::ApiError;
use crate::query::{query_error, Params};
use crate::simulation;
use crate::webhooks::{deliveries_page, delivery_detail, ms_to_rfc3339, replay_query};
use crate::webhooks::{AttemptOut, DeliveryOut};
use crate::{AppState, Caller};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use domain::validation::v2::{WebhookConnectivity, WebhookCreate, WebhookPatch, WebhookStatus};
use domain::validation::ReplayRequest;
use serde::Serialize;
use serde_json::{json, Value};
use store::{
    NewWebhook, StoreError, Webhook, WebhookChange, WebhookKey, WebhookRemoval, MAX_WEBHOOKS,
    WEBHOOK_CAP_REACHED, WEBHOOK_NAME_TAKEN, WEBHOOK_READ_ONLY,
};

/// `WebhookResource`, in the reference's key order.
#[derive(Serialize)]
pub(crate) struct WebhookResource {
    webhook_id: String,
    scope: Value,
    name: String,
    description: Option<String>,
    webhook_url: String,
    headers: Vec<String>,
    payload_format: &'static str,
    status: &'static str,
    created_at: String,
    last_modified_time: String,
    legacy: bool,
}

/// `WebhookResponse` (and, with the secret, `WebhookCreateResponse`), keys in the
/// reference's order: the resource, `response_context`, then `webhook_secret`.
#[derive(Serialize)]
pub(crate) struct WebhookResponse {
    #[serde(flatten)]
    webhook: WebhookResource,
    response_context: V2ResponseContext,
    #[serde(skip_serializing_if = "Option::is_none")]
    webhook_secret: Option<String>,
}

#[derive(Serialize)]
pub(crate) struct WebhookListResponse {
    response_context: V2ResponseContext,
    webhooks: Vec<WebhookResource>,
}

#[derive(Serialize)]
pub(crate) struct WebhookRotateSecretResponse {
    response_context: V2ResponseContext,
    webhook_id: String,
    webhook_secret: String,
}

#[derive(Serialize)]
pub(crate) struct WebhookDeleteResponse {
    response_context: V2ResponseContext,
    affected_enrollment_ids: Vec<String>,
}

#[derive(Serialize)]
pub(crate) struct WebhookConnectivityResponse {
    response_context: V2ResponseContext,
    #[serde(skip_serializing_if = "Option::is_none")]
    webhook_response: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    queued_events: Option<u64>,
}

/// The name the legacy row shows (it has none stored: v1 registrations are unnamed).
fn legacy_name(partner: &str) -> String {
    format!("v1 webhook of partner {partner}")
}

fn resource(caller: &Caller, w: Webhook) -> WebhookResource {
    let legacy = w.is_legacy();
    WebhookResource {
        scope: json!({"type": "tenant", "id": caller.scope.tenant.0}),
        name: w
            .name
            .unwrap_or_else(|| legacy_name(&caller.scope.partner.0)),
        description: w.description,
        webhook_url: w.webhook_url,
        headers: w.headers,
        payload_format: w.payload_format.as_str(),
        status: if w.enabled { "active" } else { "disabled" },
        created_at: ms_to_rfc3339(w.created_at),
        last_modified_time: ms_to_rfc3339(w.last_modified_time),
        legacy,
        webhook_id: w.webhook_id,
    }
}

fn response(ctx: &RequestCtx, caller: &Caller, w: Webhook, secret: bool) -> WebhookResponse {
    let webhook_secret = secret.then(|| w.secret.clone());
    WebhookResponse {
        response_context: ctx.v2_response_context("success"),
        webhook: resource(caller, w),
        webhook_secret,
    }
}

/// The store's refusals in the reference's `{"detail": …}` style (docs/decisions.md D77).
pub(crate) fn webhook_error(e: StoreError) -> ApiError {
    match e {
        StoreError::NotFound => ApiError::NotFound("Webhook not found"),
        StoreError::Conflict(m) if m == WEBHOOK_CAP_REACHED => ApiError::ConflictOwned(format!(
            "Webhook limit reached: a tenant can have at most {MAX_WEBHOOKS} webhooks; delete \
             one first"
        )),
        StoreError::Conflict(m) if m == WEBHOOK_NAME_TAKEN => {
            ApiError::Conflict("A webhook with this name already exists")
        }
        StoreError::Conflict(m) if m == WEBHOOK_READ_ONLY => ApiError::Conflict(
            "The legacy (v1) webhook is read-only here; manage it through /v1/webhooks",
        ),
        other => other.into(),
    }
}

fn wake(state: &AppState) {
    if let Some(wake) = &state.wake {
        wake.notify();
    }
}

/// `status` of GET /v2/webhooks, as FastAPI validates `Query(None)` of `WebhookStatus`.
fn status_filter(params: &[(String, String)]) -> Result<Option<bool>, ApiError> {
    let params = Params(params);
    let Some(s) = params.last("status") else {
        return Ok(None);
    };
    match WebhookStatus::parse(s) {
        Some(st) => Ok(Some(st == WebhookStatus::Active)),
        None => Err(ApiError::Validation(vec![query_error(
            "enum",
            "status",
            "Input should be 'active' or 'disabled'".into(),
            s,
            Some(json!({"expected": "'active' or 'disabled'"})),
        )])),
    }
}

pub(crate) async fn list(
    State(state): State<AppState>,
    ctx: RequestCtx,
    caller: Caller,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Json<WebhookListResponse>, ApiError> {
    let active = status_filter(&params)?;
    let webhooks: Vec<WebhookResource> = state
        .store
        .list_webhooks(&caller.scope)
        .await?
        .into_iter()
        .filter(|w| active.is_none_or(|a| w.enabled == a))
        .map(|w| resource(&caller, w))
        .collect();
    let status = if webhooks.is_empty() {
        "miss"
    } else {
        "success"
    };
    Ok(Json(WebhookListResponse {
        response_context: ctx.v2_response_context(status),
        webhooks,
    }))
}

pub(crate) async fn create(
    State(state): State<AppState>,
    ctx: RequestCtx,
    caller: Caller,
    JsonBody(req): JsonBody<WebhookCreate>,
) -> Result<(StatusCode, Json<WebhookResponse>), ApiError> {
    let new = NewWebhook {
        webhook_id: store::new_webhook_id(),
        name: req.name,
        description: req.description,
        headers: req.headers.iter().map(ToString::to_string).collect(),
        payload_format: req.payload_format,
        webhook_url: req.webhook_url,
        secret: domain::signing::generate_secret(rand::random()),
    };
    let w = state
        .store
        .create_webhook(&caller.scope, new, state.clock.now())
        .await
        .map_err(webhook_error)?;
    Ok((StatusCode::CREATED, Json(response(&ctx, &caller, w, true))))
}

/// The caller's webhook `webhook_id` (404 for another scope's: foreign looks like missing).
async fn find(state: &AppState, key: &WebhookKey) -> Result<Webhook, ApiError> {
    state
        .store
        .find_webhook(key)
        .await?
        .ok_or(ApiError::NotFound("Webhook not found"))
}

pub(crate) async fn get_one(
    State(state): State<AppState>,
    ctx: RequestCtx,
    caller: Caller,
    Path(webhook_id): Path<String>,
) -> Result<Json<WebhookResponse>, ApiError> {
    let w = find(&state, &WebhookKey::new(&caller.scope, &webhook_id)).await?;
    Ok(Json(response(&ctx, &caller, w, false)))
}

pub(crate) async fn patch(
    State(state): State<AppState>,
    ctx: RequestCtx,
    caller: Caller,
    Path(webhook_id): Path<String>,
    JsonBody(req): JsonBody<WebhookPatch>,
) -> Result<Json<WebhookResponse>, ApiError> {
    let change = WebhookChange {
        name: req.name,
        description: req.description,
        headers: req
            .headers
            .map(|h| h.iter().map(ToString::to_string).collect()),
        payload_format: req.payload_format,
        webhook_url: req.webhook_url,
        enabled: req.status.map(|s| s == WebhookStatus::Active),
    };
    let key = WebhookKey::new(&caller.scope, &webhook_id);
    let w = state
        .store
        .change_webhook(&key, change, state.clock.now())
        .await
        .map_err(webhook_error)?;
    wake(&state);
    Ok(Json(response(&ctx, &caller, w, false)))
}

/// `?force=` as FastAPI parses a `bool` query parameter.
fn force_param(params: &[(String, String)]) -> Result<bool, ApiError> {
    let params = Params(params);
    let Some(v) = params.last("force") else {
        return Ok(false);
    };
    match v.to_ascii_lowercase().as_str() {
        "1" | "true" | "t" | "yes" | "y" | "on" => Ok(true),
        "0" | "false" | "f" | "no" | "n" | "off" => Ok(false),
        _ => Err(ApiError::Validation(vec![query_error(
            "bool_parsing",
            "force",
            "Input should be a valid boolean, unable to interpret input".into(),
            v,
            None,
        )])),
    }
}

pub(crate) async fn delete(
    State(state): State<AppState>,
    ctx: RequestCtx,
    caller: Caller,
    Path(webhook_id): Path<String>,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Json<WebhookDeleteResponse>, ApiError> {
    let force = force_param(&params)?;
    let key = WebhookKey::new(&caller.scope, &webhook_id);
    let removal = state
        .store
        .remove_webhook(&key, force, state.clock.now())
        .await
        .map_err(webhook_error)?;
    match removal {
        WebhookRemoval::Blocked(ids) => Err(ApiError::ConflictOwned(format!(
            "Webhook {webhook_id} is used by active enrollments: {}. Re-point them, or delete \
             with ?force=true to pause them",
            ids.iter()
                .map(|i| i.0.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
        WebhookRemoval::Removed(ids) => Ok(Json(WebhookDeleteResponse {
            response_context: ctx.v2_response_context("success"),
            affected_enrollment_ids: ids.into_iter().map(|i| i.0).collect(),
        })),
    }
}

pub(crate) async fn rotate_secret(
    State(state): State<AppState>,
    ctx: RequestCtx,
    caller: Caller,
    Path(webhook_id): Path<String>,
) -> Result<Json<WebhookRotateSecretResponse>, ApiError> {
    let key = WebhookKey::new(&caller.scope, &webhook_id);
    let secret = domain::signing::generate_secret(rand::random());
    let w = state
        .store
        .rotate_webhook_secret(
            &key,
            &secret,
            state.config.secret_rotation_grace,
            state.clock.now(),
        )
        .await
        .map_err(webhook_error)?;
    Ok(Json(WebhookRotateSecretResponse {
        response_context: ctx.v2_response_context("success"),
        webhook_id: w.webhook_id,
        webhook_secret: w.secret,
    }))
}

pub(crate) async fn check_connectivity(
    State(state): State<AppState>,
    ctx: RequestCtx,
    caller: Caller,
    Path(webhook_id): Path<String>,
    JsonBody(req): JsonBody<WebhookConnectivity>,
) -> Result<Json<WebhookConnectivityResponse>, ApiError> {
    let key = WebhookKey::new(&caller.scope, &webhook_id);
    let w = find(&state, &key).await?;
    if let Some(sim) = req.simulation {
        let items = simulation::notifications(&key, &sim, state.clock.now());
        let n = state
            .store
            .queue_direct(&key, items, state.clock.now())
            .await?;
        wake(&state);
        return Ok(Json(WebhookConnectivityResponse {
            response_context: ctx.v2_response_context("success"),
            webhook_response: None,
            error: None,
            queued_events: Some(n),
        }));
    }
    let sent = connectivity::check(&state.sender, &caller.scope, &w, state.clock.now()).await?;
    Ok(Json(WebhookConnectivityResponse {
        response_context: ctx.v2_response_context(if sent.ok { "success" } else { "failure" }),
        webhook_response: sent.webhook_response,
        error: sent.error,
        queued_events: None,
    }))
}

// --- Delivery log, retry and replay (beyond the reference, as v1's) ---------------------------

#[derive(Serialize)]
pub(crate) struct DeliveriesResponse {
    response_context: V2ResponseContext,
    deliveries: Vec<DeliveryOut>,
    next_cursor: Option<String>,
}

pub(crate) async fn list_deliveries(
    State(state): State<AppState>,
    ctx: RequestCtx,
    caller: Caller,
    Path(webhook_id): Path<String>,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Json<DeliveriesResponse>, ApiError> {
    let key = WebhookKey::new(&caller.scope, &webhook_id);
    find(&state, &key).await?;
    let (status, deliveries, next_cursor) = deliveries_page(&state, &key, &params).await?;
    Ok(Json(DeliveriesResponse {
        response_context: ctx.v2_response_context(status),
        deliveries,
        next_cursor,
    }))
}

#[derive(Serialize)]
pub(crate) struct DeliveryResponse {
    response_context: V2ResponseContext,
    delivery: DeliveryOut,
    attempt_list: Vec<AttemptOut>,
}

pub(crate) async fn get_delivery(
    State(state): State<AppState>,
    ctx: RequestCtx,
    caller: Caller,
    Path((webhook_id, delivery_id)): Path<(String, String)>,
) -> Result<Json<DeliveryResponse>, ApiError> {
    let key = WebhookKey::new(&caller.scope, &webhook_id);
    let (delivery, attempt_list) = delivery_detail(&state, &key, &delivery_id).await?;
    Ok(Json(DeliveryResponse {
        response_context: ctx.v2_response_context("success"),
        delivery,
        attempt_list,
    }))
}

#[derive(Serialize)]
pub(crate) struct RetryResponse {
    response_context: V2ResponseContext,
    delivery_id: String,
    status: &'static str,
}

pub(crate) async fn retry_delivery(
    State(state): State<AppState>,
    ctx: RequestCtx,
    caller: Caller,
    Path((webhook_id, delivery_id)): Path<(String, String)>,
) -> Result<Json<RetryResponse>, ApiError> {
    let key = WebhookKey::new(&caller.scope, &webhook_id);
    state
        .store
        .retry_delivery(&key, &delivery_id, state.clock.now())
        .await
        .map_err(|e| match e {
            StoreError::NotFound => ApiError::NotFound("Delivery not found"),
            other => other.into(),
        })?;
    wake(&state);
    Ok(Json(RetryResponse {
        response_context: ctx.v2_response_context("success"),
        delivery_id,
        status: "pending",
    }))
}

#[derive(Serialize)]
pub(crate) struct ReplayResponse {
    response_context: V2ResponseContext,
    requeued: u64,
}

pub(crate) async fn replay(
    State(state): State<AppState>,
    ctx: RequestCtx,
    caller: Caller,
    Path(webhook_id): Path<String>,
    JsonBody(req): JsonBody<ReplayRequest>,
) -> Result<Json<ReplayResponse>, ApiError> {
    let key = WebhookKey::new(&caller.scope, &webhook_id);
    find(&state, &key).await?;
    let n = state
        .store
        .replay(&key, &replay_query(req), state.clock.now())
        .await?;
    wake(&state);
    Ok(Json(ReplayResponse {
        response_context: ctx.v2_response_context(if n == 0 { "miss" } else { "success" }),
        requeued: n,
    }))
}
