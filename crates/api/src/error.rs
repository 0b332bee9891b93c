//! One place that decides status codes. Non-422 errors carry their human message to the
//! middleware, which renders `{"detail", "correlation_id"}`; internal causes are logged there
//! once, with the correlation id, and never sent to the client.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use domain::validation::{Detail, FieldError};
use store::StoreError;

#[derive(Debug)]
pub enum ApiError {
    Unauthorized(&'static str),
    NotFound(&'static str),
    Validation(Vec<FieldError>),
    BadRequest(&'static str),
    BadRequestOwned(String),
    Forbidden(&'static str),
    PayloadTooLarge,
    UnsupportedMediaType,
    MethodNotAllowed,
    Conflict(&'static str),
    /// 409 with a message built for the request (v2 webhook delete naming enrollments).
    ConflictOwned(String),
    /// 422 with a human message (not a pydantic error list).
    Unprocessable(&'static str),
    Unavailable(String),
    Internal(String),
}

/// Handed from an error response to the middleware through response extensions.
#[derive(Clone)]
pub(crate) struct ErrorBody {
    pub detail: String,
    pub log: Option<String>,
}

pub const PARTNER_INVALID: &str = "Partner ID is invalid. Please set the Partner ID in one of these headers: X-Context-Partner-ID, partner-id, partner_id.";

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ApiError::NotFound("Not found"),
            StoreError::Conflict(_) => ApiError::Conflict("Conflict"),
            StoreError::Unavailable(f) => ApiError::Unavailable(f.to_string()),
            StoreError::Internal(f) => ApiError::Internal(f.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, detail, log) = match self {
            ApiError::Validation(errors) => {
                return (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    axum::Json(Detail { detail: &errors }),
                )
                    .into_response();
            }
            ApiError::Unauthorized(m) => (StatusCode::UNAUTHORIZED, m.to_string(), None),
            ApiError::NotFound(m) => (StatusCode::NOT_FOUND, m.to_string(), None),
            ApiError::BadRequest(m) => (StatusCode::BAD_REQUEST, m.to_string(), None),
            ApiError::BadRequestOwned(m) => (StatusCode::BAD_REQUEST, m, None),
            ApiError::Forbidden(m) => (StatusCode::FORBIDDEN, m.to_string(), None),
            ApiError::Conflict(m) => (StatusCode::CONFLICT, m.to_string(), None),
            ApiError::ConflictOwned(m) => (StatusCode::CONFLICT, m, None),
            ApiError::Unprocessable(m) => (StatusCode::UNPROCESSABLE_ENTITY, m.to_string(), None),
            ApiError::PayloadTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "Request body is too large".to_string(),
                None,
            ),
            ApiError::UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Unsupported media type: the body must be application/json".to_string(),
                None,
            ),
            ApiError::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "Method Not Allowed".to_string(),
                None,
            ),
            ApiError::Unavailable(m) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "Service temporarily unavailable, please retry".to_string(),
                Some(m),
            ),
            ApiError::Internal(m) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "Internal server error".to_string(),
                Some(m),
            ),
        };
        let mut resp = status.into_response();
        resp.extensions_mut().insert(ErrorBody { detail, log });
        resp
    }
}
