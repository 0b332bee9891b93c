//! `/v1/prospects/events/enrollments`: create, list, replace (PATCH) and delete.

use crate::body::JsonBody;
use crate::context::{RequestCtx, ResponseContext};
use crate::error::ApiError;
use crate::query::{query_error, Params};
use crate::{AppState, Caller};
use axum::extract::{Query, State};
use axum::Json;
use domain::validation::{EnrollmentAdd, EnrollmentDelete, EnrollmentUpdate, FieldError};
use domain::{EnrollmentId, ProspectId};
use serde::Serialize;
use serde_json::json;
use store::{
    Cursor, EnrollmentQuery, EnrollmentSpec, NewEnrollment, StoreError, LEGACY_WEBHOOK_ID,
};

#[derive(Serialize)]
pub(crate) struct EnrollmentOut {
    response_context: ResponseContext,
    enrollment_key: String,
    enrollment_id: String,
}

#[derive(Serialize)]
pub(crate) struct DeleteOut {
    response_context: ResponseContext,
    status: &'static str,
}

#[derive(Serialize)]
pub(crate) struct ListOut {
    response_context: ResponseContext,
    enrollments: Vec<EnrollmentItem>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<Option<String>>,
}

#[derive(Serialize)]
pub(crate) struct EnrollmentItem {
    enrollment_id: String,
    enrollment_key: String,
    event_types: Vec<&'static str>,
    prospect_ids: Vec<String>,
}

pub(crate) async fn create(
    State(state): State<AppState>,
    ctx: RequestCtx,
    caller: Caller,
    JsonBody(req): JsonBody<EnrollmentAdd>,
) -> Result<Json<EnrollmentOut>, ApiError> {
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
            webhook_id: LEGACY_WEBHOOK_ID.to_string(),
            now: state.clock.now(),
        };
        match state.store.create_enrollment(&caller.scope, new).await {
            Ok(()) => break id,
            Err(StoreError::Conflict(_)) if attempt == 0 => attempt += 1,
            Err(e) => return Err(e.into()),
        }
    };
    Ok(Json(EnrollmentOut {
        response_context: ctx.response_context("success"),
        enrollment_key: spec.enrollment_key,
        enrollment_id: id.0,
    }))
}

pub(crate) async fn update(
    State(state): State<AppState>,
    ctx: RequestCtx,
    caller: Caller,
    JsonBody(req): JsonBody<EnrollmentUpdate>,
) -> Result<Json<EnrollmentOut>, ApiError> {
    let spec = EnrollmentSpec {
        enrollment_key: req.enrollment_key,
        event_types: req.event_types,
        prospect_ids: req.prospect_ids,
    };
    let key = spec.enrollment_key.clone();
    state
        .store
        .update_enrollment(&caller.scope, &req.enrollment_id, spec, state.clock.now())
        .await
        .map_err(not_found)?;
    Ok(Json(EnrollmentOut {
        response_context: ctx.response_context("success"),
        enrollment_key: key,
        enrollment_id: req.enrollment_id,
    }))
}

pub(crate) async fn delete(
    State(state): State<AppState>,
    ctx: RequestCtx,
    caller: Caller,
    JsonBody(req): JsonBody<EnrollmentDelete>,
) -> Result<Json<DeleteOut>, ApiError> {
    state
        .store
        .delete_enrollment(&caller.scope, &req.enrollment_id)
        .await
        .map_err(not_found)?;
    Ok(Json(DeleteOut {
        response_context: ctx.response_context("success"),
        status: "success",
    }))
}

pub(crate) async fn list(
    State(state): State<AppState>,
    ctx: RequestCtx,
    caller: Caller,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Json<ListOut>, ApiError> {
    let query = parse_list_query(&params).map_err(ApiError::Validation)?;
    let page = state.store.list_enrollments(&caller.scope, &query).await?;
    let enrollments = page
        .enrollments
        .into_iter()
        .map(|e| EnrollmentItem {
            enrollment_id: e.enrollment_id.0,
            enrollment_key: e.spec.enrollment_key,
            event_types: e.spec.event_types.iter().map(|t| t.as_str()).collect(),
            prospect_ids: e.spec.prospect_ids.iter().map(|p| p.to_string()).collect(),
        })
        .collect();
    Ok(Json(ListOut {
        response_context: ctx.response_context("success"),
        enrollments,
        next_cursor: query.limit.map(|_| page.next_cursor.map(Cursor::encode)),
    }))
}

fn not_found(e: StoreError) -> ApiError {
    match e {
        StoreError::NotFound => ApiError::NotFound("Enrollment not found"),
        other => other.into(),
    }
}

const MAX_LIMIT: u32 = 1000;

/// Query parameters of GET, validated as FastAPI would.
pub(crate) fn parse_list_query(
    params: &[(String, String)],
) -> Result<EnrollmentQuery, Vec<FieldError>> {
    let params = Params(params);
    let mut errors = Vec::new();
    let mut q = EnrollmentQuery {
        enrollment_key: params.last("enrollment_key").cloned(),
        ..Default::default()
    };
    if let Some(p) = params.last("prospect_id") {
        match ProspectId::parse(p) {
            Some(id) => q.prospect_id = Some(id),
            None => errors.push(query_error(
                "string_pattern_mismatch",
                "prospect_id",
                "String should match pattern '^[a-f0-9]{40}$'".into(),
                p,
                Some(json!({"pattern": "^[a-f0-9]{40}$"})),
            )),
        }
    }
    q.limit = params.limit(MAX_LIMIT, &mut errors);
    q.cursor = params.cursor(&mut errors);
    if errors.is_empty() {
        Ok(q)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn list_query_validation() {
        assert!(parse_list_query(&params(&[])).unwrap().limit.is_none());
        assert_eq!(
            parse_list_query(&params(&[("limit", "5")])).unwrap().limit,
            Some(5)
        );
        assert_eq!(
            parse_list_query(&params(&[("limit", "1"), ("limit", "7")]))
                .unwrap()
                .limit,
            Some(7)
        );
        let e = parse_list_query(&params(&[
            ("limit", "0"),
            ("prospect_id", "x"),
            ("cursor", "zz"),
        ]))
        .unwrap_err();
        let kinds: Vec<_> = e.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(
            kinds,
            [
                "string_pattern_mismatch",
                "greater_than_equal",
                "value_error"
            ]
        );
        assert_eq!(
            parse_list_query(&params(&[("limit", "1001")])).unwrap_err()[0].kind,
            "less_than_equal"
        );
        assert_eq!(
            parse_list_query(&params(&[("limit", "ten")])).unwrap_err()[0].kind,
            "int_parsing"
        );
    }
}
