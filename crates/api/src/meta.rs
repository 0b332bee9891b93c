//! Health, version, OpenAPI, metrics and the JSON answers for unknown routes and methods.

use crate::error::ApiError;
use crate::AppState;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::Json;
use std::time::Duration;

/// Liveness: the process answers HTTP.
pub(crate) async fn healthcheck() -> Json<&'static str> {
    Json("OK")
}

/// How long readiness waits for the database.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// Readiness, for load balancers: `"OK"` while the database answers within [`READY_TIMEOUT`],
/// 503 otherwise (the cause goes to the log), so a replica that lost its database leaves the
/// rotation until it is back.
pub(crate) async fn ready(State(state): State<AppState>) -> Result<Json<&'static str>, ApiError> {
    match tokio::time::timeout(READY_TIMEOUT, state.store.ping()).await {
        Ok(Ok(())) => Ok(Json("OK")),
        Ok(Err(e)) => Err(ApiError::Unavailable(format!("readiness: {e}"))),
        Err(_) => Err(ApiError::Unavailable(format!(
            "readiness: the database did not answer within {READY_TIMEOUT:?}"
        ))),
    }
}

pub(crate) async fn version() -> Json<&'static str> {
    Json(env!("CARGO_PKG_VERSION"))
}

/// The OpenAPI document of this server: the reference endpoints plus ours.
pub(crate) async fn openapi() -> impl IntoResponse {
    (
        [(CONTENT_TYPE, "application/json")],
        include_str!("../openapi.json"),
    )
}

pub(crate) async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    ([(CONTENT_TYPE, "text/plain; version=0.0.4")], {
        let mut text = state.metrics.render();
        delivery::metrics::METRICS.render(&mut text);
        text
    })
}

pub(crate) async fn not_found() -> ApiError {
    ApiError::NotFound("Not Found")
}

pub(crate) async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
