//! `/v2/prospects/events/enrollments` (reference 0.3.29, tag `V2Enrollments`): list, create
//! (201), PATCH (partial) and DELETE by id. One enrollment model serves v1 and v2: both lists
//! show every enrollment of the caller's scope; here a v1 enrollment shows `webhook_id`
//! `wh_legacy` (docs/decisions.md D78).

use crate::body::JsonBody;
use crate::context::{RequestCtx, V2ResponseContext};
use crate::enrollments::parse_list_query;
use crate::error::ApiError;
use crate::{AppState, Caller};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use domain::validation::v2::{EnrollmentCreate, EnrollmentPatch};
use domain::validation::{FieldError, Loc};
use domain::EnrollmentId;
use serde::Serialize;
use serde_json::{json, Value};
use store::{
    Cursor, Enrollment, EnrollmentSpec, NewEnrollment, StoreError, LEGACY_WEBHOOK_ID,
    WEBHOOK_NOT_ACTIVE,
};

/// `V2EnrollmentResponse`, in the reference's key order.
#[derive(Serialize)]
pub(crate) struct V2EnrollmentResponse {
    enrollment_key: String,
    enrollment_id: String,
    webhook_id: String,
    status: &'static str,
    response_context: V2ResponseContext,
}

/// `V2ProspectEnrollment`.
#[derive(Serialize)]
pub(crate) struct V2ProspectEnrollment {
    enrollment_key: String,
    enrollment_id: String,
    webhook_id: String,
    status: &'static str,
    event_types: Vec<&'static str>,
    prospect_ids: Vec<String>,
}

#[derive(Serialize)]
pub(crate) struct V2ProspectEnrollmentListResponse {
    response_context: V2ResponseContext,
    enrollments: Vec<V2ProspectEnrollment>,
    /// Only with `limit` (an extension, as v1's list).
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<Option<String>>,
}

#[derive(Serialize)]
pub(crate) struct V2EnrollmentDeleteResponse {
    response_context: V2ResponseContext,
    status: &'static str,
}

fn status_of(e: &Enrollment) -> &'static str {
    if e.paused {
        "paused"
    } else {
        "active"
    }
}

fn answer(ctx: &RequestCtx, e: Enrollment) -> V2EnrollmentResponse {
    V2EnrollmentResponse {
        status: status_of(&e),
        enrollment_key: e.spec.enrollment_key,
        enrollment_id: e.enrollment_id.0,
        webhook_id: e.webhook_id,
        response_context: ctx.v2_response_context("success"),
    }
}

/// The store's refusals: an unknown webhook 404, an inactive one a 422 on `webhook_id` in
/// pydantic's `value_error` shape, an unknown enrollment 404 (docs/decisions.md D78).
/// `missing` says what a `NotFound` can be.
fn enrollment_error(e: StoreError, webhook_id: Option<&str>, missing: &'static str) -> ApiError {
    match (e, webhook_id) {
        (StoreError::NotFound, _) => ApiError::NotFound(missing),
        (StoreError::Conflict(m), Some(w)) if m == WEBHOOK_NOT_ACTIVE => {
            ApiError::Validation(vec![not_active(w)])
        }
        (other, _) => other.into(),
    }
}

fn not_active(webhook_id: &str) -> FieldError {
    FieldError {
        kind: "value_error".into(),
        loc: vec![Loc::Field("body".into()), Loc::Field("webhook_id".into())],
        msg: format!("Value error, webhook {webhook_id} is not active"),
        input: Value::String(webhook_id.into()),
        ctx: Some(json!({"error": {}})),
    }
}

/// The webhook an enrollment may name: its scope's (foreign ids look missing). Through v2 the
/// legacy id is held to the rules of any other webhook: the partner's v1 webhook must be
/// registered (404) and active (422 — e.g. not disabled by a 410), which the store checks for
/// v2 webhooks only (v1 enrollments wait for a registration).
async fn check_legacy_target(state: &AppState, caller: &Caller, w: &str) -> Result<(), ApiError> {
    if w != LEGACY_WEBHOOK_ID {
        return Ok(());
    }
    match state.store.get_webhook(&caller.scope).await? {
        None => Err(ApiError::NotFound("Webhook not found")),
        Some(hook) if !hook.enabled => Err(ApiError::Validation(vec![not_active(w)])),
        Some(_) => Ok(()),
    }
}

pub(crate) async fn create(
    State(state): State<AppState>,
    ctx: RequestCtx,
    caller: Caller,
    JsonBody(req): JsonBody<EnrollmentCreate>,
) -> Result<(StatusCode, Json<V2EnrollmentResponse>), ApiError> {
    check_legacy_target(&state, &caller, &req.webhook_id).await?;
    let spec = EnrollmentSpec {
        enrollment_key: req.enrollment_key,
        event_types: req.event_types,
        prospect_ids: req.prospect_ids,
    };
    // A 96-bit random id never collides in practice; retry once on the impossible conflict.
    let mut attempt = 0;
    let id = loop {
        let id = EnrollmentId::from_random(rand::random());
        let new = NewEnrollment {
            enrollment_id: id.clone(),
            spec: spec.clone(),
            webhook_id: req.webhook_id.clone(),
            now: state.clock.now(),
        };
        match state.store.create_enrollment(&caller.scope, new).await {
            Ok(()) => break id,
            Err(StoreError::Conflict(m)) if attempt == 0 && m != WEBHOOK_NOT_ACTIVE => attempt += 1,
            Err(e) => {
                return Err(enrollment_error(
                    e,
                    Some(&req.webhook_id),
                    "Webhook not found",
                ))
            }
        }
    };
    let e = Enrollment {
        enrollment_id: id,
        spec,
        webhook_id: req.webhook_id,
        paused: false,
    };
    Ok((StatusCode::CREATED, Json(answer(&ctx, e))))
}

pub(crate) async fn patch(
    State(state): State<AppState>,
    ctx: RequestCtx,
    caller: Caller,
    Path(enrollment_id): Path<String>,
    JsonBody(req): JsonBody<EnrollmentPatch>,
) -> Result<Json<V2EnrollmentResponse>, ApiError> {
    if let Some(w) = &req.webhook_id {
        check_legacy_target(&state, &caller, w).await?;
    }
    let webhook_id = req.webhook_id.clone();
    let patch = store::EnrollmentPatch {
        enrollment_key: req.enrollment_key,
        event_types: req.event_types,
        prospect_ids: req.prospect_ids,
        webhook_id: req.webhook_id,
    };
    let e = state
        .store
        .patch_enrollment(&caller.scope, &enrollment_id, patch, state.clock.now())
        .await
        .map_err(|e| {
            let missing = match webhook_id {
                Some(_) => "Enrollment or webhook not found",
                None => "Enrollment not found",
            };
            enrollment_error(e, webhook_id.as_deref(), missing)
        })?;
    Ok(Json(answer(&ctx, e)))
}

pub(crate) async fn delete(
    State(state): State<AppState>,
    ctx: RequestCtx,
    caller: Caller,
    Path(enrollment_id): Path<String>,
) -> Result<Json<V2EnrollmentDeleteResponse>, ApiError> {
    state
        .store
        .delete_enrollment(&caller.scope, &enrollment_id)
        .await
        .map_err(|e| enrollment_error(e, None, "Enrollment not found"))?;
    Ok(Json(V2EnrollmentDeleteResponse {
        response_context: ctx.v2_response_context("success"),
        status: "success",
    }))
}

pub(crate) async fn list(
    State(state): State<AppState>,
    ctx: RequestCtx,
    caller: Caller,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Json<V2ProspectEnrollmentListResponse>, ApiError> {
    let query = parse_list_query(&params).map_err(ApiError::Validation)?;
    let page = state.store.list_enrollments(&caller.scope, &query).await?;
    let enrollments = page
        .enrollments
        .into_iter()
        .map(|e| V2ProspectEnrollment {
            status: status_of(&e),
            enrollment_key: e.spec.enrollment_key,
            enrollment_id: e.enrollment_id.0,
            webhook_id: e.webhook_id,
            event_types: e.spec.event_types.iter().map(|t| t.as_str()).collect(),
            prospect_ids: e.spec.prospect_ids.iter().map(|p| p.to_string()).collect(),
        })
        .collect();
    Ok(Json(V2ProspectEnrollmentListResponse {
        response_context: ctx.v2_response_context("success"),
        enrollments,
        next_cursor: query.limit.map(|_| page.next_cursor.map(Cursor::encode)),
    }))
}
